"""Counts come from maintained counters for single filters; whatever path a
count takes, it equals a count of the matching entries done by hand."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from futon.evidence import EvidenceQuery, MemoryStore
from futon.evidence.index import Index, Location

AUTHORS = ["a", "b", "c"]
TAGS = ["x", "y", "z"]
SESSIONS = ["s1", "s2", None]

entries_strategy = st.lists(
    st.tuples(
        st.sampled_from(AUTHORS), st.sampled_from(["coordination", "reflection"]),
        st.sampled_from(["step", "goal"]), st.sampled_from(SESSIONS),
        st.lists(st.sampled_from(TAGS), max_size=3), st.booleans(),
    ),
    max_size=40,
)


def by_hand(entries: list[dict[str, Any]], query: EvidenceQuery) -> int:
    def matches(e: dict[str, Any]) -> bool:
        return (
            (query.include_ephemeral or not e.get("evidence/ephemeral?"))
            and all(t in (e.get("evidence/tags") or []) for t in query.tags)
            and query.author in (None, e["evidence/author"])
            and query.type in (None, e["evidence/type"])
            and query.claim_type in (None, e["evidence/claim-type"])
            and query.session_id in (None, e.get("evidence/session-id"))
        )

    return sum(1 for e in entries if matches(e))


QUERIES = [
    EvidenceQuery(), EvidenceQuery(include_ephemeral=True),
    *(EvidenceQuery(tags=(t,)) for t in TAGS), EvidenceQuery(tags=("x",), include_ephemeral=True),
    EvidenceQuery(tags=("x", "y")), *(EvidenceQuery(author=a) for a in AUTHORS),
    EvidenceQuery(type="reflection"), EvidenceQuery(claim_type="goal", include_ephemeral=True),
    EvidenceQuery(session_id="s1"), EvidenceQuery(session_id="s2", author="a"),
]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(entries_strategy)
def test_every_count_equals_a_count_by_hand(rows: list[tuple[Any, ...]]) -> None:
    store = MemoryStore()
    stored = []
    for n, (author, kind, claim, session, tags, ephemeral) in enumerate(rows):
        raw: dict[str, Any] = {"id": f"e{n}", "subject": {"ref/type": "session", "ref/id": "s"}, "type": kind,
                               "claim-type": claim, "author": author, "tags": tags, "ephemeral?": ephemeral}  # fmt: skip
        if session:
            raw["session-id"] = session
        stored.append(store.append_sync(raw))
    for query in QUERIES:
        assert store.count(query) == by_hand(stored, query), query


def test_counts_are_rebuilt_when_entries_are_forgotten() -> None:
    index = Index(None)
    rows = []
    for seq in range(1, 6):
        entry = {"evidence/id": f"e{seq}", "evidence/seq": seq, "evidence/at": "2026-01-01T00:00:00.000Z",
                 "evidence/type": "coordination", "evidence/claim-type": "step", "evidence/author": "a",
                 "evidence/subject": {"ref/type": "session", "ref/id": "s"}, "evidence/hash": "0" * 64,
                 "evidence/tags": ["x"], "evidence/ephemeral?": seq == 5}  # fmt: skip
        rows.append((entry, Location(seq, 1, seq * 10, 10)))
    index.add(rows)
    assert index.count(EvidenceQuery(tags=("x",))) == 4
    assert index.count(EvidenceQuery(tags=("x",), include_ephemeral=True)) == 5
    index.delete_from(3)
    assert index.count(EvidenceQuery(tags=("x",))) == 2
    assert index.count(EvidenceQuery(author="a", include_ephemeral=True)) == 2
    assert index.count(EvidenceQuery()) == 2
