"""Evidence entries: the one definition of their shape, validation and hash.

An entry travels as a JSON object with futon3c's key names
(``evidence/id``, ``evidence/subject`` …). Clients may POST the compact
spellings (``subject``, ``claim-type`` …); :func:`normalise_entry` turns
either into the canonical object, or raises ``ProtocolError`` with code
``invalid-entry`` and a sentence naming the field. The store then adds
``evidence/at``, ``evidence/seq`` and ``evidence/hash`` — a client may never
send those.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from futon.protocol.errors import ProtocolError

EntryDict = dict[str, Any]

ENTRY_TYPES: tuple[str, ...] = (
    "coordination", "gate-traversal", "pattern-selection", "pattern-outcome",
    "reflection", "forum-post", "mode-transition", "presence-event",
    "correction", "conjecture",
)  # fmt: skip
CLAIM_TYPES: tuple[str, ...] = (
    "goal", "step", "evidence", "conclusion", "question",
    "observation", "tension", "correction", "conjecture",
)  # fmt: skip
REF_TYPES: tuple[str, ...] = (
    "pattern", "mission", "component", "gate", "session",
    "agent", "thread", "evidence", "proof-path",
)  # fmt: skip

EntryType = Literal[
    "coordination", "gate-traversal", "pattern-selection", "pattern-outcome",
    "reflection", "forum-post", "mode-transition", "presence-event",
    "correction", "conjecture",
]  # fmt: skip
ClaimType = Literal[
    "goal", "step", "evidence", "conclusion", "question",
    "observation", "tension", "correction", "conjecture",
]  # fmt: skip
RefType = Literal[
    "pattern", "mission", "component", "gate", "session",
    "agent", "thread", "evidence", "proof-path",
]  # fmt: skip

STORE_KEYS = frozenset({"evidence/at", "evidence/seq", "evidence/hash"})

# Compact spellings accepted on input → canonical key.
COMPACT_KEYS: dict[str, str] = {
    "evidence-id": "evidence/id",
    "id": "evidence/id",
    "subject": "evidence/subject",
    "type": "evidence/type",
    "claim-type": "evidence/claim-type",
    "author": "evidence/author",
    "body": "evidence/body",
    "tags": "evidence/tags",
    "session-id": "evidence/session-id",
    "in-reply-to": "evidence/in-reply-to",
    "fork-of": "evidence/fork-of",
    "pattern-id": "evidence/pattern-id",
    "conjecture?": "evidence/conjecture?",
    "ephemeral?": "evidence/ephemeral?",
    "at": "evidence/at",
    "seq": "evidence/seq",
    "hash": "evidence/hash",
}

MAX_ENTRY_BYTES = 1024 * 1024
MAX_ID_CHARS = 256
MAX_TAGS = 64
GENESIS_HASH = "0" * 64

_Short = Field(min_length=1, max_length=MAX_ID_CHARS)


def _strip_colon(value: Any) -> Any:
    """futon3c clients send keywords (``:step``); the store keeps plain names."""
    if isinstance(value, str) and value.startswith(":"):
        return value[1:]
    return value


class Subject(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    ref_type: RefType = Field(alias="ref/type")
    ref_id: str = Field(alias="ref/id", min_length=1, max_length=1024)

    @field_validator("ref_type", mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        return _strip_colon(value)


class EntryModel(BaseModel):
    """Validation of a client entry after key normalisation. Strict: a string
    is never coerced into a boolean, a number never into a string."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    id: str = Field(alias="evidence/id", min_length=1, max_length=MAX_ID_CHARS)
    subject: Subject = Field(alias="evidence/subject")
    type: EntryType = Field(alias="evidence/type")
    claim_type: ClaimType = Field(alias="evidence/claim-type")
    author: str = Field(alias="evidence/author", min_length=1, max_length=MAX_ID_CHARS)
    body: dict[str, Any] | None = Field(default=None, alias="evidence/body")
    tags: list[str] = Field(default_factory=list, alias="evidence/tags", max_length=MAX_TAGS)
    session_id: str | None = Field(default=None, alias="evidence/session-id", min_length=1, max_length=MAX_ID_CHARS)
    in_reply_to: str | None = Field(default=None, alias="evidence/in-reply-to", min_length=1, max_length=MAX_ID_CHARS)
    fork_of: str | None = Field(default=None, alias="evidence/fork-of", min_length=1, max_length=MAX_ID_CHARS)
    pattern_id: str | None = Field(default=None, alias="evidence/pattern-id", min_length=1, max_length=MAX_ID_CHARS)
    conjecture: bool | None = Field(default=None, alias="evidence/conjecture?")
    ephemeral: bool | None = Field(default=None, alias="evidence/ephemeral?")

    @field_validator("type", "claim_type", mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        return _strip_colon(value)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_strip_colon(t) for t in value]
        return value

    @field_validator("tags")
    @classmethod
    def _tags_not_blank(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not tag or len(tag) > MAX_ID_CHARS:
                raise ValueError("a tag must be 1 to 256 characters")
        return value


_ID_BYTES = 16
_ID_POOL = 256  # ids' worth of random bytes read at once


class _RandomIds:
    """``e-<uuid4>`` ids from os.urandom read 256 ids at a time: one system
    call per id (uuid.uuid4's) cost the append path 6% of its time under
    load, and every system call lets another thread take the interpreter.
    Same randomness (the kernel's CSPRNG), same form."""

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0
        self._lock = threading.Lock()  # the index writer and CLI threads make ids too
        # A forked child must not hand out its parent's next ids.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._pool, self._at = b"", 0

    def next(self) -> str:
        with self._lock:
            if self._at >= len(self._pool):
                self._pool, self._at = os.urandom(_ID_BYTES * _ID_POOL), 0
            raw = bytearray(self._pool[self._at : self._at + _ID_BYTES])
            self._at += _ID_BYTES
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw.hex()
        return f"e-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


new_entry_id = _RandomIds().next


def normalise_entry(raw: Any, *, new_id: bool = True) -> EntryDict:
    """Return the canonical entry for a client's object, without store keys.

    Raises ``ProtocolError(code="invalid-entry")`` naming the first bad field.
    With ``new_id`` an absent id is generated as ``e-<uuid4>``.
    """
    if not isinstance(raw, dict):
        raise _invalid(f"an evidence entry must be a JSON object, got {_json_kind(raw)}")
    canonical: EntryDict = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise _invalid("entry keys must be strings")
        name = key if key.startswith("evidence/") else COMPACT_KEYS.get(key)
        if key in ("subject-type", "subject-id"):
            continue  # folded into evidence/subject below
        if name is None:
            raise _invalid(f"unknown field {key!r}")
        if name in STORE_KEYS:
            raise _invalid(f"{key!r} is set by the store and may not be sent")
        if name in canonical:
            raise _invalid(f"field {name!r} given twice (as {key!r})")
        canonical[name] = value
    if "evidence/subject" not in canonical and ("subject-type" in raw or "subject-id" in raw):
        canonical["evidence/subject"] = {"ref/type": raw.get("subject-type"), "ref/id": raw.get("subject-id")}
    if "evidence/subject" in canonical and isinstance(canonical["evidence/subject"], dict):
        subject = dict(canonical["evidence/subject"])
        for short, full in (("type", "ref/type"), ("id", "ref/id")):
            if short in subject and full not in subject:
                subject[full] = subject.pop(short)
        canonical["evidence/subject"] = subject
    if new_id and canonical.get("evidence/id") is None:
        canonical["evidence/id"] = new_entry_id()
    plain = _plain_entry(canonical)
    if plain is not None:
        return plain
    try:
        model = EntryModel.model_validate(canonical)
    except ValidationError as exc:
        raise _invalid(_describe(exc)) from None
    return _to_dict(model)


_KNOWN_KEYS = frozenset(COMPACT_KEYS.values()) - STORE_KEYS
_ENTRY_TYPE_SET = frozenset(ENTRY_TYPES)
_CLAIM_TYPE_SET = frozenset(CLAIM_TYPES)
_REF_TYPE_SET = frozenset(REF_TYPES)
_OPTIONAL_TEXT = ("evidence/session-id", "evidence/in-reply-to", "evidence/fork-of", "evidence/pattern-id")
_OPTIONAL_FLAGS = ("evidence/conjecture?", "evidence/ephemeral?")


def _short(value: Any, limit: int = MAX_ID_CHARS) -> bool:
    return type(value) is str and 0 < len(value) <= limit


def _plain_entry(canonical: EntryDict) -> EntryDict | None:
    """What :class:`EntryModel` and :func:`_to_dict` make of ``canonical``
    when it is plainly valid — exact types, known values — without the
    model (a third of an append's cost on the hot path, issue 19). None for
    anything else: the model then decides, and names what is wrong. Every
    check here is one the model makes (tests/evidence/test_append_path.py
    holds the two to the same answers)."""
    if not _KNOWN_KEYS.issuperset(canonical):
        return None
    kind = _strip_colon(canonical.get("evidence/type"))
    claim = _strip_colon(canonical.get("evidence/claim-type"))
    subject = canonical.get("evidence/subject")
    if (
        not _short(canonical.get("evidence/id"))
        or not _short(canonical.get("evidence/author"))
        or type(kind) is not str
        or kind not in _ENTRY_TYPE_SET
        or type(claim) is not str
        or claim not in _CLAIM_TYPE_SET
        or type(subject) is not dict
        or subject.keys() != {"ref/type", "ref/id"}
    ):
        return None
    ref_type = _strip_colon(subject["ref/type"])
    if type(ref_type) is not str or ref_type not in _REF_TYPE_SET or not _short(subject["ref/id"], 1024):
        return None
    body = canonical.get("evidence/body")
    if body is not None and (type(body) is not dict or not all(type(key) is str for key in body)):
        return None
    tags = canonical.get("evidence/tags", [])
    if type(tags) is not list or len(tags) > MAX_TAGS:
        return None
    plain_tags = [_strip_colon(tag) for tag in tags]
    if not all(_short(tag) for tag in plain_tags):
        return None
    out: EntryDict = {
        "evidence/id": canonical["evidence/id"],
        "evidence/subject": {"ref/type": ref_type, "ref/id": subject["ref/id"]},
        "evidence/type": kind,
        "evidence/claim-type": claim,
        "evidence/author": canonical["evidence/author"],
    }
    if body is not None:
        out["evidence/body"] = dict(body)
    out["evidence/tags"] = plain_tags
    for key in _OPTIONAL_TEXT:
        value = canonical.get(key)
        if value is not None:
            if not _short(value):
                return None
            out[key] = value
    for key in _OPTIONAL_FLAGS:
        value = canonical.get(key)
        if value is not None:
            if type(value) is not bool:
                return None
            out[key] = value
    return out


def _to_dict(model: EntryModel) -> EntryDict:
    out: EntryDict = {
        "evidence/id": model.id,
        "evidence/subject": {"ref/type": model.subject.ref_type, "ref/id": model.subject.ref_id},
        "evidence/type": model.type,
        "evidence/claim-type": model.claim_type,
        "evidence/author": model.author,
    }
    if model.body is not None:
        out["evidence/body"] = model.body
    out["evidence/tags"] = model.tags
    optional = (
        ("evidence/session-id", model.session_id),
        ("evidence/in-reply-to", model.in_reply_to),
        ("evidence/fork-of", model.fork_of),
        ("evidence/pattern-id", model.pattern_id),
        ("evidence/conjecture?", model.conjecture),
        ("evidence/ephemeral?", model.ephemeral),
    )
    for key, value in optional:
        if value is not None:
            out[key] = value
    return out


def seal(entry: EntryDict, *, seq: int, at: str, prev_hash: str) -> tuple[EntryDict, bytes]:
    """Return the stored form and its shard line: the entry with ``at``,
    ``seq`` and a hash chained to ``prev_hash``.

    The line is the canonical JSON the hash covers, with the hash spliced in
    as the last key — one serialisation serves both (this is the hot path of
    every append)."""
    stored = dict(entry)
    stored["evidence/at"] = at
    stored["evidence/seq"] = seq
    stored = {key: stored[key] for key in sorted(stored)}
    body = canonical_json(stored).encode("utf-8")  # encoded once: hashed and written
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(body)
    stored["evidence/hash"] = hexdigest = digest.hexdigest()
    return stored, b"".join((body[:-1], b',"evidence/hash":"', hexdigest.encode("ascii"), b'"}\n'))


def chain_hash(prev_hash: str, entry: EntryDict) -> str:
    """sha256 over ``prev_hash`` + the canonical JSON of the entry without its
    own hash. Canonical JSON: sorted keys, no spaces, UTF-8."""
    return _link(prev_hash, canonical_json({k: v for k, v in entry.items() if k != "evidence/hash"}))


def _link(prev_hash: str, body: str) -> str:
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(body.encode("utf-8"))
    return digest.hexdigest()


# One encoder for every entry: json.dumps with options builds a new one per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, non-ASCII kept: what the chain hash covers."""
    return _CANONICAL.encode(value)


def format_at(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z`` — sortable as text."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_at(text: str) -> str:
    """Normalise a client timestamp to the stored format, or raise ValueError."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty timestamp")
    moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_at(moment)


def _invalid(message: str) -> ProtocolError:
    return ProtocolError(message, code="invalid-entry")


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


_ALIAS_OF = {f.validation_alias or f.alias or name: name for name, f in EntryModel.model_fields.items()}


def _describe(exc: ValidationError) -> str:
    """The first pydantic error as one sentence that names the wire field."""
    error = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in error["loc"]) or "entry"
    kind = error["type"]
    if kind == "missing":
        return f"missing required field {loc!r}"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{loc!r} has an unknown value {error.get('input')!r}; expected one of {expected}"
    if kind == "extra_forbidden":
        return f"unknown field {loc!r}"
    if loc == "evidence/body":
        return f"'evidence/body' must be a JSON object, got {_json_kind(error.get('input'))}"
    return f"{loc!r}: {error['msg']}"
