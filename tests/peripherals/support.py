"""Test kit for the peripheral engine: a backend that records what reached
it (the in-memory side of the ToolBackend interface), and a runner built on
the shipped peripherals."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from futon.config.loader import load_config
from futon.config.models import ToolsSection
from futon.evidence import EvidenceQuery, MemoryStore
from futon.evidence.store import EvidenceStore
from futon.peripherals.approval import ApprovalRequest
from futon.peripherals.args import ToolArgs
from futon.peripherals.runner import PeripheralRunner
from futon.peripherals.spec import Peripheral, load_peripherals
from futon.peripherals.tools import ToolBackend, ToolContext

REPO = Path(__file__).resolve().parents[2]


def shipped_peripherals() -> dict[str, Peripheral]:
    return load_peripherals(load_config(REPO / "futon" / "data" / "config" / "futon.yaml").peripherals)


@dataclass
class RecordingBackend(ToolBackend):
    """Records every call that reaches it; answers from ``replies`` (tool →
    result) or ``{"ran": tool}``. ``gate`` (when set) makes calls wait for
    it, to hold a step open; ``active``/``max_active`` count concurrency."""

    replies: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, ToolArgs, ToolContext]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    cancelled: int = 0
    active: int = 0
    max_active: int = 0

    async def call(self, tool: str, args: ToolArgs, ctx: ToolContext) -> Any:
        self.calls.append((tool, args, ctx))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            reply = self.replies.get(tool, {"ran": tool})
            if isinstance(reply, Exception):
                raise reply
            return reply
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1

    @property
    def tools(self) -> list[str]:
        return [tool for tool, _, _ in self.calls]


@dataclass
class HumanSaysYes:
    """An approver whose human approves every request at once, keeping
    what was asked (the engine's unit tests; approvals have their own)."""

    asked: list[ApprovalRequest] = field(default_factory=list)

    async def approve(self, request: ApprovalRequest) -> None:
        self.asked.append(request)


def make_runner(
    workspace: Path,
    backend: ToolBackend | None = None,
    store: EvidenceStore | None = None,
    **settings: Any,
) -> PeripheralRunner:
    return PeripheralRunner(
        shipped_peripherals(),
        backend or RecordingBackend(),
        store or MemoryStore(),
        ToolsSection(**settings),
        workspace,
        approver=HumanSaysYes(),
    )


async def human_asks(store: EvidenceStore, agent_id: str, text: str = "please", nick: str = "joe") -> str:
    """A human's line to ``agent_id`` in #futon, recorded as the IRC relay
    records it; its evidence id is what a ``user-request`` hop cites."""
    entry = await store.append(
        {
            "subject": {"ref/type": "thread", "ref/id": "irc/#futon"},
            "type": "forum-post",
            "claim-type": "observation",
            "author": nick,
            "body": {"text": f"{agent_id}: {text}", "channel": "#futon", "transport": "irc", "network": "futon",
                     "speaker": "human"},
        }
    )
    return str(entry["evidence/id"])


PASSING_RUN = {"exit": 0, "out": "1 passed in 0.01s", "err": ""}


def session_entries(store: EvidenceStore, session_id: str) -> list[dict[str, Any]]:
    """A session's evidence, oldest first."""
    page = store.query(EvidenceQuery(session_id=session_id, include_ephemeral=True, limit=1000))
    return list(reversed(page.entries))
