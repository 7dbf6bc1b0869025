"""The session service: the one entry point through which every driver —
a WebSocket connection (and the MCP bridge and ``futon agent run``, which
ride one), ``/dispatch``, Tickle — starts, steps, hops and stops peripheral
sessions.

Contract of :class:`PeripheralRunner`:

- ``start`` → a live :class:`Session` (goal written); ``step`` / ``hop`` /
  ``say`` / ``stop`` take the session's id (so do ``check`` and
  ``record_item``, for native agents: judge an action without running it,
  record what the agent's own tools did); ``run_chain`` runs a scripted
  chain in one session and always stops it. Transports translate frames to
  these calls and hold nothing but ids; no other module calls a
  :class:`Session`'s own methods.
- A driver that holds one session at a time (a WS connection) takes a
  :class:`SessionSlot` (``runner.slot(agent_id)``): the slot refuses a second
  start (``peripheral-already-active``), answers ``no-active-peripheral``
  when empty, and ``close`` stops what it holds exactly once.
- Refusals are typed errors (``unknown-peripheral``, ``peripheral-not-permitted``,
  ``session-not-found``, ``session-stopped``, the dispatcher's codes).
- ``info`` / ``infos`` describe sessions for the HTTP routes: live ones from
  memory, all others from the evidence (history.py), so they survive a
  restart; a session the daemon stopped under is ``interrupted``.
- ``apply_settings`` takes a reload's new tools section and peripherals: the
  next start and action see them; a running session keeps the envelope it
  started (or hopped) with.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from futon.config.models import ToolsSection
from futon.evidence.store import EvidenceStore
from futon.peripherals.approval import Approver
from futon.peripherals.audit.specs import record_specs, spec_digest
from futon.peripherals.dispatch import Dispatcher, Envelope, PhaseGate
from futon.peripherals.history import (
    SessionInfo,
    info_from_goal,
    recorded_session,
    recorded_sessions,
)
from futon.peripherals.hop import check_hop
from futon.peripherals.native import NativeCheck
from futon.peripherals.session import FruitFn, HopResult, Session, StepResult
from futon.peripherals.spec import Peripheral, normalise_id
from futon.peripherals.tools import Messenger, ToolBackend
from futon.protocol.errors import FutonError, NotFound, PermissionDenied, ProtocolError

log = logging.getLogger("futon.peripherals")

KEEP_STOPPED = 10_000  # stopped sessions kept for GET /session/{id}


@dataclass(frozen=True)
class ChainStep:
    """One peripheral of a chain: its actions, and the exit condition used
    to hop from it to the next step's peripheral."""

    peripheral: str
    actions: list[dict[str, Any]] = field(default_factory=list)
    exit_condition: str | None = None


@dataclass(frozen=True)
class Stopped:
    """What a stop returns: where the session ended, why, and its fruit."""

    session_id: str
    peripheral_id: str
    reason: str
    fruit: dict[str, Any]


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
        approver: Approver | None = None,
    ) -> None:
        self.peripherals = peripherals
        self.spec_sha256 = spec_digest(peripherals)  # recorded by every goal and hop (issue 21)
        self.specs_author = "futon"  # who records the specs (the daemon sets its nick)
        self._specs_recorded: str | None = None  # the digest known to be on record
        # Decides approvals (issue 17); None: nobody can, so every action
        # that needs one is refused with approval-denied.
        self.approver = approver
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
        # Hears every start, hop and end (a team's session table, social/team_sessions.py).
        # Must not block or raise: it runs on the session's path.
        self.on_session: Callable[[Session], None] | None = None

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
        """A session this process holds (live, or stopped not long ago)."""
        session = self._sessions.get(session_id)
        if session is None:
            raise NotFound(f"no session {session_id!r}", code="session-not-found")
        return session

    def holds(self, session_id: str) -> bool:
        """Whether this process holds the session (live or stopped not long ago)."""
        return session_id in self._sessions

    def sessions(self, agent_id: str | None = None) -> list[Session]:
        """The sessions this process holds, newest first."""
        found = [s for s in reversed(self._sessions.values()) if agent_id is None or s.agent_id == agent_id]
        return found

    def info(self, session_id: str) -> SessionInfo:
        """One session, live or recorded (a session of an earlier run of the
        daemon included). Raises ``session-not-found``."""
        session = self._sessions.get(session_id)
        if session is not None:
            return session.info()
        recorded = recorded_session(self.store, session_id)
        if recorded is None:
            raise NotFound(f"no session {session_id!r}", code="session-not-found")
        return recorded

    def infos(self, agent_id: str | None = None, limit: int = 100) -> list[SessionInfo]:
        """The newest ``limit`` sessions (of ``agent_id``), newest first, as
        the evidence lists them; a live one is described from memory."""
        out: list[SessionInfo] = []
        for goal in recorded_sessions(self.store, agent_id, limit):
            live = self._sessions.get(str(goal.get("evidence/session-id")))
            out.append(live.info() if live is not None else info_from_goal(self.store, goal))
        return out

    # ------------------------------------------------------------- settings

    def apply_settings(self, tools: ToolsSection, peripherals: dict[str, Peripheral]) -> None:
        """A reload: the next start, hop and action see these (module doc)."""
        self.peripherals = peripherals
        self.spec_sha256 = spec_digest(peripherals)
        self.dispatcher.settings = tools

    def slot(self, agent_id: str, on_change: Callable[[Session | None], None] | None = None) -> SessionSlot:
        """A driver's hold on one session at a time (see :class:`SessionSlot`)."""
        return SessionSlot(self, agent_id, on_change)

    # ------------------------------------------------------------- sessions

    async def start(
        self,
        agent_id: str,
        peripheral_id: str,
        *,
        permitted: list[str] | None = None,
        workspace: Path | None = None,
        context: dict[str, Any] | None = None,
        request: str | None = None,
    ) -> Session:
        """``request``: the evidence id of the human's line this session
        answers (its goal entry replies to it); ``invalid-input`` when the
        store does not hold it."""
        if request is not None and not self.store.exists(request):
            raise ProtocolError(
                f"request names no evidence entry: {request!r}", code="invalid-input", context={"request": request}
            )
        peripheral = self.peripheral(normalise_id(peripheral_id))
        self.check_permitted(peripheral.id, permitted)
        await self.record_specs()
        session = Session(
            self, peripheral, agent_id, workspace or self.workspace, permitted=permitted, context=context
        )
        self._sessions[session.id] = session
        self._forget_old()
        try:
            await session.begin(request)
        except BaseException:  # no goal, no session (a goal written before a cancel: "interrupted")
            self._sessions.pop(session.id, None)
            raise
        self._changed(session)
        try:
            await session.approve_entry()  # approval: human — a human lets it in, or it ends here
        except FutonError as refused:
            await self._stop(session, "interrupted" if refused.code == "interrupted" else refused.code)
            raise
        return session

    def _live(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise NotFound(f"no live session {session_id!r}", code="session-not-found")
        return session

    async def step(self, session_id: str, tool: str, args: Any = None) -> StepResult:
        """One tool action inside the session's current envelope."""
        return await self._live(session_id).step(tool, args)

    async def check(self, session_id: str, check: NativeCheck) -> tuple[str, str]:
        """Judge a native action (``tool_check``) by the admission ``step``
        uses, running nothing: ``(admitting tool, step evidence id)``."""
        return await self._live(session_id).check(check)

    async def record_item(self, session_id: str, kind: str, body: Any) -> str:
        """Record a native item (``native_item``); its evidence id."""
        return await self._live(session_id).record_item(kind, body)

    async def hop(
        self,
        session_id: str,
        to: str,
        exit_condition: str,
        reason: str = "",
        context: dict[str, Any] | None = None,
    ) -> HopResult:
        """Move the session to another peripheral (its exit and the
        target's entry allow it)."""
        session = self._live(session_id)
        await self.record_specs()  # the hop records the digest of the specs in force
        hopped = await session.hop(to, exit_condition, reason, context)
        self._changed(session)
        return hopped

    async def record_specs(self) -> None:
        """Make sure the specs in force are on record before a goal or hop
        names their digest (the audit replays with them): one look-up per
        version, an entry only when the newest record differs."""
        if self._specs_recorded != self.spec_sha256:
            self._specs_recorded = await record_specs(self.store, self.peripherals, self.specs_author)

    async def say(self, session_id: str, to: str, text: str) -> None:
        """A chat message the agent sent while in this session."""
        await self._live(session_id).say(to, text)

    async def stop(self, session_id: str, reason: str = "client-requested") -> Stopped:
        """Stop once; every caller gets the same fruit (and the first reason)."""
        return await self._stop(self._live(session_id), reason)

    async def interrupt(self, session_id: str) -> Stopped:
        """A human stops the session at once (issue 17): a running step is
        cancelled (its process group killed) and returns ``interrupted``, a
        pending approval is withdrawn, and the session concludes with reason
        ``interrupted``. ``session-stopped`` for a session that has ended."""
        session = self._sessions.get(session_id)
        if session is None:
            if recorded_session(self.store, session_id) is not None:
                raise FutonError(f"session {session_id} has already ended", code="session-stopped")
            raise NotFound(f"no session {session_id!r}", code="session-not-found")
        if not session.active:
            raise FutonError(f"session {session_id} has already ended", code="session-stopped")
        return await self._stop(session, "interrupted")

    async def _stop(self, session: Session, reason: str) -> Stopped:
        fruit = await session.stop(reason)
        self._changed(session)
        return Stopped(session.id, session.peripheral.id, session.stop_reason or reason, fruit)

    def _changed(self, session: Session) -> None:
        if self.on_session is not None:
            self.on_session(session)

    def _forget_old(self) -> None:
        stopped = [sid for sid, s in self._sessions.items() if s.status == "stopped"]
        for sid in stopped[: max(0, len(stopped) - KEEP_STOPPED)]:
            del self._sessions[sid]

    async def stop_all(self, reason: str) -> None:
        await asyncio.gather(*(self._stop(s, reason) for s in list(self._sessions.values()) if s.status == "active"))

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
                    # The chain's context may cite the human request a user-request hop needs.
                    condition = previous.exit_condition or "user-request"
                    cited = {"request": context["request"]} if context and "request" in context else None
                    await self.hop(session.id, step.peripheral, condition, "chain", cited)
                for action in step.actions:
                    results.append(await self.step(session.id, action["tool"], action.get("args", [])))
        finally:
            stopped = await self._stop(session, reason)
        return ChainResult(session.id, stopped.peripheral_id, stopped.fruit, results)

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


class SessionSlot:
    """One driver's hold on at most one session at a time — a WebSocket
    connection's. Calls from one driver must not overlap (the WS transport
    runs its peripheral frames one at a time); ``on_change`` hears the
    session the slot holds after every start, hop and stop (None: empty), so
    the driver can show it (the registry's presence)."""

    def __init__(
        self, runner: PeripheralRunner, agent_id: str, on_change: Callable[[Session | None], None] | None = None
    ) -> None:
        self.runner = runner
        self.agent_id = agent_id
        self._on_change = on_change
        self._session: Session | None = None

    @property
    def session(self) -> Session | None:
        """The active session held, if any."""
        session = self._session
        return session if session is not None and session.active else None

    async def start(
        self,
        peripheral_id: str,
        *,
        permitted: list[str] | None = None,
        workspace: Path | None = None,
        context: dict[str, Any] | None = None,
        request: str | None = None,
    ) -> Session:
        held = self.session
        if held is not None:
            raise FutonError(
                f"session {held.id} ({held.peripheral.id}) is still active; stop it first",
                code="peripheral-already-active",
            )
        session = await self.runner.start(
            self.agent_id, peripheral_id, permitted=permitted, workspace=workspace, context=context, request=request
        )
        self._set(session)
        return session

    async def step(self, tool: str, args: Any = None) -> StepResult:
        return await self.runner.step(self._held().id, tool, args)

    async def check(self, check: NativeCheck) -> tuple[str, str]:
        return await self.runner.check(self._held().id, check)

    async def record_item(self, kind: str, body: Any) -> str:
        return await self.runner.record_item(self._held().id, kind, body)

    async def hop(
        self, to: str, exit_condition: str, reason: str = "", context: dict[str, Any] | None = None
    ) -> HopResult:
        session = self._held()
        hopped = await self.runner.hop(session.id, to, exit_condition, reason, context)
        self._changed(session)
        return hopped

    async def stop(self, reason: str = "client-requested") -> Stopped:
        session = self._held()
        try:
            return await self.runner.stop(session.id, reason)
        finally:
            self._set(None)

    async def say(self, to: str, text: str) -> None:
        """Recorded as a step when the held session is in ``chat``;
        otherwise nothing (chat outside a chat session is not a step)."""
        session = self.session
        if session is not None and session.peripheral.id == "chat":
            await self.runner.say(session.id, to, text)

    async def close(self, reason: str = "connection-closed") -> None:
        """The driver is gone: stop what the slot holds (once; a second call,
        or an empty slot, does nothing). A failure is logged, not raised."""
        session, self._session = self._session, None
        if session is None:
            return
        try:
            await self.runner._stop(session, reason)
        except FutonError as exc:
            log.warning("stopping %s on close: %s", session.id, exc)
        finally:
            self._changed(None)

    def _held(self) -> Session:
        session = self.session
        if session is None:
            raise FutonError("no active peripheral; send peripheral_start first", code="no-active-peripheral")
        return session

    def _set(self, session: Session | None) -> None:
        self._session = session
        self._changed(session)

    def _changed(self, session: Session | None) -> None:
        if self._on_change is not None:
            self._on_change(session)
