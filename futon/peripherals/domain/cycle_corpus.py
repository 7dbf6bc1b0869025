"""``corpus-check``: search a local folder of notes for a query.

The corpus is a folder of ``.txt``, ``.md`` and ``.jsonl`` files (hidden
files and folders skipped). Text files are cut into paragraphs (blank-line
separated), a JSONL file into its lines (the string values of each record).
Passages are ranked by BM25 over the query's words; a hit names its source
as ``relative/path:line``. The folder is read on every call — meant for
small, hand-kept corpora, bounded by :data:`MAX_FILES` and
:data:`MAX_FILE_BYTES`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from futon.peripherals.tools.beneath import Beneath
from futon.protocol.errors import FutonError

SUFFIXES = frozenset({".txt", ".md", ".jsonl"})
MAX_FILES = 5_000
MAX_FILE_BYTES = 2 * 1024 * 1024
EXCERPT_CHARS = 300
_WORD = re.compile(r"\w+")
_K1, _B = 1.2, 0.75


@dataclass(frozen=True)
class Passage:
    source: str
    text: str
    words: Counter[str]


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) > 1]


def search(
    root: Path, query: str, top_k: int = 10, hidden: tuple[Path, ...] = ()
) -> list[dict[str, Any]]:
    """``[{source, score, excerpt}]`` best first; only passages sharing a
    word with the query. Files are read beneath ``root`` (a symlink out of
    it is skipped) and ``hidden`` paths never."""
    terms = list(dict.fromkeys(words(query)))
    if not terms:
        return []
    passages = list(_passages(root, hidden))
    if not passages:
        return []
    average = sum(sum(p.words.values()) for p in passages) / len(passages) or 1.0
    frequency = {t: sum(1 for p in passages if t in p.words) for t in terms}
    total = len(passages)
    scored = []
    for passage in passages:
        length = sum(passage.words.values())
        score = 0.0
        for term in terms:
            tf = passage.words.get(term, 0)
            if not tf:
                continue
            idf = math.log(1 + (total - frequency[term] + 0.5) / (frequency[term] + 0.5))
            score += idf * tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * length / average))
        if score > 0:
            scored.append((score, passage))
    scored.sort(key=lambda pair: (-pair[0], pair[1].source))
    return [
        {"source": p.source, "score": round(score, 4), "excerpt": _excerpt(p.text, terms)}
        for score, p in scored[:top_k]
    ]


def _read(under: Beneath, real_root: Path, path: Path) -> str | None:
    """The text of ``path``, read beneath the corpus folder: a symlink that
    leads out of it, futon's own files and anything not a regular file are
    skipped (None)."""
    rel = os.path.relpath(os.path.realpath(path), real_root)
    if rel == ".." or rel.startswith("../"):
        return None
    try:
        return under.read_bytes(rel, MAX_FILE_BYTES).decode("utf-8", errors="replace")
    except (FutonError, OSError):
        return None


def _files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in SUFFIXES and path.is_file():
            found.append(path)
            if len(found) >= MAX_FILES:
                break
    return found


def _passages(root: Path, hidden: tuple[Path, ...] = ()) -> list[Passage]:
    out: list[Passage] = []
    real_root = Path(os.path.realpath(root))
    with Beneath(real_root, hidden) as under:
        texts = [(path, _read(under, real_root, path)) for path in _files(root)]
    for path, text in texts:
        if text is None:
            continue
        name = path.relative_to(root).as_posix()
        if path.suffix.lower() == ".jsonl":
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    _add(out, f"{name}:{number}", _record_text(line))
        else:
            for number, paragraph in _paragraphs(text):
                _add(out, f"{name}:{number}", paragraph)
    return out


def _add(out: list[Passage], source: str, text: str) -> None:
    counted = Counter(words(text))
    if counted:
        out.append(Passage(source, text, counted))


def _paragraphs(text: str) -> list[tuple[int, str]]:
    """``(first line number, paragraph)`` for each blank-line separated block."""
    blocks: list[tuple[int, str]] = []
    start = 0
    lines: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            if not lines:
                start = number
            lines.append(line)
        elif lines:
            blocks.append((start, "\n".join(lines)))
            lines = []
    if lines:
        blocks.append((start, "\n".join(lines)))
    return blocks


def _record_text(line: str) -> str:
    """The string values of a JSON record (the raw line when it is not JSON)."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    strings: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(record)
    return " ".join(strings) if strings else line


def _excerpt(text: str, terms: list[str]) -> str:
    flat = " ".join(text.split())
    if len(flat) <= EXCERPT_CHARS:
        return flat
    lowered = flat.lower()
    first = min((i for t in terms if (i := lowered.find(t)) >= 0), default=0)
    start = max(0, first - EXCERPT_CHARS // 3)
    piece = flat[start : start + EXCERPT_CHARS]
    return ("…" if start else "") + piece + ("…" if start + EXCERPT_CHARS < len(flat) else "")
