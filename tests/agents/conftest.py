"""Kit for the agent tests: an agent runtime against the in-process daemon
(real sockets), an asker that talks to it as another agent, fake model
servers, and a wait for evidence entries."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from futon.agents.client import AgentClient
from futon.agents.drivers.base import Driver, RetryPolicy
from futon.agents.runtime import AgentRuntime, DaemonHttp, TurnSettings
from futon.daemon.app import Daemon
from futon.evidence.query import EvidenceQuery
from tests.agents.fakes import FakeAnthropic, FakeModelServer, FakeOpenAI, Step
from tests.support import until
from tests.transports.kit import base_url, connected

FAST_RETRY = RetryPolicy(attempts=3, backoff_initial_s=0.05, backoff_max_s=0.1)


def ws_url(daemon: Daemon) -> str:
    return f"ws://127.0.0.1:{daemon.ports['http']}/agency/ws"


@asynccontextmanager
async def running_agent(
    daemon: Daemon, driver: Driver, agent_id: str = "claude-1", **settings: Any
) -> AsyncIterator[AgentRuntime]:
    """``futon agent run`` in this process: a runtime answering pushes."""
    client = AgentClient(ws_url(daemon), agent_id, backoff_initial_s=0.1, backoff_max_s=1)
    http = DaemonHttp(base_url(daemon))
    runtime = AgentRuntime(client, driver, TurnSettings(**settings), http=http)
    await client.connect()
    task = asyncio.ensure_future(runtime.run())
    try:
        yield runtime
        await until(lambda: not runtime.busy)  # the turn's evidence is written last
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()
        await http.aclose()
        await driver.aclose()


async def ask_by_chat(
    http: aiohttp.ClientSession,
    daemon: Daemon,
    text: str,
    *,
    to: str = "claude-1",
    timeout: float = 15,
) -> str:
    """Say ``text`` to the agent as codex-1 (a plain WS socket) and return
    the chat it answers with."""
    async with connected(http, daemon, "codex-1") as asker:
        await asker.send({"type": "chat", "to": to, "text": text})
        push = await asker.push_of("chat_message", timeout)
        assert push["from"] == to, push
        return push["text"]


async def entries(daemon: Daemon, timeout: float = 5, **params: Any) -> list[dict[str, Any]]:
    """The evidence entries matching ``params`` (HTTP query keys, ``_`` for
    ``-``), waiting up to ``timeout`` for at least one."""
    query = EvidenceQuery.from_params({k.replace("_", "-"): v for k, v in params.items()})
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        assert daemon.store is not None
        found = daemon.store.query(query).entries
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


@pytest.fixture
async def fake_openai() -> AsyncIterator[Callable[..., Awaitable[FakeOpenAI]]]:
    servers: list[FakeModelServer] = []

    async def make(script: list[Step], **kwargs: Any) -> FakeOpenAI:
        server = await FakeOpenAI(script, **kwargs).start()
        servers.append(server)
        return server  # type: ignore[return-value]

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def fake_anthropic() -> AsyncIterator[Callable[..., Awaitable[FakeAnthropic]]]:
    servers: list[FakeModelServer] = []

    async def make(script: list[Step], **kwargs: Any) -> FakeAnthropic:
        server = await FakeAnthropic(script, **kwargs).start()
        servers.append(server)
        return server  # type: ignore[return-value]

    yield make
    for server in servers:
        await server.close()
