"""Issue 20: approvals and the agent list of a team. An approval waits on
daemon 1 (where the agent's session asked); decisions sent to daemon 2 —
over HTTP, from a WS operator client, from a human on daemon 2's IRC
server — reach daemon 1, which makes every check (approver, self-approval,
expired, decided twice) and answers. Daemon 2's approver list is empty, so
a decision that passes was checked on daemon 1. Both daemons list the
team's pending approvals and agents, each with its ``daemon``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from futon.agents import AgentClient
from futon.daemon.app import Daemon
from futon.peripherals.approval import ApprovalRequest
from futon.protocol.errors import FutonError, PermissionDenied
from futon.social import approvals as approvals_mod
from futon.social.approvals import Approvals
from tests.pg_cluster import PgCluster
from tests.support import futon_env, until
from tests.team.conftest import team_daemon, ws_url
from tests.transports.irc.kit import RawClient
from tests.transports.kit import agent_socket, base_url
from tests.transports.test_humans_in_the_loop import said_by_futon


@asynccontextmanager
async def asking(approvals: Approvals, agent_id: str, session_id: str) -> AsyncIterator[tuple[str, asyncio.Task[None]]]:
    """An approval ``agent_id`` waits for on ``approvals``' daemon: (its id,
    the waiting call). The call is cancelled (withdrawn) at the end."""
    made: asyncio.Queue[str] = asyncio.Queue(maxsize=1)

    def told(pending: Any) -> None:
        made.put_nowait(pending.id)

    approvals.on_request.append(told)
    request = ApprovalRequest(agent_id, session_id, "enter", "deploy", reason="ship")
    waiting = asyncio.ensure_future(approvals.approve(request))
    try:
        approval_id = await asyncio.wait_for(made.get(), 10)
        yield approval_id, waiting
    finally:
        approvals.on_request.remove(told)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)


async def get(http: aiohttp.ClientSession, daemon: Daemon, path: str) -> Any:
    async with http.get(base_url(daemon) + path) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def decide(http: aiohttp.ClientSession, daemon: Daemon, approval_id: str, decision: str) -> tuple[int, Any]:
    url = f"{base_url(daemon)}/api/alpha/approvals/{approval_id}"
    async with http.post(url, json={"decision": decision, "reason": "from daemon 2"}) as response:
        return response.status, await response.json()


async def test_decisions_sent_to_another_daemon_are_made_where_the_approval_waits(
    tmp_path: Path, pg_dsn: str, http: aiohttp.ClientSession
) -> None:
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2", irc__server__enabled=True, irc__server__port=0) as d2,
    ):
        assert d1.approvals is not None and d2.approvals is not None
        d1.approvals.apply_settings(["joe"], 300)  # daemon 2 has no approver at all
        joe, mallory = RawClient.connect(d2.ports["irc"]), RawClient.connect(d2.ports["irc"])
        humans = {"joe": await joe, "mallory": await mallory}
        for nick, client in humans.items():
            client.auto_pong = True
            await client.register(nick)
            await client.join("#futon")
        try:
            # 1. Listed by both daemons, with its daemon; decided by joe on daemon 2's IRC server.
            async with asking(d1.approvals, "claude-1", "s-irc") as (approval_id, waiting):
                for daemon in (d1, d2):
                    listed = (await get(http, daemon, "/api/alpha/approvals"))["approvals"]
                    assert [(a["approval_id"], a["daemon"], a["agent_id"]) for a in listed] == [
                        (approval_id, "d1", "claude-1")
                    ]
                    assert listed[0]["what"] == "enter deploy (ship)" and listed[0]["expires_in_s"] > 0
                    assert listed[0]["evidence_id"]  # the request's record, as on daemon 1
                await humans["mallory"].send(f"PRIVMSG #futon :futon: approve {approval_id}")
                refused = await said_by_futon(humans["mallory"], "not-an-approver")
                assert refused.startswith("mallory:")
                await humans["joe"].send(f"PRIVMSG #futon :futon: approve {approval_id}")
                said = await said_by_futon(humans["joe"], f"approval {approval_id} approved by joe")
                assert said.endswith("enter deploy (ship)")
                await asyncio.wait_for(waiting, 10)  # the session on daemon 1 goes on
                # Twice: refused by daemon 1, which decided it.
                status, body = await decide(http, d2, approval_id, "deny")
                assert (status, body["code"]) == (409, "approval-already-decided")
                assert (await get(http, d2, "/api/alpha/approvals"))["approvals"] == []

            # 2. The admin token on daemon 2 decides an approval of daemon 1.
            async with asking(d1.approvals, "claude-1", "s-http") as (approval_id, waiting):
                status, body = await decide(http, d2, approval_id, "deny")
                assert status == 200, body
                assert (body["outcome"], body["by"], body["daemon"]) == ("denied", "admin", "d1")
                with pytest.raises(PermissionDenied) as denied:
                    await asyncio.wait_for(waiting, 10)
                assert denied.value.code == "approval-denied"
            decisions = [
                e for e in (await get(http, d2, "/api/alpha/evidence?tag=approval"))["entries"]
                if e["evidence/body"].get("approval_id") == approval_id
            ]
            assert sorted(e["evidence/author"] for e in decisions) == ["admin", "claude-1"]

            # 3. A WS operator client on daemon 2 that is the asking agent: approval-self (daemon 1's rule).
            async with (
                asking(d1.approvals, "codex-1", "s-ws") as (approval_id, waiting),
                agent_socket(http, d2) as operator,
            ):
                ack = await operator.ask({"type": "ready", "agent_id": "codex-1", "admin_token": "x"})
                assert ack["type"] == "ready_ack", ack
                frame = {"type": "approval_decision", "approval_id": approval_id, "decision": "approve"}
                await operator.send({**frame, "req_id": "w1"})
                refused_ws = await operator.reply_to("w1")
                assert (refused_ws["type"], refused_ws["code"]) == ("error", "approval-self")
                assert not waiting.done() and [p.id for p in d1.approvals.pending()] == [approval_id]

            # 4. Expired on daemon 1: a decision sent to daemon 2 is told so.
            d1.approvals.timeout_s = 0.2
            async with asking(d1.approvals, "claude-1", "s-late") as (approval_id, waiting):
                with pytest.raises(PermissionDenied):
                    await asyncio.wait_for(waiting, 10)
                status, body = await decide(http, d2, approval_id, "approve")
                assert (status, body["code"]) == (409, "approval-expired")
            status, body = await decide(http, d2, "zzzz", "approve")
            assert (status, body["code"]) == (404, "approval-not-found")
        finally:
            for client in humans.values():
                await client.close()


async def test_the_agent_list_shows_every_agent_of_the_team_and_its_daemon(
    tmp_path: Path, pg_dsn: str, http: aiohttp.ClientSession
) -> None:
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
        AgentClient(ws_url(d1.ports["http"]), "claude-1"),
        AgentClient(ws_url(d2.ports["http"]), "codex-1"),
    ):
        assert d2.registry is not None
        d2.registry.register("scout-1", "script")  # known to daemon 2 only
        async with AgentClient(ws_url(d2.ports["http"]), "scout-1"):
            for daemon in (d1, d2):
                agents = {a["agent_id"]: a for a in (await get(http, daemon, "/api/alpha/agents"))["agents"]}
                assert (agents["claude-1"]["daemon"], agents["claude-1"]["connected"]) == ("d1", True)
                assert (agents["codex-1"]["daemon"], agents["codex-1"]["connected"]) == ("d2", True)
                assert (agents["scout-1"]["daemon"], agents["scout-1"]["connected"]) == ("d2", True)
                offline = [a for a in agents.values() if a["agent_id"] not in ("claude-1", "codex-1", "scout-1")]
                assert offline and all((a["daemon"], a["connected"]) == (None, False) for a in offline)
            theirs = agents["claude-1"]  # as daemon 2 sees it
            assert theirs["heartbeat_at"] and theirs["connected_at"]
            # `futon status` (it reads that route) shows the daemon column.
            done = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "futon", "status", "--url", base_url(d2)],
                capture_output=True, text=True, env={**futon_env(), "COLUMNS": "120"}, timeout=60,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            header = next(line for line in done.stdout.splitlines() if line.startswith("id "))
            assert header.split()[:4] == ["id", "type", "connected", "daemon"]
            rows = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.split()}
            assert rows["claude-1"][2:4] == ["yes", "d1"] and rows["scout-1"][2:4] == ["yes", "d2"]
        await until(lambda: not d2.registry.get("scout-1").connected, what="scout-1 gone")


async def test_an_approval_id_is_unique_in_the_team(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An id another daemon's approval holds is not given again: the next
    free one is taken, so a decision by id reaches one approval only."""
    ids = iter(["abcd", "abcd", "beef"])
    monkeypatch.setattr(approvals_mod.secrets, "token_hex", lambda _n: next(ids))
    async with team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1:
        assert d1.approvals is not None
        database = pg_dsn.rsplit("/", 1)[1]
        pg_cluster.psql(
            "INSERT INTO futon_team_approvals (approval_id, daemon_id, expires_at, shape) "
            "VALUES ('abcd', 'd9', now() + interval '1 hour', '{}')", database,
        )  # fmt: skip
        async with asking(d1.approvals, "claude-1", "s-1") as (approval_id, _waiting):
            assert approval_id == "beef"
            owners = pg_cluster.psql("SELECT approval_id || '=' || daemon_id FROM futon_team_approvals ORDER BY 1", database)
            assert owners.split() == ["abcd=d9", "beef=d1"]


async def test_with_the_database_down_each_daemon_serves_its_own(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster
) -> None:
    """PostgreSQL down: a daemon lists and decides its own approvals, an
    unknown id is approval-not-found at once, and every human IRC line is
    recorded where it is heard (a duplicate rather than a lost line)."""
    async with team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1:
        assert d1.approvals is not None and d1.team is not None
        d1.approvals.apply_settings(["joe"], 300)
        async with asking(d1.approvals, "claude-1", "s-1") as (approval_id, waiting):
            pg_cluster.stop()
            try:
                assert [a["approval_id"] for a in await d1.approvals.listing()] == [approval_id]
                with pytest.raises(FutonError) as unknown:
                    await d1.approvals.decide("zzzz", "approve", "joe")
                assert unknown.value.code == "approval-not-found"
                assert await d1.team.records_line("team", "alice", "#futon", "hi", [])
                assert await d1.team.records_line("team", "alice", "#futon", "claude-1: hi", ["claude-1"])
                waiting.cancel()  # withdrawn: recorded as far as the store can (it cannot: logged)
                await asyncio.gather(waiting, return_exceptions=True)
            finally:
                pg_cluster.start()
