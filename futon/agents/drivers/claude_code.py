"""``claude-code``: the real Claude Code CLI, one ``claude -p`` per turn,
acting only through futon's MCP server.

A preset of the ``command`` driver with ``--mcp`` (see
:mod:`futon.agents.drivers.command`): each turn writes an MCP config naming
``futon mcp`` for this agent and runs, with the prompt on stdin::

    claude -p --bare --mcp-config CONFIG --strict-mcp-config --tools ""
           --allowedTools mcp__futon --permission-mode dontAsk
           --no-session-persistence [--model NAME]

Flags checked against ``@anthropic-ai/claude-code`` 2.1.328 (the version
pinned in ``agents-cli/package-lock.json``) and its fake model server in
``tests/agents/test_real_clients.py``:

- ``--tools ""`` leaves Claude Code none of its built-in tools (no Bash,
  Edit, Write, Read …): a request for one never runs;
- ``--strict-mcp-config`` ignores every MCP server but futon's, and
  ``--allowedTools mcp__futon`` lets futon's tools run without a prompt
  (``-p`` cannot ask) while ``--permission-mode dontAsk`` refuses anything
  else instead of asking;
- ``--bare`` skips hooks, plugins, CLAUDE.md discovery and keychain reads:
  the key is ``ANTHROPIC_API_KEY`` only.

The environment adds ``ANTHROPIC_BASE_URL`` (``--base-url``),
``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` (no telemetry, no update
checks) and ``ENABLE_TOOL_SEARCH=false`` (MCP tools are offered at once
instead of behind a ToolSearch tool).
"""

from __future__ import annotations

from futon.agents.drivers.command import MCP_SERVER_NAME, CommandDriver, find_cli

PINNED_VERSION = "2.1.328"
KEY_ENV = "ANTHROPIC_API_KEY"


def claude_code_argv(cli: str, model: str | None) -> list[str]:
    """The command line of one turn; ``{mcp_config}`` is filled per turn."""
    argv = [
        cli, "-p", "--bare",
        "--mcp-config", "{mcp_config}", "--strict-mcp-config",
        "--tools", "",
        "--allowedTools", f"mcp__{MCP_SERVER_NAME}",
        "--permission-mode", "dontAsk",
        "--no-session-persistence",
    ]  # fmt: skip
    if model:
        argv += ["--model", model]
    return argv


def claude_code_env(base_url: str | None, api_key: str | None) -> dict[str, str]:
    env = {
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "ENABLE_TOOL_SEARCH": "false",
    }
    if base_url:
        env["ANTHROPIC_BASE_URL"] = base_url.rstrip("/")
    if api_key:
        env[KEY_ENV] = api_key
    return env


class ClaudeCodeDriver(CommandDriver):
    name = "claude-code"

    def __init__(
        self,
        *,
        cli: str | None = None,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 300,
        cwd: str | None = None,
    ) -> None:
        binary = find_cli(cli, "claude", "Claude Code")
        super().__init__(
            claude_code_argv(binary, model),
            timeout_s=timeout_s,
            cwd=cwd,
            mcp=True,
            env=claude_code_env(base_url, api_key),
        )
