"""The index's volume fills while the shards' does not: every acknowledged
entry stays readable (by id, query, chain, thread, count), the store says
its index is degraded, and it catches up by itself once space is back.

The index file is a symlink into a real 1 MiB tmpfs (SQLite follows it and
keeps its WAL beside the real file), so only the index runs out of space.
The disk is filled on purpose between the appends and the index's deferred
commit, with no await in between: nothing here depends on timing."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

import aiohttp

from futon.evidence import EvidenceQuery, JsonlStore
from futon.evidence.jsonl import INDEX_NAME
from futon.evidence.verify import verify_store
from tests.transports.kit import base_url, running_daemon


def index_on(volume: Path, data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / INDEX_NAME).symlink_to(volume / INDEX_NAME)


def fill(volume: Path) -> Path:
    """Write a filler file until the volume is full; returns it."""
    filler = volume / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    chunk = b"\0" * 4096
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                return filler
    finally:
        os.close(fd)


def entry(n: int, reply_to: int | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": f"e-{n}", "subject": {"ref/type": "session", "ref/id": "s"}, "type": "coordination",
        "claim-type": "step", "author": "writer", "body": {"n": n},
    }  # fmt: skip
    if reply_to is not None:
        raw["in-reply-to"] = f"e-{reply_to}"
    return raw


def assert_all_readable(store: JsonlStore, ids: list[str]) -> None:
    for entry_id in ids:
        assert store.get(entry_id)["evidence/id"] == entry_id
    page = store.query(EvidenceQuery(author="writer", limit=len(ids) + 5))
    assert sorted(e["evidence/id"] for e in page.entries) == sorted(ids)
    assert store.count(EvidenceQuery(author="writer")) == len(ids)
    assert [e["evidence/id"] for e in store.chain(ids[-1])] == ids
    thread = store.thread(ids[-1])
    assert thread.root == ids[0] and [e["evidence/id"] for e in thread.entries] == ids
    assert store.total() == len(ids)


async def wait_for_state(store: JsonlStore, state: str, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while store.index_state != state:
        assert asyncio.get_running_loop().time() < deadline, f"index stayed {store.index_state}"
        await asyncio.sleep(0.05)


async def test_a_failed_deferred_index_commit_loses_no_acknowledged_entry(tmp_path: Path, small_disk: Path) -> None:
    data = tmp_path / "var"
    index_on(small_disk, data)
    store = JsonlStore(data, fsync="never")
    try:
        ids = []
        for n in range(1, 21):
            stored = await store.append(entry(n, n - 1 if n > 1 else None))
            ids.append(stored["evidence/id"])
        # Acknowledged, not yet committed to the index: fill its disk now.
        assert store.index_state == "ok"
        filler = fill(small_disk)
        await wait_for_state(store, "degraded")  # the deferred commit failed
        assert_all_readable(store, ids)

        # While degraded, appends still land in the shards and are served.
        for n in range(21, 31):
            ids.append((await store.append(entry(n, n - 1)))["evidence/id"])
        assert_all_readable(store, ids)
        assert store.index_state == "degraded"

        filler.unlink()  # space is back: the index catches up by itself
        await wait_for_state(store, "ok")
        assert_all_readable(store, ids)
        ids.append((await store.append(entry(31, 30)))["evidence/id"])
        assert_all_readable(store, ids)
    finally:
        store.close()
    assert verify_store(data).ok
    reopened = JsonlStore(data, fsync="never")
    try:
        assert_all_readable(reopened, ids)
    finally:
        reopened.close()


async def test_health_reports_a_degraded_index_and_its_recovery(tmp_path: Path, small_disk: Path) -> None:
    data = tmp_path / "var"
    index_on(small_disk, data / "evidence")  # the daemon's store lives there
    async with running_daemon(tmp_path, data_dir=str(data)) as daemon, aiohttp.ClientSession() as http:
        base = base_url(daemon)

        async def health() -> dict[str, Any]:
            async with http.get(base + "/health") as resp:
                return await resp.json()

        async def post(n: int, reply_to: int | None) -> str:
            async with http.post(base + "/api/alpha/evidence", json=entry(n, reply_to)) as resp:
                assert resp.status == 201, await resp.text()
                return (await resp.json())["evidence/id"]

        async def readable(ids: list[str]) -> None:
            for entry_id in ids:
                async with http.get(base + f"/api/alpha/evidence/{entry_id}") as resp:
                    assert resp.status == 200, entry_id
            async with http.get(base + f"/api/alpha/evidence?author=writer&limit={len(ids) + 5}") as resp:
                page = await resp.json()
            assert sorted(e["evidence/id"] for e in page["entries"]) == sorted(ids)
            async with http.get(base + f"/api/alpha/evidence/{ids[-1]}/chain") as resp:
                chain = await resp.json()
            assert [e["evidence/id"] for e in chain["chain"]] == ids

        async def wait_index(state: str) -> None:
            for _ in range(200):
                if (await health())["index"] == state:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"/health never said index: {state}")

        assert (await health())["index"] == "ok"
        ids = [await post(1, None)]
        filler = fill(small_disk)
        for n in range(2, 12):
            ids.append(await post(n, n - 1))
        await wait_index("degraded")
        await readable(ids)
        filler.unlink()
        await wait_index("ok")
        await readable(ids)
