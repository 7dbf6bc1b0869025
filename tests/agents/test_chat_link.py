"""A question asked over HTTP chat gets a linked answer (issue 17,
"Conversations linked"), as an IRC question does: ``POST /api/alpha/chat``
records the line before it pushes it, the ``chat_message`` push carries the
entry's ``evidence_id``, and the runtime answers with ``chat.in_reply_to``
(and starts its session with ``request``), so the answer's entry and the
session's goal both reply to the question's. A line that cannot be recorded
is pushed to nobody and the route says ``store-unavailable``.

Real parts: the in-process daemon on real sockets, a real IRC user on the
embedded server (where the answer to her goes), the real runtime over
WebSocket driven by a scripted model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from futon.agents.drivers.script import ScriptDriver
from futon.evidence import EvidenceQuery
from futon.protocol.errors import StoreError
from tests.agents.conftest import entries, running_agent
from tests.support import until
from tests.transports.irc.kit import RawClient
from tests.transports.kit import base_url, connected, running_daemon

IRC = {"irc__server__enabled": True, "irc__server__port": 0}


async def post_chat(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with http.post(url + "/api/alpha/chat", json=body) as response:
        return response.status, await response.json()


async def test_an_http_question_gets_an_answer_and_a_session_that_reply_to_it(tmp_path: Path) -> None:
    driver = ScriptDriver([{"text": "it says hello"}])
    async with running_daemon(tmp_path, **IRC) as daemon, aiohttp.ClientSession() as http:
        alice = await RawClient.connect(daemon.ports["irc"])
        alice.auto_pong = True
        await alice.register("alice")
        try:
            async with running_agent(daemon, driver) as runtime:
                status, said = await post_chat(
                    http, base_url(daemon), {"to": "claude-1", "from": "alice", "text": "what is in the README?"}
                )
                assert (status, said["agents"]) == (202, ["claude-1"]), said
                answer = await alice.expect("PRIVMSG", "alice", timeout=30)  # the answer, privately
                await until(lambda: len(runtime.outcomes) == 1)
                assert runtime.outcomes[0].ok
        finally:
            await alice.close()
        assert (answer.source or "").startswith("claude-1!") and answer.params[1] == "it says hello"
        (asked,) = [e for e in await entries(daemon, type="forum-post", author="alice") if "README" in e["evidence/body"]["text"]]
        assert asked["evidence/body"]["speaker"] == "human" and asked["evidence/body"]["transport"] == "http"
        assert said["evidence_id"] == asked["evidence/id"]  # the route names the question's entry
        assert daemon.store is not None
        (goal,) = daemon.store.query(EvidenceQuery(claim_type="goal", author="claude-1", limit=10)).entries
        assert goal["evidence/in-reply-to"] == asked["evidence/id"]
        assert goal["evidence/body"]["request"] == asked["evidence/id"]
        (reply,) = await entries(daemon, type="forum-post", author="claude-1")
        assert reply["evidence/body"]["text"] == "it says hello"
        assert reply["evidence/in-reply-to"] == asked["evidence/id"]
        assert reply["evidence/subject"]["ref/id"] == asked["evidence/subject"]["ref/id"]  # one thread


async def test_every_chat_message_push_names_its_recorded_line_and_chat_can_reply_to_it(tmp_path: Path) -> None:
    async with (
        running_daemon(tmp_path) as daemon,
        aiohttp.ClientSession() as http,
        connected(http, daemon, "claude-1") as claude,
        connected(http, daemon, "codex-1") as codex,
    ):
        # From an HTTP caller, and from another agent's chat frame: both pushes name their entry.
        status, _ = await post_chat(http, base_url(daemon), {"to": "claude-1", "from": "joe", "text": "over http"})
        assert status == 202
        from_http = await claude.push_of("chat_message")
        assert from_http["text"] == "over http"
        assert daemon.store is not None
        stored = daemon.store.get(from_http["evidence_id"])
        assert stored["evidence/body"]["text"] == "over http"
        assert stored["evidence/author"] == "joe"

        await codex.send({"type": "chat", "to": "claude-1", "text": "over ws"})
        from_ws = await claude.push_of("chat_message")
        assert from_ws["text"] == "over ws" and from_ws["evidence_id"] != from_http["evidence_id"]
        assert daemon.store.get(from_ws["evidence_id"])["evidence/author"] == "codex-1"

        # chat.in_reply_to links the answer; an id the store does not hold is refused, nothing said.
        bad = await claude.ask({"type": "chat", "to": "codex-1", "text": "hm", "in_reply_to": "e-nope"})
        assert (bad["type"], bad["code"]) == ("error", "invalid-input"), bad
        await claude.send({"type": "chat", "to": "codex-1", "text": "answer", "in_reply_to": from_ws["evidence_id"]})
        got = await codex.push_of("chat_message")
        assert got["text"] == "answer"  # not "hm": the refused line reached nobody
        assert daemon.store.get(got["evidence_id"])["evidence/in-reply-to"] == from_ws["evidence_id"]


async def test_a_line_that_cannot_be_recorded_is_pushed_to_nobody(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        running_daemon(tmp_path) as daemon,
        aiohttp.ClientSession() as http,
        connected(http, daemon, "claude-1") as claude,
    ):
        store = daemon.store
        assert store is not None
        working = store.append

        async def failing(raw: Any) -> Any:
            raise StoreError("write failed: disk full")

        monkeypatch.setattr(store, "append", failing)
        status, body = await post_chat(http, base_url(daemon), {"to": "claude-1", "from": "joe", "text": "lost"})
        assert (status, body["code"]) == (503, "store-unavailable"), body
        assert "no agent was pushed it" in body["message"]
        monkeypatch.setattr(store, "append", working)
        status, _ = await post_chat(http, base_url(daemon), {"to": "claude-1", "from": "joe", "text": "kept"})
        assert status == 202
        first = await claude.push_of("chat_message")
        assert first["text"] == "kept"  # the unrecorded line never reached the agent
        assert store.get(first["evidence_id"])["evidence/body"]["text"] == "kept"
