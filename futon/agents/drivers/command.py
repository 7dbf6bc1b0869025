"""``command``: a local CLI per turn (``--cmd 'claude -p'``,
``--cmd 'codex exec -'``).

The conversation is rendered as plain text and piped to the command's
stdin; its stdout is the answer. There are no tool calls through futon —
the command brings its own tools — so the runtime opens no peripheral
session for it. A command that runs past ``timeout_s`` (or whose turn is
cancelled) is killed with its whole process group; a non-zero exit is a
:class:`DriverError` carrying the end of its stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal

from futon.agents.drivers.base import (
    Driver,
    DriverError,
    ModelMessage,
    ModelTurn,
    ToolSpec,
    transcript,
)


class CommandDriver(Driver):
    name = "command"
    uses_tools = False

    def __init__(
        self, command: str | list[str], *, timeout_s: float = 300, cwd: str | None = None
    ) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise ValueError("the command is empty")
        self.timeout_s = timeout_s
        self.cwd = cwd

    async def complete(self, messages: list[ModelMessage], tools: list[ToolSpec]) -> ModelTurn:
        prompt = transcript(messages)
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self.cwd,
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


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(process.wait(), 5)
