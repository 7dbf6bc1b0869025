"""The team bus's edges (futon/social/team.py): what another writer of
the mail table could send, the bounds, and the JSONL daemon without a bus."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from futon.agents import AgentClient, PushedMessage
from futon.daemon.app import Daemon
from futon.protocol import frames as f
from futon.protocol.errors import FutonError
from futon.social import team as team_mod
from futon.social import team_sql
from tests.pg_cluster import PgCluster
from tests.support import until
from tests.team.conftest import team_daemon, ws_url
from tests.transports.kit import base_url


async def test_a_jsonl_daemon_has_no_team(daemon: Daemon) -> None:
    assert daemon.team is None
    assert daemon.pipeline is not None and daemon.pipeline.team is None
    assert daemon.ws is not None and daemon.ws.team is None


async def test_unreadable_mail_is_dropped_and_a_bad_dispatch_is_a_typed_error(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster, http: aiohttp.ClientSession
) -> None:
    database = pg_dsn.rsplit("/", 1)[1]
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
        AgentClient(ws_url(d1.ports["http"]), "claude-1") as a,
    ):
        assert d1.team is not None and d2.team is not None
        for body in ('"a string"', '{"no": "kind"}', '{"kind": "unknown"}', '{"kind": "answer", "call": "x"}'):
            pg_cluster.psql(
                f"INSERT INTO futon_team_mail (to_daemon, from_daemon, body) VALUES ('d1', 'x', '{body}');"
                f"SELECT pg_notify('{team_sql.channel('d1')}', '')", database,
            )  # fmt: skip
        # What a foreign writer could send as a dispatch: refused, typed, answered.
        with pytest.raises(FutonError) as bad:
            await d2.team._call("d1", {"kind": "dispatch", "inbound": {"nope": 1}, "timeout_s": 1}, 5)
        assert bad.value.code == "invalid-message"
        assert pg_cluster.psql("SELECT count(*) FROM futon_team_mail", database).strip() == "0"
        # and d1 still serves the team
        asking = asyncio.ensure_future(http.post(base_url(d2) + "/dispatch", json={
            "msg_id": "after-junk", "to": "claude-1", "payload": {"coordination": True},
        }))  # fmt: skip
        pushed = await a.next_push(timeout=10)
        assert isinstance(pushed, PushedMessage) and pushed.msg_id == "after-junk"
        await a.reply("after-junk", "fine")
        async with await asking as response:
            assert response.status == 200 and (await response.json())["reply"] == "fine"


async def test_calls_in_flight_are_bounded(
    tmp_path: Path, pg_dsn: str, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(team_mod, "MAX_CALLS", 0)
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
        AgentClient(ws_url(d1.ports["http"]), "claude-1"),
    ):
        ask = {"msg_id": "full-1", "to": "claude-1", "payload": {"coordination": True}}
        async with http.post(base_url(d2) + "/dispatch", json=ask) as response:
            assert response.status == 429 and (await response.json())["code"] == "rate-limited"


def test_the_heartbeat_must_be_shorter_than_the_window() -> None:
    with pytest.raises(ValueError):
        team_mod.TeamBus(
            "postgresql://x@127.0.0.1:1/x", daemon_id="d", registry=None, pipeline=None,  # type: ignore[arg-type]
            heartbeat_s=15, dead_after_s=15,
        )  # fmt: skip


async def test_the_heartbeat_repairs_presence(tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster) -> None:
    """A lost write, a dead daemon's row, a row taken over elsewhere with
    the supersede lost, a row of an agent that left: one heartbeat each."""
    database = pg_dsn.rsplit("/", 1)[1]

    def rows() -> str:
        return pg_cluster.psql("SELECT agent_id, daemon_id FROM futon_team_presence ORDER BY 1", database)

    async with team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1:
        assert d1.team is not None
        client = AgentClient(ws_url(d1.ports["http"]), "claude-1", backoff_initial_s=0.1)
        await client.connect()
        try:
            pg_cluster.psql("DELETE FROM futon_team_presence", database)  # a write lost
            pg_cluster.psql("INSERT INTO futon_team_presence VALUES ('codex-1', 'd1', now(), now())", database)
            await d1.team.beat()
            assert rows().split() == ["claude-1|d1"]  # restored; codex-1 is not connected here: gone
            pg_cluster.psql(
                "UPDATE futon_team_presence SET daemon_id = 'ghost', heartbeat_at = now() - interval '1 hour'",
                database,
            )  # fmt: skip
            await d1.team.beat()
            assert rows().split() == ["claude-1|d1"] and client.connected  # a dead daemon's row: taken back
            pg_cluster.psql("UPDATE futon_team_presence SET daemon_id = 'd2', heartbeat_at = now()", database)
            await d1.team.beat()  # d2 holds it now and its supersede never came: the newest wins
            await until(lambda: client.closed, what="the connection here superseded")
            assert rows().split() == ["claude-1|d2"]
        finally:
            await client.close()


async def test_an_irc_line_for_an_agent_on_another_daemon_is_left_to_that_daemons_bot(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Every daemon's bot hears a channel line: the one the agent is not
    connected to neither routes nor keeps it (no copy, no replay later)."""
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
        AgentClient(ws_url(d1.ports["http"]), "claude-1"),
    ):
        assert d2.pipeline is not None
        line = f.IrcMessage.model_validate({"channel": "#futon", "from": "joe", "text": "hi all", "seq": 0})
        here, there = d2.registry.get("claude-1"), d1.registry.get("claude-1")
        assert await d2.pipeline.push(here, line) is True
        assert (here.seq, here.held_from, there.seq) == (0, None, 0)
        # a chat line, by contrast, goes to daemon 1 and is numbered there
        said = f.ChatMessage.model_validate({"to": "claude-1", "from": "joe", "text": "hi", "transport": "http", "seq": 0})
        assert await d2.pipeline.push(here, said) is True
        assert (here.seq, there.seq) == (0, 1)


async def test_answers_small_and_large_come_back(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster, http: aiohttp.ClientSession
) -> None:
    """A small answer rides on the NOTIFY itself, one larger than a NOTIFY
    payload may be goes through the mail table: both reach the caller. A
    notification whose payload is not an answer only wakes the mailbox."""
    database = pg_dsn.rsplit("/", 1)[1]
    async with (
        team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
        team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
        AgentClient(ws_url(d1.ports["http"]), "claude-1") as a,
    ):
        for payload in ("{not json", '{"kind": "answer"}', '["x"]'):
            pg_cluster.psql(f"SELECT pg_notify('{team_sql.channel('d2')}', '{payload}')", database)
        for n, text in enumerate(("short", "x" * 3 * team_mod.NOTIFY_MAX_BYTES)):
            asking = asyncio.ensure_future(http.post(base_url(d2) + "/dispatch", json={
                "msg_id": f"size-{n}", "to": "claude-1", "payload": {"coordination": True},
            }))  # fmt: skip
            pushed = await a.next_push(timeout=10)
            assert isinstance(pushed, PushedMessage) and pushed.msg_id == f"size-{n}"
            await a.reply(f"size-{n}", text)
            async with await asking as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["reply"] == text
        assert d2.team is not None and not d2.team._calls


async def test_a_small_dispatch_rides_on_the_notify_and_a_large_one_on_the_table(
    tmp_path: Path, pg_dsn: str, http: aiohttp.ClientSession
) -> None:
    """What daemon 1's channel carries, seen by a listener of its own: a
    small dispatch is the notification itself (no row), one larger than a
    NOTIFY payload may be is a mail row whose id the notification names."""
    heard: asyncio.Queue[str] = asyncio.Queue(maxsize=100)
    spy = await asyncpg.connect(pg_dsn)
    try:
        await spy.add_listener(team_sql.channel("d1"), lambda _c, _p, _ch, payload: heard.put_nowait(payload))
        async with (
            team_daemon(tmp_path / "d1", pg_dsn, "d1") as d1,
            team_daemon(tmp_path / "d2", pg_dsn, "d2") as d2,
            AgentClient(ws_url(d1.ports["http"]), "claude-1") as a,
        ):
            for n, text in enumerate(("short", "x" * 3 * team_mod.NOTIFY_MAX_BYTES)):
                asking = asyncio.ensure_future(http.post(base_url(d2) + "/dispatch", json={
                    "msg_id": f"ride-{n}", "to": "claude-1", "payload": {"coordination": True, "text": text},
                }))  # fmt: skip
                pushed = await a.next_push(timeout=10)
                assert isinstance(pushed, PushedMessage) and pushed.msg_id == f"ride-{n}"
                await a.reply(f"ride-{n}", "ok")
                async with await asking as response:
                    assert response.status == 200, await response.text()
                payloads = [heard.get_nowait() for _ in range(heard.qsize())]
                requests = [p for p in payloads if p.startswith("{")]
                if n == 0:
                    assert len(requests) == 1
                    body = json.loads(requests[0])
                    assert (body["kind"], body["from"], body["inbound"]["msg_id"]) == ("dispatch", "d2", "ride-0")
                else:
                    assert not requests and any(p.isdigit() for p in payloads)  # a row's id
            assert d2.team is not None and not d2.team._calls
    finally:
        await spy.close()


async def test_a_dispatch_notified_by_anyone_is_still_only_a_coordination_message(
    tmp_path: Path, pg_dsn: str, pg_cluster: PgCluster
) -> None:
    """Anyone who can connect can NOTIFY: a dispatch carried that way gets
    what one written in the mail table gets — an action is refused, typed,
    and the answer goes to the channel of the daemon it names."""
    database = pg_dsn.rsplit("/", 1)[1]
    answers: asyncio.Queue[str] = asyncio.Queue(maxsize=10)
    spy = await asyncpg.connect(pg_dsn)
    try:
        await spy.add_listener(team_sql.channel("x"), lambda _c, _p, _ch, payload: answers.put_nowait(payload))
        async with team_daemon(tmp_path / "d1", pg_dsn, "d1"):
            inbound = {"msg_id": "forged", "sender": "claude-9", "to": "claude-1", "transport": "http",
                       "payload": {"action": "read_file", "path": "README.md"}, "admin": True}  # fmt: skip
            for call, shape in (("c1", inbound), ("c2", {"nope": 1})):
                forged = json.dumps({"kind": "dispatch", "from": "x", "call": call, "inbound": shape, "timeout_s": 1})
                pg_cluster.psql(f"SELECT pg_notify('{team_sql.channel('d1')}', '{forged}')", database)
                answer = json.loads(await asyncio.wait_for(answers.get(), 10))
                assert (answer["kind"], answer["call"], answer["from"]) == ("answer", call, "d1")
                assert answer["error"]["code"] == "invalid-message"
    finally:
        await spy.close()
