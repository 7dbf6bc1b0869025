"""Agent WebSocket round trips: ``tool_action`` (``read`` of a small file)
through a real daemon, beside a bare aiohttp WebSocket server that reads the
same file and answers (``bench/baseline_servers.py ws``), with the same
client code and the same concurrency, in the same run.

1. Actions/s and p50/p99 latency for 1, 10 and 100 concurrent agents.
   Each agent is its own agent, registered at run time over
   ``POST /api/alpha/agents`` (type mock); it connects to ``/agency/ws``,
   sends ``ready``, ``peripheral_start`` (explore), then loops
   ``tool_action read ["README.md"]``, awaiting each reply (by ``req_id``)
   before sending the next. The baseline clients send the very same frames;
   the baseline server opens and reads the file per action and answers a
   ``tool_result`` frame.
   Goals (issue 19): 1 agent p50 ≤ 2× the baseline's; 10 agents actions/s
   ≥ 0.25× the baseline's.
2. Memory per idle connection: RSS of the server process before and after
   200 connected agents (after ``ready``), divided by 200, for both.
3. ``--profile``: one more window of 10 agents against a daemon run under
   cProfile (not the measured one: cProfile slows it down); its top
   functions are printed.

The daemon (``futon serve``) and the baseline server each run in their own
process, so the client load does not share their event loop. The daemon's
WS rate limit is raised to 1e6 frames/s (burst 1e6) and evidence uses
``fsync: never``, so neither the limiter nor the disk is what is measured.

Run: ``.venv/bin/python bench/ws_roundtrip.py [--seconds S] [--profile]``.
"""

from __future__ import annotations

import sys

try:  # a Ctrl-C while importing exits quietly too
    import argparse
    import asyncio
    import contextlib
    import json
    import os
    import subprocess
    import tempfile
    import time
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path
    from typing import Any

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    import aiohttp

    from bench import processes
    from bench.common import machine, percentile, result, table
    from bench.processes import RATE_LIMIT, log_tail, rss_kib, stop_process
    from bench.profiling import summary
except KeyboardInterrupt:
    sys.exit(130)

CONCURRENCY = (1, 10, 100)
P50_GOAL = 2.0  # 1 agent: p50 at most this many times the baseline's
RATE_GOAL = 0.25  # 10 agents: actions/s at least this share of the baseline's

# The baseline servers: one tiny aiohttp app, run as `python -c BARE_SERVER`.
# GET /ws echoes every text message; POST /dispatch answers a JSON body
# shaped like the daemon's receipt. Prints its port, runs until SIGTERM.
BARE_SERVER = r"""
import asyncio, datetime, signal
from aiohttp import WSMsgType, web

async def ws_echo(request):
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
    return ws

async def dispatch(request):
    body = await request.json()
    return web.json_response({
        "msg_id": body["msg_id"], "to": {"value": body["to"], "type": "agent"}, "delivered": True,
        "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
        "route": "registry/invoke", "reply": {"status": "green", "msg_id": body["msg_id"]},
    })

async def main():
    app = web.Application()
    app.router.add_get("/ws", ws_echo)
    app.router.add_post("/dispatch", dispatch)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(runner.addresses[0][1], flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()

asyncio.run(main())
"""


# ----------------------------------------------------------------- processes


@contextlib.contextmanager
def bare_server(folder: Path) -> Iterator[tuple[str, int]]:
    """The echo/dispatch app (BARE_SERVER) in its own process: yields
    (base url, pid). Used by bench/http_dispatch.py."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "bare.log"
    with open(log, "w") as err:
        # Its own session: a Ctrl-C reaches only us, and we stop it.
        proc = subprocess.Popen(
            [sys.executable, "-c", BARE_SERVER], stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            raise RuntimeError(f"bare server did not start:\n{log_tail(log)}")
        yield f"http://127.0.0.1:{int(line)}", proc.pid
    finally:
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def file_server(workspace: Path) -> Iterator[tuple[str, int]]:
    """``bench/baseline_servers.py ws`` over ``workspace`` in its own
    process: yields (base url, pid)."""
    script = Path(__file__).resolve().parent / "baseline_servers.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "ws", str(workspace)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            raise RuntimeError("the baseline WS server did not start")
        yield f"http://127.0.0.1:{int(line)}", proc.pid
    finally:
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def daemon_process(folder: Path, **overrides: Any) -> Iterator[tuple[str, int]]:
    """``futon serve`` in its own process (see bench/processes.py): yields
    (base url, pid). Used by bench/http_dispatch.py."""
    with processes.daemon_process(folder, **overrides) as daemon:
        yield daemon.url, daemon.pid


async def register(http: aiohttp.ClientSession, base: str, agent_ids: list[str]) -> None:
    """Register agents at run time (type mock)."""
    for agent_id in agent_ids:
        async with http.post(base + "/api/alpha/agents", json={"agent_id": agent_id, "type": "mock"}) as resp:
            if resp.status != 201:
                raise RuntimeError(f"registering {agent_id}: {resp.status} {await resp.text()}")


# -------------------------------------------------------------------- client
# The same code drives both servers: the echo server returns each frame as
# sent, so its replies carry the req_id too.


async def ask(ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Send one frame; return the reply carrying its req_id and its size."""
    await ws.send_str(json.dumps(frame))
    while True:
        msg = await ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"expected a text frame, got {msg.type} (close code {ws.close_code})")
        reply = json.loads(msg.data)
        if reply.get("req_id") == frame["req_id"]:
            if reply.get("type") == "error" or reply.get("ok") is False:
                raise RuntimeError(f"{frame['type']} failed: {reply}")
            return reply, len(msg.data)


@contextlib.asynccontextmanager
async def agents(
    http: aiohttp.ClientSession, ws_url: str, agent_ids: list[str], peripheral: str | None
) -> AsyncIterator[list[aiohttp.ClientWebSocketResponse]]:
    """Connect every agent, handshake (and start a peripheral); close all on exit."""
    sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def one(agent_id: str) -> None:
        ws = await http.ws_connect(ws_url, max_msg_size=0)
        sockets.append(ws)
        await ask(ws, {"type": "ready", "agent_id": agent_id, "req_id": "ready"})
        if peripheral:
            await ask(ws, {"type": "peripheral_start", "peripheral_id": peripheral, "req_id": "start"})

    try:
        await asyncio.gather(*(one(a) for a in agent_ids))
        yield sockets
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


TOOL_FRAME = {"type": "tool_action", "tool": "read", "args": ["README.md"]}


async def round_trips(sockets: list[aiohttp.ClientWebSocketResponse], warmup: float, seconds: float) -> tuple[float, list[float], int]:
    """Each socket loops tool_action, one in flight at a time. Returns
    (round trips/s, latencies in ms, reply size in bytes) over the window."""
    start = time.perf_counter() + warmup
    end = start + seconds
    sizes: list[int] = []

    async def agent(ws: aiohttp.ClientWebSocketResponse) -> list[float]:
        latencies = []
        n = size = 0
        while (t0 := time.perf_counter()) < end:
            n += 1
            _, size = await ask(ws, {**TOOL_FRAME, "req_id": n})
            if t0 >= start:
                latencies.append((time.perf_counter() - t0) * 1000)
        sizes.append(size)
        return latencies

    per_agent = await asyncio.gather(*(agent(ws) for ws in sockets))
    latencies = [ms for lat in per_agent for ms in lat]
    return len(latencies) / seconds, latencies, max(sizes)


async def idle_memory(http: aiohttp.ClientSession, ws_url: str, pid: int, agent_ids: list[str], warm_ids: list[str]) -> tuple[int, int]:
    """(RSS KiB before, after) opening len(agent_ids) idle connected agents."""
    async with agents(http, ws_url, warm_ids, None):  # first-connection costs
        pass
    await asyncio.sleep(0.5)
    before = rss_kib(pid)
    async with agents(http, ws_url, agent_ids, None):
        await asyncio.sleep(0.5)
        after = rss_kib(pid)
    return before, after


# ---------------------------------------------------------------------- run


async def measure(daemon: processes.Daemon, base: tuple[str, int], args: argparse.Namespace) -> dict[str, Any]:
    base_url, base_pid = base
    out: dict[str, Any] = {"rows": [], "rate": {}, "p50": {}}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        idle_ids = [f"idle-{i}" for i in range(args.idle)]
        warm_ids = [f"warm-{i}" for i in range(5)]
        per_level = {c: [f"bench-c{c}-{i}" for i in range(c)] for c in args.agents}
        await register(http, daemon.url, idle_ids + warm_ids + [a for ids in per_level.values() for a in ids])

        # Memory first, while both processes are fresh.
        out["mem_daemon"] = await idle_memory(http, daemon.url + "/agency/ws", daemon.pid, idle_ids, warm_ids)
        out["mem_bare"] = await idle_memory(http, base_url + "/ws", base_pid, idle_ids, warm_ids)

        for c in args.agents:
            async with agents(http, base_url + "/ws", per_level[c], "explore") as sockets:
                b_rate, b_lat, b_size = await round_trips(sockets, args.warmup, args.seconds)
            async with agents(http, daemon.url + "/agency/ws", per_level[c], "explore") as sockets:
                rate, lat, size = await round_trips(sockets, args.warmup, args.seconds)
            b_p50, p50 = percentile(b_lat, 50), percentile(lat, 50)
            out["rate"][c] = rate / b_rate
            out["p50"][c] = p50 / b_p50
            out.setdefault("figures", {})[c] = (rate, b_rate, p50, b_p50)
            out["rows"].append(
                (c, "bare aiohttp WS, reads the file (baseline)", f"{b_rate:,.0f}", f"{b_p50:.2f}",
                 f"{percentile(b_lat, 99):.2f}", b_size, "1.00×", "1.00×")
            )  # fmt: skip
            out["rows"].append(
                (c, "daemon: tool_action read → tool_result", f"{rate:,.0f}", f"{p50:.2f}",
                 f"{percentile(lat, 99):.2f}", size, f"{rate / b_rate:.2f}×", f"{p50 / b_p50:.2f}×")
            )  # fmt: skip
    return out


async def profiled_window(daemon: processes.Daemon, args: argparse.Namespace) -> float:
    """10 agents for one window against a profiled daemon; actions/s."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        ids = [f"prof-{i}" for i in range(10)]
        await register(http, daemon.url, ids)
        async with agents(http, daemon.url + "/agency/ws", ids, "explore") as sockets:
            await round_trips(sockets, 0, args.warmup)  # warm, unprofiled
            with daemon.profiling():
                rate, _, _ = await round_trips(sockets, 0, args.seconds)
    return rate


def report(out: dict[str, Any], args: argparse.Namespace) -> None:
    cores = os.cpu_count() or 0
    request = len(json.dumps({**TOOL_FRAME, "req_id": 1000}))
    print(f"machine: {machine()}")
    print(
        f"note: only {cores} cores here — the server process under test and the client process (one asyncio loop "
        "driving every agent) share them, so absolute figures are low and the client may also cap the "
        "baseline; compare the ratios."
    )
    print(
        f"setup: daemon (`futon serve`) and baseline server each in their own process; WS rate limit raised to "
        f"{RATE_LIMIT:,} frames/s, burst {RATE_LIMIT:,} (the limiter is not what is measured); evidence fsync: never; "
        f"{args.seconds:g} s per configuration after {args.warmup:g} s warm-up; request frame {request} bytes for both"
        + ("; the daemon runs on uvloop" if args.uvloop else "") + "."
    )
    print()
    print(
        table(
            "tool_action round trips (one in flight per agent)",
            ("agents", "what", "actions/s", "p50 ms", "p99 ms", "reply bytes", "actions/s vs baseline", "p50 vs baseline"),
            out["rows"],
        )
    )
    print()
    rows = []
    per = {}
    for key, what in (("mem_bare", "bare aiohttp WS (baseline)"), ("mem_daemon", "daemon (after ready)")):
        before, after = out[key]
        per[key] = (after - before) / args.idle
        rows.append((what, f"{before / 1024:.1f}", f"{after / 1024:.1f}", f"{per[key]:.1f}"))
    rows[0] += ("1.0×",)
    rows[1] += (f"{per['mem_daemon'] / per['mem_bare']:.1f}×" if per["mem_bare"] > 0 else "n/a",)
    print(table(f"memory per idle WS connection ({args.idle} connected agents, VmRSS)", ("what", "RSS before MiB", "RSS after MiB", "KiB/connection", "vs baseline"), rows))
    if out.get("profile"):
        print()
        print(out["profile"])
    print()
    figures = out.get("figures", {})
    if 1 in figures:
        rate, b_rate, p50, b_p50 = figures[1]
        print(result("WS tool_action read round trip, 1 agent, p50", f"{p50:.2f} ms", f"{b_p50:.2f} ms",
                     p50 / b_p50, f"≤ {P50_GOAL:g}×", p50 / b_p50 <= P50_GOAL))  # fmt: skip
    if 10 in figures:
        rate, b_rate, p50, b_p50 = figures[10]
        print(result("WS tool_action read round trips, 10 agents, actions/s", f"{rate:,.0f}/s", f"{b_rate:,.0f}/s",
                     rate / b_rate, f"≥ {RATE_GOAL:g}×", rate / b_rate >= RATE_GOAL))  # fmt: skip
    if 1 in out["p50"]:
        r = out["p50"][1]
        print(f"goal: WS tool_action round trip, 1 agent, p50 ≤ {P50_GOAL:g}× the bare file-reading WS server — "
              f"measured {r:.2f}× → {'met' if r <= P50_GOAL else 'NOT met'}")  # fmt: skip
    if 10 in out["rate"]:
        r = out["rate"][10]
        print(f"goal: WS tool_action round trips, 10 agents, actions/s ≥ {RATE_GOAL:g}× the bare file-reading WS server — "
              f"measured {r:.2f}× → {'met' if r >= RATE_GOAL else 'NOT met'}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per configuration")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each window")
    parser.add_argument("--idle", type=int, default=200, help="idle connections for the memory figure")
    parser.add_argument("--agents", type=int, nargs="+", default=list(CONCURRENCY), help="concurrency levels")
    parser.add_argument("--profile", action="store_true", help="one more window against a daemon under cProfile")
    parser.add_argument("--uvloop", action="store_true", help="run the daemon on uvloop (must be importable; measured only)")
    args = parser.parse_args()
    try:
        with contextlib.ExitStack() as stack:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="futon-ws-bench-")))
            daemon = stack.enter_context(processes.daemon_process(root / "daemon", uvloop=args.uvloop))
            base = stack.enter_context(file_server(root / "daemon" / "ws"))
            out = asyncio.run(measure(daemon, base, args))
        if args.profile:
            with tempfile.TemporaryDirectory(prefix="futon-ws-prof-") as tmp:
                prof = Path(tmp) / "daemon.prof"
                with processes.daemon_process(Path(tmp) / "daemon", profile=prof) as daemon:
                    rate = asyncio.run(profiled_window(daemon, args))
                out["profile"] = summary(prof, f"futon serve, 10 agents, {rate:,.0f} actions/s under cProfile")
        report(out, args)
    except KeyboardInterrupt:
        print("interrupted; servers stopped, temp files removed", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
