"""``codex-cli``: the real Codex CLI, one ``codex exec`` per turn, acting
only through futon's MCP server.

A preset of the ``command`` driver with ``--mcp`` (see
:mod:`futon.agents.drivers.command`). Each turn runs, prompt on stdin::

    codex exec --skip-git-repo-check --ephemeral --sandbox read-only
               --disable shell_tool --disable unified_exec
               --disable plugins -c analytics.enabled=false
               -c mcp_servers.futon.command=… -c mcp_servers.futon.args=[…]
               -c mcp_servers.futon.required=true
               -c mcp_servers.futon.default_tools_approval_mode="approve"
               [-c model_provider="futon-model"
                -c model_providers.futon-model.base_url="URL"
                -c model_providers.futon-model.wire_api="responses" …]
               [-m NAME] -

Flags checked against ``@openai/codex`` 0.169.0 (pinned in
``agents-cli/package-lock.json``) and its fake model server in
``tests/agents/test_real_clients.py``:

- ``--disable shell_tool --disable unified_exec`` take Codex's own shell
  (``exec_command``/``shell``, through which ``apply_patch`` also runs) out
  of the model's tools; ``--sandbox read-only`` is the second wall should a
  command run anyway;
- ``--disable plugins`` and ``analytics.enabled=false`` keep it off the
  network (without them 0.169 reaches github.com, api.github.com,
  chatgpt.com and ab.chatgpt.com at start);
- ``required = true`` makes the turn fail when ``futon mcp`` does not
  start (and keeps its tools in the first request);
  ``default_tools_approval_mode = "approve"`` lets ``exec`` call them
  without asking;
- ``--base-url`` becomes a model provider ``futon-model`` speaking the
  Responses API, its key read from ``OPENAI_API_KEY`` (``env_key``).

Codex keeps its state in ``CODEX_HOME`` (default ``~/.codex``); its sandbox
does not work when that home is under ``/tmp``.
"""

from __future__ import annotations

import json

from futon.agents.drivers.command import MCP_SERVER_NAME, CommandDriver, find_cli

PINNED_VERSION = "0.169.0"
KEY_ENV = "OPENAI_API_KEY"
PROVIDER = "futon-model"


def codex_argv(cli: str, model: str | None, base_url: str | None) -> list[str]:
    """The command line of one turn; ``{mcp_command_toml}`` and
    ``{mcp_args_toml}`` are filled per turn."""
    server = f"mcp_servers.{MCP_SERVER_NAME}"
    argv = [
        cli, "exec", "--skip-git-repo-check", "--ephemeral",
        "--sandbox", "read-only",
        "--disable", "shell_tool", "--disable", "unified_exec",
        "--disable", "plugins", "-c", "analytics.enabled=false",
        "-c", f"{server}.command={{mcp_command_toml}}",
        "-c", f"{server}.args={{mcp_args_toml}}",
        "-c", f"{server}.required=true",
        "-c", f'{server}.default_tools_approval_mode="approve"',
    ]  # fmt: skip
    if base_url:
        provider = f"model_providers.{PROVIDER}"
        argv += [
            "-c", f"model_provider={json.dumps(PROVIDER)}",
            "-c", f"{provider}.name={json.dumps(PROVIDER)}",
            "-c", f"{provider}.base_url={json.dumps(base_url.rstrip('/'))}",
            "-c", f'{provider}.wire_api="responses"',
            "-c", f"{provider}.env_key={json.dumps(KEY_ENV)}",
        ]  # fmt: skip
    if model:
        argv += ["-m", model]
    return [*argv, "-"]


class CodexCliDriver(CommandDriver):
    name = "codex-cli"

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
        binary = find_cli(cli, "codex", "Codex CLI")
        super().__init__(
            codex_argv(binary, model, base_url),
            timeout_s=timeout_s,
            cwd=cwd,
            mcp=True,
            env={KEY_ENV: api_key} if api_key else None,
        )
