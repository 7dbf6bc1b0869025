"""Run every benchmark in bench/ and write bench/REPORT.md.

Each bench prints its figures beside a baseline measured in the same run;
this script collects their output verbatim under one heading each, with the
machine described and the command that reproduces it. A bench that fails is
reported as failed (with its last lines) and the others still run.

Run: ``make bench`` or ``.venv/bin/python bench/run_all.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.common import machine  # noqa: E402

# (script, normal arguments, --quick arguments)
BENCHES: list[tuple[str, list[str], list[str]]] = [
    ("evidence_append.py", [], ["--entries", "512", "--rounds", "1"]),
    ("evidence_query.py", [], ["--entries", "50000", "--samples", "100"]),
    ("evidence_search.py", [], ["--entries", "20000", "--samples", "50"]),
    ("tool_dispatch.py", [], ["--actions", "500", "--commands", "20", "--rounds", "1"]),
    ("ws_roundtrip.py", [], ["--seconds", "1", "--idle", "50"]),
    ("http_dispatch.py", [], ["--seconds", "1"]),
    ("evidence_http.py", [], ["--entries", "20000", "--samples", "100", "--seconds", "2"]),
]


def memory() -> str:
    try:
        with open("/proc/meminfo") as handle:
            total_kib = int(handle.readline().split()[1])
        return f"{total_kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        return "RAM unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (for a smoke run)")
    parser.add_argument("--out", default=str(HERE / "REPORT.md"))
    parser.add_argument("--only", nargs="*", help="run only these benches (file names)")
    args = parser.parse_args()
    sections = []
    summary = []
    for script, normal, quick in BENCHES:
        if args.only and script not in args.only:
            continue
        argv = [sys.executable, str(HERE / script), *(quick if args.quick else normal)]
        command = " ".join([".venv/bin/python", f"bench/{script}", *(quick if args.quick else normal)])
        print(f"== {command}", flush=True)
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=HERE.parent, env=dict(os.environ))
        elapsed = time.monotonic() - started
        output = done.stdout.strip()
        print(output, flush=True)
        goals = [line for line in output.splitlines() if line.startswith("goal:")]
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            output += f"\n\nFAILED (exit {done.returncode}):\n{tail}"
            goals.append(f"goal: {script} FAILED to run")
        summary += [f"- `{script}`: {g.removeprefix('goal: ')}" for g in goals]
        sections.append(f"## `{script}`\n\nCommand: `{command}` ({elapsed:.0f} s)\n\n```\n{output}\n```\n")
    header = [
        "# futon benchmark report",
        "",
        f"Made {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by `{'make bench' if not args.quick else 'bench/run_all.py --quick'}`.",
        "",
        f"Machine: {machine()}, {memory()}, {platform.platform()}.",
        "",
        "Every figure stands beside a baseline measured in the same run, so the",
        "ratios carry across machines better than the absolute numbers. Reproduce",
        "with `make bench` (all) or the command under each heading.",
        "",
        "## Goals",
        "",
        *summary,
        "",
    ]
    Path(args.out).write_text("\n".join(header) + "\n" + "\n".join(sections))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
