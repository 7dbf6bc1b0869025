"""The tool backend: what runs once the dispatcher has let an action through.

A backend never decides *whether* a tool may run — the dispatcher did that
(tool set, phase, scope) before calling it. It only runs the tool on typed,
bounded arguments (:mod:`futon.peripherals.args`) inside a
:class:`ToolContext`, and either returns the tool's result (JSON-able, shapes
as docs/tools.md gives them) or raises ``ToolError`` for a failure that is
data for the agent (missing file, ambiguous edit…), which transports render
as ``tool_result`` with ``ok: false``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from futon.config.models import SandboxSpec, ToolsSection
from futon.evidence.store import EvidenceStore
from futon.peripherals.args import ToolArgs


class Messenger(Protocol):
    """How domain tools reach people and agents through the daemon (IRC,
    WebSocket). The daemon provides the real one; tests a recording one."""

    async def post(self, channel: str, text: str, *, author: str) -> None:
        """Say ``text`` in an IRC channel (mc-bulletin)."""

    async def ring(self, room: str, text: str, *, author: str) -> list[str]:
        """Broadcast to the agents in ``room``; return the agent ids rung (bell)."""

    async def ask(self, agent_id: str, text: str, *, author: str, timeout_s: float) -> Any:
        """Ask one agent and wait for its answer (whistle); raise
        ``FutonError(code="invoke-timeout")`` when it does not answer."""


@dataclass(frozen=True)
class ToolContext:
    """Where and under which limits a tool runs.

    ``workspace`` is a resolved real path. ``writable``: for ``bash`` in a
    ``paths`` scope, the only directories the command may write (None: the
    whole workspace). ``store`` serves ``musn-log`` and evidence-writing
    domain tools. ``session_context`` is the session's live context (the
    keys hops carry, e.g. ``problem-id``): a domain tool may record into it
    what later steps and the phase gate need. ``peripheral_id``,
    ``peripheral_config`` (its ``config:`` block in peripherals.yaml),
    ``data_dir`` and ``messenger`` serve the domain peripherals.
    ``hidden``: real paths no tool may read, write or show to a process
    (the data directory and the config files), even inside the workspace.
    ``sandbox``: the peripheral's sandbox widening (network, extra
    read-only folders, environment). ``resolved``: the real path the
    dispatcher resolved each path argument to (argument → real path), so
    a file tool does not resolve it again; it still opens it beneath the
    workspace descriptor, which is the wall."""

    workspace: Path
    settings: ToolsSection
    session_id: str
    agent_id: str
    writable: tuple[Path, ...] | None = None
    store: EvidenceStore | None = None
    session_context: dict[str, Any] = field(default_factory=dict)
    peripheral_id: str = ""
    peripheral_config: dict[str, Any] = field(default_factory=dict)
    data_dir: Path | None = None
    messenger: Messenger | None = None
    hidden: tuple[Path, ...] = ()
    sandbox: SandboxSpec = field(default_factory=SandboxSpec)
    resolved: dict[str, Path] = field(default_factory=dict)


class ToolBackend(ABC):
    """Runs tools. Implementations must be safe to call concurrently for
    different sessions, and must kill every process they started when the
    calling task is cancelled (a session stop cancels the running step)."""

    @abstractmethod
    async def call(self, tool: str, args: ToolArgs, ctx: ToolContext) -> Any:
        """Run ``tool``; return its result or raise ``ToolError``."""

    def handles(self, tool: str) -> bool:
        """Whether this backend implements ``tool``."""
        return True


# The contract only: the real backend is futon.peripherals.tools.backend,
# which imports this module, so this one never imports it back.
__all__ = ["Messenger", "ToolBackend", "ToolContext"]
