"""Durable evidence appends/s under ``fsync: always`` with 1, 8 and 64
concurrent writers, beside a baseline of raw ``write + fdatasync`` of the
same bytes, one entry at a time, in the same run and the same directory.

Goal (issue 2): group commit makes 64 writers reach ≥ 10× the single-writer
rate. Run: ``.venv/bin/python bench/evidence_append.py [--entries N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, median, table
from futon.evidence import JsonlStore


def sample(n: int, writer: int) -> dict:
    return {
        "subject": {"ref/type": "session", "ref/id": f"sess-{writer}"},
        "type": "coordination",
        "claim-type": "step",
        "author": f"agent-{writer}",
        "tags": ["peripheral", "explore"],
        "body": {"tool": "read", "args": ["src/app.py"], "n": n},
        "session-id": f"sess-{writer}",
    }


def baseline(directory: Path, lines: list[bytes]) -> float:
    """Raw appends: write one line, fdatasync, repeat. Entries/s."""
    path = directory / "baseline.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    start = time.perf_counter()
    for line in lines:
        os.write(fd, line)
        os.fdatasync(fd)
    elapsed = time.perf_counter() - start
    os.close(fd)
    return len(lines) / elapsed


async def concurrent(directory: Path, writers: int, total: int) -> tuple[float, int]:
    store = JsonlStore(directory, fsync="always")
    per_writer = max(1, total // writers)

    async def writer(w: int) -> None:
        for n in range(per_writer):
            await store.append(sample(n, w))

    start = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - start
    syncs = store.sync_count
    await store.aclose()
    return per_writer * writers / elapsed, syncs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2048, help="appends per configuration and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median rate is reported")
    parser.add_argument("--dir", help="where to write (default: a temp dir beside the repo)")
    args = parser.parse_args()
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="futon-bench-", dir=Path(__file__).parent))
    root.mkdir(parents=True, exist_ok=True)

    from futon.evidence.model import normalise_entry, seal

    lines = [
        seal(normalise_entry(sample(n, 0)), seq=n + 1, at="2026-01-01T00:00:00.000Z", prev_hash="0" * 64)[1]
        for n in range(args.entries)
    ]
    base = median([baseline(root, lines) for _ in range(args.rounds)])
    rows = [("raw write+fdatasync (baseline)", 1, f"{base:,.0f}", "1.00×", "", args.entries)]
    single = None
    for writers in (1, 8, 64):
        # Rounds interleave with nothing else; the median damps a noisy VM.
        runs = [asyncio.run(concurrent(root / f"w{writers}-{r}", writers, args.entries)) for r in range(args.rounds)]
        rate = median([r for r, _ in runs])
        syncs = runs[0][1]
        single = single or rate
        rows.append(
            (f"store.append, {writers} writer(s)", writers, f"{rate:,.0f}", f"{rate / base:.2f}×", f"{rate / single:.1f}×", syncs)
        )
    print(f"machine: {machine()}")
    print(f"directory: {root} (same file system for baseline and store); median of {args.rounds} rounds")
    print()
    print(
        table(
            "evidence appends, fsync: always",
            ("what", "writers", "entries/s", "vs baseline", "vs 1 writer", "fsyncs"),
            rows,
        )
    )
    ratio = float(rows[-1][4].rstrip("×"))
    print()
    print(f"goal: 64 writers ≥ 10× one writer — measured {ratio:.1f}× → {'met' if ratio >= 10 else 'NOT met'}")
    import shutil

    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
