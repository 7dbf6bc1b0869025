"""Coordination over HTTP: ``POST /dispatch`` with payload
``{"type": "standup"}`` to an agent connected over WebSocket that answers
each pushed ``message`` at once with a ``reply`` frame — requests/s and
p50/p99 for 1 and 10 concurrent HTTP clients, beside a bare aiohttp handler
that answers the same JSON POST with a receipt-shaped JSON body, with the
same client code and concurrency, in the same run.

The daemon (``futon serve``), the answering agent and the bare server each
run in their own process. Each request goes client → daemon → WS push to
the agent → ``reply`` → daemon → HTTP response (the receipt carries the
reply). Goal (issue 5): within 3× of the bare handler.

Run: ``.venv/bin/python bench/http_dispatch.py [--seconds S]``.
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
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    import aiohttp

    from bench.common import machine, percentile, table, within_goal
    from bench.ws_roundtrip import (
        RATE_LIMIT,
        bare_server,
        daemon_process,
        register,
        stop_process,
    )
except KeyboardInterrupt:
    sys.exit(130)

CONCURRENCY = (1, 10)
GOAL = 3.0  # issue 5: /dispatch within 3× of the bare handler
AGENT = "bench-responder"

# The answering agent, run as `python -c RESPONDER <ws url> <agent id>`:
# handshakes, prints "ready", answers every `message` push with a `reply`.
RESPONDER = r"""
import asyncio, json, signal, sys
import aiohttp

async def main(url, agent_id):
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
        await ws.send_str(json.dumps({"type": "ready", "agent_id": agent_id, "req_id": "ready"}))
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame.get("req_id") == "ready":
                print("ready" if frame.get("type") == "ready_ack" else f"refused: {frame}", flush=True)
            elif frame.get("type") == "message":
                reply = {"type": "reply", "msg_id": frame["msg_id"], "payload": {"status": "green"}}
                await ws.send_str(json.dumps(reply))

async def run():
    task = asyncio.ensure_future(main(sys.argv[1], sys.argv[2]))
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass

asyncio.run(run())
"""


@contextlib.contextmanager
def responder(ws_url: str, agent_id: str, folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "responder.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", RESPONDER, ws_url, agent_id],
            stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True,
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"responder did not connect: {line!r} {log.read_text(errors='replace')}")
        yield
    finally:
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def request_body(tag: str, client: int, n: int) -> dict[str, Any]:
    return {"msg_id": f"{tag}-{client}-{n}", "from": {"value": "bench", "type": "human"}, "to": AGENT, "payload": {"type": "standup"}}


async def requests(http: aiohttp.ClientSession, url: str, clients: int, tag: str, warmup: float, seconds: float) -> tuple[float, list[float], int]:
    """Each client POSTs, awaits the response, repeats. Returns (requests/s,
    latencies in ms, response size in bytes) over the window."""
    start = time.perf_counter() + warmup
    end = start + seconds
    sizes: list[int] = []

    async def client(k: int) -> list[float]:
        latencies = []
        n = size = 0
        while (t0 := time.perf_counter()) < end:
            n += 1
            async with http.post(url, json=request_body(tag, k, n)) as resp:
                raw = await resp.read()
                status = resp.status
            receipt = json.loads(raw)
            if status != 200 or receipt.get("delivered") is not True or "reply" not in receipt:
                raise RuntimeError(f"dispatch failed: {status} {receipt}")
            size = len(raw)
            if t0 >= start:
                latencies.append((time.perf_counter() - t0) * 1000)
        sizes.append(size)
        return latencies

    per_client = await asyncio.gather(*(client(k) for k in range(clients)))
    latencies = [ms for lat in per_client for ms in lat]
    return len(latencies) / seconds, latencies, max(sizes)


async def measure(daemon_url: str, bare_url: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": [], "ratios": {}}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        for c in CONCURRENCY:
            base_rate, base_lat, base_size = await requests(http, bare_url + "/dispatch", c, f"bare-c{c}", args.warmup, args.seconds)
            rate, lat, size = await requests(http, daemon_url + "/dispatch", c, f"daemon-c{c}", args.warmup, args.seconds)
            ratio = base_rate / rate
            out["ratios"][c] = ratio
            out["rows"].append(
                (c, "bare aiohttp JSON handler (baseline)", f"{base_rate:,.0f}", f"{percentile(base_lat, 50):.2f}", f"{percentile(base_lat, 99):.2f}", base_size, "1.00×")
            )
            out["rows"].append(
                (c, "daemon: /dispatch → WS agent → reply", f"{rate:,.0f}", f"{percentile(lat, 50):.2f}", f"{percentile(lat, 99):.2f}", size, f"{ratio:.2f}× slower")
            )
    return out


async def register_responder(daemon_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        await register(http, daemon_url, [AGENT])


def report(out: dict[str, Any], args: argparse.Namespace) -> None:
    cores = os.cpu_count() or 0
    request = len(json.dumps(request_body("daemon-c10", 1, 1000)))
    print(f"machine: {machine()}")
    print(
        f"note: only {cores} cores here — the server under test, the answering agent (daemon run only) and the "
        "client process (one asyncio loop driving every HTTP client) share them, so absolute figures are low; "
        "compare the ratios."
    )
    print(
        f"setup: daemon (`futon serve`), answering agent and bare server each in their own process; one agent "
        f"answers every request; WS rate limit raised to {RATE_LIMIT:,} frames/s (the limiter is not what is "
        f"measured); evidence fsync: never; {args.seconds:g} s per configuration after {args.warmup:g} s warm-up; "
        f"request body ~{request} bytes for both; HTTP keep-alive."
    )
    print()
    print(
        table(
            'POST /dispatch, coordination payload {"type": "standup"} (one request in flight per client)',
            ("clients", "what", "requests/s", "p50 ms", "p99 ms", "response bytes", "vs bare"),
            out["rows"],
        )
    )
    print()
    print(within_goal("/dispatch", out["ratios"], GOAL, "client", "the bare handler (requests/s, same concurrency)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per configuration")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each window")
    args = parser.parse_args()
    try:
        with contextlib.ExitStack() as stack:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="futon-dispatch-bench-")))
            bare_url, _ = stack.enter_context(bare_server(root / "bare"))
            daemon_url, _ = stack.enter_context(daemon_process(root / "daemon"))
            asyncio.run(register_responder(daemon_url))
            stack.enter_context(responder(daemon_url + "/agency/ws", AGENT, root / "responder"))
            out = asyncio.run(measure(daemon_url, bare_url, args))
        report(out, args)
    except KeyboardInterrupt:
        print("interrupted; servers stopped, temp files removed", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
