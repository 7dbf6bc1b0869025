"""The daemon's messenger over real sockets: a bell reaches the agents in a
room, a whistle waits for one agent's answer or times out, a bulletin lands
in the channel's thread."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from futon.daemon.app import Daemon
from futon.evidence import EvidenceQuery
from futon.protocol.errors import FutonError
from tests.transports.kit import connected


async def test_bell_rings_every_connected_agent_in_the_room_but_the_ringer(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    messenger = daemon.runner.messenger
    async with connected(http, daemon, "codex-1") as codex, connected(http, daemon, "tickle-1") as tickle:
        rung = await messenger.ring("#futon", "standup in 5", author="claude-1")
        assert sorted(rung) == ["codex-1", "tickle-1"]
        for agent in (codex, tickle):
            push = await agent.push_of("chat_message")
            assert (push["from"], push["to"], push["text"], push["transport"]) == ("claude-1", "#futon", "standup in 5", "bell")


async def test_whistle_returns_the_answer_or_times_out(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    messenger = daemon.runner.messenger
    async with connected(http, daemon, "codex-1") as codex:
        asking = asyncio.ensure_future(messenger.ask("codex-1", "which file?", author="claude-1", timeout_s=5))
        pushed = await codex.push_of("message")
        assert pushed["payload"] == {"type": "whistle", "text": "which file?", "timeout_s": 5}
        await codex.send({"type": "reply", "msg_id": pushed["msg_id"], "payload": "src/app.py"})
        assert await asking == "src/app.py"
        with pytest.raises(FutonError) as caught:
            await messenger.ask("codex-1", "still there?", author="claude-1", timeout_s=0.2)
        assert caught.value.code == "invoke-timeout"


async def test_bulletin_lands_in_the_channel_thread(daemon: Daemon) -> None:
    await daemon.runner.messenger.post("#futon", "3 missions ready", author="tickle-1")
    entries = daemon.store.query(EvidenceQuery(subject_type="thread", subject_id="irc/#futon")).entries
    assert entries[0]["evidence/body"]["text"] == "3 missions ready"
    with pytest.raises(FutonError):
        await daemon.runner.messenger.post("joe", "not a channel", author="tickle-1")
