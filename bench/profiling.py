"""cProfile summaries for the report: the top functions of a profiled
process by cumulative time, with the event loop's own plumbing left out
(it is the root of every stack, so it would fill the list)."""

from __future__ import annotations

import pstats
from pathlib import Path

# Frames that are the root of every stack in an asyncio server: listing
# them says nothing about where the time goes.
PLUMBING = (
    "asyncio/",
    "selectors.py",
    "runpy.py",
    "cProfile.py",
    "threading.py",
    "concurrent/futures/",
    "futon/cli/",
    "futon/__main__.py",
    "contextvars",
    "<method 'run' of '_contextvars.Context'",
    "<built-in method builtins.exec>",
    "<frozen runpy>",
    "<method 'poll' of 'select.epoll'",
    "<string>",
    # aiohttp's request plumbing and futon's middlewares: the root of every request
    "aiohttp/web_protocol.py",
    "aiohttp/web_app.py",
    "aiohttp/web_middlewares.py",
    "(errors_middleware)",
    "futon/transports/http.py:224(middleware)",
    # start-up: imports and config loading are not the steady state
    "<frozen importlib",
    "builtins.compile>",
    "marshal.loads>",
    "futon/daemon/app.py",
)


def top(path: Path, n: int = 5, *, key: str = "cumulative") -> list[str]:
    """The ``n`` heaviest functions of the cProfile stats at ``path`` by
    ``key`` (``cumulative`` or ``tottime``), one line each:
    ``cum s  tot s  calls  file:line(function)``; the share of the profiled
    wall time is the cumulative time over the total."""
    stats = pstats.Stats(str(path))
    total = max(stats.total_tt, 1e-9)  # type: ignore[attr-defined]
    rows = []
    for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = (
            f"{filename}:{line}({function})"
            if line
            else f"{filename}({function})"
            if filename != "~"
            else function
        )
        if any(p in where for p in PLUMBING):
            continue
        rows.append((cumtime if key == "cumulative" else tottime, tottime, cumtime, calls, where))
    rows.sort(reverse=True)
    out = []
    for _, tottime, cumtime, calls, where in rows[:n]:
        short = where.split("site-packages/")[-1].split("/work/main/")[-1]
        short = short.split("lib/python3.11/")[-1]
        out.append(
            f"{cumtime:7.2f} s cum {100 * cumtime / total:5.1f}%  {tottime:6.2f} s own  {calls:>8} calls  {short}"
        )
    return out


def summary(path: Path, title: str, n: int = 5) -> str:
    """A block for the report: top ``n`` by cumulative and by own time."""
    if not path.exists():
        return f"profile ({title}): not written (the process did not stop cleanly)"
    lines = [f"profile ({title}), top {n} by cumulative time (event-loop plumbing left out):"]
    lines += [f"  {row}" for row in top(path, n)]
    lines.append(f"profile ({title}), top {n} by own time:")
    lines += [f"  {row}" for row in top(path, n, key="tottime")]
    return "\n".join(lines)


__all__ = ["summary", "top"]
