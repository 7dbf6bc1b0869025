"""discipline: a pattern library, and the records of choosing and using a
pattern (PSR, PUR, pivot, PAR) in the evidence landscape.

**Pattern files.** One Markdown file per pattern, ``<id>.md``, in the library
folder (not recursive; ``README.md`` and names starting with ``.`` or ``_``
are not patterns)::

    ---
    id: scout-before-edit
    title: Scout before you edit
    hotwords: [edit, change, unfamiliar, callers]
    ---
    The rationale: one or more paragraphs of plain text.

The front matter is YAML with ``id`` (lowercase letters, digits and hyphens;
must equal the file name without ``.md``), ``title`` and ``hotwords`` (a
non-empty list of words or short phrases); other keys are ignored. The text
after the front matter is the rationale and may not be empty. A file that
breaks any of this is skipped with a logged warning, and ``psr-search``
lists it under ``skipped`` (``{file, reason}``) so the agent and its
reader see that the library is damaged — a broken file never breaks a tool.

**Library folder.** ``patterns_dir`` in the peripheral's ``config:`` block
wins; then the ``patterns_dir`` given to :func:`install` (the daemon's
``discipline.patterns_dir``); then ``config/patterns`` in the workspace;
then the library shipped beside the ``futon`` package. Relative paths are
resolved against the workspace.

**Scoring (psr-search).** Text is tokenised into lowercase ``[a-z0-9]+``
words, each cut by one suffix (``ing``, ``ed``, ``es``, ``s``, ``e``, only
when three letters remain), so "failing", "failed" and "fails" meet. Then

- each hotword found in the query scores **3** (a phrase hotword must
  appear as consecutive words);
- each distinct content word of the query (stop words removed) scores **2**
  when it occurs in the pattern's id or title, else **1** when it occurs in
  the rationale.

Patterns scoring 0 are left out; ties go to the smaller id. The ranking is a
pure function of the query and the files, so the same library answers the
same query the same way.

**Records.** Every record is an evidence entry whose subject is the pattern
(``{"ref/type": "pattern", "ref/id": id}``), with ``pattern-id``,
``session-id`` and author set:

- ``psr-select`` → type ``pattern-selection``, claim ``goal``;
- ``pur-update`` → type ``pattern-outcome``, claim ``evidence``, replying to
  this session's PSR of the pattern (none → ``ToolError``);
- ``pur-mark-pivot`` → type ``correction``, claim ``correction``, replying
  to the pattern's latest record in this session (a PSR is required);
- ``par-punctuate`` → type ``reflection``, claim ``observation``, replying to
  the session's latest discipline record (subject: the selected pattern, or
  the session when none was selected).

The session keeps what it recorded in ``session_context``: ``pattern-id``
(the latest selection, carried by hops) and ``discipline-records`` (a list of
``{kind, pattern_id, id, outcome?}``), from which :func:`discipline_fruit`
builds the fruit.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

import futon
from futon.peripherals.domain.discipline_args import (
    DEFAULT_TOP_K,
    MAX_PATTERN_ID,
    PATTERN_ID_RE,
    ParPunctuateArgs,
    PsrSearchArgs,
    PsrSelectArgs,
    PurMarkPivotArgs,
    PurUpdateArgs,
)
from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.protocol.errors import ToolError

log = logging.getLogger("futon.peripherals.discipline")

MAX_PATTERN_FILE = 256 * 1024
HOTWORD_SCORE = 3
TITLE_SCORE = 2
RATIONALE_SCORE = 1

SHIPPED_PATTERNS = Path(futon.__file__).resolve().parent / "data" / "config" / "patterns"
RECORDS_KEY = "discipline-records"

# ------------------------------------------------------------------ the library


@dataclass(frozen=True)
class Pattern:
    id: str
    title: str
    hotwords: tuple[str, ...]
    rationale: str
    path: Path


@dataclass(frozen=True)
class BrokenPattern:
    """A file of the library folder that is not a valid pattern."""

    file: str
    reason: str


class PatternFileError(ValueError):
    """A pattern file that cannot be used; the message says why."""


@dataclass(frozen=True)
class PatternLibrary:
    folder: Path
    patterns: dict[str, Pattern]
    broken: tuple[BrokenPattern, ...] = ()

    def get(self, pattern_id: str) -> Pattern:
        """The pattern, or ``ToolError(code="not-found")`` naming close matches."""
        found = self.patterns.get(pattern_id)
        if found is not None:
            return found
        close = close_matches(pattern_id, self.patterns)
        hint = (
            f"; close matches: {', '.join(close)}"
            if close
            else "; psr-search finds patterns by topic"
        )
        raise ToolError(
            f"no pattern {pattern_id!r} in the library at {self.folder}{hint}",
            code="not-found",
            context={"pattern_id": pattern_id, "close_matches": close},
        )

    def search(self, query: str, top_k: int = DEFAULT_TOP_K) -> list[tuple[Pattern, int]]:
        """Patterns scoring above 0 for ``query``, best first (module docstring)."""
        words = _tokens(query)
        scored = [(p, score_pattern(p, words)) for p in self.patterns.values()]
        ranked = sorted(
            (item for item in scored if item[1] > 0), key=lambda item: (-item[1], item[0].id)
        )
        return ranked[:top_k]


class _FrontMatter(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    id: str = Field(min_length=1, max_length=MAX_PATTERN_ID, pattern=PATTERN_ID_RE)
    title: str = Field(min_length=1, max_length=200)
    hotwords: list[str] = Field(min_length=1, max_length=64)


def parse_pattern(path: Path) -> Pattern:
    """Read one pattern file; raise :class:`PatternFileError` saying what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PatternFileError(f"cannot read: {exc.strerror}") from None
    if len(data) > MAX_PATTERN_FILE:
        raise PatternFileError(f"larger than {MAX_PATTERN_FILE // 1024} KiB")
    if b"\x00" in data:
        raise PatternFileError("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError as exc:
        raise PatternFileError(f"not UTF-8 (byte {exc.start})") from None
    match = re.match(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", text, re.S)
    if match is None:
        raise PatternFileError(
            "no front matter: the file must start with a '---' line and close it with another"
        )
    try:
        header = YAML(typ="safe", pure=True).load(match.group(1))
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        raise PatternFileError(
            f"front matter is not valid YAML{where}: {getattr(exc, 'problem', exc)}"
        ) from None
    if not isinstance(header, dict):
        raise PatternFileError("front matter must be a mapping with id, title and hotwords")
    try:
        front = _FrontMatter.model_validate(header)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"])
        raise PatternFileError(f"front matter {where!r}: {error['msg']}") from None
    if front.id != path.stem:
        raise PatternFileError(f"id {front.id!r} does not match the file name {path.name!r}")
    hotwords = tuple(w.strip() for w in front.hotwords if w.strip())
    if not hotwords:
        raise PatternFileError("front matter 'hotwords' has no words")
    rationale = _paragraphs(text[match.end() :])
    if not rationale:
        raise PatternFileError("no rationale: the text after the front matter is empty")
    return Pattern(front.id, front.title.strip(), hotwords, rationale, path)


def _paragraphs(body: str) -> str:
    """Reflow hard-wrapped Markdown paragraphs into single lines."""
    paragraphs = (" ".join(block.split()) for block in re.split(r"\n\s*\n", body))
    return "\n\n".join(p for p in paragraphs if p)


def _is_pattern_file(path: Path) -> bool:
    name = path.name
    return name.endswith(".md") and not name.startswith((".", "_")) and name.lower() != "readme.md"


def load_library(folder: Path) -> PatternLibrary:
    """Every pattern file of ``folder``; broken ones are logged and listed,
    never raised. A missing folder is a ``ToolError``."""
    if not folder.is_dir():
        raise ToolError(
            f"no pattern library at {folder} (set patterns_dir in the discipline configuration)",
            context={"patterns_dir": str(folder)},
        )
    patterns: dict[str, Pattern] = {}
    broken: list[BrokenPattern] = []
    for path in sorted(p for p in folder.iterdir() if _is_pattern_file(p)):
        if not path.is_file():
            continue
        try:
            pattern = parse_pattern(path)
        except PatternFileError as exc:
            log.warning("pattern library %s: skipping %s: %s", folder, path.name, exc)
            broken.append(BrokenPattern(path.name, str(exc)))
            continue
        patterns[pattern.id] = pattern
    return PatternLibrary(folder, patterns, tuple(broken))


class _LibraryCache:
    """Libraries by folder, re-read when any file's name, size or mtime changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._libraries: dict[Path, tuple[tuple[Any, ...], PatternLibrary]] = {}

    def load(self, folder: Path) -> PatternLibrary:
        signature = _signature(folder)
        with self._lock:
            cached = self._libraries.get(folder)
            if cached is not None and cached[0] == signature:
                return cached[1]
        library = load_library(folder)
        with self._lock:
            self._libraries[folder] = (signature, library)
        return library


def _signature(folder: Path) -> tuple[Any, ...]:
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return ()
    out = []
    for path in entries:
        try:
            info = path.stat()
        except OSError:
            continue
        out.append((path.name, info.st_size, info.st_mtime_ns))
    return tuple(out)


_CACHE = _LibraryCache()

# ------------------------------------------------------------------ scoring

_STOP_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "do", "does", "for",
    "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my",
    "no", "not", "of", "on", "or", "so", "that", "the", "their", "them", "then", "there", "these",
    "they", "this", "to", "too", "up", "us", "was", "we", "were", "what", "when", "which", "while",
    "who", "why", "will", "with", "you", "your",
))  # fmt: skip
_SUFFIXES = ("ing", "ed", "es", "s", "e")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _words(text: str) -> list[str]:
    """Every word of ``text``, stemmed, stop words kept (for phrases)."""
    return [_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower())]


@dataclass(frozen=True)
class _Query:
    sequence: tuple[str, ...]  # all words, in order
    content: frozenset[str]  # without stop words


def _tokens(text: str) -> _Query:
    raw = re.findall(r"[a-z0-9]+", text.lower())
    return _Query(
        tuple(_stem(w) for w in raw),
        frozenset(_stem(w) for w in raw if w not in _STOP_WORDS and len(w) > 1),
    )


def _contains(sequence: tuple[str, ...], phrase: list[str]) -> bool:
    if not phrase:
        return False
    width = len(phrase)
    return any(list(sequence[i : i + width]) == phrase for i in range(len(sequence) - width + 1))


def score_pattern(pattern: Pattern, query: _Query | str) -> int:
    """The documented score of ``pattern`` for ``query`` (module docstring)."""
    words = _tokens(query) if isinstance(query, str) else query
    score = sum(
        HOTWORD_SCORE for hotword in pattern.hotwords if _contains(words.sequence, _words(hotword))
    )
    title = set(_words(pattern.id.replace("-", " ") + " " + pattern.title))
    rationale = set(_words(pattern.rationale))
    for word in words.content:
        if word in title:
            score += TITLE_SCORE
        elif word in rationale:
            score += RATIONALE_SCORE
    return score


def close_matches(pattern_id: str, known: Iterable[str], limit: int = 3) -> list[str]:
    """Known ids that look like ``pattern_id`` (spelling, or sharing a word)."""
    ids = sorted(known)
    close = difflib.get_close_matches(pattern_id, ids, n=limit, cutoff=0.6)
    parts = {p for p in pattern_id.split("-") if len(p) > 2}
    for candidate in ids:
        if len(close) >= limit:
            break
        if candidate not in close and parts & set(candidate.split("-")):
            close.append(candidate)
    return close


# ------------------------------------------------------------------ the tools


def resolve_patterns_dir(ctx: ToolContext, configured: Path | None = None) -> Path:
    """The library folder for a tool call (module docstring: config block,
    then ``configured``, then the workspace's ``config/patterns``, then the
    shipped library)."""
    raw = ctx.peripheral_config.get("patterns_dir")
    if raw is not None:
        if not isinstance(raw, str) or not raw:
            raise ToolError("discipline: config 'patterns_dir' must be a non-empty path string")
        return _against(ctx.workspace, Path(raw))
    if configured is not None:
        return _against(ctx.workspace, Path(configured))
    in_workspace = ctx.workspace / "config" / "patterns"
    if in_workspace.is_dir():
        return in_workspace
    return SHIPPED_PATTERNS


def _against(workspace: Path, path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else workspace / path


def _records(ctx: ToolContext) -> list[dict[str, Any]]:
    records = ctx.session_context.get(RECORDS_KEY)
    if not isinstance(records, list):
        records = []
        ctx.session_context[RECORDS_KEY] = records
    return records


def _latest(
    records: list[dict[str, Any]], pattern_id: str, kinds: tuple[str, ...]
) -> dict[str, Any] | None:
    record: dict[str, Any]  # mypy 2.4 types reversed(list[T]) items as Any
    for record in reversed(records):
        if record.get("pattern_id") == pattern_id and record.get("kind") in kinds:
            return record
    return None


class DisciplineTools:
    """The five tools over one configured library location."""

    def __init__(self, patterns_dir: Path | None = None) -> None:
        self.patterns_dir = patterns_dir

    async def library(self, ctx: ToolContext) -> PatternLibrary:
        folder = resolve_patterns_dir(ctx, self.patterns_dir)
        return await asyncio.to_thread(_CACHE.load, folder)

    async def psr_search(self, args: PsrSearchArgs, ctx: ToolContext) -> dict[str, Any]:
        library = await self.library(ctx)
        ranked = library.search(args.query, args.options.top_k)
        result: dict[str, Any] = {
            "candidates": [
                {"pattern_id": p.id, "score": score, "title": p.title, "rationale": p.rationale}
                for p, score in ranked
            ]
        }
        if library.broken:
            result["skipped"] = [{"file": b.file, "reason": b.reason} for b in library.broken]
        return result

    async def psr_select(self, args: PsrSelectArgs, ctx: ToolContext) -> dict[str, Any]:
        library = await self.library(ctx)
        pattern = library.get(args.pattern_id)
        body = {
            "pattern_id": pattern.id,
            "title": pattern.title,
            "rationale": args.options.rationale or None,
        }
        psr_id = await _append(ctx, pattern.id, "pattern-selection", "goal", body, kind="psr")
        ctx.session_context["pattern-id"] = pattern.id
        _records(ctx).append({"kind": "psr", "pattern_id": pattern.id, "id": psr_id})
        return {"pattern_id": pattern.id, "psr_id": psr_id}

    async def pur_update(self, args: PurUpdateArgs, ctx: ToolContext) -> dict[str, Any]:
        records = _records(ctx)
        psr = _latest(records, args.pattern_id, ("psr",))
        if psr is None:
            raise await self._not_selected(args.pattern_id, ctx, "an outcome")
        body = {
            "pattern_id": args.pattern_id,
            "outcome": args.outcome,
            "notes": args.options.notes or None,
            "psr_id": psr["id"],
        }
        pur_id = await _append(
            ctx,
            args.pattern_id,
            "pattern-outcome",
            "evidence",
            body,
            kind="pur",
            reply_to=psr["id"],
        )
        records.append(
            {"kind": "pur", "pattern_id": args.pattern_id, "id": pur_id, "outcome": args.outcome}
        )
        return {"pattern_id": args.pattern_id, "pur_id": pur_id}

    async def pur_mark_pivot(self, args: PurMarkPivotArgs, ctx: ToolContext) -> dict[str, Any]:
        records = _records(ctx)
        last = _latest(records, args.pattern_id, ("psr", "pur", "pivot"))
        if last is None:
            raise await self._not_selected(args.pattern_id, ctx, "a pivot")
        body = {"pattern_id": args.pattern_id, "reason": args.reason}
        pivot_id = await _append(
            ctx,
            args.pattern_id,
            "correction",
            "correction",
            body,
            kind="pivot",
            reply_to=last["id"],
        )
        records.append({"kind": "pivot", "pattern_id": args.pattern_id, "id": pivot_id})
        return {"pattern_id": args.pattern_id}

    async def par_punctuate(self, args: ParPunctuateArgs, ctx: ToolContext) -> dict[str, Any]:
        records = _records(ctx)
        selected = ctx.session_context.get("pattern-id")
        selected = selected if isinstance(selected, str) else None
        outcomes = {r["pattern_id"]: r["outcome"] for r in records if r.get("kind") == "pur"}
        counts = {
            kind: sum(1 for r in records if r.get("kind") == kind)
            for kind in ("psr", "pur", "pivot")
        }
        patterns = list(dict.fromkeys(r["pattern_id"] for r in records if r.get("kind") == "psr"))
        body = {"summary": args.text, "patterns": patterns, "outcomes": outcomes, "records": counts}
        reply_to = records[-1]["id"] if records else None
        par_id = await _append(
            ctx, selected, "reflection", "observation", body, kind="par", reply_to=reply_to
        )
        records.append({"kind": "par", "pattern_id": selected, "id": par_id})
        return {"par_id": par_id}

    async def _not_selected(self, pattern_id: str, ctx: ToolContext, what: str) -> ToolError:
        """The most useful error for a record about an unselected pattern
        (an unknown id raises the close-matches error instead)."""
        library = await self.library(ctx)
        library.get(pattern_id)
        return ToolError(
            f"pattern {pattern_id!r} was not selected in this session: psr-select it before recording {what}",
            context={"pattern_id": pattern_id},
        )


async def _append(
    ctx: ToolContext,
    pattern_id: str | None,
    entry_type: str,
    claim: str,
    body: dict[str, Any],
    *,
    kind: str,
    reply_to: str | None = None,
) -> str:
    if ctx.store is None:
        raise ToolError("discipline records need the evidence store, and this session has none")
    entry: dict[str, Any] = {
        "subject": {"ref/type": "pattern", "ref/id": pattern_id}
        if pattern_id
        else {"ref/type": "session", "ref/id": ctx.session_id},
        "type": entry_type,
        "claim-type": claim,
        "author": ctx.agent_id,
        "session-id": ctx.session_id,
        "tags": ["discipline", kind],
        "body": body,
    }
    if pattern_id:
        entry["pattern-id"] = pattern_id
    if reply_to:
        entry["in-reply-to"] = reply_to
    stored = await ctx.store.append(entry)
    return str(stored["evidence/id"])


def discipline_fruit(session_context: dict[str, Any]) -> dict[str, Any]:
    """The discipline fruit ``{selected_pattern, records, summary}`` from what
    the tools kept in the session context."""
    raw = session_context.get(RECORDS_KEY)
    records = [dict(r) for r in raw if isinstance(r, dict)] if isinstance(raw, list) else []
    selected = session_context.get("pattern-id")
    selected = selected if isinstance(selected, str) else None
    counts = {
        kind: sum(1 for r in records if r.get("kind") == kind)
        for kind in ("psr", "pur", "pivot", "par")
    }
    outcomes = [f"{r['pattern_id']}: {r['outcome']}" for r in records if r.get("kind") == "pur"]
    if not records:
        summary = "no pattern was selected or reviewed in this session"
    else:
        summary = (
            f"{counts['psr']} selection(s), {counts['pur']} outcome(s), {counts['pivot']} pivot(s), "
            f"{counts['par']} review(s)"
            + (f"; selected {selected}" if selected else "")
            + (f"; outcomes: {', '.join(outcomes)}" if outcomes else "")
        )
    return {"selected_pattern": selected, "records": records, "summary": summary}


def install(backend: RealBackend, *, patterns_dir: Path | None = None) -> DisciplineTools:
    """Register the discipline tools. ``patterns_dir``: the daemon's
    configured library folder (relative: against the workspace); the
    peripheral's ``config: {patterns_dir}`` overrides it per call."""
    tools = DisciplineTools(patterns_dir)
    backend.register("psr-search", tools.psr_search)
    backend.register("psr-select", tools.psr_select)
    backend.register("pur-update", tools.pur_update)
    backend.register("pur-mark-pivot", tools.pur_mark_pivot)
    backend.register("par-punctuate", tools.par_punctuate)
    return tools


__all__ = [
    "BrokenPattern",
    "DisciplineTools",
    "Pattern",
    "PatternFileError",
    "PatternLibrary",
    "discipline_fruit",
    "install",
    "load_library",
    "parse_pattern",
    "resolve_patterns_dir",
    "score_pattern",
]
