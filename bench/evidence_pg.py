"""The PostgreSQL evidence backend beside the JSONL one, in the same run.

- Appends/s with durable commits at 1 and 64 concurrent writers: JSONL with
  ``fsync: always`` (one fdatasync per batch) and PostgreSQL on a throwaway
  cluster with fsync on and ``synchronous_commit=on`` (one commit per batch).
  In rounds (``--rounds``, default 3) of one writer then 64, each on a fresh
  store; the table shows median rates, the goal the median of the rounds'
  own ratios (the machine's speed drifts between rounds, not within one).
- Query p50/p99 on the same N entries in both (built in JSONL, then
  imported byte for byte with ``futon evidence copy``'s import — its two
  verify passes are left out here: they are tested, not measured): a
  session's page, a tag's page, two tags, a 100-entry chain, a text search.

Goals (issue 20): 64 writers ≥ 10× one writer on PostgreSQL too; query p50
within 2× of the JSONL store's. Run: ``.venv/bin/python bench/evidence_pg.py
[--entries N]`` (default 1,000,000, the issue's store size: about five
minutes here, most of it building and importing the store).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, median, percentile, table
from bench.evidence_query import PERIPHERALS, SESSION_LENGTH, build
from futon.cli.evidence_copy import shard_lines
from futon.evidence import EvidenceQuery, EvidenceStore, JsonlStore
from futon.evidence.postgres import PostgresStore
from futon.evidence.search import SearchRequest
from tests.pg_cluster import running_cluster


def sample(n: int, writer: int) -> dict[str, Any]:
    return {
        "subject": {"ref/type": "session", "ref/id": f"sess-{writer}"},
        "type": "coordination",
        "claim-type": "step",
        "author": f"agent-{writer}",
        "tags": ["peripheral", "explore"],
        "body": {"tool": "read", "args": ["src/app.py"], "n": n, "pad": "x" * 800},  # ~1 KiB lines
        "session-id": f"sess-{writer}",
    }


async def append_rate(store: EvidenceStore, writers: int, per_writer: int) -> float:
    async def writer(w: int) -> None:
        for n in range(per_writer):
            await store.append(sample(n, w))

    start = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - start
    await store.aclose()
    return writers * per_writer / elapsed


def timed(fn: Callable[[], object], samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries in the query store")
    parser.add_argument("--samples", type=int, default=200, help="queries per kind")
    parser.add_argument(
        "--appends", type=int, default=8192, help="appends by 64 writers per round (one writer: an eighth)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of 1 then 64 writers")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="futon-pg-bench-", dir=Path(__file__).parent))
    try:
        with running_cluster(durable=True) as cluster:
            # Rounds of 1 then 64 writers, each on a fresh store: the ratio
            # is taken within a round (this machine's speed drifts by a
            # third over minutes), and the median round is reported.
            rates: dict[tuple[str, int], list[float]] = {}
            for _ in range(args.rounds):
                for writers in (1, 64):
                    per_writer = max(1, (args.appends if writers > 1 else args.appends // 8) // writers)
                    jsonl_store = JsonlStore(root / f"append-{len(rates)}-{writers}-{time.monotonic_ns()}", fsync="always")
                    rates.setdefault(("jsonl", writers), []).append(asyncio.run(append_rate(jsonl_store, writers, per_writer)))
                    rates.setdefault(("pg", writers), []).append(asyncio.run(
                        append_rate(PostgresStore(cluster.create_database()), writers, per_writer)))  # fmt: skip
            append_rows = [
                (writers, f"{median(rates['jsonl', writers]):,.0f}", f"{median(rates['pg', writers]):,.0f}",
                 f"{median(rates['pg', writers]) / median(rates['jsonl', writers]):.2f}×")
                for writers in (1, 64)
            ]
            round_ratios = [many / one for many, one in zip(rates["pg", 64], rates["pg", 1], strict=True)]
            jsonl_ratios = [many / one for many, one in zip(rates["jsonl", 64], rates["jsonl", 1], strict=True)]

            directory = root / "query"
            sessions = max(1, args.entries // SESSION_LENGTH)
            total = sessions * SESSION_LENGTH
            print(f"building {total:,} entries …", file=sys.stderr)
            build(directory, total)
            pg = PostgresStore(cluster.create_database())
            start = time.perf_counter()
            copied = pg.import_lines(shard_lines(directory))
            copy_s = time.perf_counter() - start
            assert copied == total, (copied, total)
            cluster.psql("VACUUM ANALYZE", pg.dsn.rsplit("/", 1)[1])  # as autovacuum would, soon
            jsonl = JsonlStore(directory)

            rng = random.Random(7)
            kinds: list[tuple[str, Callable[[EvidenceStore], object]]] = [
                ("by session (100-entry page)",
                 lambda s: s.query(EvidenceQuery(session_id=f"sess-{rng.randrange(sessions)}", limit=100))),
                ("by tag (100-entry page)",
                 lambda s: s.query(EvidenceQuery(tags=(rng.choice(PERIPHERALS),), limit=100))),
                ("by 2 tags (100-entry page)",
                 lambda s: s.query(EvidenceQuery(tags=("peripheral", f"agent-{rng.randrange(20)}"), limit=100))),
                ("chain (100 ancestors)", lambda s: s.chain(f"e-{rng.randrange(sessions)}-{SESSION_LENGTH - 1}")),
                ("search 2 words (20 hits)",
                 lambda s: s.search(SearchRequest.of(f"module_{rng.randrange(SESSION_LENGTH)} read"))),
            ]  # fmt: skip
            query_rows = []
            worst = 0.0
            for name, run in kinds:
                figures = []
                for store in (jsonl, pg):
                    samples = timed(lambda store=store, run=run: run(store), args.samples)  # type: ignore[misc]
                    figures.append((percentile(samples, 50), percentile(samples, 99)))
                (j50, j99), (p50, p99) = figures
                worst = max(worst, p50 / j50) if name != "search 2 words (20 hits)" else worst
                query_rows.append(
                    (
                        name,
                        f"{j50:.2f}",
                        f"{j99:.2f}",
                        f"{p50:.2f}",
                        f"{p99:.2f}",
                        f"{p50 / j50:.2f}×",
                    )
                )
            jsonl.close()
            pg.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"machine: {machine()}")
    print("PostgreSQL 15, throwaway cluster on the same machine (fsync on, synchronous_commit on)")
    print()
    print(table("durable appends/s (~1 KiB entries)", ("writers", "JSONL (fsync: always)", "PostgreSQL", "PG / JSONL"),
                append_rows))  # fmt: skip
    print()
    print(f"queries on {total:,} entries (imported into PostgreSQL in {copy_s:.1f} s)")
    print(table("query latency (ms)", ("what", "JSONL p50", "JSONL p99", "PG p50", "PG p99", "PG / JSONL p50"),
                query_rows))  # fmt: skip
    print()
    scale = median(round_ratios)
    print(f"64 writers / 1 writer, each round: PostgreSQL {', '.join(f'{r:.2f}×' for r in round_ratios)}; "
          f"JSONL {', '.join(f'{r:.2f}×' for r in jsonl_ratios)}")  # fmt: skip
    print(
        f"goal: PostgreSQL 64 writers ≥ 10× one writer — measured {scale:.2f}× (median of {len(round_ratios)} rounds) → "
        f"{'met' if scale >= 10 else 'NOT met'}"
    )
    print(f"goal: query p50 within 2× of JSONL (page and chain queries) — worst {worst:.2f}× → "
          f"{'met' if worst <= 2 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
