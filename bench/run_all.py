"""Run every benchmark in bench/ and write bench/REPORT.md.

Each bench prints its figures beside a baseline measured in the same run;
this script collects their output verbatim under one heading each, with the
machine described and the command that reproduces it. On top, the goals of
issue 19 as one table — measured / baseline / ratio / goal / met or NOT met,
from each bench's ``result:`` lines — and beside it each bench's profile
summary (the daemon's top functions by cumulative time, from its
``profile (…)`` block); the goals of earlier issues follow (``goal:``
lines). A bench that fails is reported as failed (with its last lines) and
the others still run.

Run: ``make bench`` or ``.venv/bin/python bench/run_all.py [--quick] [--only X.py …]``.
``--quick`` runs every bench at small sizes (a smoke run: figures, not
conclusions) and writes to a temporary file unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.common import machine  # noqa: E402

# (script, normal arguments, --quick arguments)
BENCHES: list[tuple[str, list[str], list[str]]] = [
    ("ws_roundtrip.py", ["--profile"], ["--seconds", "1", "--warmup", "0.2", "--idle", "10", "--agents", "1", "10", "--profile"]),
    ("evidence_http.py", ["--profile"], ["--entries", "2000", "--samples", "20", "--seconds", "1", "--clients", "4"]),
    ("irc_fanout.py", ["--profile"], ["--receivers", "5", "20", "--lines", "50", "--profile"]),
    ("load.py", ["--profile"], ["--agents", "5", "--irc", "3", "--seconds", "2", "--warmup", "1", "--profile"]),
    ("evidence_append.py", [], ["--entries", "512", "--rounds", "1"]),
    ("evidence_query.py", [], ["--entries", "5000", "--samples", "20"]),
    ("evidence_search.py", [], ["--entries", "2000", "--samples", "10"]),
    ("tool_dispatch.py", [], ["--actions", "200", "--commands", "5", "--rounds", "1"]),
    ("http_dispatch.py", [], ["--seconds", "1"]),
    # issue 20: the PostgreSQL store beside JSONL, and cross-daemon dispatch beside same-daemon
    ("evidence_pg.py", [], ["--entries", "2000", "--samples", "20", "--appends", "512", "--rounds", "1"]),
    ("team_dispatch.py", [], ["--seconds", "1"]),
]
# What the profiles show is left for each goal not met: written by hand
# from a run's profiles (bench/LEFT.md), put into the report between these
# marks — by every run, and by ``--notes`` alone after LEFT.md is edited.
NOTES = HERE / "LEFT.md"
NOTES_BEGIN, NOTES_END = "<!-- LEFT.md -->", "<!-- /LEFT.md -->"
RESULT_COLUMNS = ("measure", "futon", "baseline (same run)", "ratio", "goal", "met")


def results_of(output: str) -> list[list[str]]:
    """The ``result:`` rows a bench printed (bench/common.py ``result``)."""
    rows = []
    for line in output.splitlines():
        if line.startswith("result: "):
            cells = [c.strip() for c in line.removeprefix("result: ").split(" | ")]
            if len(cells) == len(RESULT_COLUMNS):
                rows.append(cells)
    return rows


def profiles_of(output: str) -> list[str]:
    """Each ``profile (…), top N by cumulative time`` block a bench printed:
    its heading and rows (bench/profiling.py ``summary``)."""
    blocks: list[str] = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("profile (") and "by cumulative time" in line:
            rows = [line]
            for row in lines[i + 1 :]:
                if not row.startswith("  "):
                    break
                rows.append(row)
            blocks.append("\n".join(rows))
    return blocks


def memory() -> str:
    try:
        with open("/proc/meminfo") as handle:
            total_kib = int(handle.readline().split()[1])
        return f"{total_kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        return "RAM unknown"


def with_notes(report: str) -> str:
    """``report`` with bench/LEFT.md between the notes marks."""
    before, begin, rest = report.partition(NOTES_BEGIN)
    _, end, after = rest.partition(NOTES_END)
    if not begin or not end:
        return report
    notes = NOTES.read_text().strip() if NOTES.exists() else ""
    return f"{before}{NOTES_BEGIN}\n{notes}\n{NOTES_END}{after}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (for a smoke run)")
    parser.add_argument("--out", help="where to write the report (default bench/REPORT.md; a temp file with --quick)")
    parser.add_argument("--only", nargs="*", help="run only these benches (file names)")
    parser.add_argument("--notes", action="store_true", help="only put bench/LEFT.md into the report again")
    args = parser.parse_args()
    out = Path(args.out) if args.out else HERE / "REPORT.md"
    if args.notes:
        out.write_text(with_notes(out.read_text()))
        print(f"wrote {out}")
        return
    if args.quick and not args.out:
        out = Path(tempfile.gettempdir()) / "futon-bench-quick.md"
    sections = []
    summary = []
    results: list[list[str]] = []
    profiles: list[str] = []
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
        rows = results_of(output)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            output += f"\n\nFAILED (exit {done.returncode}):\n{tail}"
            goals.append(f"goal: {script} FAILED to run")
            rows.append([f"`{script}`", "FAILED to run", "", "", "", "NOT met"])
        results += [[*row[:-1], f"**{row[-1]}**" if row[-1] != "met" else row[-1]] for row in rows]
        profiles += [f"`{script}` — {block}" for block in profiles_of(output)]
        summary += [f"- `{script}`: {g.removeprefix('goal: ')}" for g in goals]
        sections.append(f"## `{script}`\n\nCommand: `{command}` ({elapsed:.0f} s)\n\n```\n{output}\n```\n")
    made_by = "bench/run_all.py --quick (small sizes: a smoke run, not figures to quote)" if args.quick else "make bench"
    header = [
        "# futon benchmark report",
        "",
        f"Made {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by `{made_by}`.",
        "",
        f"Machine: {machine()}, {memory()}, {platform.platform()}.",
        "",
        "Every figure stands beside a baseline measured in the same run, so the",
        "ratios carry across machines better than the absolute numbers. Reproduce",
        "with `make bench` (all) or the command under each heading. Figures taken",
        "on a machine shared with other work are noisy: regenerate on a quiet one.",
        "",
        "## Goals of issue 19 (performance)",
        "",
        "| " + " | ".join(RESULT_COLUMNS) + " |",
        "|" + "|".join("---" for _ in RESULT_COLUMNS) + "|",
        *("| " + " | ".join(row) + " |" for row in results),
        "",
        NOTES_BEGIN,
        NOTES_END,
        "",
        "### Where the daemon's time goes (cProfile, steady state, beside each bench's figures)",
        "",
        "Top functions by cumulative time in the daemon over the bench's window (a separate,",
        "profiled run: cProfile slows the daemon, so these runs' own figures are not the ones above);",
        "event-loop plumbing and aiohttp's request plumbing are left out. Columns: cumulative",
        "seconds, share of the profiled time, own seconds, calls, function.",
        "",
        *(f"```\n{block}\n```\n" for block in profiles),
        "## Every bench's goal lines (issue 19's, as above, and earlier issues')",
        "",
        *summary,
        "",
    ]
    out.write_text(with_notes("\n".join(header) + "\n" + "\n".join(sections)))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
