"""Store behaviour shared by both backends: appends, references, queries,
pagination, chains, threads, ephemeral filtering, listeners."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from futon.evidence import EvidenceQuery, EvidenceStore, MemoryStore
from futon.evidence.query import decode_cursor
from futon.protocol.errors import Conflict, NotFound, ProtocolError
from tests.evidence.conftest import entry


def test_append_sets_seq_at_and_hash(store: EvidenceStore) -> None:
    first = store.append_sync(entry())
    second = store.append_sync(entry())
    assert (first["evidence/seq"], second["evidence/seq"]) == (1, 2)
    assert first["evidence/at"].endswith("Z") and len(first["evidence/at"]) == 24
    assert first["evidence/hash"] != second["evidence/hash"]
    assert store.get(first["evidence/id"]) == first


async def test_async_append_returns_the_stored_entry(store: EvidenceStore) -> None:
    stored = await store.append(entry(id="e-async"))
    assert store.get("e-async") == stored


def test_duplicate_id_is_refused_and_nothing_changes(store: EvidenceStore) -> None:
    store.append_sync(entry(id="e-1"))
    with pytest.raises(Conflict) as caught:
        store.append_sync(entry(id="e-1"))
    assert caught.value.code == "duplicate-id"
    assert store.total() == 1 and store.last_seq == 1


@pytest.mark.parametrize(("key", "code"), [("in-reply-to", "reply-not-found"), ("fork-of", "fork-not-found")])
def test_reference_to_a_missing_entry_is_refused(store: EvidenceStore, key: str, code: str) -> None:
    with pytest.raises(Conflict) as caught:
        store.append_sync(entry(**{key: "e-nowhere"}))
    assert caught.value.code == code
    assert store.total() == 0


def test_a_batch_may_reply_to_its_own_earlier_entry(store: EvidenceStore) -> None:
    out = store.append_many_sync([entry(id="e-a"), entry(id="e-b", **{"in-reply-to": "e-a"})])
    assert [e["evidence/seq"] for e in out] == [1, 2]


def test_a_failing_batch_is_all_or_nothing(store: EvidenceStore) -> None:
    with pytest.raises(Conflict):
        store.append_many_sync([entry(id="e-a"), entry(id="e-a")])
    assert store.total() == 0
    assert store.append_sync(entry())["evidence/seq"] == 1


async def test_concurrent_appends_fail_individually(store: EvidenceStore) -> None:
    store.append_sync(entry(id="e-taken"))
    results = await asyncio.gather(
        store.append(entry(id="e-new-1")),
        store.append(entry(id="e-taken")),
        store.append(entry(id="e-new-2", **{"in-reply-to": "e-new-1"})),
        return_exceptions=True,
    )
    assert isinstance(results[1], Conflict)
    assert [r["evidence/seq"] for r in (results[0], results[2])] == [2, 3]


async def test_invalid_entry_raises_before_queueing(store: EvidenceStore) -> None:
    with pytest.raises(ProtocolError):
        await store.append({"type": "coordination"})
    assert store.total() == 0


def _fill(store: EvidenceStore) -> None:
    for n in range(30):
        store.append_sync(
            entry(
                id=f"e-{n}",
                author="claude-1" if n % 2 else "codex-1",
                tags=["peripheral", "explore" if n % 3 == 0 else "edit"],
                **{"session-id": f"s-{n % 5}", "claim-type": "goal" if n % 10 == 0 else "step"},
            )
        )


def test_queries_filter_and_return_newest_first(store: EvidenceStore) -> None:
    _fill(store)
    by_session = store.query(EvidenceQuery(session_id="s-2")).entries
    assert [e["evidence/id"] for e in by_session] == ["e-27", "e-22", "e-17", "e-12", "e-7", "e-2"]
    by_tags = store.query(EvidenceQuery(tags=("peripheral", "explore"), author="codex-1")).entries
    assert [e["evidence/id"] for e in by_tags] == ["e-24", "e-18", "e-12", "e-6", "e-0"]
    goals = store.query(EvidenceQuery(claim_type="goal")).entries
    assert [e["evidence/id"] for e in goals] == ["e-20", "e-10", "e-0"]
    assert store.count(EvidenceQuery(author="claude-1")) == 15
    assert store.query(EvidenceQuery(subject_type="session", subject_id="sess-1")).entries[0]["evidence/id"] == "e-29"
    assert store.query(EvidenceQuery(subject_type="mission")).entries == []


def test_cursor_pagination_visits_every_match_once(store: EvidenceStore) -> None:
    _fill(store)
    seen: list[str] = []
    query = EvidenceQuery(author="claude-1", limit=4)
    while True:
        page = store.query(query)
        seen += [e["evidence/id"] for e in page.entries]
        if page.next_cursor is None:
            break
        query = query.page_after(decode_cursor(page.next_cursor))
    assert seen == [f"e-{n}" for n in range(29, 0, -2)]


def test_after_seq_reads_forward_for_replay(store: EvidenceStore) -> None:
    _fill(store)
    page = store.query(EvidenceQuery(after_seq=27, limit=10))
    assert [e["evidence/seq"] for e in page.entries] == [28, 29, 30]


def test_time_filters_since_inclusive_until_exclusive() -> None:
    moments = iter(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n) for n in range(10))
    store = MemoryStore(clock=lambda: next(moments))
    for n in range(5):
        store.append_sync(entry(id=f"e-{n}"))
    query = EvidenceQuery.from_params({"since": "2026-01-01T00:01:00Z", "until": "2026-01-01T00:03:00Z"})
    assert [e["evidence/id"] for e in store.query(query).entries] == ["e-2", "e-1"]


def test_time_never_runs_backwards_even_if_the_clock_does() -> None:
    moments = iter([datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)])
    store = MemoryStore(clock=lambda: next(moments))
    a = store.append_sync(entry())
    b = store.append_sync(entry())
    assert b["evidence/at"] == a["evidence/at"]


def test_ephemeral_entries_are_hidden_unless_asked(store: EvidenceStore) -> None:
    store.append_sync(entry(id="e-keep"))
    store.append_sync(entry(id="e-brief", **{"ephemeral?": True}))
    assert [e["evidence/id"] for e in store.query(EvidenceQuery()).entries] == ["e-keep"]
    assert store.count(EvidenceQuery(include_ephemeral=True)) == 2
    assert store.get("e-brief")["evidence/ephemeral?"] is True


def test_chain_runs_root_first_to_the_entry(store: EvidenceStore) -> None:
    store.append_sync(entry(id="e-root"))
    store.append_sync(entry(id="e-mid", **{"in-reply-to": "e-root"}))
    store.append_sync(entry(id="e-other"))
    store.append_sync(entry(id="e-leaf", **{"in-reply-to": "e-mid"}))
    assert [e["evidence/id"] for e in store.chain("e-leaf")] == ["e-root", "e-mid", "e-leaf"]
    assert [e["evidence/id"] for e in store.chain("e-root")] == ["e-root"]
    with pytest.raises(NotFound) as caught:
        store.chain("e-missing")
    assert caught.value.code == "evidence-not-found"


def test_thread_has_forks_participants_status_and_patterns(store: EvidenceStore) -> None:
    store.append_sync(entry(id="r", author="joe", **{"claim-type": "question"}))
    store.append_sync(entry(id="a", author="claude-1", **{"in-reply-to": "r", "pattern-id": "p/scout"}))
    store.append_sync(entry(id="f", author="codex-1", **{"fork-of": "a", "conjecture?": True}))
    store.append_sync(entry(id="f2", author="codex-1", **{"in-reply-to": "f", "pattern-id": "p/scout"}))
    store.append_sync(entry(id="unrelated"))
    thread = store.thread("f2")
    assert thread.root == "r"
    assert [e["evidence/id"] for e in thread.entries] == ["r", "a", "f", "f2"]
    assert thread.forks == {"f": ["f", "f2"]}
    assert thread.participants == ["joe", "claude-1", "codex-1"]
    assert thread.status == "open"
    assert thread.conjectures == ["f"]
    assert thread.patterns == {"p/scout": 2}
    store.append_sync(entry(id="end", author="joe", **{"in-reply-to": "a", "claim-type": "conclusion"}))
    assert store.thread("r").status == "closed"


def test_get_of_unknown_id_is_evidence_not_found(store: EvidenceStore) -> None:
    with pytest.raises(NotFound) as caught:
        store.get("e-nope")
    assert caught.value.code == "evidence-not-found"
    assert caught.value.context == {"evidence-id": "e-nope"}


async def test_listeners_see_each_committed_entry_once_in_order(store: EvidenceStore) -> None:
    seen: list[int] = []
    unsubscribe = store.subscribe(lambda e: seen.append(e["evidence/seq"]))
    await asyncio.gather(*(store.append(entry()) for _ in range(5)))
    unsubscribe()
    store.append_sync(entry())
    assert seen == [1, 2, 3, 4, 5]


def test_a_broken_listener_does_not_break_appends(store: EvidenceStore) -> None:
    def explode(_: object) -> None:
        raise RuntimeError("listener bug")

    store.subscribe(explode)
    assert store.append_sync(entry())["evidence/seq"] == 1


def test_returned_entries_are_copies(store: EvidenceStore) -> None:
    out = store.append_sync(entry(id="e-1", body={"k": 1}))
    out["evidence/body"]["k"] = 2
    assert store.get("e-1")["evidence/body"] == {"k": 1}
