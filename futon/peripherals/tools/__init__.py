"""The tool backend: what runs once the dispatcher has let an action through.

A backend never decides *whether* a tool may run — the dispatcher did that
(tool set, phase, scope) before calling it. It only runs the tool on typed,
bounded arguments (:mod:`futon.peripherals.args`) inside a
:class:`ToolContext`, and either returns the tool's result (JSON-able, shapes
as peripherals.md gives them) or raises ``ToolError`` for a failure that is
data for the agent (missing file, ambiguous edit…), which transports render
as ``tool_result`` with ``ok: false``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from futon.config.models import ToolsSection
from futon.peripherals.args import ToolArgs

if TYPE_CHECKING:
    from futon.evidence.store import EvidenceStore


@dataclass(frozen=True)
class ToolContext:
    """Where and under which limits a tool runs.

    ``workspace`` is a resolved real path. ``writable``: for ``bash`` in a
    ``paths`` scope, the only directories the command may write (None: the
    whole workspace). ``store`` serves ``musn-log``."""

    workspace: Path
    settings: ToolsSection
    session_id: str
    agent_id: str
    writable: tuple[Path, ...] | None = None
    store: EvidenceStore | None = None


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
