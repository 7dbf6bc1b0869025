"""The openai driver end to end: a real daemon, a real agent runtime over
WebSocket, and a local fake of the Chat Completions API."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from futon.agents.drivers.openai import OpenAIDriver
from futon.daemon.app import Daemon
from tests.agents.conftest import FAST_RETRY, ask_by_chat, entries, running_agent
from tests.agents.fakes import Call, Fail, FakeOpenAI, Garbage, Say
from tests.transports.kit import connected

EXPLORE_TOOLS = {"read", "glob", "grep", "bash-readonly", "web-fetch", "evidence-search"}


def driver_for(fake: FakeOpenAI) -> OpenAIDriver:
    return OpenAIDriver("gpt-test", base_url=fake.base_url, api_key="sk-test", retry=FAST_RETRY)


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"]


async def test_a_chat_becomes_a_turn_that_reads_a_file_and_answers_the_sender(
    daemon: Daemon, http: aiohttp.ClientSession, fake_openai
) -> None:  # type: ignore[no-untyped-def]
    """Tools offered with named parameters, the call run as a tool_action,
    its result fed back under the call's id, the answer chatted back."""
    fake = await fake_openai([Call.named("read", path="README.md"), Say("README.md says hello")])
    async with running_agent(daemon, driver_for(fake)) as runtime:
        answer = await ask_by_chat(http, daemon, "what does README.md say?")
    assert answer == "README.md says hello"
    assert not fake.problems
    first, second = fake.requests
    assert first["stream"] is False
    assert fake.headers[0]["Authorization"] == "Bearer sk-test"
    tools = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert set(tools) == EXPLORE_TOOLS | {"hop", "reply"}
    read = tools["read"]["parameters"]
    assert read["type"] == "object" and read["required"] == ["path"]
    assert list(read["properties"]) == ["path", "offset", "limit"]
    assert read["properties"]["path"]["type"] == "string"
    assert all(p.get("description") for p in read["properties"].values())
    assert "codex-1 (chat): what does README.md say?" in first["messages"][-1]["content"]
    call_id = second["messages"][-2]["tool_calls"][0]["id"]
    assert second["messages"][-1]["tool_call_id"] == call_id
    (result,) = tool_results(second)
    assert result["ok"] is True and "hello" in json.dumps(result["result"])
    assert runtime.outcomes[-1].ok and runtime.outcomes[-1].steps == 2
    assert daemon.runner is not None
    assert [s.active for s in daemon.runner.sessions("claude-1")] == [
        False
    ]  # stopped after the turn


async def test_a_tool_outside_the_envelope_is_refused_and_the_turn_goes_on(
    daemon: Daemon, http: aiohttp.ClientSession, fake_openai
) -> None:  # type: ignore[no-untyped-def]
    fake = await fake_openai(
        [Call.tool("write", "x.txt", "hi"), Say("explore cannot write; nothing written")]
    )
    async with running_agent(daemon, driver_for(fake)):
        answer = await ask_by_chat(http, daemon, "write x.txt")
    assert answer == "explore cannot write; nothing written"
    (refusal,) = tool_results(fake.requests[1])
    assert refusal["error"]["code"] == "tool-not-allowed"
    assert not (daemon.config.workspace / "x.txt").exists()


async def test_invalid_json_arguments_are_fed_back_as_that_calls_error(
    daemon: Daemon, http: aiohttp.ClientSession, fake_openai
) -> None:  # type: ignore[no-untyped-def]
    fake = await fake_openai([
        Call("read", '{"args": ["README.md"'),  # cut off
        Call("read", {"file": "README.md"}),  # invented parameter
        Call.named("read", path="README.md"),
        Say("hello, after two tries"),
    ])  # fmt: skip
    async with running_agent(daemon, driver_for(fake)):
        answer = await ask_by_chat(http, daemon, "read README.md")
    assert answer == "hello, after two tries"
    results = tool_results(fake.requests[3])
    assert results[0]["error"]["code"] == "invalid-json"
    assert (
        results[1]["error"]["code"] == "invalid-input"
        and "unknown parameter 'file'" in results[1]["error"]["message"]
    )
    assert results[2]["ok"] is True


async def test_a_model_looping_on_one_call_is_stopped_by_the_step_budget(
    daemon: Daemon, http: aiohttp.ClientSession, fake_openai
) -> None:  # type: ignore[no-untyped-def]
    fake = await fake_openai([Call.tool("read", "README.md")], repeat_last=True)
    async with running_agent(daemon, driver_for(fake), max_steps=3):
        answer = await ask_by_chat(http, daemon, "read it again and again")
    assert answer.startswith("[claude-1] could not finish: the step budget ran out (3 model calls")
    assert len(fake.requests) == 3
    (tension,) = await entries(daemon, claim_type="tension", author="claude-1")
    assert tension["evidence/type"] == "coordination"
    assert tension["evidence/body"]["steps"] == 3
    assert tension["evidence/body"]["request"] == {
        "kind": "chat",
        "from": "codex-1",
        "channel": None,
        "msg_id": None,
    }
    assert tension["evidence/session-id"].startswith("sess-")


async def test_429_with_retry_after_is_honoured_then_the_turn_succeeds(
    daemon: Daemon, http: aiohttp.ClientSession, fake_openai
) -> None:  # type: ignore[no-untyped-def]
    fake = await fake_openai([Fail(429, retry_after="1"), Say("fine after waiting")])
    async with running_agent(daemon, driver_for(fake)):
        started = time.monotonic()
        answer = await ask_by_chat(http, daemon, "hi")
        elapsed = time.monotonic() - started
    assert answer == "fine after waiting"
    assert len(fake.requests) == 2 and elapsed >= 0.95  # FAST_RETRY alone would wait 0.05 s


async def test_server_errors_past_the_retries_end_the_turn_with_could_not(
    daemon: Daemon, http: aiohttp.ClientSession, fake_openai
) -> None:  # type: ignore[no-untyped-def]
    fake = await fake_openai([Fail(500, message="upstream exploded")], repeat_last=True)
    async with running_agent(daemon, driver_for(fake)):
        answer = await ask_by_chat(http, daemon, "hi")
    assert answer.startswith("[claude-1] could not get an answer from the model: HTTP 500")
    assert "upstream exploded" in answer
    assert len(fake.requests) == FAST_RETRY.attempts
    (tension,) = await entries(daemon, claim_type="tension", author="claude-1")
    assert "HTTP 500" in tension["evidence/body"]["reason"]


async def test_a_response_that_is_not_json_ends_the_turn_with_could_not(
    daemon: Daemon, http: aiohttp.ClientSession, fake_openai
) -> None:  # type: ignore[no-untyped-def]
    fake = await fake_openai([Garbage()])
    async with running_agent(daemon, driver_for(fake)):
        answer = await ask_by_chat(http, daemon, "hi")
    assert answer.startswith(
        "[claude-1] could not get an answer from the model: the model server answered with invalid JSON"
    )
    assert await entries(daemon, claim_type="tension", author="claude-1")


async def test_past_max_context_earlier_steps_are_replaced_by_the_models_summary(
    daemon: Daemon, http: aiohttp.ClientSession, fake_openai
) -> None:  # type: ignore[no-untyped-def]
    (daemon.config.workspace / "notes.md").write_text("a long note " * 200)
    fake = await fake_openai([
        Call.tool("read", "notes.md"),
        Call.tool("read", "src/app.py"),
        Say("SUMMARY: notes.md is one long note"),  # the extra call that summarises
        Say("both read"),
    ])  # fmt: skip
    async with running_agent(daemon, driver_for(fake), max_context=500):
        answer = await ask_by_chat(http, daemon, "read both files")
    assert answer == "both read"
    assert not fake.problems
    summary_request = fake.requests[2]
    assert "tools" not in summary_request
    assert "a long note" in summary_request["messages"][-1]["content"]
    last = fake.requests[3]["messages"]
    assert last[1]["role"] == "user" and last[1]["content"].startswith(
        "[Summary of the earlier conversation (turn 1)]\nSUMMARY: notes.md is one long note"
    )
    assert sum(1 for m in last if m["role"] == "tool") == 1  # only the latest step stays verbatim
    (entry,) = await entries(daemon, tag="compaction", author="claude-1")
    body = entry["evidence/body"]
    assert (entry["evidence/type"], entry["evidence/claim-type"]) == ("coordination", "observation")
    assert body["covered_turns"] == [1, 1] and body["method"] == "summary"
    assert body["chars_before"] > body["chars_after"]
    assert entry["evidence/session-id"].startswith("sess-")


async def test_a_coordination_message_is_answered_in_the_senders_receipt(
    daemon: Daemon, http: aiohttp.ClientSession, fake_openai
) -> None:  # type: ignore[no-untyped-def]
    """The payload's peripheral is the one started; the answer is a reply frame."""
    fake = await fake_openai([Say("edit is open")])
    async with running_agent(daemon, driver_for(fake)), connected(http, daemon, "codex-1") as asker:
        payload = {"coordination": True, "text": "open edit", "peripheral": "edit"}
        receipt = await asker.ask(
            {"type": "message", "msg_id": "m-1", "to": "claude-1", "payload": payload}
        )
    assert receipt["type"] == "receipt" and receipt["reply"] == {"text": "edit is open"}
    offered = {t["function"]["name"] for t in fake.requests[0]["tools"]}
    assert offered == {"read", "edit", "write", "bash", "hop", "reply"}
    assert "coordination message m-1" in fake.requests[0]["messages"][-1]["content"]
