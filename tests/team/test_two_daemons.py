"""Issue 20, acceptance: two futon daemons sharing one PostgreSQL database
are one team. Agent A (claude-1) on daemon 1, agent B (codex-1) on daemon 2:
a dispatch sent to daemon 2 reaches A and its reply comes back; A's chat
reaches B; an evidence query on either daemon returns both daemons'
entries; the chain verifies. Then daemon 1 (a real process) is killed with
SIGKILL during A's stream of appends: A (a client given both URLs) moves to
daemon 2 and resumes; no acknowledged entry is missing, the chain verifies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from futon.agents import AgentClient, ChatMessage, Disconnected, PushedMessage
from futon.daemon.app import Daemon
from futon.evidence.pg_verify import verify_postgres
from futon.evidence.postgres import PostgresStore
from futon.protocol.errors import FutonError
from futon.social import team as team_mod
from futon.social.pipeline import Inbound
from tests.pg_cluster import PgCluster
from tests.support import futon_env, until
from tests.team.conftest import team_daemon, team_process, ws_url
from tests.transports.kit import base_url


def agent_url(daemon: Daemon) -> str:
    return ws_url(daemon.ports["http"])


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(url, json=body) as response:
        return response.status, await response.json()


async def entries(http: aiohttp.ClientSession, daemon: Daemon, **filters: str) -> list[dict[str, Any]]:
    async with http.get(base_url(daemon) + "/api/alpha/evidence", params=filters) as response:
        assert response.status == 200, await response.text()
        found: list[dict[str, Any]] = (await response.json())["entries"]
        return found


async def test_two_daemons_are_one_team(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster, http: aiohttp.ClientSession
) -> None:
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
        AgentClient(agent_url(d1), "claude-1") as a,
        AgentClient(agent_url(d2), "codex-1") as b,
    ):
        assert d1.team is not None and d2.team is not None
        live = {(row["agent_id"], row["daemon_id"]) for row in await d2.team.live()}
        assert live == {("claude-1", "d1"), ("codex-1", "d2")}

        # POST /dispatch to daemon 2 for A (on daemon 1): A gets it, its reply comes back.
        asking = asyncio.ensure_future(post(http, base_url(d2) + "/dispatch", {
            "msg_id": "team-1", "from": {"value": "joe", "type": "human"}, "to": "claude-1",
            "payload": {"coordination": True, "ask": "status?"},
        }))  # fmt: skip
        pushed = await a.next_push(timeout=10)
        assert isinstance(pushed, PushedMessage) and pushed.msg_id == "team-1"
        await a.reply("team-1", "green")
        status, receipt = await asking
        assert status == 200, receipt
        assert (receipt["route"], receipt["reply"], receipt["to"]["value"]) == (
            "registry/invoke", "green", "claude-1",
        )  # fmt: skip

        # A WS message from B (daemon 2) to A (daemon 1), answered by A.
        messaging = asyncio.ensure_future(b.message("claude-1", {"coordination": True, "text": "ok?"}))
        pushed = await a.next_push(timeout=10)
        assert isinstance(pushed, PushedMessage)
        await a.reply(pushed.msg_id, "yes")
        assert (await messaging).reply == "yes"

        # A's chat reaches B, to B directly and in the channel they share.
        await a.chat("codex-1", "hello B")
        line = await b.next_push(timeout=10)
        assert isinstance(line, ChatMessage) and (line.from_, line.text) == ("claude-1", "hello B")
        await a.chat("#futon", "codex-1: hello team")  # a channel line reaches those it names
        line = await b.next_push(timeout=10)
        assert isinstance(line, ChatMessage) and (line.to, line.text) == ("#futon", "codex-1: hello team")

        # Each works on its own daemon; either daemon's evidence has both.
        session_a = (await a.start()).session_id
        assert (await a.act("read", ["README.md"])).ok
        session_b = (await b.start()).session_id
        assert (await b.act("read", ["src/app.py"])).ok
        for daemon in (d1, d2):
            assert await entries(http, daemon, **{"session-id": session_a})
            assert await entries(http, daemon, **{"session-id": session_b})
            dispatched = await entries(http, daemon, author="joe", type="coordination")
            assert [e["evidence/body"]["msg_id"] for e in dispatched] == ["team-1"]  # recorded once
        writers = pg_cluster.psql("SELECT DISTINCT daemon FROM futon_evidence ORDER BY 1", pg_dsn.rsplit("/", 1)[1])
        assert writers.split() == ["d1", "d2"]
        assert isinstance(d1.store, PostgresStore)
        report = verify_postgres(d1.store)
        assert report.ok, report.problems


async def test_a_second_connection_on_another_daemon_supersedes_the_first(
    tmp_path: Path, pg_dsn: str
) -> None:
    """As on one daemon: the newest connection wins, the older one is
    closed with 4000 and its client stops instead of fighting back."""
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
    ):
        first = AgentClient(agent_url(d1), "claude-1", backoff_initial_s=0.1)
        await first.connect()
        async with AgentClient(agent_url(d2), "claude-1") as second:
            await until(lambda: first.closed, what="the first connection superseded")
            with pytest.raises(Disconnected) as ended:
                await first.wait_connected(timeout=1)
            assert "superseded" in ended.value.message
            old = d1.registry.get("claude-1")
            await until(lambda: not old.connected, what="daemon 1 letting the old socket go")
            assert d2.registry.get("claude-1").connected
            assert d1.team is not None
            assert await d1.team.owner("claude-1") == "d2"
            await second.start()
            assert (await second.act("read", ["README.md"])).ok


async def test_a_dead_daemons_agents_are_offline_and_unanswered_calls_are_typed(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch,
    http: aiohttp.ClientSession,
) -> None:  # fmt: skip
    """A presence row whose heartbeat is older than the window is a dead
    daemon's: the agent is offline (the local answer, agent-unreachable).
    A live-looking row of a daemon that never answers: the call ends with
    agent-unreachable after the reply timeout and the margin, and from then
    on that daemon's agents count as offline here."""
    monkeypatch.setattr(team_mod, "CALL_MARGIN_S", 0.2)
    database = pg_dsn.rsplit("/", 1)[1]
    async with team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2:
        assert d2.team is not None
        pg_cluster.psql(
            "INSERT INTO futon_team_presence VALUES ('claude-1', 'gone', now() - interval '1 hour', "
            "now() - interval '1 hour')", database,
        )  # fmt: skip
        assert await d2.team.owner("claude-1") is None
        assert await d2.team.live() == []
        ask = {"msg_id": "dead-1", "to": "claude-1", "payload": {"coordination": True}}
        status, body = await post(http, base_url(d2) + "/dispatch", ask)
        assert (status, body["code"]) == (502, "agent-unreachable")

        pg_cluster.psql("UPDATE futon_team_presence SET heartbeat_at = now(), daemon_id = 'mute'", database)
        assert await d2.team.owner("claude-1") == "mute"
        with pytest.raises(FutonError) as unanswered:
            await d2.team.dispatch(
                "mute",
                Inbound(msg_id="m-1", sender="joe", to="claude-1", payload={"coordination": True},
                                 transport="http"),
                timeout_s=0.3,
            )  # fmt: skip
        assert unanswered.value.code == "agent-unreachable"
        assert unanswered.value.context == {"daemon_id": "mute"}
        # Silent once: its agents count as offline here at once, nobody waits again.
        assert await d2.team.owner("claude-1") is None
        # A push for it is kept here for resume instead (nothing is lost).
        record = d2.registry.get("claude-1")
        before = record.seq
        assert d2.chat is not None
        await d2.chat.say("joe", "claude-1", "are you there?", transport="http")
        assert record.seq == before + 1 and record.replay[-1]["text"] == "are you there?"


async def test_kill_9_daemon_1_during_a_stream_of_appends(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster
) -> None:
    """A appends through daemon 1 (a real process) while daemon 1 is killed
    with SIGKILL; A, given both URLs, moves to daemon 2, resumes and goes
    on. Every entry A was told was recorded is in the store; the chain
    verifies; the team shows A on daemon 2."""
    with (
        team_process(tmp_path / "p1", pg_dsn, "d1") as (one, port1, _),
        team_process(tmp_path / "p2", pg_dsn, "d2") as (_two, port2, config2),
    ):
        client = AgentClient(
            [ws_url(port1), ws_url(port2)], "claude-1", backoff_initial_s=0.1, backoff_max_s=1
        )
        acknowledged: list[str] = []
        moved = asyncio.Event()
        client.on_reconnect(lambda _ack: moved.set())
        try:
            await client.connect()
            await client.start()
            killed = False
            for n in range(400):
                if n == 40 and not killed:
                    os.kill(one.pid, signal.SIGKILL)  # in the middle of the stream
                    killed = True
                try:
                    recorded = await client.record_item("command", {"command": f"step {n}"}, timeout=10)
                except Disconnected:
                    await client.wait_connected(timeout=30)
                    await asyncio.wait_for(moved.wait(), 30)
                    await client.start()  # the session ended with daemon 1
                    continue
                acknowledged.append(recorded.evidence_id)
                if killed and moved.is_set() and len(acknowledged) >= 80:
                    break
            assert one.wait(timeout=10) == -signal.SIGKILL
            assert moved.is_set() and client.url == ws_url(port2)
            assert len(acknowledged) >= 80
            database = pg_dsn.rsplit("/", 1)[1]
            where = "SELECT daemon_id FROM futon_team_presence WHERE agent_id = 'claude-1'"
            assert pg_cluster.psql(where, database).strip() == "d2"
            # Reachable through daemon 2 now: a line said there arrives, once.
            async with aiohttp.ClientSession() as http:
                said = {"from": "joe", "to": "claude-1", "text": "still there?"}
                async with http.post(f"http://127.0.0.1:{port2}/api/alpha/chat", json=said) as response:
                    assert response.status == 202, await response.text()
            line = await client.next_push(timeout=10)
            assert isinstance(line, ChatMessage) and line.text == "still there?"
        finally:
            await client.close()
        ids = ",".join(f"'{entry_id}'" for entry_id in acknowledged)  # ids the daemon made
        found = pg_cluster.psql(f"SELECT count(*) FROM futon_evidence WHERE id IN ({ids})", database)
        assert int(found) == len(set(acknowledged))
        done = subprocess.run(
            [sys.executable, "-m", "futon", "evidence", "verify", "--config", str(config2), "--no-progress"],
            capture_output=True, text=True, env=futon_env(), timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr


async def test_the_database_down_then_back(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster, http: aiohttp.ClientSession
) -> None:
    """While PostgreSQL is down, a message for an agent on another daemon
    is agent-unreachable (nothing hangs past the bus's bounds) and agents
    stay connected; once it is back, the next heartbeat re-listens and
    routing works again."""
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
        AgentClient(agent_url(d1), "claude-1") as a,
    ):
        assert d1.team is not None and d2.team is not None
        pg_cluster.stop()
        try:
            ask = {"msg_id": "down-1", "to": "claude-1", "payload": {"coordination": True}}
            status, body = await post(http, base_url(d2) + "/dispatch", ask)
            assert (status, body["code"]) == (502, "agent-unreachable")
            await d1.team.beat()  # a heartbeat while it is down: logged, no exception
            assert a.connected and d1.registry.get("claude-1").connected
        finally:
            pg_cluster.start()
        await d1.team.beat()  # what the heartbeat does every few seconds
        await d2.team.beat()
        asking = asyncio.ensure_future(post(http, base_url(d2) + "/dispatch", {
            "msg_id": "up-1", "to": "claude-1", "payload": {"coordination": True, "ask": "back?"},
        }))  # fmt: skip
        pushed = await a.next_push(timeout=10)
        assert isinstance(pushed, PushedMessage) and pushed.msg_id == "up-1"
        await a.reply("up-1", "yes")
        status, receipt = await asking
        assert (status, receipt["reply"]) == (200, "yes")
