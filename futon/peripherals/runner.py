"""The peripheral runner: starts sessions, keeps them findable, and runs
scripted chains of peripherals (``run_chain``)."""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from futon.config.models import ToolsSection
from futon.evidence.store import EvidenceStore
from futon.peripherals.dispatch import Dispatcher, Envelope, PhaseGate
from futon.peripherals.hop import check_hop
from futon.peripherals.session import FruitFn, Session, StepResult
from futon.peripherals.spec import Peripheral, normalise_id
from futon.peripherals.tools import Messenger, ToolBackend
from futon.protocol.errors import FutonError, NotFound, PermissionDenied, ProtocolError

KEEP_STOPPED = 10_000  # stopped sessions kept for GET /session/{id}


@dataclass(frozen=True)
class ChainStep:
    """One peripheral of a chain: its actions, and the exit condition used
    to hop from it to the next step's peripheral."""

    peripheral: str
    actions: list[dict[str, Any]] = field(default_factory=list)
    exit_condition: str | None = None


@dataclass(frozen=True)
class ChainResult:
    session_id: str
    peripheral_id: str
    fruit: dict[str, Any]
    results: list[StepResult]


class PeripheralRunner:
    def __init__(
        self,
        peripherals: dict[str, Peripheral],
        backend: ToolBackend,
        store: EvidenceStore,
        settings: ToolsSection,
        workspace: Path,
        *,
        phase_gate: PhaseGate | None = None,
        data_dir: Path | None = None,
        messenger: Messenger | None = None,
        hidden: tuple[Path, ...] = (),
    ) -> None:
        self.peripherals = peripherals
        # Real paths (data dir, config files) no tool may touch or show.
        self.hidden = tuple(Path(os.path.realpath(p)) for p in hidden)
        self.data_dir = data_dir
        self.messenger = messenger
        self.backend = backend
        self.store = store
        self.workspace = workspace
        self.dispatcher = Dispatcher(settings, phase_gate)
        self.fruits: dict[str, FruitFn] = {}  # peripheral id → its fruit (domain peripherals)
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    # ------------------------------------------------------------- lookup

    def peripheral(self, peripheral_id: str) -> Peripheral:
        found = self.peripherals.get(peripheral_id)
        if found is None:
            raise NotFound(
                f"no peripheral {peripheral_id!r}; known: {', '.join(self.peripherals)}", code="unknown-peripheral"
            )
        return found

    @staticmethod
    def check_permitted(peripheral_id: str, permitted: list[str] | None) -> None:
        if permitted is not None and peripheral_id not in permitted:
            raise PermissionDenied(
                f"this agent may not start {peripheral_id!r} (permitted: {', '.join(permitted) or 'none'})",
                code="peripheral-not-permitted",
            )

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise NotFound(f"no session {session_id!r}", code="session-not-found")
        return session

    def sessions(self, agent_id: str | None = None) -> list[Session]:
        """Newest first."""
        found = [s for s in reversed(self._sessions.values()) if agent_id is None or s.agent_id == agent_id]
        return found

    # ------------------------------------------------------------- sessions

    async def start(
        self,
        agent_id: str,
        peripheral_id: str,
        *,
        permitted: list[str] | None = None,
        workspace: Path | None = None,
        context: dict[str, Any] | None = None,
    ) -> Session:
        peripheral = self.peripheral(normalise_id(peripheral_id))
        self.check_permitted(peripheral.id, permitted)
        session = Session(
            self, peripheral, agent_id, workspace or self.workspace, permitted=permitted, context=context
        )
        self._sessions[session.id] = session
        self._forget_old()
        await session.begin()
        return session

    def _forget_old(self) -> None:
        stopped = [sid for sid, s in self._sessions.items() if s.status == "stopped"]
        for sid in stopped[: max(0, len(stopped) - KEEP_STOPPED)]:
            del self._sessions[sid]

    async def stop_all(self, reason: str) -> None:
        await asyncio.gather(*(s.stop(reason) for s in list(self._sessions.values()) if s.status == "active"))

    # ------------------------------------------------------------- chains

    async def run_chain(
        self,
        agent_id: str,
        steps: list[ChainStep],
        *,
        permitted: list[str] | None = None,
        workspace: Path | None = None,
        context: dict[str, Any] | None = None,
        reason: str = "chain-complete",
    ) -> ChainResult:
        """Run peripherals in sequence within one session, hopping between
        them. Every action of every step is checked against its envelope
        first: if one is refused, nothing runs (the refusal is raised)."""
        if not steps:
            raise ProtocolError("a chain needs at least one step", code="invalid-input")
        try:
            self._precheck(agent_id, steps, permitted, workspace)
        except FutonError as refusal:
            await self.store.append(
                {
                    "subject": {"ref/type": "agent", "ref/id": agent_id},
                    "type": "coordination",
                    "claim-type": "tension",
                    "author": agent_id,
                    "tags": ["peripheral", "chain"],
                    "body": {"chain": [s.peripheral for s in steps], "code": refusal.code, "message": refusal.message},
                }
            )
            raise
        session = await self.start(
            agent_id, steps[0].peripheral, permitted=permitted, workspace=workspace, context=context
        )
        results: list[StepResult] = []
        try:
            for index, step in enumerate(steps):
                if index:
                    previous = steps[index - 1]
                    await session.hop(step.peripheral, previous.exit_condition or "user-request", reason="chain")
                for action in step.actions:
                    results.append(await session.step(action["tool"], action.get("args", [])))
        finally:
            fruit = await session.stop(reason)
        return ChainResult(session.id, session.peripheral.id, fruit, results)

    def _precheck(
        self, agent_id: str, steps: list[ChainStep], permitted: list[str] | None, workspace: Path | None
    ) -> None:
        real = Path(workspace or self.workspace).resolve()
        previous: Peripheral | None = None
        for index, step in enumerate(steps):
            peripheral = self.peripheral(normalise_id(step.peripheral))
            self.check_permitted(peripheral.id, permitted)
            if previous is not None:
                check_hop(previous, peripheral, steps[index - 1].exit_condition or "user-request")
            for action in step.actions:
                if not isinstance(action, dict) or not isinstance(action.get("tool"), str):
                    raise ProtocolError("each action must be an object with a string 'tool'", code="invalid-input")
                # session-log-only scopes depend on what the session has done;
                # they are checked for real when the step runs.
                if peripheral.scope_name != "session-log-only":
                    envelope = Envelope(peripheral, real, f"precheck-{agent_id}", hidden=self.hidden)
                    self.dispatcher.admit(envelope, normalise_id(action["tool"]), action.get("args", []), check_phase=False)
            previous = peripheral
