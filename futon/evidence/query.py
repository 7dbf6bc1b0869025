"""Evidence queries: the filters of docs/evidence.md as one typed value.

``EvidenceQuery.from_params`` is the single parser of the query keys used by
HTTP, the WS ``evidence_query``/``subscribe`` frames and the CLI, so the three
can never disagree on what a filter means. Bad values raise
``ProtocolError(code="invalid-query")`` — never an empty result, never a
500: every value is bounded (:data:`MAX_TAGS` tags, :data:`MAX_VALUE_CHARS`
per value, timestamps the store can order, seqs SQLite can hold) before it
reaches the index.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from futon.evidence.model import CLAIM_TYPES, ENTRY_TYPES, REF_TYPES, EntryDict, parse_at
from futon.protocol.errors import ProtocolError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000  # a larger limit is clamped to this
MAX_TAGS = 64  # more tag filters than this are refused
MAX_VALUE_CHARS = 1024  # one filter value (an id, an author, one tag)
MAX_SEQ = 2**63 - 1  # SQLite's largest integer: a cursor beyond it cannot be ours
_MAX_NUMBER_CHARS = 20  # `limit` as text: enough for any int64, no 4300-digit parses

_PARAM_KEYS = frozenset(
    {
        "subject-type", "subject-id", "type", "claim-type", "author", "session-id",
        "pattern-id", "tag", "tags", "since", "until", "include-ephemeral", "limit", "cursor",
    }
)  # fmt: skip


@dataclass(frozen=True)
class EvidenceQuery:
    """Filters are ANDed; ``tags`` must all be present. ``since`` is
    inclusive, ``until`` exclusive, both in the stored timestamp format.
    Results come newest first; ``before_seq`` (from a cursor) pages back,
    ``after_seq`` asks for entries newer than a seq (oldest first, for
    replay after ``Last-Event-ID`` or ``since_seq``)."""

    subject_type: str | None = None
    subject_id: str | None = None
    type: str | None = None
    claim_type: str | None = None
    author: str | None = None
    session_id: str | None = None
    pattern_id: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    since: str | None = None
    until: str | None = None
    include_ephemeral: bool = False
    limit: int = DEFAULT_LIMIT
    before_seq: int | None = None
    after_seq: int | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, strict_keys: bool = False) -> EvidenceQuery:
        """Parse HTTP-style query keys (values as strings, or native JSON
        values from a WS frame). ``strict_keys`` refuses keys it does not know."""
        if strict_keys:
            unknown = sorted(set(params) - _PARAM_KEYS)
            if unknown:
                raise _bad(f"unknown filter {_short(unknown[0])}")

        def text(key: str) -> str | None:
            value = params.get(key)
            if value is None or value == "":
                return None
            if not isinstance(value, str):
                raise _bad(f"{key!r} must be a string")
            if len(value) > MAX_VALUE_CHARS:
                raise _bad(f"{key!r} is longer than {MAX_VALUE_CHARS} characters")
            return value

        def enum(key: str, allowed: tuple[str, ...]) -> str | None:
            value = text(key)
            if value is None:
                return None
            value = value.removeprefix(":")
            if value not in allowed:
                raise _bad(f"unknown {key} {_short(value)}; expected one of {', '.join(allowed)}")
            return value

        def stamp(key: str) -> str | None:
            value = text(key)
            if value is None:
                return None
            try:
                return parse_at(value)
            except (ValueError, OverflowError):  # OverflowError: a UTC offset past year 1 or 9999
                message = f"{key!r} is not an ISO-8601 timestamp between years 1 and 9999: {_short(value)}"
                raise _bad(message) from None

        include = params.get("include-ephemeral", False)
        if isinstance(include, str):
            if include.lower() not in ("true", "false", "1", "0", ""):
                raise _bad("'include-ephemeral' must be true or false")
            include = include.lower() in ("true", "1")
        elif not isinstance(include, bool):
            raise _bad("'include-ephemeral' must be true or false")

        limit_raw = params.get("limit", DEFAULT_LIMIT)
        try:
            too_long = isinstance(limit_raw, str) and len(limit_raw) > _MAX_NUMBER_CHARS
            if isinstance(limit_raw, bool | float) or too_long:
                raise ValueError
            limit = int(limit_raw)
        except (TypeError, ValueError):
            raise _bad(f"'limit' must be a positive integer, got {_short(limit_raw)}") from None
        if limit < 1:
            raise _bad("'limit' must be at least 1")
        limit = min(limit, MAX_LIMIT)

        cursor = text("cursor")
        before = decode_cursor(cursor) if cursor else None

        subject_type = enum("subject-type", REF_TYPES)
        return cls(
            subject_type=subject_type,
            subject_id=text("subject-id"),
            type=enum("type", ENTRY_TYPES),
            claim_type=enum("claim-type", CLAIM_TYPES),
            author=text("author"),
            session_id=text("session-id"),
            pattern_id=text("pattern-id"),
            tags=_tags(params.get("tag", params.get("tags"))),
            since=stamp("since"),
            until=stamp("until"),
            include_ephemeral=bool(include),
            limit=limit,
            before_seq=before,
        )

    def page_after(self, last_seq: int) -> EvidenceQuery:
        return replace(self, before_seq=last_seq)

    def column_filters(self) -> list[tuple[str, str]]:
        """The equality filters that are set, as ``(column, value)`` of the
        indexes' entry table (``e.``-qualified; the same columns in SQLite
        and PostgreSQL)."""
        columns = (
            ("e.subj_type", self.subject_type),
            ("e.subj_id", self.subject_id),
            ("e.type", self.type),
            ("e.claim", self.claim_type),
            ("e.author", self.author),
            ("e.session", self.session_id),
            ("e.pattern", self.pattern_id),
        )
        return [(column, value) for column, value in columns if value is not None]

    def matches(self, entry: EntryDict) -> bool:
        """The same filters applied to one entry (for live subscriptions,
        where each new entry is tested once instead of re-querying)."""
        subject = entry.get("evidence/subject") or {}
        checks = (
            (self.subject_type, subject.get("ref/type")),
            (self.subject_id, subject.get("ref/id")),
            (self.type, entry.get("evidence/type")),
            (self.claim_type, entry.get("evidence/claim-type")),
            (self.author, entry.get("evidence/author")),
            (self.session_id, entry.get("evidence/session-id")),
            (self.pattern_id, entry.get("evidence/pattern-id")),
        )
        if any(want is not None and want != have for want, have in checks):
            return False
        if self.tags and not set(self.tags) <= set(entry.get("evidence/tags") or ()):
            return False
        at = entry.get("evidence/at", "")
        if self.since is not None and at < self.since:
            return False
        if self.until is not None and at >= self.until:
            return False
        if not self.include_ephemeral and entry.get("evidence/ephemeral?"):
            return False
        seq = entry.get("evidence/seq", 0)
        if self.before_seq is not None and seq >= self.before_seq:
            return False
        return not (self.after_seq is not None and seq <= self.after_seq)


@dataclass(frozen=True)
class Page:
    entries: list[EntryDict]
    next_cursor: str | None


def _tags(raw: Any) -> tuple[str, ...]:
    """``tag``: a comma list (HTTP) or a list of strings (WS); duplicates
    dropped, at most :data:`MAX_TAGS`, each at most :data:`MAX_VALUE_CHARS`."""
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        if len(raw) > MAX_TAGS * (MAX_VALUE_CHARS + 1):  # refused before it is split
            raise _bad(f"'tag' is longer than {MAX_TAGS} tags of {MAX_VALUE_CHARS} characters")
        items = [t.strip() for t in raw.split(",")]
    elif isinstance(raw, list) and all(isinstance(t, str) for t in raw):
        if len(raw) > MAX_TAGS * 2:  # refused before anything else is done with it (duplicates or not)
            raise _bad(f"at most {MAX_TAGS} tags may be filtered on, got {len(raw)}")
        items = list(raw)
    else:
        raise _bad("'tag' must be a comma list of strings")
    tags = tuple(dict.fromkeys(t.removeprefix(":") for t in items if t))
    if len(tags) > MAX_TAGS:
        raise _bad(f"at most {MAX_TAGS} tags may be filtered on, got {len(tags)}")
    if any(len(t) > MAX_VALUE_CHARS for t in tags):
        raise _bad(f"a tag is longer than {MAX_VALUE_CHARS} characters")
    return tags


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        if len(cursor) > 64:  # ours are ~30 characters
            raise ValueError
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        prefix, _, number = text.partition(":")
        if prefix != "seq":
            raise ValueError
        seq = int(number)
        if not 0 <= seq <= MAX_SEQ:
            raise ValueError
        return seq
    except (ValueError, UnicodeError, binascii.Error):
        raise _bad(f"'cursor' is not a cursor this server issued: {_short(cursor)}") from None


def _bad(message: str) -> ProtocolError:
    return ProtocolError(message, code="invalid-query")


def _short(value: Any) -> str:
    """A value for an error message: repr, cut to 40 characters (the
    message must not echo a megabyte back)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
