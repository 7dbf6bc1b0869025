"""The JSONL backend on real files: shards, group commit, rollover,
start-up recovery, the writer lock, read-only readers and write failures."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from futon.evidence import EvidenceQuery, JsonlStore
from futon.evidence.jsonl import StoreLocked, list_shards, open_for_reading
from futon.evidence.verify import verify_store
from futon.protocol.errors import StoreError
from tests.evidence.conftest import entry
from tests.support import until


def lines_of(directory: Path) -> list[dict]:
    out = []
    for shard in list_shards(directory):
        out += [json.loads(line) for line in shard.path.read_text().splitlines()]
    return out


def test_each_entry_is_one_line_in_a_seq_named_shard(tmp_path: Path) -> None:
    with JsonlStore(tmp_path, fsync="always") as store:
        stored = [store.append_sync(entry(id=f"e-{n}")) for n in range(3)]
    (shard,) = list_shards(tmp_path)
    assert shard.name.startswith("000000000001-")
    assert lines_of(tmp_path) == stored


async def test_group_commit_shares_one_fsync_among_concurrent_appends(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path, fsync="always")
    results = await asyncio.gather(*(store.append(entry()) for _ in range(64)))
    assert sorted(r["evidence/seq"] for r in results) == list(range(1, 65))
    assert store.sync_count == 1
    await store.aclose()
    assert len(lines_of(tmp_path)) == 64


async def test_sequential_appends_under_always_sync_each_time(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path, fsync="always")
    for _ in range(5):
        await store.append(entry())
    assert store.sync_count == 5
    await store.aclose()


async def test_interval_mode_syncs_later_not_per_append(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path, fsync="interval", fsync_interval_ms=50)
    for _ in range(20):
        await store.append(entry())
    assert store.sync_count <= 2
    await until(lambda: store.sync_count >= 1 and not store._dirty, what="the interval sync")
    assert store.sync_count >= 1 and not store._dirty
    await store.aclose()


def test_never_mode_does_not_sync(tmp_path: Path) -> None:
    with JsonlStore(tmp_path, fsync="never") as store:
        store.append_many_sync([entry() for _ in range(10)])
        assert store.sync_count == 0


def test_size_rollover_starts_a_new_shard_named_by_its_first_seq(tmp_path: Path) -> None:
    with JsonlStore(tmp_path, fsync="never", shard_max_bytes=4096, rollover="size") as store:
        for n in range(40):
            store.append_sync(entry(body={"pad": "x" * 200, "n": n}))
        shards = list_shards(tmp_path)
        assert len(shards) > 2
        assert all(s.path.stat().st_size <= 4096 for s in shards)
        assert [e["evidence/seq"] for e in lines_of(tmp_path)] == list(range(1, 41))
        assert shards[1].no == json.loads(shards[1].path.read_text().splitlines()[0])["evidence/seq"]
        # Entries in older shards are still found through the index.
        assert store.query(EvidenceQuery(limit=1000)).entries[-1]["evidence/body"]["n"] == 0
    assert verify_store(tmp_path).ok


def test_daily_rollover_opens_a_shard_per_day(tmp_path: Path) -> None:
    day = [datetime(2026, 3, 1, 23, 59, tzinfo=UTC)]
    store = JsonlStore(tmp_path, fsync="never", clock=lambda: day[0])
    store.append_sync(entry())
    day[0] += timedelta(minutes=2)
    store.append_sync(entry())
    store.close()
    assert [s.name for s in list_shards(tmp_path)] == ["000000000001-2026-03-01.jsonl", "000000000002-2026-03-02.jsonl"]


def test_reopen_continues_the_seq_and_the_hash_chain(tmp_path: Path) -> None:
    with JsonlStore(tmp_path) as store:
        store.append_sync(entry(id="e-1"))
    with JsonlStore(tmp_path) as store:
        assert store.append_sync(entry(id="e-2", **{"in-reply-to": "e-1"}))["evidence/seq"] == 2
        assert store.report.notes == []
    report = verify_store(tmp_path)
    assert report.ok and report.entries == 2


def test_torn_last_line_is_cut_and_reported(tmp_path: Path) -> None:
    with JsonlStore(tmp_path) as store:
        store.append_many_sync([entry(id="e-1"), entry(id="e-2")])
    shard = list_shards(tmp_path)[0].path
    with open(shard, "ab") as handle:
        handle.write(b'{"evidence/id":"e-3","evidence/sub')  # crash mid-write
    with JsonlStore(tmp_path) as store:
        assert store.report.torn_bytes == len(b'{"evidence/id":"e-3","evidence/sub')
        assert "torn" in store.report.notes[0]
        assert store.total() == 2
        assert store.append_sync(entry(id="e-3"))["evidence/seq"] == 3
    assert verify_store(tmp_path).ok


def test_corrupt_middle_line_is_reported_with_shard_and_line_and_skipped(tmp_path: Path) -> None:
    with JsonlStore(tmp_path) as store:
        store.append_many_sync([entry(id=f"e-{n}") for n in range(3)])
    (tmp_path / "index.sqlite3").unlink()  # force a re-index from the shards
    shard = list_shards(tmp_path)[0].path
    lines = shard.read_text().splitlines(keepends=True)
    lines[1] = "{this is not json}\n"
    shard.write_text("".join(lines))
    with JsonlStore(tmp_path) as store:
        assert store.report.corrupt == [f"{shard.name}:2"]
        assert [e["evidence/id"] for e in store.query(EvidenceQuery()).entries] == ["e-2", "e-0"]
    report = verify_store(tmp_path)
    assert [(p.shard, p.line) for p in report.problems] == [(shard.name, 2)]
    assert "not valid JSON" in report.problems[0].message


def test_a_shard_deleted_between_runs_rebuilds_the_index_and_says_so(tmp_path: Path) -> None:
    with JsonlStore(tmp_path, shard_max_bytes=4096, rollover="size") as store:
        for n in range(30):
            store.append_sync(entry(id=f"e-{n}", body={"pad": "y" * 200}))
    first = list_shards(tmp_path)[0]
    first.path.unlink()
    with JsonlStore(tmp_path, shard_max_bytes=4096, rollover="size") as store:
        assert store.report.rebuilt
        assert store.report.missing_shards == [first.name]
        assert not store.exists("e-0")
        assert store.exists("e-29")
        assert store.append_sync(entry())["evidence/seq"] == 31
    problems = verify_store(tmp_path).problems
    assert any("entries missing" in p.message for p in problems)


def test_index_lost_or_garbled_is_rebuilt_from_the_shards(tmp_path: Path) -> None:
    with JsonlStore(tmp_path) as store:
        store.append_many_sync([entry(id=f"e-{n}", tags=["t"]) for n in range(5)])
    (tmp_path / "index.sqlite3").write_bytes(b"garbage" * 100)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    with JsonlStore(tmp_path) as store:
        assert store.count(EvidenceQuery(tags=("t",))) == 5
        assert any("unreadable" in note for note in store.report.notes)


def test_edited_line_breaks_the_hash_chain_in_verify(tmp_path: Path) -> None:
    with JsonlStore(tmp_path) as store:
        store.append_many_sync([entry(id=f"e-{n}", body={"n": n}) for n in range(3)])
    shard = list_shards(tmp_path)[0].path
    shard.write_text(shard.read_text().replace('{"n":1}', '{"n":9}'))
    problems = verify_store(tmp_path).problems
    assert [(p.line, "hash" in p.message) for p in problems] == [(2, True)]


def test_a_second_writer_is_refused_but_a_reader_may_open(tmp_path: Path) -> None:
    writer = JsonlStore(tmp_path)
    writer.append_sync(entry(id="e-1"))
    with pytest.raises(StoreLocked, match=f"pid {os.getpid()}"):
        JsonlStore(tmp_path)
    reader = open_for_reading(tmp_path)
    assert reader.read_only and reader.get("e-1")["evidence/seq"] == 1
    writer.append_sync(entry(id="e-2"))
    assert reader.get("e-2")["evidence/seq"] == 2  # sees what the writer committed
    with pytest.raises(StoreError, match="read-only"):
        reader.append_sync(entry())
    reader.close()
    writer.close()
    JsonlStore(tmp_path).close()  # the lock is released on close


FAILURE_SCRIPT = """
import os, resource, signal, sys
from futon.evidence import JsonlStore
from futon.protocol.errors import StoreError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
directory, pad = sys.argv[1], int(sys.argv[2])
store = JsonlStore(directory, fsync="always")
base = {"subject": {"ref/type": "session", "ref/id": "s"}, "type": "coordination",
        "claim-type": "step", "author": "a"}
store.append_sync(dict(base, id="e-ok"))
shard = sorted(p for p in os.listdir(directory) if p.endswith(".jsonl"))[0]
limit = os.path.getsize(os.path.join(directory, shard)) + 2000
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
try:
    store.append_sync(dict(base, id="e-failing", body={"pad": "z" * pad}))
    print("NO ERROR")
except StoreError as exc:
    print("STORE ERROR", exc.code, exc.message)
print("READ", store.get("e-ok")["evidence/seq"], store.exists("e-failing"))
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # space is back
print("NEXT", store.append_sync(dict(base, id="e-after"))["evidence/seq"])
store.close()
"""


@pytest.mark.parametrize(
    ("pad", "failing_part"),
    [(8000, "evidence write failed"), (10, "evidence index update failed")],
    ids=["shard-write-fails", "index-update-fails"],
)
def test_write_failure_is_a_typed_error_and_the_store_keeps_serving(tmp_path: Path, pad: int, failing_part: str) -> None:
    """A real write failure: the file-size rlimit makes write(2) fail with
    EFBIG in a child process, as a full disk fails with ENOSPC. A large entry
    fails in the shard; a small one fits the shard but not the index, and is
    taken back out of the shard."""
    done = subprocess.run(
        [sys.executable, "-c", FAILURE_SCRIPT, str(tmp_path), str(pad)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0].startswith(f"STORE ERROR store-unavailable {failing_part}")
    assert out[1:] == ["READ 1 False", "NEXT 2"]
    assert [e["evidence/id"] for e in lines_of(tmp_path)] == ["e-ok", "e-after"]
    assert verify_store(tmp_path).ok
