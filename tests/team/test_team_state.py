"""Issue 20: the team's runtime agents and replay windows live in
PostgreSQL (futon/social/team_state.py). Two real daemons share the
session's throwaway cluster: an agent registered on one connects to the
other (its token checked there), an id is registered once in the team, and
an agent whose daemon is killed resumes on the next one from the team's
window with its seqs going on; the table stays bounded; the database down
never costs a push."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from futon.agents import AgentClient, PushedMessage
from futon.daemon.app import Daemon
from futon.protocol import frames as f
from futon.protocol.errors import FutonError
from tests.pg_cluster import PgCluster
from tests.support import until
from tests.team.conftest import team_daemon, team_process, ws_url
from tests.transports.kit import base_url


def agent_url(daemon: Daemon) -> str:
    return ws_url(daemon.ports["http"])


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, url, json=body) as response:
        return response.status, await response.json()


def table(pg_cluster: PgCluster, pg_dsn: str, query: str) -> str:
    return pg_cluster.psql(query, pg_dsn.rsplit("/", 1)[1]).strip()


class RawAgent:
    """An agent's socket spoken by hand, to see every seq exactly."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    async def ready(cls, http: aiohttp.ClientSession, url: str, agent_id: str) -> RawAgent:
        ws = await http.ws_connect(url)
        agent = cls(ws)
        await ws.send_json({"type": "ready", "agent_id": agent_id, "capabilities": ["resume"]})
        ack = await agent.next("ready_ack", "error")
        assert ack["type"] == "ready_ack", ack
        return agent

    async def next(self, *types: str) -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = await self.ws.receive_json(timeout=15)
            if frame["type"] in types:
                return frame

    async def lines(self, count: int) -> list[dict[str, Any]]:
        return [await self.next("chat_message") for _ in range(count)]


async def say(http: aiohttp.ClientSession, port: int, text: str) -> None:
    body = {"from": "joe", "to": "claude-1", "text": text}
    async with http.post(f"http://127.0.0.1:{port}/api/alpha/chat", json=body) as response:
        assert response.status == 202, await response.text()


async def test_an_agent_registered_on_one_daemon_is_the_teams(
    tmp_path: Path, pg_dsn: str, http: aiohttp.ClientSession
) -> None:
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
    ):
        scout = {"agent_id": "scout-7", "type": "mock", "token": "scout-token-7"}
        status, body = await call(http, "POST", base_url(d1) + "/api/alpha/agents", scout)
        assert (status, body["agent_id"]) == (201, "scout-7")
        assert d2.registry.find("scout-7") is None  # daemon 2 has not heard of it yet

        # Daemon 2 finds it in the team at ready and checks the token there.
        with pytest.raises(FutonError) as refused:
            await AgentClient(agent_url(d2), "scout-7", "not-its-token").connect()
        assert refused.value.code == "unauthorized"
        async with AgentClient(agent_url(d2), "scout-7", "scout-token-7") as client:
            adopted = d2.registry.get("scout-7")
            assert adopted.source == "runtime" and adopted.connected
            assert adopted.spec == d1.registry.get("scout-7").spec  # the digest only, both sides
            await client.start()
            assert (await client.act("read", ["README.md"])).ok

        # The same id on daemon 2 (which knows it now) and on a daemon that
        # does not: refused the same way.
        status, body = await call(http, "POST", base_url(d2) + "/api/alpha/agents", scout)
        assert (status, body["code"]) == (409, "duplicate-registration")
        d2.registry.deregister("scout-7")  # as if daemon 2 had never seen it
        status, body = await call(
            http, "POST", base_url(d2) + "/api/alpha/agents", {**scout, "token": "other-token-7"}
        )
        assert (status, body["code"]) == (409, "duplicate-registration")

        # A token daemon 2 does not know is looked up in the team on HTTP too.
        bearer = {"Authorization": "Bearer scout-token-7"}
        said = {"from": "scout-7", "to": "claude-1", "text": "hello from scout"}
        async with http.post(
            base_url(d2) + "/api/alpha/chat", json=said, headers=bearer
        ) as response:
            assert response.status == 202, await response.text()
        wrong = {"Authorization": "Bearer not-its-token"}
        async with http.post(
            base_url(d2) + "/api/alpha/chat", json=said, headers=wrong
        ) as response:
            assert response.status == 401, await response.text()
        assert d2.registry.get("scout-7").source == "runtime"

        # Deregistered on daemon 2: gone everywhere.
        status, body = await call(http, "DELETE", base_url(d2) + "/api/alpha/agents/scout-7")
        assert (status, body["agent_id"]) == (200, "scout-7")
        with pytest.raises(FutonError) as gone:
            await AgentClient(agent_url(d1), "scout-7", "scout-token-7").connect()
        assert gone.value.code == "agent-not-found"
        assert d1.registry.find("scout-7") is None
        status, body = await call(http, "POST", base_url(d1) + "/api/alpha/agents", scout)
        assert status == 201, body  # the id is free again


async def test_an_agent_registered_elsewhere_is_dispatched_to(
    tmp_path: Path, pg_dsn: str, http: aiohttp.ClientSession
) -> None:
    """A dispatch to a runtime agent that daemon 2 has never seen, connected
    to daemon 1: daemon 2 finds it in the team and routes it."""
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
    ):
        body = {"agent_id": "scout-8", "type": "mock"}
        assert (await call(http, "POST", base_url(d1) + "/api/alpha/agents", body))[0] == 201
        async with AgentClient(agent_url(d1), "scout-8") as scout:
            ask = {
                "msg_id": "ask-8",
                "to": "scout-8",
                "payload": {"coordination": True, "ask": "?"},
            }
            asking = asyncio.ensure_future(call(http, "POST", base_url(d2) + "/dispatch", ask))
            pushed = await scout.next_push(timeout=10)
            assert isinstance(pushed, PushedMessage) and pushed.msg_id == "ask-8"
            await scout.reply(pushed.msg_id, "here")
            status, receipt = await asking
            assert (status, receipt["reply"]) == (200, "here"), receipt
        assert d2.registry.get("scout-8").source == "runtime"


async def test_kill_9_the_agents_daemon_and_resume_on_the_next(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster, http: aiohttp.ClientSession
) -> None:
    """Pushes numbered on daemon 1 (a real process) reach the table; daemon 1
    is killed with SIGKILL; the agent connects to daemon 2 with ``resume
    since_seq=K`` and gets exactly the pushes after K, and the next push
    there continues the numbering."""
    with (
        team_process(tmp_path / "p1", pg_dsn, "d1") as (one, port1, _),
        team_process(tmp_path / "p2", pg_dsn, "d2") as (_two, port2, _),
    ):
        agent = await RawAgent.ready(http, ws_url(port1), "claude-1")
        for n in range(10):
            await say(http, port1, f"line {n}")
        lines = await agent.lines(10)
        seqs = [line["seq"] for line in lines]
        assert seqs == list(range(seqs[0], seqs[0] + 10))
        newest = seqs[-1]
        query = "SELECT seq FROM futon_team_seqs WHERE agent_id = 'claude-1'"
        await until(
            lambda: table(pg_cluster, pg_dsn, query) == str(newest), what="the batch committed"
        )

        os.kill(one.pid, signal.SIGKILL)
        assert one.wait(timeout=10) == -signal.SIGKILL
        await agent.ws.close()

        moved = await RawAgent.ready(http, ws_url(port2), "claude-1")
        since = seqs[4]
        await moved.ws.send_json({"type": "resume", "since_seq": since})
        replayed = await moved.lines(5)
        assert [(r["seq"], r["text"]) for r in replayed] == [
            (line["seq"], line["text"]) for line in lines[5:]
        ]
        await say(http, port2, "after the move")
        after = await moved.next("chat_message")
        assert (after["seq"], after["text"]) == (newest + 1, "after the move")  # no seq used twice
        await moved.ws.close()


async def test_the_replay_table_stays_bounded_and_gaps_are_stated(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster, http: aiohttp.ClientSession
) -> None:
    window = {"ws__replay_window": 5}
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1", **window) as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2", **window) as d2,
    ):
        agent = await RawAgent.ready(http, agent_url(d1), "claude-1")
        for n in range(12):
            await say(http, d1.ports["http"], f"line {n}")
        seqs = [line["seq"] for line in await agent.lines(12)]
        newest = seqs[-1]
        rows = (
            "SELECT count(*), min(seq), max(seq) FROM futon_team_replay WHERE agent_id = 'claude-1'"
        )
        expected = f"5|{newest - 4}|{newest}"
        await until(
            lambda: table(pg_cluster, pg_dsn, rows) == expected, what="the window trimmed to 5 rows"
        )

        moved = await RawAgent.ready(http, agent_url(d2), "claude-1")  # supersedes the first
        await moved.ws.send_json({"type": "resume", "since_seq": newest - 8, "req_id": "r1"})
        gap = await moved.next("error")
        assert (gap["code"], gap["context"]) == ("replay-gap", {"oldest_seq": newest - 4})
        await moved.ws.send_json({"type": "resume", "since_seq": newest - 2})
        assert [r["seq"] for r in await moved.lines(2)] == [newest - 1, newest]
        assert d2.registry.get("claude-1").seq == newest
        await moved.ws.close()
        await agent.ws.close()


async def test_the_database_down_never_costs_a_push(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster
) -> None:
    """Pushes go out and into the local window while PostgreSQL is down;
    the writer logs and retries at the heartbeat once it is back."""
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        AgentClient(agent_url(d1), "claude-1") as client,
    ):
        assert d1.team is not None and d1.pipeline is not None
        state = d1.team.state
        record = d1.registry.get("claude-1")
        pg_cluster.stop()
        try:
            for n in range(3):
                said = {
                    "to": "claude-1",
                    "from": "joe",
                    "text": f"down {n}",
                    "transport": "http",
                    "seq": 0,
                }
                line = f.ChatMessage.model_validate(said)
                assert await d1.pipeline.push(record, line)
                pushed = await client.next_push(timeout=10)
                assert getattr(pushed, "text", None) == f"down {n}"
            assert [frame["text"] for frame in list(record.replay)[-3:]] == [
                "down 0",
                "down 1",
                "down 2",
            ]
            await d1.team.beat()  # a heartbeat while it is down: logged, no exception
        finally:
            pg_cluster.start()
        await d1.team.beat()  # the writer tries again
        query = "SELECT max(seq) FROM futon_team_replay WHERE agent_id = 'claude-1'"
        await until(
            lambda: table(pg_cluster, pg_dsn, query) == str(record.seq),
            what="the kept rows written",
        )
        # Any text a push may carry is written (jsonb would refuse U+0000).
        said = {
            "to": "claude-1",
            "from": "joe",
            "text": "nul \x00 here",
            "transport": "http",
            "seq": 0,
        }
        assert await d1.pipeline.push(record, f.ChatMessage.model_validate(said))
        await until(
            lambda: table(pg_cluster, pg_dsn, query) == str(record.seq),
            what="the NUL push written",
        )
        assert state.dropped == 0


async def test_a_push_kept_for_an_offline_agent_goes_after_the_teams_seq(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster, http: aiohttp.ClientSession
) -> None:
    """Daemon 1 numbered the agent's pushes; the agent left; a push for it
    kept on daemon 2 meanwhile (numbered by daemon 2's own count) is given
    the next seq after the team's when the agent connects to daemon 2."""
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
    ):
        first = await RawAgent.ready(http, agent_url(d1), "claude-1")
        for n in range(3):
            await say(http, d1.ports["http"], f"line {n}")
        newest = (await first.lines(3))[-1]["seq"]
        query = "SELECT seq, daemon_id FROM futon_team_seqs WHERE agent_id = 'claude-1'"
        await until(lambda: table(pg_cluster, pg_dsn, query) == f"{newest}|d1", what="d1's batch")
        await first.ws.close()
        present = "SELECT count(*) FROM futon_team_presence WHERE agent_id = 'claude-1'"
        await until(lambda: table(pg_cluster, pg_dsn, present) == "0", what="the agent gone")

        assert d2.pipeline is not None
        record = d2.registry.get("claude-1")
        said = {
            "to": "claude-1",
            "from": "joe",
            "text": "kept on d2",
            "transport": "http",
            "seq": 0,
        }
        assert not await d2.pipeline.push(record, f.ChatMessage.model_validate(said))  # kept
        assert record.replay[-1]["seq"] <= newest  # daemon 2's own count, behind the team's

        moved = await RawAgent.ready(http, agent_url(d2), "claude-1")
        await moved.ws.send_json({"type": "resume", "since_seq": newest})
        kept = await moved.next("chat_message")
        assert (kept["seq"], kept["text"]) == (newest + 1, "kept on d2")
        await until(
            lambda: table(pg_cluster, pg_dsn, query) == f"{newest + 1}|d2", what="d2's batch"
        )
        await moved.ws.close()


async def test_an_unknown_id_or_token_repeated_costs_one_lookup_per_second(
    tmp_path: Path, pg_dsn: str, http: aiohttp.ClientSession
) -> None:
    """A client repeating a made-up token or agent id (a retry loop, a
    flood from one address) is answered from the daemon's memory of the
    miss, not by a query each time; once the miss is a second old the team
    is asked again, so an agent registered meanwhile on another daemon is
    found."""
    from futon.social import team_state

    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
    ):
        assert d2.team is not None
        state = d2.team.state
        said = {"from": "scout-9", "to": "claude-1", "text": "hello"}
        before = state.lookups
        for _ in range(20):
            async with http.post(
                base_url(d2) + "/api/alpha/chat", json=said,
                headers={"Authorization": "Bearer made-up-token"},
            ) as response:  # fmt: skip
                assert response.status == 401
            with pytest.raises(FutonError) as refused:
                await AgentClient(agent_url(d2), "scout-9", "scout-token-9").connect()
            assert refused.value.code == "agent-not-found"
        assert state.lookups - before == 2  # one for the token, one for the id

        # Registered on daemon 1 meanwhile: daemon 2 finds it once its miss is old.
        body = {"agent_id": "scout-9", "type": "mock", "token": "scout-token-9"}
        assert (await call(http, "POST", base_url(d1) + "/api/alpha/agents", body))[0] == 201
        await asyncio.sleep(team_state.MISS_TTL_S)
        async with AgentClient(agent_url(d2), "scout-9", "scout-token-9"):
            assert d2.registry.get("scout-9").source == "runtime"
        for n in range(team_state.MISSES_MAX + 100):  # a flood of distinct ones: memory stays bounded
            state._miss(f"token:{n}")
        assert len(state._misses) == team_state.MISSES_MAX
