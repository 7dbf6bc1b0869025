"""Full-text search over the evidence: what is indexed, how a query is read,
and what a hit is.

The index (:mod:`futon.evidence.index`) keeps an SQLite FTS5 table beside
its entry table, one row per entry (rowid = seq) with four columns: the
body's text (its string leaves, bounded), the subject, the author and the
tags. This module holds everything about search that is not SQL:

- :func:`entry_text` — the row an entry contributes (bounded, so a large
  body cannot make the index grow without end);
- :class:`SearchRequest` — a query text plus the filters of
  :class:`~futon.evidence.query.EvidenceQuery`, parsed once for HTTP, WS,
  the CLI and the ``evidence-search`` tool;
- :func:`match_expressions` — the FTS5 expressions run for a query.

A query is always read as plain words: FTS5 operators (``AND``, ``NEAR``,
``*``, ``:``), quotes and brackets are never passed through, so no query
text can be an FTS syntax error. Each word is quoted before it reaches
FTS5. Ranking is in tiers, then bm25 within a tier: entries holding the
words as the exact phrase first, then entries holding all the words, then
entries holding any of them — so an exact phrase always ranks above the
same words scattered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from futon.evidence.model import EntryDict
from futon.evidence.query import EvidenceQuery
from futon.protocol.errors import ProtocolError

MAX_QUERY_CHARS = 2000  # a longer query text is refused (invalid-query)
MAX_QUERY_WORDS = 32  # words past this are ignored (a pasted paragraph still searches)
MAX_WORD_CHARS = 64  # a longer "word" is cut (no real word is longer)
DEFAULT_SEARCH_LIMIT = 20
MAX_SEARCH_LIMIT = 100  # a larger limit is clamped to this
MAX_BODY_TEXT = 8192  # characters of body text indexed per entry
_MAX_LEAVES = 2000  # string leaves visited per body (deep or wide bodies stop early)
SNIPPET_OPEN = "«"
SNIPPET_CLOSE = "»"
SNIPPET_TOKENS = 12

# FTS5's unicode61 tokenizer splits on everything but letters and digits;
# so does this (``\w`` minus ``_``), so a quoted word is one FTS5 token.
_WORD = re.compile(r"[^\W_]+")

Tier = Literal["phrase", "all", "any"]
TIERS: tuple[Tier, ...] = ("phrase", "all", "any")


def words_of(text: str) -> tuple[str, ...]:
    """The distinct words of ``text``, lower-cased, in order, at most
    :data:`MAX_QUERY_WORDS`, each at most :data:`MAX_WORD_CHARS`."""
    out: dict[str, None] = {}
    for match in _WORD.finditer(text):
        out.setdefault(match.group().lower()[:MAX_WORD_CHARS], None)
        if len(out) >= MAX_QUERY_WORDS:
            break
    return tuple(out)


def match_expressions(words: tuple[str, ...]) -> list[tuple[Tier, str]]:
    """The FTS5 MATCH expressions for ``words``, best tier first. Every word
    is a quoted string of letters and digits, so none can be an operator."""
    quoted = [f'"{w}"' for w in words]
    if not quoted:
        return []
    if len(quoted) == 1:
        return [("all", quoted[0])]
    return [
        ("phrase", '"' + " ".join(words) + '"'),
        ("all", " AND ".join(quoted)),
        ("any", " OR ".join(quoted)),
    ]


def entry_text(entry: EntryDict) -> tuple[str, str, str, str]:
    """(body, subject, author, tags) as indexed for ``entry``."""
    subject = entry.get("evidence/subject") or {}
    return (
        body_text(entry.get("evidence/body")),
        f"{subject.get('ref/type', '')} {subject.get('ref/id', '')}",
        str(entry.get("evidence/author", "")),
        " ".join(entry.get("evidence/tags") or ()),
    )


def body_text(body: Any) -> str:
    """The string leaves of ``body`` joined by newlines, depth first, cut at
    :data:`MAX_BODY_TEXT` characters. Keys and numbers are not words an
    agent searches for; the strings are."""
    parts: list[str] = []
    size = 0
    stack: list[Any] = [body]
    visited = 0
    while stack and size < MAX_BODY_TEXT and visited < _MAX_LEAVES:
        node = stack.pop()
        visited += 1
        if isinstance(node, str):
            piece = node[: MAX_BODY_TEXT - size]
            parts.append(piece)
            size += len(piece) + 1
        elif isinstance(node, dict):
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return "\n".join(parts)


@dataclass(frozen=True)
class SearchRequest:
    """A search: ``text`` (its :attr:`words` are what is matched), the
    filters (``query``; its ``limit`` is unused) and ``limit``."""

    text: str
    words: tuple[str, ...]
    query: EvidenceQuery = field(default_factory=EvidenceQuery)
    limit: int = DEFAULT_SEARCH_LIMIT

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, strict_keys: bool = False) -> SearchRequest:
        """``q`` plus the query keys of docs/evidence.md (``cursor`` aside:
        a search answers one ranked page). Raises ``invalid-query``."""
        rest = {k: v for k, v in params.items() if k not in ("q", "limit")}
        if "cursor" in rest:
            raise _bad("a search has no cursor; narrow it with filters or raise 'limit'")
        query = EvidenceQuery.from_params(rest, strict_keys=strict_keys)
        return cls.of(params.get("q"), query=query, limit=_limit(params.get("limit")))

    @classmethod
    def of(
        cls, text: Any, *, query: EvidenceQuery | None = None, limit: int = DEFAULT_SEARCH_LIMIT
    ) -> SearchRequest:
        if not isinstance(text, str) or not text.strip():
            raise _bad("'q' (the words to search for) is required")
        if len(text) > MAX_QUERY_CHARS:
            raise _bad(f"'q' is longer than {MAX_QUERY_CHARS} characters")
        words = words_of(text)
        if not words:
            raise _bad("'q' holds no words to search for (letters or digits)")
        return cls(text, words, query or EvidenceQuery(), max(1, min(limit, MAX_SEARCH_LIMIT)))


@dataclass(frozen=True)
class SearchHit:
    """One entry found: its rank ``tier``, bm25 ``score`` (lower is better,
    comparable within one answer) and a ``snippet`` with the matched words
    between « and »."""

    entry: EntryDict
    tier: Tier
    score: float
    snippet: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "match": self.tier,
            "score": round(self.score, 4),
            "snippet": self.snippet,
        }


def _limit(raw: Any) -> int:
    if raw is None or raw == "":
        return DEFAULT_SEARCH_LIMIT
    try:
        if isinstance(raw, bool | float) or (isinstance(raw, str) and len(raw) > 20):
            raise ValueError
        value = int(raw)
    except (TypeError, ValueError):
        raise _bad("'limit' must be a positive integer") from None
    if value < 1:
        raise _bad("'limit' must be at least 1")
    return min(value, MAX_SEARCH_LIMIT)


def _bad(message: str) -> ProtocolError:
    return ProtocolError(message, code="invalid-query")
