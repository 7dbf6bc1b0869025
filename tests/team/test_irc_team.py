"""Issue 20, the IRC acceptance: two futon daemons in bot mode, each on one
of two LINKED ngircd servers (docs/irc.md's configuration, as in
test_irc_link.py), sharing one PostgreSQL database. Agent A (claude-1) on
daemon 1, agent B (codex-1) on daemon 2, a human (a raw IRC socket) on
ngircd 2. The human addresses A in the channel and A's answer reaches the
human; A's chat reaches B (once: daemon 2 does not take daemon 1's bot for
a human); every line is recorded once for the team — a repeated line once
per time it was said —, and a command both bots hear (``futon: help``,
``futon: approve ID`` for an approval on daemon 1) is answered once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from futon.daemon.app import Daemon
from tests.team.conftest import team_daemon
from tests.team.test_irc_link import documented_network
from tests.team.test_team_approvals import asking
from tests.transports.irc_bot.kit import RawClient
from tests.transports.kit import AgentClient, base_url, connected

JOIN_TIMEOUT_S = 90  # the link comes up some seconds after ngircd starts; the bots retry


def bot(port: int, nick: str) -> list[dict[str, Any]]:
    """irc.networks of one daemon: the team network, through one server."""
    return [{"name": "team", "host": "127.0.0.1", "port": port, "nick": nick, "channels": ["#futon"]}]


@asynccontextmanager
async def team_on_irc(tmp_path: Path, pg_dsn: str) -> AsyncIterator[tuple[Daemon, Daemon, RawClient]]:
    """The linked network, daemon 1's bot on irc1, daemon 2's on irc2, and
    alice on irc2 seeing both bots in #futon (so the link is up)."""
    async with AsyncExitStack() as stack:
        ports = await stack.enter_async_context(documented_network())
        d1 = await stack.enter_async_context(
            team_daemon(tmp_path / "d1", pg_dsn, "d1", irc__networks=bot(ports["irc1"], "futonbot1"))
        )
        d2 = await stack.enter_async_context(
            team_daemon(tmp_path / "d2", pg_dsn, "d2", irc__networks=bot(ports["irc2"], "futonbot2"))
        )
        alice = await RawClient.connect(ports["irc2"])
        stack.push_async_callback(alice.close)
        await alice.register("alice")
        await alice.send("JOIN #futon")
        seen: set[str] = set()
        while seen != {"futonbot1", "futonbot2"}:
            await alice.send("NAMES #futon")
            while (line := await alice.read(timeout=JOIN_TIMEOUT_S)).command != "366":
                if line.command == "353":
                    seen = {n.lstrip("@+") for n in line.params[-1].split()} & {"futonbot1", "futonbot2"}
            if seen != {"futonbot1", "futonbot2"}:
                await alice.expect(lambda line: line.command == "JOIN", timeout=JOIN_TIMEOUT_S)
        for daemon in (d1, d2):  # what the heartbeat does every few seconds: learn the others' bots
            assert daemon.team is not None
            await daemon.team.beat()
        yield d1, d2, alice


async def thread(http: aiohttp.ClientSession, daemon: Daemon) -> list[dict[str, Any]]:
    url = base_url(daemon) + "/api/alpha/evidence"
    async with http.get(url, params={"subject-id": "irc/#futon", "limit": "1000"}) as response:
        assert response.status == 200, await response.text()
        found: list[dict[str, Any]] = (await response.json())["entries"]
        return found


def texts(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((e["evidence/author"], e["evidence/body"].get("text", "")) for e in entries)


async def heard(agent: AgentClient, text: str) -> dict[str, Any]:
    while True:
        push = await agent.push_of("irc_message", timeout=30)
        if push["text"] == text:
            return push


async def test_a_human_on_the_second_server_talks_to_an_agent_on_the_first_daemon(
    tmp_path: Path, pg_dsn: str, http: aiohttp.ClientSession
) -> None:
    async with (
        team_on_irc(tmp_path, pg_dsn) as (d1, d2, alice),
        connected(http, d1, "claude-1") as a,
        connected(http, d2, "codex-1") as b,
    ):
        # The human addresses A; A (daemon 1) hears it with the line's record and answers.
        await alice.send("PRIVMSG #futon :claude-1: is the build green?")
        question = await heard(a, "claude-1: is the build green?")
        assert (question["channel"], question["from"]) == ("#futon", "alice")
        assert question["evidence_id"]  # daemon 1 recorded it: A's answer can cite it
        await a.send({"type": "irc_response", "channel": "#futon", "text": "alice: yes, 42 passed"})
        answer = await alice.expect(lambda line: line.command == "PRIVMSG" and line.nick == "futonbot1", timeout=30)
        assert answer.text == "[claude-1] alice: yes, 42 passed"

        # A's chat reaches B (a chat_message, through the team) and the human (daemon 1's bot).
        await a.send({"type": "chat", "to": "#futon", "text": "codex-1: the build is green"})
        told = await b.push_of("chat_message", timeout=30)
        assert (told["from"], told["to"], told["text"]) == ("claude-1", "#futon", "codex-1: the build is green")
        relayed = await alice.expect(lambda line: line.command == "PRIVMSG" and line.nick == "futonbot1", timeout=30)
        assert relayed.text == "[claude-1] codex-1: the build is green"

        # Lines that name nobody connected, one said twice; then a line to both agents,
        # which each daemon relays after everything before it (its bot's hooks run in order).
        for said in ("lunch at noon", "lunch at noon", "tickle-1: ping", "futon: help"):
            await alice.send(f"PRIVMSG #futon :{said}")
        await alice.send("PRIVMSG #futon :claude-1, codex-1: done")
        await heard(a, "claude-1, codex-1: done")
        done = await heard(b, "claude-1, codex-1: done")
        # B heard daemon 1's bot speaking for A as nobody's line: no irc_message from it.
        assert not [p for p in b.pushes if p["type"] == "irc_message" and p["from"] == "futonbot1"]

        expected = [
            ("alice", "claude-1, codex-1: done"),
            ("alice", "futon: help"),
            ("alice", "claude-1: is the build green?"),
            ("alice", "lunch at noon"),
            ("alice", "lunch at noon"),
            ("alice", "tickle-1: ping"),
            ("claude-1", "alice: yes, 42 passed"),
            ("claude-1", "codex-1: the build is green"),
            ("futon", "commands: agents, status, standup, help, approve, deny, stop — e.g. 'futon: agents'"),
        ]  # the command answered once, by the daemon that recorded it
        for daemon in (d1, d2):
            assert texts(await thread(http, daemon)) == sorted(expected)
        # `futon: approve ID` heard by both bots, for an approval waiting on daemon 1:
        # decided once (by whichever daemon records the line, on daemon 1), answered once.
        assert d1.approvals is not None
        d1.approvals.apply_settings(["alice"], 300)
        async with asking(d1.approvals, "claude-1", "s-irc") as (approval_id, waiting):
            await alice.send(f"PRIVMSG #futon :futon: approve {approval_id}")
            await asyncio.wait_for(waiting, 30)
            await alice.send("PRIVMSG #futon :claude-1, codex-1: after")
            await heard(a, "claude-1, codex-1: after")
            await heard(b, "claude-1, codex-1: after")
        answers = [t for _, t in texts(await thread(http, d1)) if t.startswith(f"approval {approval_id} ")]
        assert answers == [  # daemon 1's announcement in the agent's channel, and the answer to alice
            f"approval {approval_id} approved by alice",
            f"approval {approval_id} approved by alice: enter deploy (ship)",
        ], answers

        by_id = {e["evidence/id"]: e for e in await thread(http, d2)}
        assert question["evidence_id"] in by_id
        # Recorded by daemon 1 (the lowest daemon of an agent it names): A gets its id; B, on
        # daemon 2, gets the line without one (daemon 2 did not record it).
        assert done.get("evidence_id") is None
