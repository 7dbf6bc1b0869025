"""Model drivers for ``futon agent run``: one small interface
(:class:`~futon.agents.drivers.base.Driver`) and four implementations —
``openai``, ``anthropic``, ``command`` and ``script`` — and two presets of
``command`` for the real CLIs, ``claude-code`` and ``codex-cli``; and
``codex-app-server``, the real Codex with its own tools, every approval
answered by the active peripheral."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from futon.agents.drivers.anthropic import AnthropicDriver
from futon.agents.drivers.base import (
    Driver,
    DriverError,
    ModelMessage,
    ModelTurn,
    RetryPolicy,
    ToolCall,
    ToolSpec,
)
from futon.agents.drivers.claude_code import ClaudeCodeDriver
from futon.agents.drivers.codex_app_server import CodexAppServerDriver
from futon.agents.drivers.codex_cli import CodexCliDriver
from futon.agents.drivers.command import CommandDriver
from futon.agents.drivers.openai import OpenAIDriver
from futon.agents.drivers.script import ScriptDriver

DRIVERS = (
    "openai", "anthropic", "command", "script", "claude-code", "codex-cli", "codex-app-server",
)  # fmt: skip


def make_driver(
    name: str,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key_env: str | None = None,
    cmd: str | None = None,
    script: str | None = None,
    timeout_s: float = 300,
    env: Mapping[str, str] | None = None,
    cli: str | None = None,
    workspace: str | None = None,
    hidden: Sequence[str] = (),
) -> Driver:
    """The driver ``futon agent run --driver NAME`` asks for; ``ValueError``
    naming the missing option otherwise."""
    env = os.environ if env is None else env
    if name in ("openai", "anthropic"):
        if not model:
            raise ValueError(f"--model is required with --driver {name}")
        default_env = "OPENAI_API_KEY" if name == "openai" else "ANTHROPIC_API_KEY"
        key = env.get(api_key_env or default_env) or None
        if api_key_env and not key:
            raise ValueError(f"--api-key-env {api_key_env}: that environment variable is not set")
        if name == "openai":  # local servers need no key
            return OpenAIDriver(model, base_url=base_url, api_key=key)
        if not key:
            raise ValueError(
                "the anthropic driver needs a key: set ANTHROPIC_API_KEY or name a variable with --api-key-env"
            )
        return AnthropicDriver(model, api_key=key, base_url=base_url)
    if name == "command":
        if not cmd:
            raise ValueError("--cmd is required with --driver command (e.g. --cmd 'claude -p')")
        return CommandDriver(cmd, timeout_s=timeout_s)
    if name in ("claude-code", "codex-cli"):
        # The CLI reads its key itself; --api-key-env names another variable to pass on.
        default_env = "ANTHROPIC_API_KEY" if name == "claude-code" else "OPENAI_API_KEY"
        key = env.get(api_key_env or default_env) or None
        if api_key_env and not key:
            raise ValueError(f"--api-key-env {api_key_env}: that environment variable is not set")
        preset = ClaudeCodeDriver if name == "claude-code" else CodexCliDriver
        return preset(cli=cli, model=model, base_url=base_url, api_key=key, timeout_s=timeout_s)
    if name == "codex-app-server":
        key = env.get(api_key_env or "OPENAI_API_KEY") or None
        if api_key_env and not key:
            raise ValueError(f"--api-key-env {api_key_env}: that environment variable is not set")
        return CodexAppServerDriver(
            cli=cli, model=model, base_url=base_url, api_key=key, timeout_s=timeout_s,
            workspace=workspace, hidden=hidden,
        )  # fmt: skip
    if name == "script":
        if not script:
            raise ValueError("--script FILE is required with --driver script")
        return ScriptDriver.from_file(script)
    raise ValueError(f"unknown driver {name!r}; choose from {', '.join(DRIVERS)}")


__all__ = [
    "DRIVERS",
    "AnthropicDriver",
    "ClaudeCodeDriver",
    "CodexAppServerDriver",
    "CodexCliDriver",
    "CommandDriver",
    "Driver",
    "DriverError",
    "ModelMessage",
    "ModelTurn",
    "OpenAIDriver",
    "RetryPolicy",
    "ScriptDriver",
    "ToolCall",
    "ToolSpec",
    "make_driver",
]
