"""Which PostgreSQL driver for the evidence store: psycopg 3 (async) or asyncpg?

Measures what the store does on every append: writers hand a 1 KiB row to
one committer, which takes everything pending as a batch and commits it in
one durable transaction (advisory lock, insert the batch, commit with
``synchronous_commit=on`` on a cluster with fsync on). Rows/s at 1 writer
(a batch per row) and 64 concurrent writers (batches form while a commit is
in flight), for each driver, in the same run, on the same throwaway cluster.

psycopg is not a futon dependency (asyncpg won): install ``psycopg[binary]``
into the venv to re-run the comparison; without it only asyncpg is measured.

Run: ``.venv/bin/python bench/pg_driver.py [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, table
from tests.pg_cluster import running_cluster

ROW = "x" * 1024
SCHEMA = "CREATE TABLE IF NOT EXISTS rows(seq bigserial PRIMARY KEY, writer int NOT NULL, line text NOT NULL)"
Commit = Callable[[list[tuple[int, str]]], Awaitable[None]]


async def run_writers(commit: Commit, writers: int, seconds: float) -> tuple[float, float]:
    """Group commit around ``commit``: rows/s and the mean batch size."""
    pending: list[tuple[tuple[int, str], asyncio.Future[None]]] = []
    wake = asyncio.Event()
    stop = time.perf_counter() + seconds
    batches = 0
    done = 0

    async def committer() -> None:
        nonlocal batches, done
        while time.perf_counter() < stop or pending:
            if not pending:
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), 0.05)
                except TimeoutError:
                    continue
            batch, pending[:] = list(pending), []
            await commit([row for row, _ in batch])
            batches += 1
            done += len(batch)
            for _, future in batch:
                future.set_result(None)

    async def writer(w: int) -> None:
        loop = asyncio.get_running_loop()
        while time.perf_counter() < stop:
            future: asyncio.Future[None] = loop.create_future()
            pending.append(((w, ROW), future))
            wake.set()
            await future

    start = time.perf_counter()
    await asyncio.gather(committer(), *(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - start
    return done / elapsed, done / max(batches, 1)


async def with_psycopg(dsn: str, writers: int, seconds: float) -> tuple[float, float]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await conn.execute(SCHEMA)
        await conn.commit()

        async def commit(rows: list[tuple[int, str]]) -> None:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(42)")
                # One statement per batch: psycopg's executemany costs a
                # round of protocol messages per row (measured 5x slower).
                await conn.execute(
                    "INSERT INTO rows(writer, line) SELECT * FROM unnest(%s::int[], %s::text[])",
                    ([w for w, _ in rows], [line for _, line in rows]),
                )

        return await run_writers(commit, writers, seconds)


async def with_asyncpg(dsn: str, writers: int, seconds: float) -> tuple[float, float]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)

        async def commit(rows: list[tuple[int, str]]) -> None:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(42)")
                await conn.execute(
                    "INSERT INTO rows(writer, line) SELECT * FROM unnest($1::int[], $2::text[])",
                    [w for w, _ in rows],
                    [line for _, line in rows],
                )

        return await run_writers(commit, writers, seconds)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per configuration")
    args = parser.parse_args()
    rows = []
    with running_cluster(durable=True) as cluster:
        drivers: list[tuple[str, Callable[[str, int, float], Awaitable[tuple[float, float]]]]] = []
        try:
            import psycopg  # noqa: F401
        except ImportError:
            print("psycopg not installed: measuring asyncpg only")
        else:
            drivers.append(("psycopg 3 (async)", with_psycopg))
        drivers.append(("asyncpg", with_asyncpg))
        for name, run in drivers:
            for writers in (1, 64):
                dsn = cluster.create_database()
                rate, batch = asyncio.run(run(dsn, writers, args.seconds))
                rows.append((name, writers, f"{rate:,.0f}", f"{batch:.1f}"))
    print(f"machine: {machine()}")
    print(
        table(
            "durable group commit of 1 KiB rows",
            ("driver", "writers", "rows/s", "rows/commit"),
            rows,
        )
    )


if __name__ == "__main__":
    main()
