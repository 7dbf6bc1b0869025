"""The store's hot path (issue 19): the daemon's own entries skip the entry
model (``append_own``), and an id the store generated is not looked up.

What is stored is exactly what :func:`normalise_entry` would have made, a
wrong shape is still ``invalid-entry`` and changes nothing, the caller's
containers are copied, and explicit ids are still checked for duplicates.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from futon.evidence import EvidenceStore, JsonlStore
from futon.evidence.model import normalise_entry
from futon.evidence.store import own_entry
from futon.protocol.errors import Conflict, ProtocolError


def canonical(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "evidence/subject": {"ref/type": "session", "ref/id": "sess-1"},
        "evidence/type": "coordination",
        "evidence/claim-type": "step",
        "evidence/author": "claude-1",
        "evidence/session-id": "sess-1",
        "evidence/tags": ["peripheral", "explore"],
        "evidence/body": {"tool": "read", "args": ["README.md"], "ok": True, "result": "hello\n"},
    }
    base.update(overrides)
    return base


def test_own_entry_is_what_the_model_makes() -> None:
    for entry in (canonical(), canonical(**{"evidence/in-reply-to": "e-1", "evidence/ephemeral?": True}),
                  canonical(**{"evidence/body": None})):  # fmt: skip
        if entry["evidence/body"] is None:
            del entry["evidence/body"]
        mine, model = own_entry(entry), normalise_entry(entry)
        assert mine["evidence/id"].startswith("e-") and mine["evidence/id"] != model["evidence/id"]
        mine.pop("evidence/id")
        model.pop("evidence/id")
        assert mine == model


async def test_append_own_stores_the_same_line_as_append(store: EvidenceStore) -> None:
    own = await store.append_own(canonical())
    plain = await store.append(canonical())
    for stored in (own, plain):
        assert store.get(stored["evidence/id"]) == stored
    strip = ("evidence/id", "evidence/seq", "evidence/at", "evidence/hash")
    assert {k: v for k, v in own.items() if k not in strip} == {
        k: v for k, v in plain.items() if k not in strip
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"subject": {"ref/type": "session", "ref/id": "s"}},  # a compact key
        {"evidence/type": "gossip"},
        {"evidence/claim-type": "rumour"},
        {"evidence/subject": {"ref/type": "planet", "ref/id": "s"}},
        {"evidence/subject": {"type": "session", "id": "s"}},
        {"evidence/body": ["not", "a", "dict"]},
        {"evidence/tags": "peripheral"},
        {"evidence/id": "e-chosen"},
        {"evidence/seq": 7},
    ],
)
async def test_append_own_refuses_a_wrong_shape_and_changes_nothing(
    store: EvidenceStore, bad: dict[str, Any]
) -> None:
    await store.append_own(canonical())
    before = store.last_seq
    with pytest.raises(ProtocolError) as refused:
        await store.append_own(canonical(**bad))
    assert refused.value.code == "invalid-entry"
    assert store.last_seq == before


async def test_append_own_copies_the_callers_containers(store: EvidenceStore) -> None:
    entry = canonical()
    stored = await store.append_own(entry)
    entry["evidence/body"]["result"] = "changed afterwards"
    entry["evidence/tags"].append("changed")
    entry["evidence/subject"]["ref/id"] = "changed"
    again = store.get(stored["evidence/id"])
    assert again["evidence/body"]["result"] == "hello\n"
    assert again["evidence/tags"] == ["peripheral", "explore"]
    assert again["evidence/subject"]["ref/id"] == "sess-1"
    assert stored == again


async def test_a_generated_id_is_not_looked_up_but_a_given_one_is(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path / "ev", fsync="never")
    lookups: list[str] = []

    def trace(statement: str) -> None:
        if "WHERE id IN" in statement:
            lookups.append(statement)

    conn: sqlite3.Connection = store._index._conn
    conn.set_trace_callback(trace)
    try:
        first = await store.append({"subject": {"ref/type": "session", "ref/id": "s"}, "type": "coordination",
                                    "claim-type": "step", "author": "a"})  # fmt: skip
        await store.append_own(canonical())
        assert lookups == []
        raw = {"id": "e-chosen", "subject": {"ref/type": "session", "ref/id": "s"}, "type": "coordination",
               "claim-type": "step", "author": "a"}  # fmt: skip
        await store.append(raw)
        assert len(lookups) == 1
        with pytest.raises(Conflict) as twice:
            await store.append(raw)
        assert twice.value.code == "duplicate-id"
        # A reference is still checked, whoever made the id.
        with pytest.raises(Conflict) as dangling:
            await store.append_own(canonical(**{"evidence/in-reply-to": "e-missing"}))
        assert dangling.value.code == "reply-not-found"
        reply = await store.append_own(canonical(**{"evidence/in-reply-to": first["evidence/id"]}))
        assert store.get(reply["evidence/id"])["evidence/in-reply-to"] == first["evidence/id"]
    finally:
        conn.set_trace_callback(None)
        store.close()
