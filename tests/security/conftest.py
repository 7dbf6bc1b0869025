"""The red-team arena: a real daemon on loopback, and the three things an
attack must never reach.

``arena`` (fixture) gives every attack in ``tests/security/`` the same
stage, so each test reads as "do X as an agent; the walls held":

- ``arena.sentinel`` — a file OUTSIDE the workspace with known content,
  in a folder that holds nothing else. :meth:`Arena.assert_walls_held`
  checks it is unchanged and that nothing new appeared beside it.
- ``arena.secret`` — a value in the daemon's environment under an innocent
  name (``DATABASE_URL``; the daemon runs in this process). A tool's output
  containing it is a leak: :meth:`Arena.assert_no_secret`.
- ``arena.listener_port`` — a TCP listener on 127.0.0.1 that counts every
  connection it accepts (``arena.listener_hits``); any hit is an escape
  onto the host network.

It also serves the attacks: ``arena.agent(id)`` connects a WS agent
(``ready`` done), ``arena.base`` is the HTTP base URL, ``arena.irc_port``
the embedded IRC server's port, and ``async with arena.responsive():``
polls ``/health`` while the attack runs and fails when the daemon stops
answering promptly. ``arena.rss()`` is this process's resident memory (the
daemon is in this process), for "memory stays bounded".

The test peripheral's sandbox is given the interpreter's folders read-only
(``sandbox.read_only``) so that pytest can run inside it; nothing else is
widened.
"""

from __future__ import annotations

import asyncio
import http.client
import secrets
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ruamel.yaml import YAML

from futon.config.loader import load_config
from futon.daemon.app import Daemon
from futon.social.approvals import Pending
from tests.support import make_config
from tests.transports.kit import AgentClient, base_url

SENTINEL_TEXT = "the walls held\n"
SECRET_NAME = "DATABASE_URL"
# What "answers promptly" means while an attack runs (issue 13: within
# 100 ms). A 2-core machine runs the attack, the daemon and the prober at
# once, so the bound is on the 95th percentile; no single answer may take
# longer than HEALTH_WORST_S (a frozen loop takes seconds).
HEALTH_P95_S = 0.1
HEALTH_WORST_S = 0.5
P95_MIN_POLLS = 20
# Dense enough that a p95 rests on tens of polls: with a handful, the 95th
# percentile is the single slowest poll, and one scheduling hiccup of a
# loaded 2-core machine would decide the test.
_POLL_S = 0.02


def rss_bytes() -> int:
    """Resident memory of this process (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class Arena:
    def __init__(self, folder: Path, daemon: Daemon, http: aiohttp.ClientSession) -> None:
        self.folder = folder
        self.daemon = daemon
        self.http = http
        self.workspace = Path(daemon.config.workspace)
        self.outside = folder / "outside"
        self.sentinel = self.outside / "sentinel.txt"
        self.secret = ""
        self.listener_port = 0
        self.listener_hits = 0
        self.health_times: list[float] = []

    # ----------------------------------------------------------- surface

    @property
    def base(self) -> str:
        return base_url(self.daemon)

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/agency/ws"

    @property
    def irc_port(self) -> int:
        return self.daemon.ports["irc"]

    @asynccontextmanager
    async def agent(self, agent_id: str = "claude-1", token: str | None = None) -> AsyncIterator[AgentClient]:
        """A WS agent past ``ready``."""
        async with self.http.ws_connect(self.ws_url, max_msg_size=0) as ws:
            client = AgentClient(ws)
            frame: dict[str, Any] = {"type": "ready", "agent_id": agent_id}
            if token:
                frame["token"] = token
            ack = await client.ask(frame)
            assert ack["type"] == "ready_ack", ack
            yield client

    async def start(self, agent: AgentClient, peripheral: str) -> dict[str, Any]:
        started = await agent.ask({"type": "peripheral_start", "peripheral_id": peripheral})
        assert started["type"] == "peripheral_started", started
        return started

    async def tool(self, agent: AgentClient, tool: str, *args: Any, timeout: float = 60) -> dict[str, Any]:
        """One tool_action; the tool_result (or error) frame."""
        return await agent.ask({"type": "tool_action", "tool": tool, "args": list(args)}, timeout=timeout)

    # ----------------------------------------------------------- the walls

    def outside_listing(self) -> list[str]:
        return sorted(p.name for p in self.outside.iterdir())

    def assert_walls_held(self) -> None:
        """Sentinel unchanged, nothing created beside it, no connection to
        the loopback listener."""
        assert self.sentinel.read_text() == SENTINEL_TEXT, "the sentinel outside the workspace changed"
        assert self.outside_listing() == ["sentinel.txt"], f"files appeared outside: {self.outside_listing()}"
        assert self.listener_hits == 0, f"the loopback listener was reached {self.listener_hits} time(s)"

    def assert_no_secret(self, *texts: object) -> None:
        for text in texts:
            assert self.secret not in str(text), "the daemon's secret reached the agent"
            assert SENTINEL_TEXT.strip() not in str(text), "the sentinel's content reached the agent"

    # ----------------------------------------------------------- liveness

    @asynccontextmanager
    async def responsive(self) -> AsyncIterator[None]:
        """Poll ``/health`` every 20 ms while the body runs; on exit, every
        poll must have been answered, none slower than 500 ms, and (from
        20 polls on) 95% within 100 ms."""
        # The prober runs in its own thread: a probe on the daemon's event
        # loop would freeze together with it and see nothing wrong.
        times: list[float] = []
        failures: list[str] = []
        stop = threading.Event()
        port = self.daemon.ports["http"]

        def poll() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                while not stop.is_set():
                    began = time.perf_counter()
                    try:
                        conn.request("GET", "/health")
                        resp = conn.getresponse()
                        resp.read()
                        if resp.status != 200:
                            failures.append(f"status {resp.status}")
                    except OSError as exc:
                        failures.append(repr(exc))
                        conn.close()
                    times.append(time.perf_counter() - began)
                    stop.wait(_POLL_S)
            finally:
                conn.close()

        thread = threading.Thread(target=poll, name="health-prober", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, 10)
        assert not failures, f"/health failed during the attack: {failures[:3]}"
        self.health_times.extend(times)
        assert times, "/health was never answered during the attack"
        worst = max(times)
        # Inclusive: interpolated between observed polls, never extrapolated past the slowest.
        # A 95th percentile means something from 20 polls on; over a shorter
        # attack only the worst poll (and every poll answered) is judged.
        if len(times) >= P95_MIN_POLLS:
            p95 = statistics.quantiles(times, n=20, method="inclusive")[-1]
            assert p95 <= HEALTH_P95_S, f"/health p95 {p95 * 1000:.0f} ms during the attack ({len(times)} polls)"
        assert worst <= HEALTH_WORST_S, f"/health took {worst * 1000:.0f} ms during the attack"

    @staticmethod
    def rss() -> int:
        return rss_bytes()


def _widen_test_sandbox(config_dir: Path) -> None:
    """Let the test peripheral's sandbox see this interpreter (it lives
    outside the system directories here), and nothing else."""
    path = config_dir / "peripherals.yaml"
    yaml = YAML()
    doc = yaml.load(path)
    prefixes = sorted({sys.prefix, sys.base_prefix})
    for pid in ("test",):
        doc["peripherals"][pid]["sandbox"] = {"read_only": prefixes}
    yaml.dump(doc, path)


def _admin_approves_every_request(daemon: Daemon) -> None:
    """Entering deploy waits for a human (issue 17, ``approval: human``):
    here the admin grants each request as it is made — the walls inside
    the envelope are what these tests probe, not the approval."""
    approvals = daemon.approvals
    assert approvals is not None
    granting: set[asyncio.Task[Any]] = set()

    def grant(pending: Pending) -> None:
        task = asyncio.get_running_loop().create_task(approvals.decide(pending.id, "approve", "admin", admin=True))
        granting.add(task)
        task.add_done_callback(granting.discard)

    approvals.on_request.append(grant)


@pytest.fixture
async def arena(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Arena]:
    secret = "s3cr3t-" + secrets.token_hex(12)
    monkeypatch.setenv(SECRET_NAME, f"postgres://futon:{secret}@db.internal/prod")

    workspace = tmp_path / "ws"
    for folder in ("src", "docs", "scripts", "tests"):
        (workspace / folder).mkdir(parents=True)
    (workspace / "README.md").write_text("hello\n")
    (workspace / "src" / "app.py").write_text("def add(a, b):\n    return a + b\n")
    (workspace / "tests" / "test_app.py").write_text(
        "import sys\nsys.path.insert(0, 'src')\nfrom app import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel.txt").write_text(SENTINEL_TEXT)

    config_path = make_config(
        tmp_path / "cfg",
        workspace=str(workspace),
        evidence__fsync="never",
        dispatch__reply_timeout_s=5,
        irc__server__enabled=True,
        irc__server__port=0,
    )
    _widen_test_sandbox(config_path.parent)

    hits = 0

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal hits
        hits += 1
        arena_ref.listener_hits = hits
        writer.close()

    async with AsyncExitStack() as stack:
        listener = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        stack.push_async_callback(listener.wait_closed)
        stack.callback(listener.close)
        daemon = Daemon(load_config(config_path))
        await daemon.start()
        stack.push_async_callback(daemon.stop)
        _admin_approves_every_request(daemon)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        arena_ref = Arena(tmp_path, daemon, http)
        arena_ref.secret = secret
        arena_ref.listener_port = listener.sockets[0].getsockname()[1]
        yield arena_ref
