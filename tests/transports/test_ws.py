"""The agent WebSocket protocol over real sockets, scenario by scenario
(ws-protocol.md)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from futon.daemon.app import Daemon
from futon.evidence import EvidenceQuery
from futon.protocol.frames import FEATURES, PROTOCOL_VERSION
from tests.support import until
from tests.transports.kit import agent_socket, base_url, connected


async def test_handshake_acknowledges_with_version_features_and_routing(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with agent_socket(http, daemon, "/ws") as agent:
        ack = await agent.ask({"type": "ready", "agent_id": "codex-1", "session_id": "mine", "protocol_version": 1,
                               "capabilities": ["hop"], "client": {"name": "test", "version": "1"}})  # fmt: skip
    assert ack["type"] == "ready_ack"
    assert (ack["agent_id"], ack["session_id"], ack["protocol_version"]) == ("codex-1", "mine", PROTOCOL_VERSION)
    assert ack["features"] == list(FEATURES)
    assert ack["default_peripheral"] == "edit"
    assert len(ack["peripherals"]) == 11
    assert ack["server"]["name"] == "futon"


async def test_unknown_agent_gets_an_error_then_close_4004(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with agent_socket(http, daemon) as agent:
        error = await agent.ask({"type": "ready", "agent_id": "nobody"})
        assert (error["type"], error["code"]) == ("error", "agent-not-found")
        assert await agent.closed_with() == 4004


async def test_wrong_token_gets_unauthorized_then_close_4001(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with http.post(base_url(daemon) + "/api/alpha/agents", json={"agent_id": "bot-1", "type": "mock", "token": "s3cret-token"}) as r:
        assert r.status == 201
    async with agent_socket(http, daemon) as agent:
        error = await agent.ask({"type": "ready", "agent_id": "bot-1", "token": "wrong-token"})
        assert error["code"] == "unauthorized"
        assert await agent.closed_with() == 4001
    async with connected(http, daemon, "bot-1", token="s3cret-token") as agent:
        assert (await agent.ask({"type": "ping"}))["type"] == "pong"


async def test_a_second_connection_supersedes_the_first_with_4000(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with connected(http, daemon, "claude-1") as first, connected(http, daemon, "claude-1") as second:
        assert await first.closed_with() == 4000
        assert (await second.ask({"type": "ping"}))["type"] == "pong"
        assert daemon.registry.get("claude-1").link is not None


async def test_identity_is_locked_after_ready(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with connected(http, daemon, "claude-1") as agent:
        error = await agent.ask({"type": "ready", "agent_id": "codex-1"})
        assert error["code"] == "identity-locked"
        assert (await agent.ask({"type": "ping"}))["type"] == "pong"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('{"type": "peripheral_start"}', "not-ready"),
        ('{"type": "tool_action", "tool": "read"}', "not-ready"),
        ("not json", "invalid-json"),
        ("", "invalid-json"),
        ("[1]", "invalid-frame"),
        ('"x"', "invalid-frame"),
        ("null", "invalid-frame"),
        ('{"no": "type"}', "invalid-frame"),
    ],
)
async def test_before_the_handshake_only_ready_and_ping(daemon: Daemon, http: aiohttp.ClientSession, raw: str, code: str) -> None:
    async with agent_socket(http, daemon) as agent:
        await agent.send(raw)
        error = await agent.recv()
        assert (error["type"], error["code"]) == ("error", code)
        assert (await agent.ask({"type": "ping"}))["type"] == "pong"
        assert (await agent.ask({"type": "ready", "agent_id": "claude-1"}))["type"] == "ready_ack"


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        ({"type": "tool_action"}, "'tool'"),
        ({"type": "tool_action", "tool": " "}, "blank"),
        ({"type": "tool_action", "tool": "read", "args": "README.md"}, "'args'"),
        ({"type": "message", "to": "codex-1"}, "'msg_id'"),
        ({"type": "message", "msg_id": "m1"}, "'to'"),
        ({"type": "warp"}, "unknown frame type"),
    ],
)
async def test_ill_formed_frames_name_the_field_and_keep_the_connection(
    daemon: Daemon, http: aiohttp.ClientSession, frame: dict, fragment: str
) -> None:
    async with connected(http, daemon, "claude-1") as agent:
        error = await agent.ask(frame)
        assert (error["type"], error["code"]) == ("error", "invalid-frame")
        assert fragment in error["message"]
        assert (await agent.ask({"type": "ping"}))["type"] == "pong"


async def test_peripheral_session_over_ws_writes_the_evidence_chain(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with connected(http, daemon, "claude-1") as agent:
        started = await agent.ask({"type": "peripheral_start"})
        assert started["type"] == "peripheral_started" and started["peripheral_id"] == "explore"
        session_id = started["session_id"]
        again = await agent.ask({"type": "peripheral_start", "peripheral_id": "edit"})
        assert again["code"] == "peripheral-already-active"
        read = await agent.ask({"type": "tool_action", "tool": ":read", "args": ["src/app.py"]})
        assert read == {"type": "tool_result", "req_id": read["req_id"], "tool": "read", "ok": True, "result": "def add(a, b):\n    return a - b\n"}
        missing = await agent.ask({"type": "tool_action", "tool": "read", "args": ["src/nope.py"]})
        assert missing["type"] == "tool_result" and missing["ok"] is False
        refused = await agent.ask({"type": "tool_action", "tool": "write", "args": ["src/x.py", "x"]})
        assert (refused["type"], refused["code"]) == ("error", "tool-not-allowed")
        hopped = await agent.ask({"type": "hop", "to": "edit", "exit_condition": "found-target", "reason": "fix"})
        assert (hopped["type"], hopped["from"], hopped["to"]) == ("hopped", "explore", "edit")
        assert hopped["context"]["target-files"] == ["src/app.py"]
        stopped = await agent.ask({"type": "peripheral_stop", "reason": "done"})
        assert stopped == {"type": "peripheral_stopped", "req_id": stopped["req_id"], "peripheral_id": "edit",
                           "reason": "done", "fruit": {"changes": [], "changed_files": [], "ready_to_test": False}}  # fmt: skip
        assert (await agent.ask({"type": "tool_action", "tool": "read", "args": []}))["code"] == "no-active-peripheral"
    page = daemon.store.query(EvidenceQuery(session_id=session_id, limit=100))
    kinds = [(e["evidence/type"], e["evidence/claim-type"]) for e in reversed(page.entries)]
    assert kinds == [("coordination", "goal"), ("coordination", "step"), ("coordination", "step"),
                     ("coordination", "tension"), ("mode-transition", "step"), ("coordination", "conclusion")]  # fmt: skip
    async with http.get(base_url(daemon) + f"/session/{session_id}") as r:
        assert (await r.json())["state"] == "stopped"


async def test_concurrent_tool_actions_run_in_arrival_order(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with connected(http, daemon, "claude-1") as agent:
        await agent.ask({"type": "peripheral_start"})
        for n in range(8):
            await agent.send({"type": "tool_action", "tool": "bash-readonly", "args": [f"echo {n}"], "req_id": n})
        replies = [await agent.recv() for _ in range(8)]
    assert [r["req_id"] for r in replies] == list(range(8))
    assert [r["result"]["out"] for r in replies] == [f"{n}\n" for n in range(8)]


async def test_stop_racing_close_yields_exactly_one_conclusion(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with connected(http, daemon, "claude-1") as agent:
        started = await agent.ask({"type": "peripheral_start"})
        await agent.send({"type": "tool_action", "tool": "bash-readonly", "args": ["sleep 5"]})
        await agent.send({"type": "peripheral_stop", "reason": "client-requested"})
        await agent.ws.close()
    await until(lambda: daemon.runner.get(started["session_id"]).status == "stopped")
    conclusions = daemon.store.query(EvidenceQuery(session_id=started["session_id"], claim_type="conclusion"))
    assert len(conclusions.entries) == 1
    assert daemon.registry.get("claude-1").link is None


async def test_close_stops_the_active_peripheral(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with connected(http, daemon, "codex-1") as agent:
        started = await agent.ask({"type": "peripheral_start"})
    await until(lambda: daemon.runner.get(started["session_id"]).status == "stopped")
    session = daemon.runner.get(started["session_id"])
    assert (session.status, session.stop_reason) == ("stopped", "connection-closed")


async def test_coordination_message_is_delivered_and_the_reply_returns(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with connected(http, daemon, "claude-1") as claude, connected(http, daemon, "codex-1") as codex:
        await claude.send({"type": "message", "msg_id": "m-1", "to": "codex-1", "payload": {"type": "handoff", "text": "your turn"}, "req_id": "q"})
        pushed = await codex.push_of("message")
        assert pushed["from"] == {"value": "claude-1", "type": "agent"}
        assert pushed["mode"] == "coordination" and pushed["payload"]["text"] == "your turn"
        assert isinstance(pushed["seq"], int)
        await codex.send({"type": "reply", "msg_id": "m-1", "payload": {"ok": "on it"}})
        receipt = await claude.reply_to("q")
    assert receipt["type"] == "receipt" and receipt["route"] == "registry/invoke"
    assert receipt["delivered"] is True and receipt["reply"] == {"ok": "on it"}


@pytest.mark.parametrize(
    ("target", "payload", "peripheral"),
    [
        ("claude-1", {"actions": [{"tool": "read", "args": ["README.md"]}]}, "explore"),
        ("codex-1", {"actions": [{"tool": "read", "args": ["src/app.py"]}]}, "edit"),
        ("tickle-1", {"actions": [{"tool": "read", "args": ["README.md"]}]}, "mission-control"),
        ("codex-1", {"peripheral": ":test", "actions": [{"tool": "read", "args": ["README.md"]}]}, "test"),
    ],
)
async def test_action_messages_run_the_routed_peripheral(
    daemon: Daemon, http: aiohttp.ClientSession, target: str, payload: dict, peripheral: str
) -> None:
    # Each agent asks for its own actions: actions run with the caller's
    # identity, so another agent may not send them (tests/security/test_identity.py).
    async with connected(http, daemon, target) as agent:
        receipt = await agent.ask({"type": "message", "msg_id": f"m-{target}", "to": target, "payload": payload})
    assert receipt["type"] == "receipt" and receipt["route"] == "peripheral/run-chain"
    assert receipt["peripheral_id"] == peripheral
    assert receipt["session_id"].startswith("sess-")
    session = daemon.runner.get(receipt["session_id"])
    assert session.agent_id == target and session.status == "stopped"


async def test_a_refused_action_message_executes_nothing(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with connected(http, daemon, "claude-1") as agent:
        error = await agent.ask({"type": "message", "msg_id": "m-x", "to": "claude-1",
                                 "payload": {"actions": [{"tool": "read", "args": ["README.md"]}, {"tool": "write", "args": ["x", "y"]}]}})  # fmt: skip
    assert (error["type"], error["code"]) == ("error", "tool-not-allowed")
    assert daemon.runner.sessions() == []


async def test_resume_replays_missed_pushes_and_reports_a_gap(tmp_path, http: aiohttp.ClientSession) -> None:  # type: ignore[no-untyped-def]
    from tests.transports.kit import running_daemon

    async with running_daemon(tmp_path, ws__replay_window=3) as daemon:
        async with connected(http, daemon, "codex-1") as codex:
            await codex.ask({"type": "ping"})
        for n in range(5):
            async with http.post(base_url(daemon) + "/api/alpha/chat", json={"to": "codex-1", "text": f"note {n}", "from": "joe"}) as r:
                assert r.status == 202
        async with connected(http, daemon, "codex-1", resumes=True) as codex:
            gap = await codex.ask({"type": "resume", "since_seq": 0})
            assert (gap["code"], gap["context"]["oldest_seq"]) == ("replay-gap", 3)
            await codex.send({"type": "resume", "since_seq": 3})
            replayed = [await codex.recv() for _ in range(2)]
    assert [(m["type"], m["seq"], m["text"]) for m in replayed] == [("chat_message", 4, "note 3"), ("chat_message", 5, "note 4")]


async def test_evidence_query_and_subscribe_over_ws(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with connected(http, daemon, "claude-1") as agent:
        subscribed = await agent.ask({"type": "subscribe", "filters": {"author": "joe"}})
        assert subscribed["type"] == "subscribed"
        for text in ("one", "two"):
            entry = {"subject": {"ref/type": "thread", "ref/id": "t"}, "type": "forum-post", "claim-type": "observation", "author": "joe", "body": {"text": text}}
            async with http.post(base_url(daemon) + "/api/alpha/evidence", json=entry) as r:
                assert r.status == 201
        first, second = await agent.push_of("evidence"), await agent.push_of("evidence")
        assert [first["entry"]["evidence/body"]["text"], second["entry"]["evidence/body"]["text"]] == ["one", "two"]
        assert second["seq"] == first["seq"] + 1
        result = await agent.ask({"type": "evidence_query", "filters": {"author": "joe"}, "limit": 1})
        assert result["type"] == "evidence_result" and result["count"] == 1
        assert result["entries"][0]["evidence/body"]["text"] == "two"
        bad = await agent.ask({"type": "evidence_query", "filters": {"type": "gossip"}})
        assert bad["code"] == "invalid-query"


async def test_oversize_frame_closes_with_1009(tmp_path, http: aiohttp.ClientSession) -> None:  # type: ignore[no-untyped-def]
    from tests.transports.kit import running_daemon

    async with running_daemon(tmp_path, ws__max_frame_bytes=4096) as daemon, connected(http, daemon, "claude-1") as agent:
        await agent.send(json.dumps({"type": "ping", "pad": "x" * 10_000}))
        assert await agent.closed_with() == 1009


async def test_flooding_is_rate_limited_and_the_connection_survives(tmp_path, http: aiohttp.ClientSession) -> None:  # type: ignore[no-untyped-def]
    from tests.transports.kit import running_daemon

    async with running_daemon(tmp_path, ws__max_frames_per_s=5, ws__burst=5) as daemon, connected(http, daemon, "claude-1") as agent:
        for n in range(20):
            await agent.send({"type": "ping", "req_id": n})
        replies = [await agent.recv() for _ in range(20)]
        assert any(r.get("code") == "rate-limited" for r in replies)
        # time, not synchronisation: the token bucket (5/s) refills only as time passes
        await asyncio.sleep(1.2)
        assert (await agent.ask({"type": "ping"}))["type"] == "pong"


async def test_registered_agents_handshake_at_once_and_deregistering_closes_them(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    url = base_url(daemon) + "/api/alpha/agents"
    async with http.post(url, json={"agent_id": "late-1", "type": "mock"}) as r:
        assert (r.status, await r.json()) == (201, {"ok": True, "agent_id": "late-1"})
    async with http.post(url, json={"agent_id": "late-1", "type": "mock"}) as r:
        assert (r.status, (await r.json())["code"]) == (409, "duplicate-registration")
    async with connected(http, daemon, "late-1") as agent:
        async with http.get(url) as r:
            listed = {a["agent_id"]: a for a in (await r.json())["agents"]}
        assert listed["late-1"]["connected"] is True and listed["late-1"]["transport"] == "websocket"
        async with http.delete(url + "/late-1") as r:
            assert r.status == 200
        assert await agent.closed_with() == 4004
    async with http.delete(url + "/late-1") as r:
        assert r.status == 404


async def test_arbitrary_frames_get_typed_errors_and_the_connection_survives(tmp_path, http: aiohttp.ClientSession) -> None:  # type: ignore[no-untyped-def]
    """Hypothesis feeds arbitrary JSON values and bytes as frames after the
    handshake; each gets an answer with a type, and a ping still pongs. (The
    rate limit is raised so that it is not what answers.)"""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.transports.kit import running_daemon

    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["type", "tool", "args", "to", "msg_id", "x"]) | st.text(max_size=6), inner, max_size=4),
        max_leaves=10,
    )
    loop = asyncio.get_running_loop()
    async with running_daemon(tmp_path, ws__max_frames_per_s=100_000, ws__burst=100_000) as daemon, connected(http, daemon, "claude-1") as agent:

        async def probe(raw: str | bytes) -> None:
            if isinstance(raw, bytes):
                await agent.ws.send_bytes(raw)
            else:
                await agent.send(raw)
            await agent.send({"type": "ping", "req_id": "alive"})
            answer = await agent.reply_to("alive")
            assert answer["type"] == "pong"
            assert all("type" in frame for frame in agent.pushes)
            agent.pushes.clear()

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.one_of(values.map(json.dumps), st.binary(max_size=64), st.text(max_size=30)))
        def check(raw: str | bytes) -> None:
            asyncio.run_coroutine_threadsafe(probe(raw), loop).result(timeout=30)

        await asyncio.to_thread(check)


async def test_tickle_with_a_plain_payload_gets_a_mission_control_review(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    """Action route for tickle → mission-control; with no actions it runs mc-review (the daemon installed the domain tools)."""
    async with connected(http, daemon, "tickle-1") as agent:  # its own actions (the identity wall)
        receipt = await agent.ask({"type": "message", "msg_id": "m-review", "to": "tickle-1", "payload": "standup please"})
    assert receipt["peripheral_id"] == "mission-control"
    assert set(receipt["fruit"]["review"]["counts"]) == {"complete", "in-progress", "blocked", "ready", "unknown"}


async def test_a_cycle_peripheral_refuses_tools_its_phase_does_not_allow(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with connected(http, daemon, "claude-1") as agent:
        await agent.ask({"type": "peripheral_start", "peripheral_id": "proof"})
        refused = await agent.ask({"type": "tool_action", "tool": "status-validate", "args": ["open", "partial"]})
        assert (refused["type"], refused["code"]) == ("error", "phase-tool-not-allowed")
        loaded = await agent.ask({"type": "tool_action", "tool": "proof-load", "args": ["P1"]})
        assert loaded["ok"] is True
        stopped = await agent.ask({"type": "peripheral_stop"})
    assert stopped["fruit"]["problem_id"] == "P1" and stopped["fruit"]["final_phase"] == "setup"


async def test_replay_windows_survive_a_daemon_restart(tmp_path, http: aiohttp.ClientSession) -> None:  # type: ignore[no-untyped-def]
    """ws-protocol.md: the window is kept across daemon restarts with the
    JSONL store — a graceful restart keeps each agent's seq and window."""
    from tests.transports.kit import running_daemon

    async with running_daemon(tmp_path) as daemon:
        for n in range(3):
            async with http.post(base_url(daemon) + "/api/alpha/chat", json={"to": "codex-1", "text": f"note {n}", "from": "joe"}) as r:
                assert r.status == 202
    async with running_daemon(tmp_path) as daemon, connected(http, daemon, "codex-1", resumes=True) as codex:
        await codex.send({"type": "resume", "since_seq": 1})
        replayed = [await codex.recv() for _ in range(2)]
        assert [(m["seq"], m["text"]) for m in replayed] == [(2, "note 1"), (3, "note 2")]
        async with http.post(base_url(daemon) + "/api/alpha/chat", json={"to": "codex-1", "text": "after", "from": "joe"}) as r:
            assert r.status == 202
        assert (await codex.push_of("chat_message"))["seq"] == 4  # numbering continues


async def test_presence_follows_the_session_and_a_superseded_socket_leaves_the_new_one_alone(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    record = daemon.registry.get("claude-1")
    concluded: dict[str, asyncio.Event] = {}

    def on_entry(entry: dict[str, object]) -> None:
        if entry.get("evidence/claim-type") == "conclusion":
            concluded.setdefault(str(entry.get("evidence/session-id")), asyncio.Event()).set()

    unsubscribe = daemon.store.subscribe(on_entry)
    async with connected(http, daemon, "claude-1") as first:
        old = await first.ask({"type": "peripheral_start", "peripheral_id": "explore"})
        assert (record.session_id, record.peripheral_id) == (old["session_id"], "explore")
        await first.ask({"type": "tool_action", "tool": "read", "args": ["src/app.py"]})
        await first.ask({"type": "hop", "to": "edit", "exit_condition": "found-target"})
        assert record.peripheral_id == "edit"  # the hop shows in presence
        async with connected(http, daemon, "claude-1") as second:
            assert await first.closed_with() == 4000
            new = await second.ask({"type": "peripheral_start", "peripheral_id": "explore"})
            # The old socket's close stopped its own session only, and left
            # the new socket's session in presence.
            await asyncio.wait_for(concluded.setdefault(old["session_id"], asyncio.Event()).wait(), 10)
            stopped = await daemon.runner.stop(old["session_id"], "again")  # idempotent: the first stop's
            assert stopped.reason == "connection-closed"
            assert (record.session_id, record.peripheral_id) == (new["session_id"], "explore")
            await second.ask({"type": "peripheral_stop", "reason": "done"})
            assert (record.session_id, record.peripheral_id) == (None, None)
    unsubscribe()
