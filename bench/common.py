"""Shared bits of the benchmarks: the machine line and a results table.

Every bench prints each figure next to a baseline measured in the same run,
so the ratio — not the absolute number — is what carries across machines.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, {platform.system()} {platform.release()}"


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def table(title: str, header: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [f"## {title}", ""]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


def within_goal(what: str, ratios: dict[int, float], goal: float, unit: str, baseline: str) -> str:
    """The goal line for "``what`` within ``goal``× of ``baseline``", from
    slowdown ratios keyed by concurrency (``unit``: client, agent …)."""
    met = all(r <= goal for r in ratios.values())
    measured = ", ".join(f"{n} {unit}{'s' if n > 1 else ''} {r:.2f}×" for n, r in ratios.items())
    return f"goal: {what} within {goal:g}× of {baseline} — measured {measured} → {'met' if met else 'NOT met'}"


def result(measure: str, futon: str, baseline: str, ratio: float, goal: str, met: bool) -> str:
    """One row of the report's goal table (issue 19), printed by a bench
    and collected by bench/run_all.py: ``result: measure | futon |
    baseline | ratio | goal | met``. ``futon`` and ``baseline`` carry their
    units; ``ratio`` is futon over baseline in the goal's sense."""
    cells = (measure, futon, baseline, f"{ratio:.2f}×", goal, "met" if met else "NOT met")
    return "result: " + " | ".join(c.replace("|", "/") for c in cells)
