"""The index's write-behind (issue 19): rows added with ``commit=False`` and
the count bumps of the open transaction are held in memory and written in
batches. Every read sees them, a reader in another connection only once
committed; they are bounded; a rollback drops them; a failed write keeps
them for the next commit (the store's cue to degrade)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from futon.evidence import EvidenceQuery
from futon.evidence.index import BEHIND_MAX, Index, Location


def rows(first: int, last: int, *, tag: str = "x") -> list[tuple[dict[str, object], Location]]:
    out = []
    for seq in range(first, last + 1):
        entry = {"evidence/id": f"e{seq}", "evidence/seq": seq, "evidence/at": "2026-01-01T00:00:00.000Z",
                 "evidence/type": "coordination", "evidence/claim-type": "step", "evidence/author": "a",
                 "evidence/session-id": "s1", "evidence/subject": {"ref/type": "session", "ref/id": "s1"},
                 "evidence/hash": "0" * 64, "evidence/tags": [tag]}  # fmt: skip
        out.append((entry, Location(seq, 1, seq * 10, 10)))
    return out


def test_counts_include_the_open_transaction_and_survive_its_commit(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite3")
    index.add(rows(1, 3), commit=False)
    index.add(rows(4, 5, tag="y"), commit=False)
    reader = Index(tmp_path / "index.sqlite3", read_only=True)
    try:
        for where in (index,):
            assert where.count(EvidenceQuery(tags=("x",))) == 3
            assert where.count(EvidenceQuery(tags=("y",))) == 2
            assert where.count(EvidenceQuery(session_id="s1")) == 5
            assert where.count(EvidenceQuery()) == 5
        assert reader.count(EvidenceQuery(session_id="s1")) == 0  # not committed yet
        index.commit()
        for where in (index, reader):
            assert where.count(EvidenceQuery(tags=("x",))) == 3
            assert where.count(EvidenceQuery(session_id="s1")) == 5
            assert where.count(EvidenceQuery(author="a")) == 5
        index.add(rows(6, 6), commit=True)
        assert reader.count(EvidenceQuery(tags=("x",))) == 4
        assert index.count(EvidenceQuery(tags=("x",))) == 4
    finally:
        reader.close()
        index.close()


def test_a_rollback_drops_the_bumps_with_the_rows(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite3")
    index.add(rows(1, 2), commit=True)
    index.add(rows(3, 4), commit=False)
    assert index.count(EvidenceQuery(tags=("x",))) == 4
    index.rollback()
    assert index.count(EvidenceQuery(tags=("x",))) == 2
    assert index.count(EvidenceQuery()) == 2
    index.commit()
    assert index.count(EvidenceQuery(session_id="s1")) == 2
    index.close()
    reopened = Index(tmp_path / "index.sqlite3")
    assert reopened.count(EvidenceQuery(tags=("x",))) == 2
    reopened.close()


def test_closing_writes_the_pending_bumps(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite3")
    index.add(rows(1, 3), commit=False)
    index.close()
    reopened = Index(tmp_path / "index.sqlite3")
    assert reopened.count(EvidenceQuery(tags=("x",))) == 3
    assert reopened.count(EvidenceQuery(author="a")) == 3
    reopened.close()


# ------------------------------------------------------------ write-behind


def test_held_back_rows_are_seen_by_every_read(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite3")
    index.add(rows(1, 4), commit=False)
    assert index.uncommitted
    assert index.existing(["e2", "e9"]) == {"e2": 2}
    assert index.locate("e3") == Location(3, 1, 30, 10)
    assert [loc.seq for loc in index.search(EvidenceQuery(tags=("x",)))] == [4, 3, 2, 1]
    assert index.count(EvidenceQuery(session_id="s1")) == 4
    assert index.last() == (4, "0" * 64, "2026-01-01T00:00:00.000Z")
    index.add(rows(5, 5), commit=False)
    assert index.count_all() == 5
    index.close()
    reopened = Index(tmp_path / "index.sqlite3")
    assert reopened.count_all() == 5  # closing committed them
    reopened.close()


def test_held_back_rows_are_bounded(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite3")
    index.add(rows(1, BEHIND_MAX + 1), commit=False)
    reader = Index(tmp_path / "index.sqlite3", read_only=True)
    try:
        assert reader.count_all() == 0  # written, not committed
        index.commit()
        assert reader.count_all() == BEHIND_MAX + 1
    finally:
        reader.close()
        index.close()


def test_a_rollback_drops_held_back_rows(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite3")
    index.add(rows(1, 2), commit=True)
    index.add(rows(3, 5), commit=False)
    index.rollback()
    assert index.existing(["e3"]) == {}
    assert index.count_all() == 2
    assert not index.uncommitted
    index.close()


def test_a_failed_write_keeps_the_rows_for_the_next_commit(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite3")
    index.add(rows(1, 1), commit=True)
    index.add(rows(1, 1), commit=False)  # the same seq again: the write must fail
    with pytest.raises(sqlite3.IntegrityError):
        index.count_all()
    with pytest.raises(sqlite3.IntegrityError):
        index.commit()  # still held: the store degrades on this failure
    index.rollback()
    assert index.count_all() == 1
    index.close()
