"""What the envelope costs.

1. ``read`` of a small file through the full runner (dispatcher checks +
   backend + a step entry in a JSONL evidence store, fsync: interval)
   versus calling the backend function directly, in the same run.
   Goal (issue 3): the envelope adds under 50% to a read.
2. ``bash-readonly`` (the bubblewrap sandbox every tool process runs in)
   versus plain ``bash -c true`` through the same process runner without
   a sandbox, per command. Goal: the sandbox adds under 30 ms.

Run: ``.venv/bin/python bench/tool_dispatch.py [--actions N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, median, percentile, table
from futon.config.loader import load_config
from futon.config.models import ToolsSection
from futon.evidence import JsonlStore
from futon.peripherals.args import parse_args
from futon.peripherals.runner import PeripheralRunner
from futon.peripherals.spec import load_peripherals
from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.peripherals.tools.limits import ProcessLimiter
from futon.peripherals.tools.process import run_process

REPO = Path(__file__).resolve().parent.parent


async def reads(root: Path, actions: int) -> tuple[float, float]:
    """(direct actions/s, runner actions/s)."""
    workspace = root / "ws"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "app.py").write_text("def add(a, b):\n    return a + b\n" * 10)
    backend = RealBackend()
    settings = ToolsSection()
    ctx = ToolContext(workspace=workspace.resolve(), settings=settings, session_id="sess-bench", agent_id="bench")
    args = parse_args("read", ["src/app.py"])
    for _ in range(50):  # warm up
        await backend.call("read", args, ctx)
    start = time.perf_counter()
    for _ in range(actions):
        await backend.call("read", args, ctx)
    direct = actions / (time.perf_counter() - start)

    store = JsonlStore(root / "evidence", fsync="interval")
    peripherals = load_peripherals(load_config(REPO / "futon" / "data" / "config" / "futon.yaml").peripherals)
    runner = PeripheralRunner(peripherals, backend, store, settings, workspace)
    session = await runner.start("bench", "explore")
    for _ in range(50):
        await session.step("read", ["src/app.py"])
    start = time.perf_counter()
    for _ in range(actions):
        await session.step("read", ["src/app.py"])
    through = actions / (time.perf_counter() - start)
    await session.stop()
    await store.aclose()
    return direct, through


async def commands(root: Path, runs: int) -> tuple[list[float], list[float]]:
    """Per-command wall times (ms) of ``true``: plain ``bash -c true`` through
    run_process (the same process limits, no sandbox: the baseline) and the
    ``bash-readonly`` tool (every tool process runs in the sandbox now)."""
    backend = RealBackend()
    workspace = root / "ws2"
    workspace.mkdir()
    ctx = ToolContext(workspace=workspace.resolve(), settings=ToolsSection(), session_id="s", agent_id="bench")
    limiter = ProcessLimiter()
    settings = ToolsSection()

    async def plain() -> None:
        result = await run_process(["bash", "-c", "true"], cwd=ctx.workspace, timeout_s=30,
                                   cap=settings.output_cap_bytes, limiter=limiter)  # fmt: skip
        assert result.exit == 0, result

    async def sandboxed() -> None:
        result = await backend.call("bash-readonly", parse_args("bash-readonly", ["true"]), ctx)
        assert result["exit"] == 0, result

    out: dict[str, list[float]] = {"plain": [], "sandboxed": []}
    runs_by_name = {"plain": plain, "sandboxed": sandboxed}
    for fn in runs_by_name.values():
        await fn()
    for _ in range(runs):  # interleaved, so drift hits both alike
        for name, fn in runs_by_name.items():
            start = time.perf_counter()
            await fn()
            out[name].append((time.perf_counter() - start) * 1000)
    return out["plain"], out["sandboxed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=2000)
    parser.add_argument("--commands", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="futon-dispatch-") as tmp:
        rounds = [asyncio.run(reads(Path(tmp) / f"r{n}", args.actions)) for n in range(args.rounds)]
        bash, sandboxed = asyncio.run(commands(Path(tmp), args.commands))
    direct = median([d for d, _ in rounds])
    through = median([t for _, t in rounds])
    overhead = direct / through - 1
    print(f"machine: {machine()}")
    print()
    print(
        table(
            "read of a small file (actions/s, median of rounds)",
            ("what", "actions/s", "µs/action", "vs direct"),
            [
                ("backend called directly (baseline)", f"{direct:,.0f}", f"{1e6 / direct:.0f}", "1.00×"),
                ("full runner: dispatch + backend + evidence", f"{through:,.0f}", f"{1e6 / through:.0f}", f"{direct / through:.2f}× slower"),
            ],
        )
    )
    print()
    b50, s50 = percentile(bash, 50), percentile(sandboxed, 50)
    print(
        table(
            f"`true` per command (ms, {args.commands} runs each)",
            ("what", "p50", "p99", "vs bash"),
            [
                ("bash -c true, no sandbox (baseline)", f"{b50:.1f}", f"{percentile(bash, 99):.1f}", "1.0×"),
                ("bash-readonly (bubblewrap sandbox)", f"{s50:.1f}", f"{percentile(sandboxed, 99):.1f}", f"{s50 / b50:.1f}×"),
            ],
        )
    )
    print()
    print(f"goal: the envelope adds < 50% to a read — measured +{overhead * 100:.0f}% → {'met' if overhead < 0.5 else 'NOT met'}")
    extra = s50 - b50
    print(f"goal: the sandbox adds < 30 ms per command — measured +{extra:.1f} ms → {'met' if extra < 30 else 'NOT met'}")


if __name__ == "__main__":
    main()
