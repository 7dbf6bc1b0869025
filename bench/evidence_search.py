"""Evidence full-text search at scale: build N entries (default 100,000)
whose bodies hold sentences drawn from a Zipf-like vocabulary, then report
p50/p99 of searches (a rare word, two words, a phrase, a common word, a
search with a filter, a long question) beside the plain query by session
measured in the same run on the same store.

Goal (issue 21): a search answers in under 50 ms (p50) at 100k entries.
Run: ``.venv/bin/python bench/evidence_search.py [--entries N] [--samples S]``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, percentile, table
from futon.evidence import EvidenceQuery, JsonlStore
from futon.evidence.jsonl import INDEX_NAME, list_shards
from futon.evidence.search import SearchRequest

SESSION_LENGTH = 100
_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "ta",
    "shi",
    "po",
    "ve",
    "zu",
    "an",
    "or",
    "el",
    "im",
    "us",
]
CLAIMS = ["step", "step", "step", "observation", "conclusion", "tension", "evidence"]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def sentence(rng: random.Random, words: list[str], weights: list[float]) -> str:
    return " ".join(rng.choices(words, weights, k=rng.randint(8, 30)))


def build(directory: Path, total: int, words: list[str], weights: list[float]) -> float:
    rng = random.Random(11)
    sessions = max(1, total // SESSION_LENGTH)
    store = JsonlStore(directory, fsync="never", rollover="size")
    start = time.perf_counter()
    batch: list[dict] = []
    for step in range(SESSION_LENGTH):
        for s in range(sessions):
            text = sentence(rng, words, weights)
            if rng.random() < 0.01:
                text += " the retry logic backs off"  # the phrase some searches look for
            batch.append(
                {
                    "id": f"e-{s}-{step}",
                    "subject": {"ref/type": "session", "ref/id": f"sess-{s}"},
                    "type": "coordination",
                    "claim-type": rng.choice(CLAIMS),
                    "author": f"agent-{s % 20}",
                    "tags": ["peripheral", f"agent-{s % 20}"],
                    "session-id": f"sess-{s}",
                    "body": {
                        "tool": "read",
                        "args": [f"src/module_{step}.py"],
                        "result": {"text": text},
                    },
                }
            )
            if len(batch) >= 10_000:
                store.append_many_sync(batch)
                batch = []
    if batch:
        store.append_many_sync(batch)
    store._index.analyze()
    store.close()
    return time.perf_counter() - start


def timed(fn, samples: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument(
        "--dir", help="build here and keep it (reused when it already holds --entries)"
    )
    args = parser.parse_args()
    directory = (
        Path(args.dir)
        if args.dir
        else Path(tempfile.mkdtemp(prefix="futon-search-", dir=Path(__file__).parent))
    )
    rng = random.Random(7)
    words = vocabulary(rng, 5000)
    weights = [1.0 / (rank + 1) for rank in range(len(words))]  # Zipf: a few words are everywhere
    sessions = max(1, args.entries // SESSION_LENGTH)
    total = sessions * SESSION_LENGTH
    try:
        existing = 0
        if list_shards(directory):
            with JsonlStore(directory) as probe:
                existing = probe.last_seq
        build_s = 0.0
        if existing != total:
            shutil.rmtree(directory, ignore_errors=True)
            print(f"building {total:,} entries in {directory} …", file=sys.stderr)
            build_s = build(directory, total, words, weights)
        index_bytes = sum(p.stat().st_size for p in directory.glob(INDEX_NAME + "*"))
        data_bytes = sum(s.path.stat().st_size for s in list_shards(directory))
        store = JsonlStore(directory)
        rare = words[2000:2200]
        common = words[:5]

        def search(text: str, **filters: str) -> None:
            store.search(SearchRequest.from_params({"q": text, **filters}))

        cases = [
            ("plain query by session (100-entry page)",
             lambda: store.query(EvidenceQuery(session_id=f"sess-{rng.randrange(sessions)}", limit=100))),
            ("search: one rare word", lambda: search(rng.choice(rare))),
            ("search: two rare words", lambda: search(f"{rng.choice(rare)} {rng.choice(rare)}")),
            ("search: phrase 'retry logic'", lambda: search("retry logic")),
            ("search: one common word", lambda: search(rng.choice(common))),
            ("search: two common words", lambda: search(f"{rng.choice(common)} {rng.choice(words[5:50])}")),
            ("search: common word + author filter",
             lambda: search(rng.choice(common), author=f"agent-{rng.randrange(20)}")),
            ("search: a question (8 words)",
             lambda: search("has anyone touched the retry logic " + " ".join(rng.sample(words[:500], 2)))),
        ]  # fmt: skip
        rows = []
        results: dict[str, float] = {}
        for name, fn in cases:
            samples = timed(fn, args.samples)
            p50, p99 = percentile(samples, 50), percentile(samples, 99)
            results[name] = p50
            rows.append((name, f"{p50:.2f}", f"{p99:.2f}"))
        store.close()
        print(f"machine: {machine()}")
        print(f"store: {total:,} entries, {data_bytes / 2**20:,.0f} MiB of shards, {index_bytes / 2**20:,.0f} MiB index "
              f"(with the text table); "
              + (f"build {build_s:.1f} s ({total / build_s:,.0f} entries/s, fsync: never)" if build_s else "reused"))  # fmt: skip
        print()
        print(table("latency (ms), same store, same run", ("what", "p50", "p99"), rows))
        print()
        worst = max(v for k, v in results.items() if k.startswith("search"))
        print(f"goal: search p50 < 50 ms at {total:,} entries — slowest search p50 {worst:.2f} ms → "
              f"{'met' if worst < 50 else 'NOT met'}")  # fmt: skip
    finally:
        if not args.dir:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
