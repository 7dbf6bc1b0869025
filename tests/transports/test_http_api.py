"""The HTTP API over real sockets (http-api.md): evidence routes, dispatch,
presence, registry, sessions, auth, limits and hostile requests."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from futon.daemon.app import Daemon
from futon.social.pipeline import Inbound
from tests.transports.kit import base_url, connected, running_daemon


def entry(**overrides: Any) -> dict[str, Any]:
    body = {"subject": {"ref/type": "thread", "ref/id": "irc/#futon"}, "type": "forum-post",
            "claim-type": "observation", "author": "joe", "body": {"text": "hi"}}  # fmt: skip
    body.update(overrides)
    return body


async def call(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.request(method, url, **kwargs) as r:
        text = await r.text()
        return r.status, json.loads(text) if text and r.content_type == "application/json" else text


async def test_evidence_post_answers_201_400_409(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    url = base_url(daemon) + "/api/alpha/evidence"
    status, body = await call(http, "POST", url, json=entry(id="e-1"))
    assert status == 201 and body["ok"] is True and body["evidence/id"] == "e-1"
    assert body["entry"]["evidence/seq"] >= 1
    for bad, code in [
        ({"type": "forum-post"}, "invalid-entry"),
        (entry(body=[1]), "invalid-entry"),
        (entry(type="gossip"), "invalid-entry"),
        (entry(**{"evidence/at": "2026-01-01T00:00:00Z"}), "invalid-entry"),
        ([1, 2], "invalid-entry"),
    ]:
        status, body = await call(http, "POST", url, json=bad)
        assert (status, body["ok"], body["err"], body["code"]) == (400, False, code, code), bad
    for dup, code in [(entry(id="e-1"), "duplicate-id"), (entry(**{"in-reply-to": "e-x"}), "reply-not-found"),
                      (entry(**{"fork-of": "e-x"}), "fork-not-found")]:  # fmt: skip
        status, body = await call(http, "POST", url, json=dup)
        assert (status, body["err"]) == (409, code)


async def test_evidence_reads_query_count_chain_thread(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    url = base_url(daemon) + "/api/alpha/evidence"
    await call(http, "POST", url, json=entry(id="root", **{"claim-type": "question"}))
    await call(http, "POST", url, json=entry(id="a", author="claude-1", tags=["x"], **{"in-reply-to": "root"}))
    await call(http, "POST", url, json=entry(id="b", author="codex-1", tags=["x", "y"], **{"in-reply-to": "a"}))
    await call(http, "POST", url, json=entry(id="f", author="codex-1", **{"fork-of": "a"}))
    status, body = await call(http, "GET", url, params={"tag": "x,y"})
    assert (status, [e["evidence/id"] for e in body["entries"]], body["count"]) == (200, ["b"], 1)
    status, body = await call(http, "GET", url, params={"limit": "2", "author": "codex-1"})
    assert [e["evidence/id"] for e in body["entries"]] == ["f", "b"] and "next_cursor" not in body
    status, page1 = await call(http, "GET", url, params={"limit": "3"})
    status, page2 = await call(http, "GET", url, params={"limit": "3", "cursor": page1["next_cursor"]})
    assert len(page1["entries"]) == 3 and [e["evidence/id"] for e in page2["entries"]] == ["root"]
    assert (await call(http, "GET", url + "/count", params={"author": "codex-1"}))[1] == {"ok": True, "count": 2}
    status, body = await call(http, "GET", url + "/b/chain")
    assert [e["evidence/id"] for e in body["chain"]] == ["root", "a", "b"] and body["evidence-id"] == "b"
    status, body = await call(http, "GET", url + "/f/thread")
    assert body["root"] == "root" and body["forks"] == {"f": ["f"]}
    assert body["participants"] == ["joe", "claude-1", "codex-1"] and body["status"] == "open"
    assert (await call(http, "GET", url + "/b"))[1]["entry"]["evidence/id"] == "b"
    status, body = await call(http, "GET", url + "/nope")
    assert (status, body) == (404, {"ok": False, "err": "evidence-not-found", "code": "evidence-not-found",
                                    "message": "no evidence entry 'nope'", "evidence-id": "nope"})  # fmt: skip
    for params in ({"type": "gossip"}, {"since": "yesterday"}, {"limit": "zero"}, {"colour": "red"}, {"cursor": "!!"}):
        status, body = await call(http, "GET", url, params=params)
        assert (status, body["err"]) == (400, "invalid-query"), params


async def test_sse_stream_sends_new_entries_and_resumes_after_last_event_id(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    url = base_url(daemon) + "/api/alpha/evidence"
    for n in range(3):
        await call(http, "POST", url, json=entry(id=f"old-{n}"))
    async with http.get(url + "/stream", params={"author": "joe"}, headers={"Last-Event-ID": "1"}) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        await call(http, "POST", url, json=entry(id="new-0"))
        await call(http, "POST", url, json=entry(id="other", author="amy"))
        await call(http, "POST", url, json=entry(id="new-1"))
        events: list[tuple[str, str]] = []
        current: dict[str, str] = {}
        while len(events) < 4:
            line = (await asyncio.wait_for(stream.content.readline(), 10)).decode().rstrip("\n")
            if not line:
                if "data" in current:
                    events.append((current["id"], json.loads(current["data"])["evidence/id"]))
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = value
    assert [e[1] for e in events] == ["old-1", "old-2", "new-0", "new-1"]
    assert [int(e[0]) for e in events] == [2, 3, 4, 6]


async def test_http_dispatch_coordination_and_action(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    url = base_url(daemon) + "/dispatch"
    async with connected(http, daemon, "codex-1") as codex:
        pending = asyncio.ensure_future(call(http, "POST", url, json={"msg_id": "h-1", "from": {"value": "joe", "type": "human"},
                                                                       "to": "codex-1", "payload": {"coordination": True, "ask": "status?"}}))  # fmt: skip
        pushed = await codex.push_of("message")
        assert pushed["from"] == {"value": "joe", "type": "human"}
        await codex.send({"type": "reply", "msg_id": "h-1", "payload": "green"})
        status, receipt = await pending
    assert status == 200 and receipt["route"] == "registry/invoke" and receipt["reply"] == "green"
    assert receipt["to"] == {"value": "codex-1", "type": "agent"}
    status, receipt = await call(http, "POST", url, json={"msg_id": "h-2", "from": "joe", "to": "claude-1",
                                                           "payload": {"actions": [{"tool": "grep", "args": ["a - b", "src"]}]}})  # fmt: skip
    assert status == 200 and receipt["route"] == "peripheral/run-chain" and receipt["peripheral_id"] == "explore"
    assert receipt["fruit"]["found"] == ["src/app.py"]
    status, body = await call(http, "POST", url, json={"msg_id": "h-3", "to": "claude-1", "payload": {"actions": [{"tool": "write", "args": ["x", "y"]}]}})
    assert (status, body["code"]) == (403, "tool-not-allowed")
    status, body = await call(http, "POST", url, json={"msg_id": "h-4", "to": "ghost", "payload": "hi"})
    assert (status, body["code"]) == (404, "agent-not-found")
    status, body = await call(http, "POST", url, json={"to": "claude-1"})
    assert (status, body["code"]) == (400, "invalid-message")
    status, body = await call(http, "POST", url, json={"msg_id": "h-5", "to": "claude-1", "payload": {"type": "page"}})
    assert (status, body["code"]) == (502, "agent-unreachable")


async def test_presence_sessions_peripherals_and_health(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    base = base_url(daemon)
    status, body = await call(http, "POST", base + "/presence", json={"agent_id": "claude-1", "metadata": {"ready": True}})
    assert status == 200 and body["agent_id"] == {"value": "claude-1", "type": "claude"} and body["transport"] == "http"
    assert (await call(http, "POST", base + "/presence", json={"agent_id": "claude-1"}))[1]["code"] == "not-ready"
    assert (await call(http, "POST", base + "/presence", json={"agent_id": "nope", "metadata": {"ready": True}}))[0] == 404
    async with connected(http, daemon, "claude-1") as agent:
        started = await agent.ask({"type": "peripheral_start"})
        status, health = await call(http, "GET", base + "/health")
        assert health["connections"]["ws"] == 1 and health["sessions"] == 1
        status, sessions = await call(http, "GET", base + "/api/alpha/sessions", params={"agent-id": "claude-1"})
        assert [s["session_id"] for s in sessions["sessions"]] == [started["session_id"]]
        status, one = await call(http, "GET", base + f"/session/{started['session_id']}")
        assert one["state"] == "active" and one["agent_id"] == "claude-1"
    assert (await call(http, "GET", base + "/session/sess-nope"))[1]["code"] == "session-not-found"
    status, body = await call(http, "GET", base + "/api/alpha/peripherals")
    assert {p["id"] for p in body["peripherals"]} >= {"explore", "edit", "mission-control"}
    status, doc = await call(http, "GET", base + "/openapi.json")
    assert doc["openapi"].startswith("3.") and "/dispatch" in doc["paths"]
    assert doc["paths"]["/dispatch"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("DispatchRequest")


async def test_admin_and_agent_tokens(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    admin = "admin-secret-123"
    digest = hashlib.sha256(admin.encode()).hexdigest()
    async with running_daemon(tmp_path, http__admin_token_sha256=digest) as daemon:
        base = base_url(daemon)
        assert (await call(http, "GET", base + "/health"))[0] == 200
        assert (await call(http, "GET", base + "/api/alpha/agents"))[1]["code"] == "unauthorized"
        bearer = {"Authorization": f"Bearer {admin}"}
        assert (await call(http, "GET", base + "/api/alpha/agents", headers=bearer))[0] == 200
        assert (await call(http, "GET", base + "/api/alpha/agents", headers={"Authorization": "Bearer nope"}))[0] == 401
        status, _ = await call(http, "POST", base + "/api/alpha/agents", headers=bearer, json={"agent_id": "bot-9", "type": "mock", "token": "bot-token-9"})
        assert status == 201
        agent = {"Authorization": "Bearer bot-token-9"}
        status, body = await call(http, "GET", base + "/api/alpha/agents", headers=agent)
        assert (status, body["code"]) == (403, "forbidden")
        status, body = await call(http, "POST", base + "/api/alpha/evidence", headers=agent, json=entry(author="bot-9"))
        assert status == 201
        status, body = await call(http, "POST", base + "/api/alpha/evidence", headers=agent, json=entry(author="joe"))
        assert (status, body["code"]) == (403, "forbidden")


async def test_limits_and_hostile_requests(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with running_daemon(tmp_path, http__max_body_bytes=2048) as daemon:
        base = base_url(daemon)
        status, body = await call(http, "POST", base + "/api/alpha/evidence", json=entry(body={"pad": "x" * 5000}))
        assert (status, body["code"]) == (413, "payload-too-large")
        status, body = await call(http, "POST", base + "/dispatch", data="msg_id=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert (status, body["code"]) == (400, "invalid-json")
        status, body = await call(http, "POST", base + "/dispatch", data=b"{not json", headers={"Content-Type": "application/json"})
        assert (status, body["code"]) == (400, "invalid-json")
        status, body = await call(http, "DELETE", base + "/health")
        assert status == 405
        # A slowloris client holds a half-sent request; others are still served.
        _, writer = await asyncio.open_connection("127.0.0.1", daemon.ports["http"])
        writer.write(b"POST /dispatch HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
        await writer.drain()
        for _ in range(3):
            assert (await call(http, "GET", base + "/health"))[0] == 200
        writer.close()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=15,
)


@pytest.mark.parametrize("path", ["/dispatch", "/presence", "/api/alpha/evidence", "/api/alpha/agents", "/api/alpha/chat"])
async def test_arbitrary_bodies_always_get_a_typed_answer(tmp_path: Path, path: str) -> None:
    """Hypothesis feeds arbitrary JSON and bytes; every answer is JSON with
    a code (or a success), never a 500."""
    async with running_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http:
        url = base_url(daemon) + path
        results: list[int] = []

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.one_of(JSON.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200)))
        def check(payload: bytes) -> None:
            status, body = asyncio.run_coroutine_threadsafe(
                call(http, "POST", url, data=payload, headers={"Content-Type": "application/json"}), loop
            ).result(timeout=30)
            assert status < 500, (payload, body)
            assert isinstance(body, dict)
            if status >= 400:
                assert body.get("code"), body
            results.append(status)

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(check)
        assert results


# ------------------------------------------------------------- issue 15: sessions survive, dispatch once


async def test_sessions_survive_a_restart_open_ones_as_interrupted(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with running_daemon(tmp_path) as daemon:
        async with connected(http, daemon, "claude-1") as agent:
            closed = await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"})
            await agent.ask({"type": "tool_action", "tool": "read", "args": ["README.md"]})
            assert (await agent.ask({"type": "peripheral_stop", "reason": "done"}))["type"] == "peripheral_stopped"
        async with connected(http, daemon, "claude-1") as agent:
            opened = await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"})
            assert (await agent.ask({"type": "tool_action", "tool": "read", "args": ["src/app.py"]}))["ok"] is True
            await daemon.stop()  # with the session open and its socket connected
    async with running_daemon(tmp_path) as daemon:  # a new daemon on the same folder
        base = base_url(daemon)
        status, body = await call(http, "GET", base + "/api/alpha/sessions")
        assert status == 200
        listed = {s["session_id"]: s for s in body["sessions"]}
        assert list(listed) == [opened["session_id"], closed["session_id"]]  # newest first
        status, still_open = await call(http, "GET", base + f"/session/{opened['session_id']}")
        assert status == 200 and still_open == listed[opened["session_id"]]
        assert still_open["state"] == "interrupted" and still_open["agent_id"] == "claude-1"
        assert still_open["steps"] == 1 and still_open["peripheral_id"] == "explore"
        status, done = await call(http, "GET", base + f"/session/{closed['session_id']}")
        assert (done["state"], done["reason"], done["steps"]) == ("stopped", "done", 1)
        assert done["fruit"]["found"] == ["README.md"]
        status, body = await call(http, "GET", base + "/session/sess-nope")
        assert (status, body["code"]) == (404, "session-not-found")
        status, body = await call(http, "GET", base + "/api/alpha/sessions", params={"limit": "1"})
        assert [s["session_id"] for s in body["sessions"]] == [opened["session_id"]]
        status, body = await call(http, "GET", base + "/api/alpha/sessions", params={"limit": "0"})
        assert (status, body["code"]) == (400, "invalid-query")


async def test_a_repeated_msg_id_returns_the_first_receipt_and_runs_nothing(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    base = base_url(daemon)
    url = base + "/dispatch"
    message = {"msg_id": "once-1", "from": "joe", "to": "claude-1",
               "payload": {"actions": [{"tool": "read", "args": ["README.md"]}]}}  # fmt: skip
    status, first = await call(http, "POST", url, json=message)
    assert status == 200 and first["route"] == "peripheral/run-chain"
    status, again = await call(http, "POST", url, json=message)
    assert status == 200 and again == first  # the same receipt: same session, same time
    status, sessions = await call(http, "GET", base + "/api/alpha/sessions", params={"agent-id": "claude-1"})
    assert [s["session_id"] for s in sessions["sessions"]] == [first["session_id"]]  # one session ran
    status, records = await call(http, "GET", base + "/api/alpha/evidence", params={"tag": "dispatch"})
    assert [e["evidence/body"]["msg_id"] for e in records["entries"]] == ["once-1"]  # one dispatch record

    status, other = await call(http, "POST", url, json={**message, "msg_id": "once-2"})
    assert status == 200 and other["session_id"] != first["session_id"]  # a new msg_id runs again
    status, body = await call(http, "POST", url, json={**message, "payload": {"actions": []}})
    assert (status, body["code"]) == (409, "duplicate-msg-id")  # same msg_id, another message
    assert body["context"] == {"msg_id": "once-1"}

    async with connected(http, daemon, "claude-1") as agent:  # WS `message` frames alike
        frame = {"type": "message", "msg_id": "ws-once", "to": "claude-1",
                 "payload": {"actions": [{"tool": "read", "args": ["README.md"]}]}}  # fmt: skip
        receipt = await agent.ask(frame)
        assert receipt["type"] == "receipt" and receipt["session_id"]
        repeat = await agent.ask(frame)
        assert {k: v for k, v in repeat.items() if k != "req_id"} == {k: v for k, v in receipt.items() if k != "req_id"}
    status, sessions = await call(http, "GET", base + "/api/alpha/sessions", params={"agent-id": "claude-1"})
    assert len(sessions["sessions"]) == 3


async def test_a_repeat_while_the_first_runs_waits_for_it_and_gets_its_receipt(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    inbound = Inbound(msg_id="slow-1", sender="joe", to="codex-1", payload={"coordination": True, "ask": "status?"},
                      transport="http", sender_type="human")  # fmt: skip
    async with connected(http, daemon, "codex-1") as codex:
        first = asyncio.ensure_future(daemon.pipeline.dispatch(inbound))
        pushed = await codex.push_of("message")  # the first is delivered and waits for the reply
        repeat = asyncio.ensure_future(daemon.pipeline.dispatch(inbound))
        await asyncio.sleep(0)  # one turn of the loop: the repeat reaches the pipeline (no timing)
        assert not repeat.done()
        await codex.send({"type": "reply", "msg_id": pushed["msg_id"], "payload": "green"})
        one, two = await asyncio.gather(first, repeat)
        assert one is two and one.reply == "green"
        assert (await codex.ask({"type": "ping"}))["type"] == "pong"
        assert not [p for p in codex.pushes if p["type"] == "message"]  # delivered once


async def test_a_failed_first_dispatch_leaves_nothing_so_a_retry_runs(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    url = base_url(daemon) + "/dispatch"
    message = {"msg_id": "retry-1", "to": "codex-1", "payload": {"type": "page"}}
    status, body = await call(http, "POST", url, json=message)
    assert (status, body["code"]) == (502, "agent-unreachable")  # codex-1 is not connected
    async with connected(http, daemon, "codex-1") as codex:
        pending = asyncio.ensure_future(call(http, "POST", url, json=message))
        pushed = await codex.push_of("message")
        await codex.send({"type": "reply", "msg_id": pushed["msg_id"], "payload": "here"})
        status, receipt = await pending
    assert status == 200 and receipt["reply"] == "here"
