"""The real tool backend: real files, real processes, real sockets.

:class:`RealBackend` maps a tool name to an implementation
(``async fn(args, ctx) -> result``). The core tools of docs/tools.md are
registered at construction; domain peripherals add theirs with
:meth:`RealBackend.register`. An unknown tool is a ``ToolError``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from futon.config.sandbox import Sandbox
from futon.peripherals.args import ToolArgs
from futon.peripherals.tools import ToolBackend, ToolContext
from futon.peripherals.tools import files as file_tools
from futon.peripherals.tools.evidence_search import evidence_search
from futon.peripherals.tools.limits import ProcessLimiter
from futon.peripherals.tools.musn import musn_log
from futon.peripherals.tools.shell import ShellTools
from futon.peripherals.tools.web import WebFetcher, web_fetch
from futon.protocol.errors import ToolError

ToolImpl = Callable[[Any, ToolContext], Awaitable[Any]]


class RealBackend(ToolBackend):
    """Runs the core tools for real.

    ``sandbox`` (default: bwrap on PATH) serves bash-readonly and ``bash``
    in a paths scope; ``limiter`` (default: pids cgroup of 256 per command,
    or its fallbacks) bounds the processes of every shell tool; ``fetcher``
    serves web-fetch. Safe for concurrent calls: no per-call state is kept
    here."""

    def __init__(
        self,
        *,
        sandbox: Sandbox | None = None,
        limiter: ProcessLimiter | None = None,
        fetcher: WebFetcher | None = None,
    ) -> None:
        self.sandbox = sandbox if sandbox is not None else Sandbox()
        self.limiter = limiter if limiter is not None else ProcessLimiter()
        self.fetcher = fetcher if fetcher is not None else WebFetcher()
        shell = ShellTools(self.limiter, self.sandbox)
        fetcher_ = self.fetcher

        async def fetch(args: Any, ctx: ToolContext) -> Any:
            return await web_fetch(fetcher_, args, ctx)

        self._tools: dict[str, ToolImpl] = {
            "read": file_tools.read,
            "glob": file_tools.glob,
            "grep": file_tools.grep,
            "edit": file_tools.edit,
            "write": file_tools.write,
            "bash": shell.bash,
            "bash-test": shell.test,
            "bash-git": shell.git,
            "bash-deploy": shell.exec_argv,
            "bash-readonly": shell.bash_readonly,
            "web-fetch": fetch,
            "musn-log": musn_log,
            "evidence-search": evidence_search,
        }

    def register(self, tool: str, impl: ToolImpl, *, replace: bool = False) -> None:
        """Make ``tool`` run ``impl(args, ctx)``. Registering a name twice
        is a mistake unless ``replace`` says it is meant."""
        if not tool:
            raise ValueError("a tool needs a name")
        if tool in self._tools and not replace:
            raise ValueError(f"tool {tool!r} is already registered")
        self._tools[tool] = impl

    def tools(self) -> frozenset[str]:
        """The names this backend runs."""
        return frozenset(self._tools)

    def handles(self, tool: str) -> bool:
        return tool in self._tools

    async def call(self, tool: str, args: ToolArgs, ctx: ToolContext) -> Any:
        impl = self._tools.get(tool)
        if impl is None:
            raise ToolError(f"no backend implements tool {tool!r}", context={"tool": tool})
        declared = type(args).tool
        if declared and declared != tool:
            # A programming error upstream; refusing beats running a tool on
            # arguments meant for another.
            raise ToolError(
                f"arguments for {declared!r} were given to {tool!r}", context={"tool": tool}
            )
        return await impl(args, ctx)
