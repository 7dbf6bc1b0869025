"""Full-text search over the evidence (futon.evidence.search): words in
bodies are found, filters hold, an exact phrase ranks above scattered
words, bad queries are typed, and the index keeps the text in step through
rebuilds, forgotten tails and a degraded (overlay) index."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from futon.evidence import EvidenceQuery, EvidenceStore, JsonlStore, MemoryStore
from futon.evidence.index import SCHEMA_VERSION
from futon.evidence.jsonl import INDEX_NAME
from futon.evidence.search import (
    MAX_BODY_TEXT,
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    SearchRequest,
    body_text,
    match_expressions,
    words_of,
)
from futon.protocol.errors import ProtocolError
from tests.evidence.conftest import entry


def say(store: EvidenceStore, text: str, **overrides: Any) -> str:
    stored = store.append_sync(entry(body={"text": text}, **overrides))
    return str(stored["evidence/id"])


def found(store: EvidenceStore, q: str, **params: Any) -> list[str]:
    return [
        hit.entry["evidence/id"]
        for hit in store.search(SearchRequest.from_params({"q": q, **params}))
    ]


def test_words_in_bodies_are_found_at_any_depth(store: EvidenceStore) -> None:
    deep = store.append_sync(
        entry(body={"result": {"notes": ["first", {"why": "the flaky handshake"}]}, "n": 3})
    )
    say(store, "nothing to see")
    assert found(store, "handshake") == [deep["evidence/id"]]
    assert found(store, "HANDSHAKES") == [deep["evidence/id"]]  # case and stemming
    assert found(store, "unrelated") == []


def test_subject_author_and_tags_are_searchable(store: EvidenceStore) -> None:
    tagged = say(store, "x", tags=["retry-logic"], author="codex-7")
    about = say(store, "y", subject={"ref/type": "component", "ref/id": "scheduler"})
    assert found(store, "retry logic") == [tagged]
    assert found(store, "codex") == [tagged]
    assert found(store, "scheduler") == [about]


def test_an_exact_phrase_ranks_above_scattered_words(store: EvidenceStore) -> None:
    # The scattered entry mentions both words more often, and is shorter
    # per word: bm25 alone could prefer it. The phrase still comes first.
    scattered = say(store, "retry later; the logic of each retry path: logic, again retry")
    phrase = say(
        store, "we changed how the retry logic backs off after a failed handshake with peers"
    )
    one_word = say(store, "retry only")
    hits = store.search(SearchRequest.of("retry logic"))
    assert [h.entry["evidence/id"] for h in hits] == [phrase, scattered, one_word]
    assert [h.tier for h in hits] == ["phrase", "all", "any"]
    assert "«retry logic»" in hits[0].snippet


def test_filters_apply_to_search(store: EvidenceStore) -> None:
    a = say(store, "cache eviction bug", author="a1", tags=["perf"], **{"claim-type": "conclusion"})
    b = say(store, "cache eviction again", author="b2", **{"claim-type": "observation"})
    e = say(store, "cache eviction noise", **{"ephemeral?": True})
    assert set(found(store, "cache eviction")) == {a, b}
    assert found(store, "cache", author="b2") == [b]
    assert found(store, "cache", **{"claim-type": "conclusion"}) == [a]
    assert found(store, "cache", tag="perf") == [a]
    assert set(found(store, "cache", **{"include-ephemeral": "true"})) == {a, b, e}
    at = store.get(b)["evidence/at"]
    assert a not in found(store, "cache", since=at) or store.get(a)["evidence/at"] >= at
    assert found(store, "cache", until="2000-01-01T00:00:00Z") == []


def test_limit_is_respected_and_clamped(store: EvidenceStore) -> None:
    for i in range(5):
        say(store, f"widget number {i}")
    assert len(found(store, "widget", limit="2")) == 2
    assert SearchRequest.from_params({"q": "x", "limit": "100000"}).limit == 100


@pytest.mark.parametrize(
    "q",
    [
        '"unbalanced',
        "retry AND",
        "NEAR(a b",
        "a:b",
        "*",
        "(x OR",
        "^start",
        "col:word*",
        "-x",
        "''",
        "AND OR NOT",
    ],
)
def test_fts_syntax_is_read_as_plain_words(store: EvidenceStore, q: str) -> None:
    say(store, "retry near a b start col word x and or not")
    try:
        hits = store.search(SearchRequest.of(q))
    except ProtocolError as exc:  # a query with no words at all
        assert exc.code == "invalid-query"
    else:
        assert isinstance(hits, list)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "required"),
        ({"q": "   "}, "required"),
        ({"q": "!!! ???"}, "no words"),
        ({"q": "x" * (MAX_QUERY_CHARS + 1)}, "longer"),
        ({"q": "x", "limit": "0"}, "at least 1"),
        ({"q": "x", "limit": "many"}, "positive integer"),
        ({"q": "x", "type": "gossip"}, "unknown type"),
        ({"q": "x", "cursor": "abc"}, "no cursor"),
        ({"q": 5}, "required"),
    ],
)
def test_bad_searches_are_invalid_query(params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        SearchRequest.from_params(params, strict_keys=True)
    assert caught.value.code == "invalid-query" and fragment in caught.value.message


def test_huge_queries_are_capped_to_their_first_words() -> None:
    words = words_of(" ".join(f"w{i}" for i in range(500)))
    assert len(words) == MAX_QUERY_WORDS and words[0] == "w0"
    assert all(
        '"' not in expr.replace('"', "", 2 * len(words)) for _, expr in match_expressions(words)
    )


def test_body_text_is_bounded() -> None:
    assert len(body_text({"a": "x" * 100_000, "b": ["y" * 100_000]})) <= MAX_BODY_TEXT + 1
    assert body_text({"nested": [[[["deep"]]]], "n": 1, "t": True}) == "deep"


def test_search_survives_a_rebuild_and_a_forgotten_tail(tmp_path: Path) -> None:
    directory = tmp_path / "ev"
    with JsonlStore(directory, fsync="never") as store:
        kept = say(store, "the gearbox is fine")
        say(store, "the gearbox exploded")
    # An index of the previous schema is rebuilt, text table included.
    db = sqlite3.connect(directory / INDEX_NAME)
    db.execute("UPDATE meta SET value='3' WHERE key='schema'")
    db.commit()
    db.close()
    with JsonlStore(directory, fsync="never") as store:
        assert store.report.notes and len(found(store, "gearbox")) == 2
        store._index.delete_from(2)  # what recovery does when a shard lost its tail
        assert found(store, "gearbox") == [kept]
    assert SCHEMA_VERSION != "3"


def test_read_only_reader_searches(tmp_path: Path) -> None:
    from futon.evidence.jsonl import open_for_reading

    directory = tmp_path / "ev"
    with JsonlStore(directory, fsync="never") as store:
        target = say(store, "lighthouse keeper notes")
    with open_for_reading(directory) as reader:
        assert found(reader, "lighthouse") == [target]


async def test_search_reads_through_a_degraded_index(tmp_path: Path) -> None:
    """While the on-disk index cannot be written, new entries live in the
    memory overlay; search finds both layers, tiers intact."""
    store = MemoryStore()
    old = say(store, "retry logic in the old layer")
    store._degrade(sqlite3.OperationalError("disk full"))  # what a failed index write does
    new = say(store, "retry here, logic there")
    assert store.index_state == "degraded"
    hits = store.search(SearchRequest.of("retry logic"))
    assert [(h.entry["evidence/id"], h.tier) for h in hits] == [(old, "phrase"), (new, "all")]
    store.close()


def test_index_search_text_is_filtered_like_queries() -> None:
    store = MemoryStore()
    say(store, "alpha beta", author="x")
    say(store, "alpha beta", author="y")
    assert store.count(EvidenceQuery(author="x")) == 1
    assert len(found(store, "alpha", author="x")) == 1
    store.close()
