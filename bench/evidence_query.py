"""Evidence queries at scale: build N entries (default 1,000,000), then
report start-up time and p50/p99 of query-by-session, by-tag and chain
lookups, each beside baselines measured in the same run:

- start-up vs a raw read of every shard byte (what any design that scans
  the shards at start-up pays at the least);
- queries vs a raw ``pread`` of the same lines at known offsets (the floor:
  no index at all) and vs one full scan of the shards (what the index saves).

Goals (issue 2): p50 under 5 ms for a 100-entry page at 1M entries;
start-up under 10 s. Run: ``.venv/bin/python bench/evidence_query.py
[--entries N] [--dir D]`` (a kept ``--dir`` is reused when it already holds
N entries).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, percentile, table
from futon.evidence import EvidenceQuery, JsonlStore
from futon.evidence.jsonl import INDEX_NAME, list_shards

PERIPHERALS = ["explore", "edit", "test", "deploy", "reflect", "proof", "discipline", "chat", "mission", "alfworld", "mission-control"]
SESSION_LENGTH = 100


def build(directory: Path, total: int) -> float:
    """Sessions of 100 entries, interleaved the way concurrent agents write
    them; each entry replies to the previous one of its session."""
    sessions = max(1, total // SESSION_LENGTH)
    store = JsonlStore(directory, fsync="never", rollover="size")
    start = time.perf_counter()
    batch: list[dict] = []
    for step in range(SESSION_LENGTH):
        for s in range(sessions):
            entry = {
                "id": f"e-{s}-{step}",
                "subject": {"ref/type": "session", "ref/id": f"sess-{s}"},
                "type": "coordination",
                "claim-type": "goal" if step == 0 else "step",
                "author": f"agent-{s % 20}",
                "tags": ["peripheral", PERIPHERALS[s % len(PERIPHERALS)], f"agent-{s % 20}"],
                "session-id": f"sess-{s}",
                "body": {"tool": "read", "args": [f"src/module_{step}.py"], "result": {"lines": step * 7}},
            }
            if step:
                entry["in-reply-to"] = f"e-{s}-{step - 1}"
            batch.append(entry)
            if len(batch) >= 10_000:
                store.append_many_sync(batch)
                batch = []
    if batch:
        store.append_many_sync(batch)
    store._index.analyze()
    store.close()
    return time.perf_counter() - start


def timed(fn, samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def raw_read_all(directory: Path) -> float:
    start = time.perf_counter()
    for shard in list_shards(directory):
        with open(shard.path, "rb") as handle:
            while handle.read(8 * 1024 * 1024):
                pass
    return time.perf_counter() - start


def scan_for_session(directory: Path, session: str) -> list[dict]:
    hits = []
    for shard in list_shards(directory):
        with open(shard.path, "rb") as handle:
            for line in handle:
                entry = json.loads(line)
                if entry.get("evidence/session-id") == session:
                    hits.append(entry)
    return hits[-100:][::-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--dir", help="keep the built store here (reused when it already holds --entries)")
    parser.add_argument("--no-rebuild", action="store_true", help="skip the cold index rebuild figure")
    args = parser.parse_args()
    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="futon-query-", dir=Path(__file__).parent))
    sessions = max(1, args.entries // SESSION_LENGTH)
    total = sessions * SESSION_LENGTH

    existing = 0
    if list_shards(directory):
        with JsonlStore(directory) as probe:
            existing = probe.last_seq
    if existing != total:
        shutil.rmtree(directory, ignore_errors=True)
        print(f"building {total:,} entries in {directory} …", file=sys.stderr)
        build_s = build(directory, total)
        build_note = f"{build_s:.1f} s ({total / build_s:,.0f} entries/s, fsync: never)"
    else:
        build_note = "reused"
    data_bytes = sum(s.path.stat().st_size for s in list_shards(directory))
    index_bytes = sum(p.stat().st_size for p in directory.glob(INDEX_NAME + "*"))

    # Start-up: open with the persisted index, beside a raw read of all bytes.
    raw_s = raw_read_all(directory)
    start = time.perf_counter()
    store = JsonlStore(directory)
    startup_s = time.perf_counter() - start

    rng = random.Random(7)
    pick_session = lambda: f"sess-{rng.randrange(sessions)}"  # noqa: E731
    by_session = timed(lambda: store.query(EvidenceQuery(session_id=pick_session(), limit=100)), args.samples)
    by_tag = timed(lambda: store.query(EvidenceQuery(tags=(rng.choice(PERIPHERALS),), limit=100)), args.samples)
    by_tag2 = timed(
        lambda: store.query(EvidenceQuery(tags=("peripheral", f"agent-{rng.randrange(20)}"), limit=100)), args.samples
    )
    chains = timed(lambda: store.chain(f"e-{rng.randrange(sessions)}-{SESSION_LENGTH - 1}"), args.samples)
    deep_page = EvidenceQuery(session_id="sess-0", limit=100)

    # Floor: the same 100 lines read at known offsets, no index consulted.
    locations = store._index.search(deep_page)
    paths = {s.no: s.path for s in list_shards(directory)}
    fds = {no: os.open(path, os.O_RDONLY) for no, path in paths.items()}
    floor = timed(lambda: [json.loads(os.pread(fds[loc.shard], loc.length, loc.offset)) for loc in locations], args.samples)
    for fd in fds.values():
        os.close(fd)
    scan_ms = timed(lambda: scan_for_session(directory, pick_session()), 1)[0]
    assert [e["evidence/id"] for e in scan_for_session(directory, "sess-0")] == [
        e["evidence/id"] for e in store.query(deep_page).entries
    ]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store.close()

    rebuild_s = None
    if not args.no_rebuild:
        for path in directory.glob(INDEX_NAME + "*"):
            path.unlink()
        start = time.perf_counter()
        JsonlStore(directory).close()
        rebuild_s = time.perf_counter() - start

    floor_p50 = percentile(floor, 50)
    rows = []
    for name, samples in (
        ("query by session (100-entry page)", by_session),
        ("query by tag (1 tag, 100-entry page)", by_tag),
        ("query by 2 tags (100-entry page)", by_tag2),
        ("chain (100 ancestors)", chains),
    ):
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        rows.append((name, f"{p50:.2f}", f"{p99:.2f}", f"{p50 / floor_p50:.1f}×", f"{scan_ms / p50:,.0f}× faster"))
    rows.append(("baseline: pread 100 known lines (floor)", f"{floor_p50:.2f}", f"{percentile(floor, 99):.2f}", "1.0×", ""))
    rows.append(("baseline: full scan for one session", f"{scan_ms:,.0f}", "", f"{scan_ms / floor_p50:,.0f}×", "1×"))

    print(f"machine: {machine()}")
    print(f"store: {total:,} entries, {len(list_shards(directory))} shards, {data_bytes / 2**20:,.0f} MiB of shards, "
          f"{index_bytes / 2**20:,.0f} MiB index; build {build_note}")  # fmt: skip
    print()
    print(table("query latency (ms)", ("what", "p50", "p99", "vs floor", "vs full scan"), rows))
    print()
    startup_rows = [
        ("start-up (open with the persisted index)", f"{startup_s:.3f}", f"{startup_s / raw_s:.3f}×"),
        ("baseline: raw read of every shard byte", f"{raw_s:.3f}", "1.000×"),
    ]
    if rebuild_s is not None:
        startup_rows.append(("cold rebuild (index deleted)", f"{rebuild_s:.1f}", f"{rebuild_s / raw_s:.1f}×"))
    print(table("start-up (s)", ("what", "seconds", "vs raw read"), startup_rows))
    print()
    print(f"peak RSS of the query process: {rss_mb:,.0f} MiB")
    p50 = percentile(by_session, 50)
    print(f"goal: p50 < 5 ms for a 100-entry page — measured {p50:.2f} ms → {'met' if p50 < 5 else 'NOT met'}")
    print(f"goal: start-up < 10 s — measured {startup_s:.3f} s → {'met' if startup_s < 10 else 'NOT met'}")
    if not args.dir:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
