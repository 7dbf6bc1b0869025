"""``command``: a local CLI per turn (``--cmd 'claude -p'``,
``--cmd 'codex exec -'``).

The conversation is rendered as plain text and piped to the command's
stdin; its stdout is the answer. There are no tool calls through futon —
the command brings its own tools — so the runtime opens no peripheral
session for it.

With ``mcp=True`` (``futon agent run --driver command --mcp``) the command
gets futon's envelope as MCP tools instead: for each turn the driver serves
a relay socket onto the agent's own connection
(:class:`futon.agents.mcp_bridge.Relay` — the daemon allows one connection
per agent) and writes an MCP config naming ``futon mcp --relay … --start``.
These placeholders in the command's arguments are replaced per turn:

- ``{mcp_config}``: the path of a JSON file ``{"mcpServers": {"futon":
  {"command", "args"}}}`` (Claude Code's ``--mcp-config``);
- ``{mcp_command_toml}`` and ``{mcp_args_toml}``: the server's command and
  arguments as TOML values (Codex CLI's ``-c mcp_servers.futon.…``).

The path of the config is also in the command's environment as
``FUTON_MCP_CONFIG``. A peripheral session the command left open is
stopped when the turn ends; everything it did is the agent's evidence. A command that runs past ``timeout_s`` (or whose turn is
cancelled) is killed with its whole process group; a non-zero exit is a
:class:`DriverError` carrying the end of its stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from futon.agents.client import AgentClient
from futon.agents.drivers.base import (
    Driver,
    DriverError,
    ModelMessage,
    ModelTurn,
    ToolSpec,
    transcript,
)
from futon.agents.mcp_bridge import Relay

MCP_SERVER_NAME = "futon"


class CommandDriver(Driver):
    name = "command"
    uses_tools = False

    def __init__(
        self,
        command: str | list[str],
        *,
        timeout_s: float = 300,
        cwd: str | None = None,
        mcp: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise ValueError("the command is empty")
        self.timeout_s = timeout_s
        self.cwd = cwd
        self.mcp = mcp
        self.env = dict(env or {})  # added to the command's environment (presets)
        self.client: AgentClient | None = None

    def bind(self, client: AgentClient) -> None:
        """The agent's connection, which ``mcp`` turns relay onto."""
        self.client = client

    async def complete(self, messages: list[ModelMessage], tools: list[ToolSpec]) -> ModelTurn:
        if not self.mcp:
            return await self._run(self.argv, transcript(messages), self.env or None)
        if self.client is None:
            raise DriverError("--mcp needs the agent's connection (CommandDriver.bind)")
        with tempfile.TemporaryDirectory(prefix="futon-mcp-") as folder:
            relay_path = str(Path(folder) / "relay.sock")
            command = [sys.executable, "-m", "futon"]
            args = ["mcp", "--agent", self.client.agent_id, "--relay", relay_path, "--start"]
            config = Path(folder) / "mcp.json"
            server = {"command": command[0], "args": [*command[1:], *args]}
            config.write_text(json.dumps({"mcpServers": {MCP_SERVER_NAME: server}}, indent=2))
            values = {
                "{mcp_config}": str(config),
                "{mcp_command_toml}": json.dumps(server["command"]),
                "{mcp_args_toml}": json.dumps(server["args"]),
            }
            argv = [_fill(arg, values) for arg in self.argv]
            async with Relay(self.client, relay_path):
                return await self._run(
                    argv, transcript(messages), {**self.env, "FUTON_MCP_CONFIG": str(config)}
                )

    async def _run(self, argv: list[str], prompt: str, env: dict[str, str] | None) -> ModelTurn:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self.cwd,
                env={**os.environ, **env} if env else None,
                start_new_session=True,  # its own process group, killed as one
            )
        except OSError as exc:
            raise DriverError(f"cannot run {self.argv[0]!r}: {exc.strerror or exc}") from None
        try:
            out, err = await asyncio.wait_for(
                process.communicate(prompt.encode("utf-8")), self.timeout_s
            )
        except TimeoutError:
            await _kill(process)
            raise DriverError(
                f"{self.argv[0]!r} did not answer within {self.timeout_s:g} s"
            ) from None
        except BaseException:
            await _kill(process)
            raise
        if process.returncode != 0:
            tail = err.decode("utf-8", "replace").strip()[-300:]
            raise DriverError(
                f"{self.argv[0]!r} exited with {process.returncode}" + (f": {tail}" if tail else "")
            )
        return ModelTurn(text=out.decode("utf-8", "replace").strip())


def find_cli(cli: str | None, program: str, what: str) -> str:
    """The binary a CLI preset runs: ``cli`` when given, else ``program``
    on PATH; a usage error naming ``--cli PATH`` when there is none."""
    binary = cli or shutil.which(program)
    if not binary:
        raise ValueError(f"{program} is not on PATH; name the {what} binary with --cli PATH")
    return binary


def _fill(arg: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        arg = arg.replace(placeholder, value)
    return arg


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(process.wait(), 5)
