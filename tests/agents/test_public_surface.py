"""futon.agents exports exactly its documented public API (httpx-style)."""

from __future__ import annotations

import subprocess
import sys

import futon.agents
import futon.agents.drivers
from futon.agents import client, runtime
from futon.protocol import frames

PUBLIC = {
    # the client library
    "AgentClient", "Disconnected", "Push",
    # the frames it returns and yields
    "ReadyAck", "PeripheralStarted", "ToolResult", "Hopped", "PeripheralStopped", "Receipt",
    "EvidenceResult", "Subscribed", "IrcMessage", "ChatMessage", "PushedMessage", "EvidencePush",
    # the runtime
    "AgentRuntime", "Request", "TurnOutcome", "TurnSettings", "run_agent",
}  # fmt: skip

DRIVERS = {
    "DRIVERS", "AnthropicDriver", "ClaudeCodeDriver", "CodexAppServerDriver", "CodexCliDriver",
    "CommandDriver", "Driver",
    "DriverError", "ModelMessage", "ModelTurn",
    "OpenAIDriver", "RetryPolicy", "ScriptDriver", "ToolCall", "ToolSpec", "make_driver",
}  # fmt: skip


def test_all_is_the_public_api_and_every_name_resolves() -> None:
    assert set(futon.agents.__all__) == PUBLIC
    assert len(futon.agents.__all__) == len(PUBLIC)
    for name in PUBLIC:
        assert getattr(futon.agents, name) is not None
        assert name in dir(futon.agents)


def test_exports_are_the_very_objects_of_their_modules() -> None:
    assert futon.agents.AgentClient is client.AgentClient
    assert futon.agents.AgentRuntime is runtime.AgentRuntime
    assert futon.agents.ToolResult is frames.ToolResult  # one definition per wire shape


def test_disconnected_is_both_a_connection_error_and_a_futon_error() -> None:
    error = futon.agents.Disconnected("gone")
    assert isinstance(error, ConnectionError) and error.code == "agent-unreachable"


def test_drivers_package_exports_its_interface() -> None:
    assert set(futon.agents.drivers.__all__) == DRIVERS
    for name in DRIVERS:
        assert hasattr(futon.agents.drivers, name)


def test_the_registry_does_not_pull_the_client_in() -> None:
    code = "import sys, futon.social.registry; print('futon.agents.client' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
