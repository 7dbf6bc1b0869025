"""Failover (issue 20): a client given several daemons' URLs moves to the
next one when its own goes away, and ``futon agent run --url`` repeats.

These daemons do not share a store (each has its own JSONL data_dir): what
is checked here is that the client reconnects, says ``ready`` again and can
act. Resuming across a team sharing PostgreSQL is tests/team/."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from futon.agents import AgentClient, Disconnected
from futon.daemon.app import Daemon
from tests.agents.conftest import ask_by_chat, ws_url
from tests.support import futon_env, refused_port, until
from tests.transports.kit import running_daemon


async def test_the_client_moves_to_the_next_daemon_when_its_own_goes(tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(running_daemon(tmp_path / "d1"))
        async with running_daemon(tmp_path / "d2") as second:
            urls = [ws_url(first), ws_url(second)]
            client = AgentClient(urls, "claude-1", backoff_initial_s=0.1, backoff_max_s=0.5)
            try:
                await client.connect()
                assert client.url == urls[0] and first.registry.get("claude-1").connected
                await client.start()
                await stack.aclose()  # daemon 1 stops: its socket closes (1001)
                await client.wait_connected(timeout=15)
                await until(lambda: client.generation == 2, what="the second handshake")
                assert client.url == urls[1]
                assert second.registry.get("claude-1").connected
                started = await client.start()  # a fresh session on daemon 2
                assert started.peripheral_id == "explore"
                result = await client.act("read", ["README.md"])
                assert result.ok and "hello" in str(result.result)
            finally:
                await client.close()


async def test_a_first_url_that_is_down_is_passed_over(daemon: Daemon) -> None:
    with refused_port() as port:
        urls = [f"ws://127.0.0.1:{port}/agency/ws", ws_url(daemon)]
        async with AgentClient(urls, "claude-1", backoff_initial_s=0.05) as client:
            assert client.url == urls[1]
            await client.start()
            assert (await client.act("read", ["README.md"])).ok


async def test_wait_false_tries_each_url_once_then_raises() -> None:
    with refused_port() as one, refused_port() as two:
        urls = [f"ws://127.0.0.1:{p}/agency/ws" for p in (one, two)]
        client = AgentClient(urls, "claude-1", backoff_initial_s=0.05)
        with pytest.raises(Disconnected) as refused:
            await client.connect(wait=False)
        assert refused.value.code == "agent-unreachable" and str(two) in refused.value.message
        await client.close()


def test_a_client_needs_a_url() -> None:
    with pytest.raises(ValueError):
        AgentClient([], "claude-1")


async def test_futon_agent_run_takes_the_url_repeated(
    daemon: Daemon, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The first --url refuses connections: the agent connects to the second."""
    script = tmp_path / "script.yaml"
    script.write_text("- text: from the second url\n")
    with refused_port() as port:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "futon", "agent", "run", "claude-1", "--driver", "script",
            "--script", str(script), "--url", f"ws://127.0.0.1:{port}/agency/ws",
            "--url", ws_url(daemon), "--max-steps", "3",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=futon_env(),
        )  # fmt: skip
        try:
            record = daemon.registry.get("claude-1")
            await until(lambda: record.connected, timeout=20, what="the agent process connecting")
            assert await ask_by_chat(http, daemon, "hello?") == "from the second url"
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, err.decode()
