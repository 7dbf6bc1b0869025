"""Load: WS agents doing tool actions and IRC clients chatting against one
daemon process, with zero errors and flat memory after warm-up.

The short form runs in CI (30 agents, 15 IRC clients, 6 s); set
``FUTON_LOAD=long`` for the long form of issue 9 (300 agents, 150 IRC
clients, 60 s; ``FUTON_LOAD_SECONDS`` stretches it). Figures are printed (frames/s, p99, RSS over time); the
assertions are on errors and memory growth, never on speed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import aiohttp

from bench.common import percentile
from bench.load import Stats, agent, irc_client
from tests.support import make_config, start_futon, wait_for_ports

LONG = os.environ.get("FUTON_LOAD") == "long"
AGENTS, IRC_CLIENTS, SECONDS = (300, 150, 60.0) if LONG else (30, 15, 6.0)
SECONDS = float(os.environ.get("FUTON_LOAD_SECONDS", SECONDS))  # a longer watch on memory


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_agents_and_irc_clients_under_load(tmp_path: Path) -> None:
    config = make_config(
        tmp_path / "cfg", evidence__fsync="interval", irc__server__enabled=True, irc__server__port=0,
        ws__max_frames_per_s=1000, ws__burst=1000,
        http__max_connections_per_ip=2000,  # every agent is on 127.0.0.1: the per-address cap is not measured
    )  # fmt: skip
    (tmp_path / "cfg" / "README.md").write_text("hello\n" * 20)
    proc = start_futon("serve", "--config", str(config), cwd=tmp_path / "cfg")
    ports = wait_for_ports(tmp_path / "cfg" / "var", proc)
    base = f"http://127.0.0.1:{ports['http']}"
    stats = Stats(measuring=True)  # the clients are bench/load.py's: one load, one way to make it
    samples: list[tuple[float, int]] = []

    async def run() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            for n in range(AGENTS):
                async with http.post(base + "/api/alpha/agents", json={"agent_id": f"load-{n}", "type": "mock"}) as r:
                    assert r.status == 201
            start = time.monotonic()
            until = start + SECONDS

            async def sample() -> None:
                while time.monotonic() < until:
                    samples.append((time.monotonic() - start, rss_kib(proc.pid)))
                    await asyncio.sleep(SECONDS / 12)  # time: the sampling pace

            await asyncio.gather(
                sample(),
                *(agent(http, base, n, until, stats) for n in range(AGENTS)),
                *(irc_client(ports["irc"], n, until, stats) for n in range(IRC_CLIENTS)),
            )

    try:
        asyncio.run(run())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    latency = stats.latency
    print(
        f"\nload: {AGENTS} agents, {IRC_CLIENTS} IRC clients, {SECONDS:g} s — "
        f"{stats.actions * 2 / SECONDS:,.0f} WS frames/s, p50 {percentile(latency, 50) * 1000:.1f} ms, "
        f"p99 {percentile(latency, 99) * 1000:.1f} ms, IRC lines out {stats.irc_out} / in {stats.irc_in}, "
        f"errors {len(stats.errors)}, RSS KiB over time {json.dumps([kib for _, kib in samples])}"
    )
    assert stats.errors == []
    assert len(latency) > AGENTS  # every agent made round trips
    assert stats.irc_in > 0  # humans heard each other through the server
    # Flat after warm-up: the second half may not grow more than 25 % over the middle.
    middle = [kib for t, kib in samples if t >= SECONDS / 2]
    assert middle, samples
    assert max(middle) <= middle[0] * 1.25, samples
