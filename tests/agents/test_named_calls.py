"""The runtime with named parameters: a model's call object goes to the
daemon unchecked, so a tool outside the envelope comes back as
``tool-not-allowed`` whatever its arguments, and bad parameters of an
offered tool as ``invalid-input`` naming the field — each fed back as that
call's result, nothing written."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from futon.agents.drivers.openai import OpenAIDriver
from futon.daemon.app import Daemon
from tests.agents.conftest import FAST_RETRY, ask_by_chat, running_agent
from tests.agents.fakes import Call, FakeOpenAI, Say


def driver_for(fake: FakeOpenAI) -> OpenAIDriver:
    return OpenAIDriver("gpt-test", base_url=fake.base_url, api_key="sk-test", retry=FAST_RETRY)


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"]


async def test_refusals_of_named_calls_are_typed_and_fed_back(
    daemon: Daemon, http: aiohttp.ClientSession, fake_openai
) -> None:  # type: ignore[no-untyped-def]
    workspace = daemon.config.workspace
    before = (workspace / "src" / "app.py").read_text()
    fake = await fake_openai([
        [
            Call.named("edit", path="src/app.py", old="a - b", new="a + b"),  # not in explore
            Call.named("edit", file=42),  # not in explore, and nonsense
            Call.named("frobnicate", path="README.md"),  # no such tool
            Call.named("read", path=42),
            Call.named("read"),
            Call.named("read", path="README.md", lines=3),
            Call.named("grep", pattern="hello", path="README.md", case_insensitive=True),
        ],
        Say("done"),
    ])  # fmt: skip
    async with running_agent(daemon, driver_for(fake)):
        answer = await ask_by_chat(http, daemon, "try things")
    assert answer == "done" and not fake.problems
    results = tool_results(fake.requests[1])
    codes = [r.get("error", {}).get("code") for r in results]
    assert codes == [
        "tool-not-allowed",
        "tool-not-allowed",
        "tool-not-allowed",
        "invalid-input",
        "invalid-input",
        "invalid-input",
        None,
    ]
    messages = [r["error"]["message"] for r in results[3:6]]
    assert "argument 'path'" in messages[0]
    assert "missing parameter 'path'" in messages[1]
    assert "unknown parameter 'lines'" in messages[2]
    assert results[6]["ok"] is True and "hello" in json.dumps(results[6]["result"])
    assert (workspace / "src" / "app.py").read_text() == before
