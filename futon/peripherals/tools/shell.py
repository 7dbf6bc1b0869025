"""The shell tools: bash, bash-test, bash-git, bash-deploy, bash-readonly.

Every one runs its process through :func:`run_sandboxed`: in the sandbox
(:mod:`futon.config.sandbox`: the scope is all the process can
see), under :func:`run_process` (timeout, output caps, process group,
pids and memory limits, an environment of our choosing), with the
workspace as cwd; each returns ``{exit, out, err, timed_out}``, a non-zero
exit is data. Where the sandbox does not work, every one refuses with
``ToolError`` saying why; none ever runs unsandboxed.

- ``bash`` runs ``bash -c command`` with ``ctx.writable`` writable (None:
  the whole workspace; a ``paths`` scope: those folders; a read-only
  peripheral: nothing).
- ``bash-test`` / ``bash-git`` / ``bash-deploy`` exec the argv from
  :func:`split_command` with no shell in between (the dispatcher has
  already checked it against the allowlists), the workspace writable as
  for ``bash``. Of these only ``bash-deploy`` and a ``git push`` get the
  network a peripheral's sandbox may share; a networked push sees a vetted
  ``.git/config`` and no hooks (:mod:`futon.peripherals.tools.git_network`).
- ``bash-readonly`` runs ``bash -c command`` with nothing writable but its
  private /tmp.

A domain tool that needs a process calls :func:`run_sandboxed` too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from futon.config.sandbox import Sandbox, View
from futon.peripherals.args import ShellArgs
from futon.peripherals.scope import split_command
from futon.peripherals.tools import ToolContext, git_network
from futon.peripherals.tools.limits import ProcessLimiter
from futon.peripherals.tools.process import ShellResult, run_process
from futon.protocol.errors import ToolError


def timeout_for(args: ShellArgs, ctx: ToolContext) -> float:
    """Seconds the command may run: ``timeout_ms`` when the agent gave one,
    else ``tools.timeout_s``; never more than ``tools.max_timeout_s``."""
    settings = ctx.settings
    if "timeout_ms" in args.options.model_fields_set:
        wanted = args.options.timeout_ms / 1000
    else:
        wanted = settings.timeout_s
    return min(wanted, settings.max_timeout_s)


def view_of(
    ctx: ToolContext,
    writable: tuple[Path, ...] | None,
    *,
    hidden: tuple[Path, ...] = (),
    replaced: tuple[tuple[Path, Path], ...] = (),
) -> View:
    """The sandbox view of a tool call: the context's workspace, hidden
    paths (plus ``hidden``) and sandbox spec, with ``writable`` writable
    and ``replaced`` files shown in place of workspace files."""
    return View(
        workspace=ctx.workspace,
        writable=writable,
        hidden=(*ctx.hidden, *hidden),
        spec=ctx.sandbox,
        tmp_bytes=ctx.settings.memory_max_bytes,
        replaced=replaced,
    )


def offline(ctx: ToolContext) -> ToolContext:
    """``ctx`` with its sandbox's network taken away."""
    if not ctx.sandbox.network:
        return ctx
    return dataclasses.replace(ctx, sandbox=ctx.sandbox.model_copy(update={"network": False}))


async def run_sandboxed(
    command: Sequence[str],
    ctx: ToolContext,
    *,
    sandbox: Sandbox,
    limiter: ProcessLimiter,
    timeout_s: float,
    writable: tuple[Path, ...] | None,
    hidden: tuple[Path, ...] = (),
    replaced: tuple[tuple[Path, Path], ...] = (),
) -> ShellResult:
    """Run ``command`` (an argv; no shell added) in the sandbox of ``ctx``
    with ``writable`` writable, under every limit of :func:`run_process`.
    Raises ``ToolError`` when the sandbox does not work here or the command
    cannot be started."""
    await sandbox.require()
    if not command:
        raise ToolError("empty command")
    if not ctx.workspace.is_dir():
        raise ToolError(f"the workspace {str(ctx.workspace)!r} does not exist")
    view = view_of(ctx, writable, hidden=hidden, replaced=replaced)
    argv, fd = sandbox.launch(view, command)
    try:
        result = await run_process(
            argv,
            cwd=ctx.workspace,
            timeout_s=timeout_s,
            cap=ctx.settings.output_cap_bytes,
            limiter=limiter,
            env=sandbox.env(ctx.sandbox),
            pass_fds=(fd,),
            memory_max=ctx.settings.memory_max_bytes,
        )
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    _raise_if_not_started(result, command[0])
    return result


def _raise_if_not_started(result: ShellResult, program: str) -> None:
    """bwrap reports a command it could not exec on stderr with exit 1;
    that is a tool error (as a missing program was before the sandbox)."""
    prefix = f"bwrap: execvp {program}: "
    if result.exit != 1 or not result.err.startswith(prefix):
        return
    reason = result.err[len(prefix) :].strip()
    if reason == "No such file or directory":
        raise ToolError(f"command not found: {program}")
    raise ToolError(f"could not start {program}: {reason}")


class ShellTools:
    """The shell tools over one process limiter and one sandbox."""

    def __init__(self, limiter: ProcessLimiter, sandbox: Sandbox) -> None:
        self.limiter = limiter
        self.sandbox = sandbox

    async def _run(
        self,
        command: Sequence[str],
        args: ShellArgs,
        ctx: ToolContext,
        writable: tuple[Path, ...] | None,
    ) -> dict[str, object]:
        result = await run_sandboxed(
            command,
            ctx,
            sandbox=self.sandbox,
            limiter=self.limiter,
            timeout_s=timeout_for(args, ctx),
            writable=writable,
        )
        return result.to_dict()

    async def bash(self, args: ShellArgs, ctx: ToolContext) -> dict[str, object]:
        return await self._run(["bash", "-c", args.command], args, ctx, ctx.writable)

    async def exec_argv(self, args: ShellArgs, ctx: ToolContext) -> dict[str, object]:
        """bash-test, bash-deploy: argv, no shell."""
        return await self._run(split_command(args.command), args, ctx, ctx.writable)

    async def test(self, args: ShellArgs, ctx: ToolContext) -> dict[str, object]:
        """bash-test: the project's own code runs; it never needs the network."""
        return await self.exec_argv(args, offline(ctx))

    async def git(self, args: ShellArgs, ctx: ToolContext) -> dict[str, object]:
        """bash-git: argv, no shell; the network only for a push to a
        network remote, which then sees a vetted config and no hooks."""
        argv = split_command(args.command)
        if not ctx.sandbox.network or argv[1:2] == [] or argv[1] not in git_network.REMOTE_SUBCOMMANDS:
            return await self._run(argv, args, offline(ctx), ctx.writable)
        return await self._networked_push(argv, args, ctx)

    async def _networked_push(
        self, argv: list[str], args: ShellArgs, ctx: ToolContext
    ) -> dict[str, object]:
        git = git_network.git_dir(ctx.workspace)
        listed = await run_sandboxed(
            git_network.LIST_COMMAND,
            offline(ctx),
            sandbox=self.sandbox,
            limiter=self.limiter,
            timeout_s=timeout_for(args, ctx),
            writable=(),
        )
        if listed.exit != 0:
            raise ToolError(f"cannot read the repository's configuration: {listed.err.strip()[:300]}")
        pairs = git_network.parse_list(listed.out)
        if not git_network.needs_network(pairs):
            # A local remote: no network, and the repository as it is.
            return await self._run(argv, args, offline(ctx), ctx.writable)
        spec = ctx.sandbox.model_copy(
            update={"env": {**ctx.sandbox.env, "GIT_ALLOW_PROTOCOL": git_network.ALLOWED_PROTOCOLS}}
        )
        networked = dataclasses.replace(ctx, sandbox=spec)
        with tempfile.TemporaryDirectory(prefix="futon-git-") as folder:
            vetted = Path(folder, "config")
            vetted.write_text(git_network.vetted_config(pairs), encoding="utf-8")
            vetted.chmod(0o444)
            result = await run_sandboxed(
                argv,
                networked,
                sandbox=self.sandbox,
                limiter=self.limiter,
                timeout_s=timeout_for(args, ctx),
                writable=ctx.writable,
                hidden=(git_network.hooks_dir(git),),
                replaced=((vetted, git / "config"),),
            )
        return result.to_dict()

    async def bash_readonly(self, args: ShellArgs, ctx: ToolContext) -> dict[str, object]:
        return await self._run(["bash", "-c", args.command], args, ctx, ())
