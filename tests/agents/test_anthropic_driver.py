"""The anthropic driver end to end: a real daemon, a real agent runtime over
WebSocket, and a local fake of the Messages API."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from futon.agents.drivers.anthropic import AnthropicDriver
from futon.daemon.app import Daemon
from tests.agents.conftest import FAST_RETRY, ask_by_chat, entries, running_agent
from tests.agents.fakes import Call, Fail, FakeAnthropic, Say


def driver_for(fake: FakeAnthropic) -> AnthropicDriver:
    return AnthropicDriver(
        "claude-test", api_key="test-key", base_url=fake.base_url, retry=FAST_RETRY
    )


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        block
        for m in body["messages"]
        if m["role"] == "user"
        for block in m["content"]
        if block.get("type") == "tool_result"
    ]


async def test_a_chat_becomes_a_turn_with_tool_use_and_tool_result_blocks(
    daemon: Daemon, http: aiohttp.ClientSession, fake_anthropic
) -> None:  # type: ignore[no-untyped-def]
    fake = await fake_anthropic(
        [Call.named("read", path="README.md"), Say("README.md says hello")]
    )
    async with running_agent(daemon, driver_for(fake)):
        answer = await ask_by_chat(http, daemon, "what does README.md say?")
    assert answer == "README.md says hello"
    assert not fake.problems
    first, second = fake.requests
    assert (
        fake.headers[0]["anthropic-version"] == "2023-06-01"
        and fake.headers[0]["x-api-key"] == "test-key"
    )
    assert (
        "stream" not in first and isinstance(first["system"], str) and "claude-1" in first["system"]
    )
    tools = {t["name"]: t for t in first["tools"]}
    assert set(tools) == {"read", "glob", "grep", "bash-readonly", "web-fetch", "evidence-search", "hop", "reply"}
    assert tools["read"]["input_schema"]["properties"]["path"]["type"] == "string"
    assert tools["read"]["input_schema"]["required"] == ["path"]
    assert tools["hop"]["input_schema"]["required"] == ["to", "exit_condition", "reason"]
    tool_use = second["messages"][1]["content"][-1]
    assert tool_use["type"] == "tool_use" and tool_use["input"] == {"path": "README.md"}
    (result,) = tool_results(second)
    assert result["tool_use_id"] == tool_use["id"] and "is_error" not in result
    assert "hello" in result["content"]


async def test_invented_arguments_and_refusals_are_fed_back_as_errors(
    daemon: Daemon, http: aiohttp.ClientSession, fake_anthropic
) -> None:  # type: ignore[no-untyped-def]
    """Two calls in one turn: both results go back in one user message."""
    fake = await fake_anthropic([
        [Call("read", {"file": "README.md"}), Call.tool("bash", "rm -rf /")],
        Say("I need args, and bash is not mine here"),
    ])  # fmt: skip
    async with running_agent(daemon, driver_for(fake)):
        answer = await ask_by_chat(http, daemon, "try things")
    assert answer == "I need args, and bash is not mine here"
    assert not fake.problems
    invented, refused = tool_results(fake.requests[1])
    assert (
        invented["is_error"] and json.loads(invented["content"])["error"]["code"] == "invalid-input"
    )
    assert (
        refused["is_error"]
        and json.loads(refused["content"])["error"]["code"] == "tool-not-allowed"
    )


async def test_overload_errors_are_retried_then_end_the_turn_with_could_not(
    daemon: Daemon, http: aiohttp.ClientSession, fake_anthropic
) -> None:  # type: ignore[no-untyped-def]
    fake = await fake_anthropic([Fail(529, message="Overloaded")], repeat_last=True)
    async with running_agent(daemon, driver_for(fake)):
        answer = await ask_by_chat(http, daemon, "hi")
    assert answer.startswith("[claude-1] could not get an answer from the model: HTTP 529")
    assert len(fake.requests) == FAST_RETRY.attempts
    assert await entries(daemon, claim_type="tension", author="claude-1")
