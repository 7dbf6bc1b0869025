"""The append path of issue 19: appends that arrive in one turn of the loop
share a write, the index is written and committed on a thread of its own,
and none of it changes what an acknowledgement means or the seq order.

Real stores in real directories; the crash test kills a real process."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from futon.evidence import JsonlStore
from futon.evidence import index as index_module
from futon.evidence import model as model_module
from futon.evidence.index import BEHIND_MAX, Index
from futon.evidence.query import EvidenceQuery
from futon.evidence.store import INLINE_PER_TURN
from futon.evidence.verify import verify_store
from futon.protocol.errors import Conflict
from tests.evidence.conftest import entry
from tests.support import until

WRITERS = 64


def shard_lines(directory: Path) -> list[dict[str, Any]]:
    lines = []
    for shard in sorted(directory.glob("*.jsonl")):
        lines += [json.loads(line) for line in shard.read_bytes().splitlines()]
    return lines


async def hammer(store: JsonlStore, writers: int, each: int) -> list[list[dict[str, Any]]]:
    """``writers`` tasks appending ``each`` entries, some replying to their
    own previous one; returns what each writer got back, in its order."""

    async def writer(w: int) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        for n in range(each):
            extra = {"in-reply-to": got[-1]["evidence/id"]} if got and n % 3 == 0 else {}
            got.append(
                await store.append(entry(author=f"w{w}", body={"n": n}, tags=[f"w{w}"], **extra))
            )
        return got

    return await asyncio.gather(*(writer(w) for w in range(writers)))


@pytest.mark.parametrize("fsync", ["never", "always"])
async def test_concurrent_appends_keep_seq_order_and_every_row(tmp_path: Path, fsync: str) -> None:
    store = JsonlStore(tmp_path / "ev", fsync=fsync)  # type: ignore[arg-type]
    each = (2 * BEHIND_MAX) // WRITERS + 3  # enough for the index to hand rows to its writer thread
    results = await hammer(store, WRITERS, each)
    total = WRITERS * each
    # Each writer's entries come back in the order it appended them.
    for got in results:
        seqs = [e["evidence/seq"] for e in got]
        assert seqs == sorted(seqs)
    everything = sorted((e for got in results for e in got), key=lambda e: e["evidence/seq"])
    assert [e["evidence/seq"] for e in everything] == list(range(1, total + 1))
    # Acknowledged ⇒ in the shard, in seq order, byte for byte what was returned.
    assert shard_lines(tmp_path / "ev") == everything
    # Every read path sees every entry, replies resolved, while rows may
    # still be on their way through the writer thread.
    assert store.total() == total
    assert store.count(EvidenceQuery.from_params({"tag": "w5"})) == each
    last = results[7][-1]
    chain = store.chain(last["evidence/id"])
    assert chain[-1] == last and all(e["evidence/author"] == "w7" for e in chain)
    await store.aclose()
    report = verify_store(tmp_path / "ev")
    assert report.ok, report.problems
    assert report.entries == total
    reopened = JsonlStore(tmp_path / "ev")
    try:
        assert reopened.report.indexed == 0  # closing committed everything: nothing to catch up
        assert reopened.total() == total
        assert reopened.last_seq == total
    finally:
        reopened.close()


async def test_appends_in_one_turn_share_a_write(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path / "ev", fsync="never")
    writes: list[int] = []
    real_write = store._write

    def counting_write(sealed: list[Any]) -> list[Any]:
        writes.append(len(sealed))
        return real_write(sealed)

    store._write = counting_write  # type: ignore[method-assign]
    got = await asyncio.gather(*(store.append(entry(body={"n": n})) for n in range(32)))
    # Called in order, stored in order: the first INLINE_PER_TURN committed
    # inline, the rest of the turn as one batch.
    assert [e["evidence/body"]["n"] for e in sorted(got, key=lambda e: e["evidence/seq"])] == list(
        range(32)
    )
    assert writes == [1] * INLINE_PER_TURN + [32 - INLINE_PER_TURN]
    await store.aclose()


async def test_a_caller_appending_line_after_line_is_not_suspended(tmp_path: Path) -> None:
    # The IRC server records a client's lines one after another in one turn:
    # each waiting a turn of the loop cost the fan-out its write coalescing.
    store = JsonlStore(tmp_path / "ev", fsync="never")
    turned = asyncio.Event()
    asyncio.get_running_loop().call_soon(turned.set)
    for n in range(INLINE_PER_TURN):
        await store.append(entry(body={"n": n}))
    assert not turned.is_set()  # no turn of the loop went by
    assert len(shard_lines(tmp_path / "ev")) == INLINE_PER_TURN  # each written before it returned
    await store.aclose()


async def test_a_lone_append_is_written_before_it_returns(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path / "ev", fsync="never")
    first = await store.append(entry())
    assert shard_lines(tmp_path / "ev") == [first]  # no flush: acknowledged ⇒ written
    second = await store.append(entry())  # a later turn: inline again
    assert shard_lines(tmp_path / "ev") == [first, second]
    await store.aclose()


async def test_group_commit_gathers_the_appends_that_wait(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path / "ev", fsync="always")
    got = await asyncio.gather(*(store.append(entry(body={"n": n})) for n in range(WRITERS)))
    assert sorted(e["evidence/seq"] for e in got) == list(range(1, WRITERS + 1))
    assert store.sync_count < WRITERS // 4  # one sync served many appends
    assert len(shard_lines(tmp_path / "ev")) == WRITERS
    await store.aclose()


async def test_the_index_commits_on_its_writer_thread(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path / "ev", fsync="never")
    committers: set[str] = set()
    real_commit = store._index._commit_now

    def recording_commit() -> None:
        committers.add(threading.current_thread().name)
        real_commit()

    store._index._commit_now = recording_commit  # type: ignore[method-assign]
    for n in range(10):
        await store.append(entry(body={"n": n}))
    reader = Index(tmp_path / "ev" / "index.sqlite3", read_only=True)
    try:
        # Another process's view (a read-only CLI) catches up by itself.
        await until(lambda: reader.count_all() == 10, what="the reader seeing the commit")
    finally:
        reader.close()
    assert committers == {"futon-index-writer"}
    await store.aclose()


async def test_a_failed_write_on_the_writer_thread_degrades_and_loses_nothing(
    tmp_path: Path,
) -> None:
    store = JsonlStore(tmp_path / "ev", fsync="never")
    index = store._index
    real_execute = index._execute
    failures = {"left": 1}

    def failing_once(prepared: Any, shards: Any) -> None:
        if threading.current_thread().name == "futon-index-writer" and failures["left"]:
            failures["left"] -= 1
            raise sqlite3.OperationalError("disk I/O error (injected)")
        real_execute(prepared, shards)

    index._execute = failing_once  # type: ignore[method-assign,assignment]
    acked = [await store.append(entry(body={"n": n})) for n in range(5)]
    # The commit timer hands the rows over; the writer fails; the store hears of it.
    await until(lambda: store.index_state == "degraded", what="the store degrading")
    acked += [await store.append(entry(body={"n": n})) for n in range(5, 8)]
    for stored in acked:
        assert store.get(stored["evidence/id"]) == stored
    assert store.total() == 8
    await until(lambda: store.index_state == "ok", what="the index catching up")
    assert [store.get(e["evidence/id"]) for e in acked] == acked
    await store.aclose()
    assert verify_store(tmp_path / "ev").ok


async def test_rows_a_failed_commit_rolled_back_are_still_read_before_the_store_hears_of_it(
    tmp_path: Path,
) -> None:
    """A commit on the writer thread that fails with SQLite rolling the
    transaction back (a full disk does) takes with it the acknowledged rows
    written into that transaction. A read in the moment before the store's
    commit timer hears of the failure must still find them, and their ids
    must not be free again: the read takes the failure in first (the
    store degrades and serves them from memory)."""
    store = JsonlStore(tmp_path / "ev", fsync="never")
    index = store._index
    real_commit = index._commit_now

    def full_disk_commit() -> None:
        if threading.current_thread().name == "futon-index-writer":
            index._conn.execute("ROLLBACK")  # as SQLite does on SQLITE_FULL
            raise sqlite3.OperationalError("database or disk is full (injected)")
        real_commit()

    index._commit_now = full_disk_commit  # type: ignore[method-assign]
    acked = [await store.append(entry(id=f"e-{n}", body={"n": n})) for n in range(5)]
    assert store.get("e-0") == acked[0]  # the held rows are now in the open transaction
    store._commit_index()  # the commit timer's turn: the commit goes to the writer thread
    assert index._writer is not None
    await until(lambda: index._writer.failed, what="the writer's commit failing")
    for stored in acked:
        assert store.get(stored["evidence/id"]) == stored
    with pytest.raises(Conflict):
        await store.append(entry(id="e-4"))
    assert store.index_state == "degraded"
    await store.aclose()
    assert verify_store(tmp_path / "ev").ok


def test_rows_go_the_same_way_without_json_functions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.38 (no ``->>``) and NUL-holding text take the
    executemany path: the index must hold exactly the same rows."""
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def build(where: Path) -> list[tuple[Any, ...]]:
        store = JsonlStore(where, fsync="never", clock=lambda: moment)
        store.append_sync(entry(id="e-one", body={"text": "nul\u0000inside é"}, tags=["a", "b"]))
        store.append_sync(entry(id="e-two", **{"in-reply-to": "e-one"}, tags=["a"]))
        store.close()
        db = sqlite3.connect(where / "index.sqlite3")
        rows = db.execute("SELECT * FROM entries ORDER BY seq").fetchall()
        rows += db.execute("SELECT * FROM tags ORDER BY seq, tag").fetchall()
        rows += db.execute("SELECT rowid, * FROM texts ORDER BY rowid").fetchall()
        db.close()
        return rows

    with_json = build(tmp_path / "json")
    monkeypatch.setattr(index_module, "_JSON_EACH", False)
    assert build(tmp_path / "many") == with_json
    assert with_json[1][11] == 1  # the reply's reply_seq: the first entry
    assert "nul\u0000inside" in with_json[-2][1]  # the body text, NUL and all


CHILD = """
import asyncio, sys
from futon.evidence import JsonlStore

async def main():
    store = JsonlStore(sys.argv[1], fsync="always")
    async def writer(w):
        n = 0
        while True:
            stored = await store.append({"subject": {"ref/type": "session", "ref/id": "s"}, "type": "coordination",
                                         "claim-type": "step", "author": f"w{w}", "body": {"n": n}})
            print(stored["evidence/id"], stored["evidence/seq"], flush=True)
            n += 1
    await asyncio.gather(*(writer(w) for w in range(64)))

asyncio.run(main())
"""


def test_every_acknowledged_append_survives_kill_9_with_the_writer_thread(tmp_path: Path) -> None:
    directory = tmp_path / "ev"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    acked: list[tuple[str, int]] = []
    try:
        for line in child.stdout:  # each line: an append that came back
            entry_id, seq_text = line.split()
            acked.append((entry_id, int(seq_text)))
            if len(acked) >= 3 * BEHIND_MAX:  # past several hand-overs to the writer thread
                break
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    store = JsonlStore(directory)
    try:
        for entry_id, seq in acked:
            assert store.get(entry_id)["evidence/seq"] == seq
    finally:
        store.close()
    report = verify_store(directory)
    assert report.ok, report.problems


def test_the_plain_entry_path_agrees_with_the_entry_model() -> None:
    """normalise_entry skips the model for plainly valid entries: whatever
    that path returns must be exactly what the model would (values, types,
    key order), and it must never accept what the model refuses."""
    values: list[Any] = [
        None, "", "x", ":step", "step", ":session", "session", "coordination", ":agent", "a" * 256, "a" * 257,
        "b" * 1024, "b" * 1025, 1, 0, True, False, 1.5, [], ["t"], [":t"], [""], ["a" * 257], ["t"] * 64,
        ["t"] * 65, [1], ("t",), {}, {"k": 1}, {1: 2},
        {"ref/type": "session", "ref/id": "x"}, {"ref/type": ":agent", "ref/id": "x"},
        {"ref/type": "nope", "ref/id": "x"}, {"ref/type": "session", "ref/id": ""},
        {"ref/type": "session", "ref/id": "x", "z": 1}, {"ref_type": "session", "ref_id": "x"},
        {"ref/type": "session", "ref/id": 5},
    ]  # fmt: skip
    keys = ["evidence/id", "evidence/subject", "evidence/type", "evidence/claim-type", "evidence/author",
            "evidence/body", "evidence/tags", "evidence/session-id", "evidence/in-reply-to", "evidence/fork-of",
            "evidence/pattern-id", "evidence/conjecture?", "evidence/ephemeral?", "evidence/bogus"]  # fmt: skip
    base = {"evidence/id": "e-1", "evidence/subject": {"ref/type": "session", "ref/id": "s"},
            "evidence/type": "coordination", "evidence/claim-type": "step", "evidence/author": "a"}  # fmt: skip
    rng = random.Random(19)
    taken = 0
    for _ in range(8000):
        canonical = dict(base)
        for _ in range(rng.randint(0, 3)):
            key = rng.choice(keys)
            if rng.random() < 0.1:
                canonical.pop(key, None)
            else:
                canonical[key] = rng.choice(values)
        plain = model_module._plain_entry(canonical)
        try:
            expected = model_module._to_dict(model_module.EntryModel.model_validate(canonical))
        except ValidationError:
            expected = None
        if plain is None:
            continue
        taken += 1
        assert expected is not None, canonical
        assert plain == expected and list(plain) == list(expected), canonical
        assert [type(v) for v in plain.values()] == [type(v) for v in expected.values()]
    assert taken > 1000  # the path is really used
