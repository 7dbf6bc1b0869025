"""Issue 20: peripheral sessions are the team's. Two (or three) daemons
share the throwaway cluster: an agent's session runs on daemon 1; daemon 2
lists it with its daemon, and a human's ``futon: stop`` on daemon 2's IRC
server (or the admin's HTTP interrupt on daemon 2) stops it on daemon 1,
which makes every check — daemon 2 has no approver at all, so a stop that
passes was checked on daemon 1. A daemon killed under a session: a live
daemon ends it ``daemon-lost``, exactly once in the team."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from ruamel.yaml import YAML

from futon.daemon.app import Daemon
from futon.evidence import EvidenceQuery
from futon.social import team_sessions, team_sql
from tests.pg_cluster import PgCluster
from tests.support import make_config, until
from tests.team.conftest import team_daemon, team_overrides, team_process
from tests.transports.kit import AgentClient, base_url, connected, daemon_of
from tests.transports.test_humans_in_the_loop import (
    PYTHON,
    SLOW_TEST,
    human,
    pids_mentioning,
    said_by_futon,
    send,
)

SLOW = "tests/test_interrupt_me.py"


@asynccontextmanager
async def runner_daemon(
    folder: Path, dsn: str, daemon_id: str, **extra: Any
) -> AsyncIterator[Daemon]:
    """A daemon of the team whose ``test`` peripheral may run this
    interpreter's pytest on a workspace holding a 120 s test."""
    workspace = folder / "ws"
    (workspace / "tests").mkdir(parents=True)
    (workspace / "tests" / "test_interrupt_me.py").write_text(SLOW_TEST)
    config = make_config(
        folder / "cfg", workspace=str(workspace), evidence__fsync="never",
        tools__test_commands=[f"{PYTHON} -m pytest -q -p no:cacheprovider {{paths}}"],
        **team_overrides(dsn, daemon_id), **extra,
    )  # fmt: skip
    yaml = YAML()
    peripherals = yaml.load(config.parent / "peripherals.yaml")
    peripherals["peripherals"]["test"]["sandbox"] = {
        "read_only": sorted({sys.prefix, sys.base_prefix})
    }
    yaml.dump(peripherals, config.parent / "peripherals.yaml")
    async with daemon_of(config) as daemon:
        yield daemon


async def get(http: aiohttp.ClientSession, daemon: Daemon | int, path: str) -> Any:
    url = base_url(daemon) if isinstance(daemon, Daemon) else f"http://127.0.0.1:{daemon}"
    async with http.get(url + path) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def shown_on(
    http: aiohttp.ClientSession, on: Daemon, session_id: str, **expected: Any
) -> dict[str, Any]:
    """The session as ``on`` lists it, once it shows ``expected`` (the
    team's row is written off the session's path: polled, bounded)."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        listed = (await get(http, on, "/api/alpha/sessions"))["sessions"]
        found = [s for s in listed if s["session_id"] == session_id]
        if found and all(found[0].get(k) == v for k, v in expected.items()):
            return found[0]
        assert asyncio.get_running_loop().time() < deadline, (
            f"{session_id} never shown as {expected}: {found}"
        )
        await asyncio.sleep(0.05)


async def test_futon_stop_on_daemon_2_kills_a_test_run_on_daemon_1(
    tmp_path: Path, pg_dsn: str, http: aiohttp.ClientSession
) -> None:
    async with (
        runner_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(
            tmp_path / "d2", pg_dsn, "d2", irc__server__enabled=True, irc__server__port=0
        ) as d2,
    ):
        assert d1.approvals is not None and d2.approvals is not None
        d1.approvals.apply_settings(["joe"], 300)  # daemon 2 has no approver at all
        joe, mallory = await human(d2, "joe"), await human(d2, "mallory")
        try:
            async with connected(http, d1, "claude-1") as claude:
                started = await claude.ask({"type": "peripheral_start", "peripheral_id": "test"})
                session_id = started["session_id"]
                command = f"{PYTHON} -m pytest -q -p no:cacheprovider {SLOW}"
                await send(
                    claude, {"type": "tool_action", "tool": "bash-test", "args": [command]}, "t1"
                )
                await until(lambda: pids_mentioning(SLOW), timeout=30, what="the slow test started")

                # Daemon 2 lists the session with its daemon, running, and the agent in it.
                shown = await shown_on(http, d2, session_id, daemon="d1")
                assert (shown["state"], shown["agent_id"], shown["peripheral_id"]) == (
                    "active",
                    "claude-1",
                    "test",
                )
                one = await get(http, d2, f"/session/{session_id}")
                assert (one["daemon"], one["state"]) == ("d1", "active")
                agents = {
                    a["agent_id"]: a for a in (await get(http, d2, "/api/alpha/agents"))["agents"]
                }
                assert (agents["claude-1"]["daemon"], agents["claude-1"]["session_id"]) == (
                    "d1",
                    session_id,
                )

                # IRC's "agents" on daemon 2 says where the agent is and what it runs.
                await mallory.send("PRIVMSG #futon :futon: agents")
                listed = await said_by_futon(mallory, "agents: ")
                assert "claude-1 (online on d1, in test)" in listed, listed

                # A non-approver is refused (by daemon 1); nothing stops.
                await mallory.send("PRIVMSG #futon :futon: stop claude-1")
                assert await said_by_futon(mallory, "not-an-approver") == (
                    "mallory: only approvers may stop an agent (not-an-approver)"
                )
                assert pids_mentioning(SLOW)

                # joe, an approver on daemon 1 only: the run is killed at once.
                await joe.send("PRIVMSG #futon :futon: stop claude-1")
                result = await claude.reply_to("t1", timeout=20)
                assert (result["ok"], result["result"]["code"]) == (False, "interrupted")
                told = await claude.push_of("interrupted")
                assert (told["session_id"], told["by"]) == (session_id, "joe")
                said = await said_by_futon(joe, "interrupted by joe")
                assert said == f"claude-1 interrupted by joe ({session_id})"
                assert pids_mentioning(SLOW) == []

                # Nothing running any more: said so (joe now an approver on daemon 2 too,
                # where the check is made when no daemon runs a session), nothing changes.
                d2.approvals.apply_settings(["joe"], 300)
                await joe.send("PRIVMSG #futon :futon: stop claude-1")
                assert (
                    await said_by_futon(joe, "no running session")
                    == "joe: claude-1 has no running session"
                )
                async with http.post(
                    f"{base_url(d2)}/api/alpha/sessions/{session_id}/interrupt"
                ) as again:
                    assert again.status == 409 and (await again.json())["code"] == "session-stopped"
                assert not [p for p in claude.pushes if p["type"] == "interrupted"]
                ended = await shown_on(http, d2, session_id, reason="interrupted")
                assert (ended["daemon"], ended["state"]) == ("d1", "stopped")
        finally:
            for client in (joe, mallory):
                await client.close()
        assert d1.store is not None
        conclusions = d1.store.query(
            EvidenceQuery(session_id=session_id, claim_type="conclusion", limit=10)
        ).entries
        assert [c["evidence/body"]["reason"] for c in conclusions] == ["interrupted"]


async def test_the_admin_interrupts_on_daemon_2_a_session_of_daemon_1(
    tmp_path: Path, pg_dsn: str, http: aiohttp.ClientSession
) -> None:
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
        connected(http, d1, "claude-1") as claude,
    ):
        started = await claude.ask({"type": "peripheral_start", "peripheral_id": "explore"})
        session_id = started["session_id"]
        await shown_on(http, d2, session_id, daemon="d1", state="active")
        async with http.post(
            f"{base_url(d2)}/api/alpha/sessions/{session_id}/interrupt"
        ) as response:
            assert response.status == 200, await response.text()
            body = await response.json()
        assert (body["session_id"], body["reason"], body["daemon"]) == (
            session_id,
            "interrupted",
            "d1",
        )
        told = await claude.push_of("interrupted")
        assert (told["session_id"], told["by"]) == (session_id, "admin")
        again = await claude.ask({"type": "tool_action", "tool": "read", "args": ["README.md"]})
        assert again["code"] == "no-active-peripheral"  # the slot on daemon 1 is empty
        async with http.post(f"{base_url(d2)}/api/alpha/sessions/sess-nope/interrupt") as unknown:
            assert unknown.status == 404 and (await unknown.json())["code"] == "session-not-found"
        await shown_on(http, d1, session_id, daemon="d1", reason="interrupted")


async def test_a_killed_daemons_sessions_end_daemon_lost_once(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster, http: aiohttp.ClientSession
) -> None:
    """Daemon 1 is a real process, killed with SIGKILL under a session;
    its heartbeat is then made older than the dead window (instead of
    waiting 15 s); daemons 2 and 3 sweep at the same time: one conclusion."""
    database = pg_dsn.rsplit("/", 1)[1]
    with team_process(tmp_path / "d1", pg_dsn, "d1") as (process, port, _config):
        async with (
            team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
            team_daemon(tmp_path / "d3", pg_dsn, "d3") as d3,
        ):
            async with http.ws_connect(f"http://127.0.0.1:{port}/agency/ws") as ws:
                claude = AgentClient(ws)
                assert (await claude.ask({"type": "ready", "agent_id": "claude-1"}))[
                    "type"
                ] == "ready_ack"
                started = await claude.ask({"type": "peripheral_start", "peripheral_id": "explore"})
                session_id = started["session_id"]
                await claude.ask({"type": "tool_action", "tool": "read", "args": ["README.md"]})
                await shown_on(http, d2, session_id, daemon="d1", state="active")
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
            # Killed, its heartbeat not yet dead: the call times out, agent-unreachable.
            async with http.post(
                f"{base_url(d2)}/api/alpha/sessions/{session_id}/interrupt"
            ) as response:
                body = await response.json()
            assert (response.status, body["code"]) == (502, "agent-unreachable")
            assert body["message"] == "daemon 'd1' did not answer within 10 s", body
            pg_cluster.psql(
                "UPDATE futon_team_daemons SET heartbeat_at = now() - interval '1 hour' WHERE daemon_id = 'd1'",
                database,
            )
            assert d2.team is not None and d3.team is not None
            await asyncio.gather(d2.team.beat(), d3.team.beat())
            await asyncio.gather(d2.team.beat(), d3.team.beat())  # nothing left to claim

            assert d2.store is not None
            entries = d2.store.query(EvidenceQuery(session_id=session_id, limit=20)).entries
            conclusions = [e for e in entries if e["evidence/claim-type"] == "conclusion"]
            assert len(conclusions) == 1, conclusions
            (lost,) = conclusions
            assert lost["evidence/body"]["reason"] == "daemon-lost"
            assert lost["evidence/body"]["daemon"] == "d1"
            assert lost["evidence/author"] == "claude-1"
            assert (
                lost["evidence/in-reply-to"] == entries[1]["evidence/id"]
            )  # the session's last entry
            row = pg_cluster.psql(
                f"SELECT outcome || ' ' || (ended_at IS NOT NULL) FROM futon_team_sessions WHERE session_id = '{session_id}'",
                database,
            )  # fmt: skip
            assert row.split() == ["daemon-lost", "true"]
            for daemon in (d2, d3):
                shown = await shown_on(http, daemon, session_id, reason="daemon-lost")
                assert (shown["state"], shown["daemon"]) == ("interrupted", "d1")
            audit = await get(http, d2, f"/api/alpha/sessions/{session_id}/audit")
            assert not [v for v in audit["violations"] if v["rule"] == "chain-broken"], audit

            # A stop for its agent now: nothing runs anywhere.
            async with http.post(
                f"{base_url(d3)}/api/alpha/sessions/{session_id}/interrupt"
            ) as again:
                assert again.status == 409 and (await again.json())["code"] == "session-stopped"


async def test_an_interrupt_for_a_session_on_a_dead_daemon_says_so(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster, http: aiohttp.ClientSession
) -> None:
    """The row of a session on a daemon whose heartbeat is dead (written
    before daemon 2 starts, so its first sweep, a heartbeat later, has not
    ended it yet): the interrupt is ``agent-unreachable``, stated plainly."""
    database = pg_dsn.rsplit("/", 1)[1]
    pg_cluster.psql(team_sql.SCHEMA + team_sessions.SCHEMA, database)
    pg_cluster.psql(
        "INSERT INTO futon_team_daemons (daemon_id, heartbeat_at) VALUES ('d9', now() - interval '1 hour');"
        "INSERT INTO futon_team_sessions (session_id, agent_id, peripheral_id, daemon_id)"
        " VALUES ('sess-d9', 'claude-1', 'explore', 'd9')",
        database,
    )  # fmt: skip
    async with team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2:
        async with http.post(f"{base_url(d2)}/api/alpha/sessions/sess-d9/interrupt") as response:
            body = await response.json()
        assert (response.status, body["code"]) == (502, "agent-unreachable")
        assert "runs on daemon 'd9', which is not running" in body["message"]


async def test_a_daemon_restarted_at_once_ends_what_its_previous_life_left_open(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster, http: aiohttp.ClientSession
) -> None:
    """Killed and started again within the dead window (so no other daemon
    took it for dead): the new life ends the old life's session itself."""
    with team_process(tmp_path / "first", pg_dsn, "d1") as (process, port, _config):
        async with http.ws_connect(f"http://127.0.0.1:{port}/agency/ws") as ws:
            claude = AgentClient(ws)
            ready = await claude.ask({"type": "ready", "agent_id": "claude-1"})
            assert ready["type"] == "ready_ack", ready
            started = await claude.ask({"type": "peripheral_start", "peripheral_id": "explore"})
            session_id = started["session_id"]
            listed = await get(http, port, "/api/alpha/sessions")
            assert [s["daemon"] for s in listed["sessions"] if s["session_id"] == session_id] == [
                "d1"
            ]
            written = f"SELECT count(*) FROM futon_team_sessions WHERE session_id = '{session_id}'"
            database = pg_dsn.rsplit("/", 1)[1]
            await until(lambda: pg_cluster.psql(written, database).strip() == "1", what="its row")
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
    with team_process(tmp_path / "second", pg_dsn, "d1") as (_process, port, _config):
        found = await get(
            http, port, f"/api/alpha/evidence?session-id={session_id}&claim-type=conclusion"
        )
        (lost,) = found["entries"]
        assert lost["evidence/body"]["reason"] == "daemon-lost"
        assert (lost["evidence/body"]["daemon"], lost["evidence/body"]["recorded_by"]) == (
            "d1",
            "d1",
        )
        shown = await get(http, port, f"/session/{session_id}")
        assert (shown["state"], shown["reason"], shown["daemon"]) == (
            "interrupted",
            "daemon-lost",
            "d1",
        )


async def test_a_session_ends_with_the_database_down_and_its_row_is_repaired(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster, http: aiohttp.ClientSession
) -> None:
    """The team's row is written off the session's path: PostgreSQL down
    when the session stops does not fail the stop; the heartbeat after it
    is back writes the end."""
    database = pg_dsn.rsplit("/", 1)[1]
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        connected(http, d1, "claude-1") as claude,
    ):
        started = await claude.ask({"type": "peripheral_start", "peripheral_id": "explore"})
        session_id = started["session_id"]
        row = f"SELECT coalesce(outcome, 'open') FROM futon_team_sessions WHERE session_id = '{session_id}'"
        await until(lambda: pg_cluster.psql(row, database).strip() == "open", what="its row")
        pg_cluster.stop()
        try:
            stopped = await claude.ask({"type": "peripheral_stop", "reason": "done"}, timeout=30)
            assert stopped["type"] == "peripheral_stopped", stopped
        finally:
            pg_cluster.start()
        assert d1.team is not None
        await d1.team.beat()
        await until(
            lambda: pg_cluster.psql(row, database).strip() == "done", what="its end written"
        )
