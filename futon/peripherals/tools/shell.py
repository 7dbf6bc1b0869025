"""The shell tools: bash, bash-test, bash-git, bash-deploy, bash-readonly.

All run with the workspace as cwd through :func:`run_process` (timeout,
output caps, process group and pids limit, secret-free environment) and
return ``{exit, out, err, timed_out}``; a non-zero exit is data.

- ``bash`` runs ``bash -c command``; in a ``paths`` scope
  (``ctx.writable`` set) it runs in the writable-paths sandbox when bwrap
  works here, plain otherwise ("where the sandbox allows").
- ``bash-test`` / ``bash-git`` / ``bash-deploy`` exec the argv from
  :func:`split_command` with no shell in between; the dispatcher has already
  checked it against the allowlists.
- ``bash-readonly`` runs in the read-only sandbox or refuses.
"""

from __future__ import annotations

from futon.peripherals.args import ShellArgs
from futon.peripherals.scope import split_command
from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.limits import ProcessLimiter
from futon.peripherals.tools.process import run_process
from futon.peripherals.tools.sandbox import Sandbox


def timeout_for(args: ShellArgs, ctx: ToolContext) -> float:
    """Seconds the command may run: ``timeout_ms`` when the agent gave one,
    else ``tools.timeout_s``; never more than ``tools.max_timeout_s``."""
    settings = ctx.settings
    if "timeout_ms" in args.options.model_fields_set:
        wanted = args.options.timeout_ms / 1000
    else:
        wanted = settings.timeout_s
    return min(wanted, settings.max_timeout_s)


class ShellTools:
    """The shell tools over one process limiter and one sandbox."""

    def __init__(self, limiter: ProcessLimiter, sandbox: Sandbox) -> None:
        self.limiter = limiter
        self.sandbox = sandbox

    async def _run(self, argv: list[str], args: ShellArgs, ctx: ToolContext) -> dict[str, object]:
        result = await run_process(
            argv,
            cwd=ctx.workspace,
            timeout_s=timeout_for(args, ctx),
            cap=ctx.settings.output_cap_bytes,
            limiter=self.limiter,
        )
        return result.to_dict()

    async def bash(self, args: ShellArgs, ctx: ToolContext) -> dict[str, object]:
        if ctx.writable is not None and await self.sandbox.available():
            argv = self.sandbox.writable_argv(ctx.workspace, ctx.writable, args.command)
        else:
            argv = ["bash", "-c", args.command]
        return await self._run(argv, args, ctx)

    async def exec_argv(self, args: ShellArgs, ctx: ToolContext) -> dict[str, object]:
        """bash-test, bash-git, bash-deploy: argv, no shell."""
        return await self._run(split_command(args.command), args, ctx)

    async def bash_readonly(self, args: ShellArgs, ctx: ToolContext) -> dict[str, object]:
        await self.sandbox.require()
        return await self._run(self.sandbox.readonly_argv(ctx.workspace, args.command), args, ctx)
