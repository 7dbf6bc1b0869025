"""The client library against a real daemon: typed requests, pushes that
arrive exactly once across reconnects, and a daemon restarting mid-turn."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSCloseCode

from futon.agents import (
    AgentClient,
    ChatMessage,
    Disconnected,
    EvidencePush,
    PeripheralStarted,
    ToolResult,
)
from futon.daemon.app import Daemon
from futon.protocol.errors import NotFound, PermissionDenied
from tests.agents.conftest import ws_url
from tests.support import until
from tests.transports.kit import base_url, connected, running_daemon


async def say_to_agent(
    http: aiohttp.ClientSession, daemon: Daemon, text: str, to: str = "claude-1"
) -> None:
    async with http.post(
        base_url(daemon) + "/api/alpha/chat", json={"to": to, "text": text, "from": "bob"}
    ) as response:
        assert response.status == 202, await response.text()


async def no_more_pushes(client: AgentClient, within: float = 0.4) -> None:
    with pytest.raises(TimeoutError):
        extra = await client.next_push(timeout=within)
        raise AssertionError(f"unexpected push {extra!r}")


async def test_requests_are_typed_and_refusals_raise_the_wire_code(daemon: Daemon) -> None:
    async with AgentClient(ws_url(daemon), "claude-1") as client:
        assert client.ready is not None and client.ready.default_peripheral == "explore"
        started = await client.start()
        assert isinstance(started, PeripheralStarted) and "read" in started.tools
        result = await client.act("read", ["README.md"])
        assert isinstance(result, ToolResult) and result.ok
        missing = await client.act("read", ["nope.md"])
        assert missing.ok is False  # a failed tool is data, not an exception
        with pytest.raises(PermissionDenied) as refused:
            await client.act("write", ["x.txt", "hi"])
        assert refused.value.code == "tool-not-allowed"
        found = await client.query_evidence({"session-id": started.session_id}, limit=5)
        assert found.count >= 1
        stopped = await client.stop("done")
        assert stopped.peripheral_id == "explore"


async def test_an_unknown_agent_is_refused_at_once(daemon: Daemon) -> None:
    client = AgentClient(ws_url(daemon), "nobody")
    with pytest.raises(NotFound) as refused:
        await client.connect()
    assert refused.value.code == "agent-not-found"
    await client.close()


async def test_a_dropped_socket_reconnects_and_resumes_without_duplicates(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    """Server alive (close 1011): resume from the last seq seen."""
    async with AgentClient(ws_url(daemon), "claude-1", backoff_initial_s=0.5) as client:
        await say_to_agent(http, daemon, "one")
        first = await client.next_push(timeout=5)
        assert isinstance(first, ChatMessage) and first.text == "one"
        assert daemon.ws is not None
        await daemon.ws.close_all(code=WSCloseCode.INTERNAL_ERROR, reason="test drop")
        await say_to_agent(http, daemon, "two")  # while the client is away (it backs off ≥ 0.25 s)
        second = await client.next_push(timeout=10)
        assert (
            isinstance(second, ChatMessage) and second.text == "two" and second.seq == first.seq + 1
        )
        assert client.generation == 2
        await no_more_pushes(client)


async def test_the_daemon_restarting_mid_turn_fails_the_request_then_resumes(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A new daemon on the same port and data_dir: the in-flight request
    raises Disconnected, the client reconnects and resumes, and the push
    sent while it was away arrives exactly once (this daemon numbers its
    pushes afresh, which the client must notice)."""
    async with running_daemon(tmp_path) as first, connected(http, first, "codex-1") as codex:
        port = first.ports["http"]
        client = AgentClient(ws_url(first), "claude-1", backoff_initial_s=1.0, backoff_max_s=2)
        await client.connect()
        await say_to_agent(http, first, "before")
        assert (await client.next_push(timeout=5)).text == "before"  # type: ignore[union-attr]
        await client.start()
        acting = asyncio.ensure_future(client.act("bash-readonly", ["sleep 2"]))
        # codex-1 never answers, so this waits for its reply when the daemon goes
        asking = asyncio.ensure_future(
            client.message("codex-1", {"coordination": True, "text": "hold on"})
        )
        # both in flight when the daemon goes: codex-1 holds the message, the step runs
        await codex.push_of("message")
        await until(
            lambda: first.runner is not None
            and any(s._running is not None for s in first.runner.sessions("claude-1")),
            what="the bash step running",
        )
    # the first daemon is gone: it ended the running step, then closed our socket (1001)
    stopped = await acting
    assert (stopped.ok, stopped.result["code"]) == (False, "session-stopped")
    with pytest.raises(Disconnected) as dropped:
        await asking
    assert isinstance(dropped.value, ConnectionError) and dropped.value.code == "agent-unreachable"
    with pytest.raises(Disconnected):
        await client.act("read", ["README.md"])  # while away: fails fast
    try:
        async with running_daemon(tmp_path, http__port=port) as second:
            await say_to_agent(http, second, "while away")
            assert not client.connected
            await client.wait_connected(timeout=10)
            assert client.generation == 2
            pushed = await client.next_push(timeout=5)
            assert isinstance(pushed, ChatMessage) and pushed.text == "while away"
            await say_to_agent(http, second, "after")
            assert (await client.next_push(timeout=5)).text == "after"  # type: ignore[union-attr]
            await no_more_pushes(client)
            started = await client.start()  # the old session ended with the old socket
            assert started.peripheral_id == "explore"
    finally:
        await client.close()


async def test_a_superseded_client_stops_instead_of_fighting(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    client = AgentClient(ws_url(daemon), "claude-1", backoff_initial_s=0.1)
    await client.connect()
    async with connected(http, daemon, "claude-1"):
        with pytest.raises(Disconnected) as ended:
            await client.next_push(timeout=5)
        assert "superseded" in ended.value.message
        assert client.closed
        pushes = [push async for push in client]  # the iterator ends
        assert pushes == []


async def test_an_evidence_subscription_is_renewed_after_a_reconnect(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    async def post(text: str) -> None:
        entry = {"type": "forum-post", "claim-type": "observation", "author": "bob",
                 "subject": {"ref/type": "thread", "ref/id": "t-1"}, "body": {"text": text}}  # fmt: skip
        async with http.post(base_url(daemon) + "/api/alpha/evidence", json=entry) as response:
            assert response.status == 201

    async with AgentClient(ws_url(daemon), "claude-1", backoff_initial_s=0.5) as client:
        await client.subscribe({"subject-id": "t-1"})
        await post("first")
        pushed = await client.next_push(timeout=5)
        assert isinstance(pushed, EvidencePush) and pushed.entry["evidence/body"]["text"] == "first"
        assert daemon.ws is not None
        await daemon.ws.close_all(code=WSCloseCode.INTERNAL_ERROR, reason="test drop")
        await post("while away")  # no subscription holds it: the renewal's backlog must
        again = await client.next_push(timeout=10)
        assert (
            isinstance(again, EvidencePush) and again.entry["evidence/body"]["text"] == "while away"
        )
        await no_more_pushes(client)
