"""A peripheral session: ``start → step* → stop``, with hops in between.

A transport drives a session one action at a time. Contract:

- actions of one session run one at a time, in arrival order (a lock);
- every action is checked by the dispatcher before any backend code runs;
  a refusal raises the typed error and is written as a ``tension`` entry;
- a native agent's action (``check``, native.py) goes through the same
  admission as a step — ``ask`` approvals included — and runs nothing; it
  is written as a ``step`` with ``native: true``;
- a failed tool is data: ``StepResult(ok=False, result={"error", "code"})``;
- ``stop`` is idempotent and safe against a concurrent stop or close: the
  first call stops (cancelling a running step, which kills its processes),
  every call returns the same fruit;
- evidence: goal → steps/tensions/mode-transitions → conclusion, each entry
  replying to the previous one, subject and session-id = the session,
  author = the agent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from futon.evidence.model import format_at
from futon.evidence.store import EvidenceStore
from futon.peripherals import eager, native
from futon.peripherals.approval import ApprovalRequest, Approver
from futon.peripherals.args import ToolArgs
from futon.peripherals.dispatch import Admitted, Dispatcher, Envelope
from futon.peripherals.fruit import fruit_of_tests, parse_test_output, workspace_fingerprint
from futon.peripherals.history import SessionInfo, state_of
from futon.peripherals.hop import carry, check_facts, check_hop
from futon.peripherals.native import NativeCheck
from futon.peripherals.spec import Peripheral, normalise_id
from futon.peripherals.tools import Messenger, ToolBackend, ToolContext
from futon.protocol.errors import FutonError, PermissionDenied, ToolError

log = logging.getLogger("futon.peripherals")

EVIDENCE_CAP = 64 * 1024  # bytes of JSON kept inline for a step's args or result
SESSION_LOG_KEPT = 1000  # newest entry ids a session keeps for its session-log
NATIVE_TESTS_KEPT = 100  # admitted native test commands remembered per session


@dataclass(frozen=True)
class StepResult:
    tool: str
    ok: bool
    result: Any


@dataclass(frozen=True)
class HopResult:
    from_id: str
    to_id: str
    session_id: str
    context: dict[str, Any]
    tools: list[str]


@dataclass(frozen=True)
class FruitInput:
    """What a domain peripheral's fruit is computed from."""

    peripheral_id: str
    session_context: dict[str, Any]
    steps: int
    data_dir: Path | None


FruitFn = Callable[[FruitInput], dict[str, Any]]


class SessionHost(Protocol):
    """What a session needs of the runner that started it
    (:class:`futon.peripherals.runner.PeripheralRunner` is the one host).

    A protocol rather than an import: the runner imports this module to
    create sessions, so the reference runs one way only."""

    dispatcher: Dispatcher
    backend: ToolBackend
    store: EvidenceStore
    hidden: tuple[Path, ...]  # real paths no tool may touch or show
    data_dir: Path | None
    messenger: Messenger | None
    fruits: dict[str, FruitFn]  # peripheral id → its fruit (domain peripherals)
    approver: Approver | None  # who decides approvals; None: nobody can, so they are denied
    spec_sha256: str  # digest of the specs in force (audit/specs.py); goals and hops record it

    def peripheral(self, peripheral_id: str) -> Peripheral:
        """The peripheral ``peripheral_id``; ``NotFound`` when there is none."""
        ...

    def check_permitted(self, peripheral_id: str, permitted: list[str] | None) -> None:
        """Raise ``PermissionDenied`` unless ``permitted`` allows ``peripheral_id``."""
        ...


@dataclass
class SessionState:
    """What the session has done so far, as the fruit and hops need it."""

    found: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    test_runs: list[dict[str, Any]] = field(default_factory=list)
    git: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    named_files: set[Path] = field(default_factory=set)
    # The newest entries' ids (the session-log a hop carries); bounded, so a
    # long session does not grow without end — musn-log reads the whole log.
    evidence_ids: deque[str] = field(default_factory=lambda: deque(maxlen=SESSION_LOG_KEPT))
    steps: int = 0
    refusals: int = 0
    hops: list[dict[str, Any]] = field(default_factory=list)
    peripheral_steps: int = 0  # steps in the current peripheral


def _add(items: list[str], value: str) -> None:
    if value not in items:
        items.append(value)


class Session:
    def __init__(
        self,
        runner: SessionHost,
        peripheral: Peripheral,
        agent_id: str,
        workspace: Path,
        *,
        permitted: list[str] | None = None,
        context: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> None:
        self.id = session_id or f"sess-{uuid.uuid4()}"
        self.agent_id = agent_id
        self.peripheral = peripheral
        self.workspace = Path(os.path.realpath(workspace))
        self.permitted = permitted
        self.state = SessionState(context=dict(context or {}))
        self.status: Literal["active", "stopped"] = "active"
        self.started_at = _now()
        self._touched = time.time()  # formatted only when asked (every action sets it)
        self.stop_reason: str | None = None
        self.fruit: dict[str, Any] | None = None
        self._runner = runner
        self._dispatcher: Dispatcher = runner.dispatcher
        self._backend: ToolBackend = runner.backend
        self._store: EvidenceStore = runner.store
        self._lock = asyncio.Lock()
        self._running: asyncio.Future[Any] | None = None
        self._stopping = False
        self._stop_reason_pending: str | None = None  # the reason of a stop under way
        self._stop_task: asyncio.Task[dict[str, Any]] | None = None
        self._last_entry: str | None = None
        # Test commands a native check admitted (bash-test), newest last: a
        # native command item reporting one of them counts as a test run.
        self._native_tests: dict[str, None] = {}
        for path in self.state.context.get("target-files") or []:
            self._name_file(path)

    # ------------------------------------------------------------- lifecycle

    async def begin(self, request: str | None = None) -> None:
        """Write the goal entry (called once by the runner). ``request``: the
        evidence id of the human's line the session answers; the goal entry
        replies to it, so the chain from the answer leads back to the ask."""
        body: dict[str, Any] = {"peripheral": self.peripheral.id, "agent": self.agent_id, "context": self.state.context}
        body["spec-sha256"] = self._runner.spec_sha256  # the audit replays against these specs
        if request is not None:
            body["request"] = request
            self._last_entry = request  # the goal is the first entry: it replies to the request
        await self._write("coordination", "goal", body)

    @property
    def updated_at(self) -> str:
        """When the session last did something (ISO-8601 UTC, ms)."""
        return format_at(datetime.fromtimestamp(self._touched, UTC))

    @property
    def active(self) -> bool:
        return self.status == "active" and not self._stopping

    def info(self) -> SessionInfo:
        """This session as ``GET /session/{id}`` shows it (history.py)."""
        stopped = self.status == "stopped"
        return SessionInfo(
            session_id=self.id,
            agent_id=self.agent_id,
            peripheral_id=self.peripheral.id,
            state=state_of(stopped, self.stop_reason),
            started_at=self.started_at,
            at=self.updated_at,
            steps=self.state.steps,
            reason=self.stop_reason if stopped else None,
            fruit=self.fruit,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "session_id": self.id,
            "agent_id": self.agent_id,
            "peripheral_id": self.peripheral.id,
            "state": self.status,
            "at": self.updated_at,
            "steps": self.state.steps,
            "fruit": self.fruit,
        }

    async def step(self, tool: str, args: Any = None) -> StepResult:
        """Run one tool action inside the current envelope."""
        tool = normalise_id(tool) if isinstance(tool, str) else tool
        args = [] if args is None else args
        async with self._lock:
            self._ensure_active()
            (admitted,) = await self._admission(tool, args, lambda: (self.admit(tool, args),))
            # What the tests run against, so that a fail → fix → pass is
            # told apart from a flaky test (fruit_of_tests).
            seen = await asyncio.to_thread(workspace_fingerprint, self.workspace) if tool == "bash-test" else None
            ok, result = await self._run(admitted)
            runs = len(self.state.test_runs)
            self._record(admitted, ok, result, workspace=seen)
            body = {"tool": tool, "args": _capped(args), "ok": ok, "result": _capped(result)}
            # What the audit checks the step by: where each path resolved
            # (workspace-relative; kept when it differs from the path given —
            # a symlink, "./", an absolute path), a test run's outcome.
            resolved = [self._relative(path) for path in admitted.resolved]
            if resolved != admitted.args.paths():
                body["paths"] = resolved
            if len(self.state.test_runs) > runs:
                body["test_run"] = _test_outcome(self.state.test_runs[-1])
            await self._write("coordination", "step", body)
            return StepResult(tool, ok, result)

    def admit(self, tool: str, args: Any) -> Admitted:
        """Check an action against the current envelope, without running it."""
        envelope = Envelope(
            self.peripheral, self.workspace, self.id, self.state.named_files, self.state.context,
            hidden=self._runner.hidden,
        )
        return self._dispatcher.admit(envelope, tool, args)

    async def _admission(
        self, tool: str, args: Any, judge: Callable[[], tuple[Admitted, ...]], extra: dict[str, Any] | None = None
    ) -> tuple[Admitted, ...]:
        """The one admission of every action, run (``step``) or only judged
        (``check``): ``judge`` decides against the envelope, then a tool the
        peripheral lists in ``ask`` waits for a human. A refusal at either
        stage is written as a ``tension`` (``tool``/``args`` and ``extra`` in
        its body) and raised. Called with the session's lock held."""
        try:
            admitted = judge()
        except FutonError as refusal:
            # A native check's refusal names the tool that refused it (native.py).
            named = (refusal.context or {}).get("tool") if extra is not None else None
            await self._refused(named if isinstance(named, str) else tool, args, refusal, extra)
            raise
        asked = next((a.tool for a in admitted if a.tool in self.peripheral.spec.ask), None)
        if asked is not None:
            request = ApprovalRequest(self.agent_id, self.id, "tool", self.peripheral.id, tool=asked, args=_capped(args))
            try:
                await self._approved(request)
            except FutonError as refusal:
                await self._refused(asked, args, refusal, extra)
                raise
        return admitted

    async def check(self, check: NativeCheck) -> tuple[str, str]:
        """Judge an action the agent's own (native) tools are about to run,
        without running it (native.py): admitted → a ``step`` entry per
        admitted tool call (body ``native: true`` and ``source``), and
        ``(tool, evidence id of the last step)``; refused → a ``tension``
        and the typed error, as :meth:`step`."""
        async with self._lock:
            self._ensure_active()
            if check.tool is not None:
                check = replace(check, tool=normalise_id(check.tool))
            peripheral = self.peripheral
            tools = peripheral.tools
            extra: dict[str, Any] = {"native": True, "source": check.source}
            shown, raw = _shown(check)
            recorded: list[Any] = []  # the args each admitted call records

            def judged() -> tuple[Admitted, ...]:
                found = native.judge(check, self.admit, tools, self.workspace, self._runner.hidden, peripheral.read_only)
                recorded.extend(found.recorded_args)
                return found.admitted

            admitted = await self._admission(shown, raw, judged, extra)
            evidence_id = ""
            for one, args in zip(admitted, recorded, strict=True):
                self._note_native(one, args)
                if one.tool == "bash-test":
                    self._native_tests[str(args[0])] = None
                    while len(self._native_tests) > NATIVE_TESTS_KEPT:
                        del self._native_tests[next(iter(self._native_tests))]
                body: dict[str, Any] = {"tool": one.tool, "args": _capped(args), "native": True, "source": check.source}
                if one.resolved:
                    body["paths"] = [self._relative(path) for path in one.resolved]
                if check.kind == "command" and check.cwd not in (None, "", "."):
                    body["cwd"] = check.cwd
                evidence_id = await self._write("coordination", "step", body)
            return admitted[0].tool, evidence_id

    def _note_native(self, admitted: Admitted, args: Any) -> None:
        """What an admitted native action adds to the session's state: a
        step, the files it names, and a file change (the fruit's changes)."""
        state = self.state
        state.steps += 1
        state.peripheral_steps += 1
        self._touched = time.time()
        state.named_files.update(admitted.resolved)
        if admitted.tool in ("edit", "write") and admitted.resolved:
            path = self._relative(admitted.resolved[0])
            _add(state.changed, path)
            state.changes.append({"tool": admitted.tool, "file": path, "native": True})

    async def record_item(self, kind: str, body: Any) -> str:
        """Record what the native agent did (``native_item``) as an
        ``observation`` in the chain; its evidence id. ``invalid-input`` for
        a body that is not an object or is over 16 KiB. Reasoning is
        ephemeral: it replies to the chain's head without becoming it, and
        carries no session-id, so compaction can drop it and leave the
        session's chain whole (it is found by its subject, the session).
        A ``command`` item of a test command a native check admitted here,
        with its exit code and output, is a test run (the fruit, the hops'
        test facts; ``test_run`` in the body)."""
        entry_body = native.item_body(kind, body)
        async with self._lock:
            self._ensure_active()
            self._touched = time.time()
            if kind == "reasoning":
                return await self._write("coordination", "observation", entry_body, ephemeral=True)
            outcome = native.command_outcome(entry_body) if kind == "command" else None
            if outcome is not None and outcome[0] in self._native_tests:
                # A test command this session admitted, as it ran: the test
                # fruit and the hop facts see it like a bash-test run.
                command, code, output = outcome
                seen = await asyncio.to_thread(workspace_fingerprint, self.workspace)
                run = {"command": command, "exit": code, "summary": parse_test_output(output), "workspace": seen}
                self.state.test_runs.append(run)
                entry_body["test_run"] = _test_outcome(run)
            return await self._write("coordination", "observation", entry_body)

    async def hop(
        self, to: str, exit_condition: str, reason: str = "", context: dict[str, Any] | None = None
    ) -> HopResult:
        """Move the session to another peripheral (docs/peripherals.md, hops)."""
        async with self._lock:
            self._ensure_active()
            target = self._runner.peripheral(normalise_id(to))
            try:
                self._runner.check_permitted(target.id, self.permitted)
                check_hop(self.peripheral, target, exit_condition)
                check_facts(
                    self.peripheral, target, exit_condition, agent_id=self.agent_id,
                    test_result=str(fruit_of_tests(self.state.test_runs)["result"]),
                    context=context or {}, store=self._store,
                )  # fmt: skip
                if target.spec.approval == "human":
                    await self._approved(ApprovalRequest(self.agent_id, self.id, "enter", target.id, reason=reason))
            except FutonError as refusal:
                await self._refused("hop", {"to": target.id, "exit_condition": exit_condition}, refusal)
                raise
            carried = carry(target, self.derived_context(), context or {})
            self.state.context.update(carried)
            for path in carried.get("target-files") or []:
                self._name_file(path)
            source = self.peripheral
            self.peripheral = target
            self.state.peripheral_steps = 0
            hop = {"from": source.id, "to": target.id, "exit_condition": exit_condition, "reason": reason, "carried": carried}
            hop["spec-sha256"] = self._runner.spec_sha256  # the target's specs (a reload may have come between)
            if isinstance((context or {}).get("request"), str):
                hop["request"] = (context or {})["request"]  # the fact a user-request hop cites (audit)
            self.state.hops.append(hop)
            await self._write("mode-transition", "step", hop)
            return HopResult(source.id, target.id, self.id, carried, list(target.spec.tools))

    async def say(self, to: str, text: str) -> None:
        """A message the agent sent while in this session (chat's steps)."""
        async with self._lock:
            self._ensure_active()
            self.state.messages.append({"to": to, "text": text})
            if to.startswith("#"):
                _add(self.state.channels, to)
            self.state.steps += 1
            self.state.peripheral_steps += 1
            await self._write("coordination", "step", {"tool": "say", "to": to, "text": text[:4000]})

    async def approve_entry(self) -> None:
        """A start into a peripheral with ``approval: human``: wait for the
        decision (called by the runner after the goal is written). A denial
        is recorded as a ``tension`` and raised."""
        if self.peripheral.spec.approval != "human":
            return
        async with self._lock:
            try:
                await self._approved(ApprovalRequest(self.agent_id, self.id, "enter", self.peripheral.id, reason="start"))
            except FutonError as refusal:
                await self._refused("peripheral_start", {"peripheral": self.peripheral.id}, refusal)
                raise

    async def _approved(self, request: ApprovalRequest) -> None:
        """Wait for a human's approval of ``request``; a stop (or interrupt)
        cancels the wait. Raises ``approval-denied`` (or the stop's code)."""
        approver = self._runner.approver
        if approver is None:
            raise PermissionDenied(
                f"{request.what} needs a human's approval, and no approver is configured", code="approval-denied"
            )
        self._running = asyncio.ensure_future(approver.approve(request))
        try:
            await self._running
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._stopping and not (current and current.cancelling()):
                raise FutonError("the session stopped while waiting for approval", code=self._stopped_code()) from None
            raise
        finally:
            self._running = None

    def _stopped_code(self) -> str:
        return "interrupted" if self._stop_reason_pending == "interrupted" else "session-stopped"

    async def stop(self, reason: str = "client-requested") -> dict[str, Any]:
        """Stop once; every caller gets the same fruit. ``interrupted`` (a
        human stopped it) makes a running step's error code ``interrupted``."""
        if self._stop_task is None:
            self._stopping = True
            self._stop_reason_pending = reason
            if self._running is not None and not self._running.done():
                self._running.cancel()  # the step returns "stopped" and kills its processes
            self._stop_task = asyncio.ensure_future(self._finish(reason))
        return await asyncio.shield(self._stop_task)

    async def _finish(self, reason: str) -> dict[str, Any]:
        async with self._lock:
            fruit = await self._compute_fruit()
            self.fruit = fruit
            self.stop_reason = reason
            try:
                if self.peripheral.id == "reflect":
                    par_id = await self._write("reflection", "observation", fruit["par"])
                    fruit["par"]["id"] = par_id
                await self._write(
                    "coordination", "conclusion", {"peripheral": self.peripheral.id, "reason": reason, "fruit": fruit}
                )
            except FutonError as exc:  # a stop must complete even if evidence cannot be written
                log.error("session %s: could not write its conclusion: %s", self.id, exc)
            self.status = "stopped"
            self._touched = time.time()
            return fruit

    # ------------------------------------------------------------- internals

    async def _run(self, admitted: Admitted) -> tuple[bool, Any]:
        ctx = ToolContext(
            workspace=self.workspace,
            settings=self._dispatcher.settings,
            session_id=self.id,
            agent_id=self.agent_id,
            writable=admitted.writable,
            store=self._store,
            session_context=self.state.context,
            peripheral_id=self.peripheral.id,
            peripheral_config=self.peripheral.spec.config,
            data_dir=self._runner.data_dir,
            messenger=self._runner.messenger,
            hidden=self._runner.hidden,
            sandbox=self.peripheral.spec.sandbox,
            # The dispatcher's resolution, so the file tools do not repeat it.
            resolved=dict(zip(admitted.args.paths(), admitted.resolved, strict=True))
            if admitted.resolved
            else {},
        )
        try:
            # Begun here: a tool that never waits (a small read) ends without
            # a task; one that waits becomes the task a stop cancels.
            started = eager.start(self._backend.call(admitted.tool, admitted.args, ctx))
            if started.finished:
                return True, started.value
            self._running = asyncio.ensure_future(started)
            return True, await self._running
        except ToolError as exc:
            return False, {"error": exc.message, "code": exc.code}
        except PermissionDenied as exc:  # the backend's own re-check (defence in depth)
            return False, {"error": exc.message, "code": exc.code}
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._stopping and not (current and current.cancelling()):
                if self._stopped_code() == "interrupted":
                    return False, {"error": "a human interrupted this step", "code": "interrupted"}
                return False, {"error": "the session stopped while this step ran", "code": "session-stopped"}
            raise
        except Exception:
            log.exception("tool %s failed unexpectedly in session %s", admitted.tool, self.id)
            return False, {"error": f"internal error in tool {admitted.tool}", "code": "internal-error"}
        finally:
            self._running = None

    def _record(self, admitted: Admitted, ok: bool, result: Any, *, workspace: str | None = None) -> None:
        state = self.state
        state.steps += 1
        state.peripheral_steps += 1
        self._touched = time.time()
        tool, args = admitted.tool, admitted.args
        state.named_files.update(admitted.resolved)
        if not ok:
            return
        if tool == "read":
            _add(state.found, self._relative(admitted.resolved[0]))
        elif tool == "grep" and isinstance(result, list):
            for match in result:
                if isinstance(match, dict) and isinstance(match.get("file"), str):
                    _add(state.found, match["file"])
                    self._name_file(match["file"])
        elif tool == "glob" and isinstance(result, list):
            for path in result[:200]:
                if isinstance(path, str):
                    self._name_file(path)
        elif tool in ("edit", "write") and isinstance(result, dict):
            path = self._relative(admitted.resolved[0])
            _add(state.changed, path)
            state.changes.append({"tool": tool, **result, "file": path})
        elif tool == "bash-test" and isinstance(result, dict):
            summary = parse_test_output(str(result.get("out", "")) + "\n" + str(result.get("err", "")))
            state.test_runs.append(
                {"command": _command_of(args), "exit": result.get("exit"), "summary": summary, "workspace": workspace}
            )
        elif tool == "bash-git" and isinstance(result, dict):
            state.git.append({"command": _command_of(args), "exit": result.get("exit")})

    def _relative(self, resolved: Path) -> str:
        # String slicing, not Path.relative_to: this runs on every file action.
        text, base = str(resolved), str(self.workspace)
        prefix = base if base.endswith("/") else base + "/"
        if text.startswith(prefix):
            return text[len(prefix) :]
        return "." if text == base else text

    def _name_file(self, raw: str) -> None:
        try:
            real = os.path.realpath(self.workspace / raw)
        except OSError:  # a path component changed kind under realpath: name nothing
            return
        self.state.named_files.add(Path(real))

    def derived_context(self) -> dict[str, Any]:
        state = self.state
        derived: dict[str, Any] = dict(state.context)
        derived["session-id"] = self.id
        if state.found:
            derived["target-files"] = list(state.found)
        if state.changed:
            derived["changed-files"] = list(state.changed)
        if state.evidence_ids:
            derived["session-log"] = list(state.evidence_ids)
        if state.channels:
            derived["channel"] = state.channels[-1]
        return derived

    async def _compute_fruit(self) -> dict[str, Any]:
        state = self.state
        pid = self.peripheral.id
        if pid == "explore":
            found = state.found[:200]
            return {"found": found, "summary": f"{state.peripheral_steps} steps; found {len(state.found)} file(s)" + (f": {', '.join(found[:5])}" if found else "")}
        if pid == "edit":
            return {"changes": state.changes, "changed_files": state.changed, "ready_to_test": bool(state.changed)}
        if pid == "test":
            return fruit_of_tests(state.test_runs)
        if pid == "deploy":
            return await self._deploy_fruit()
        if pid == "reflect":
            return {"par": self._par()}
        if pid == "chat":
            return {"messages": state.messages[-100:], "channels": state.channels}
        domain = self._runner.fruits.get(pid)
        if domain is not None:
            return domain(FruitInput(pid, state.context, state.peripheral_steps, self._runner.data_dir))
        return {"steps_taken": state.steps, "context": {k: v for k, v in state.context.items() if k != "session-log"}}

    async def _deploy_fruit(self) -> dict[str, Any]:
        def succeeded(word: str) -> bool:
            return any(g["exit"] == 0 and g["command"].split()[1:2] == [word] for g in self.state.git)

        # Read from .git, never by running git here: the daemon must not run
        # a program the agent could have configured (.git/config is writable
        # to some peripherals); every git process runs in the sandbox.
        sha = await asyncio.to_thread(head_commit, self.workspace)
        return {"committed": succeeded("commit"), "pushed": succeeded("push"), "sha": sha}

    def _par(self) -> dict[str, Any]:
        """A post-action review made from what the session did."""
        state = self.state
        visited = [h["from"] for h in state.hops] + [self.peripheral.id]
        tests = fruit_of_tests(state.test_runs) if state.test_runs else None
        went_well = []
        if state.changed:
            went_well.append(f"changed {len(state.changed)} file(s)")
        if tests and tests["result"] == "pass":
            went_well.append(f"tests pass ({tests['test_count']})")
        to_improve = []
        if state.refusals:
            to_improve.append(f"{state.refusals} action(s) refused by the envelope")
        if tests and tests["result"] != "pass":
            to_improve.append(f"tests {tests['result']}")
        return {
            "session": self.id,
            "agent": self.agent_id,
            "peripherals": visited,
            "steps": state.steps,
            "hops": len(state.hops),
            "refusals": state.refusals,
            "files_found": state.found[:50],
            "files_changed": state.changed,
            "tests": tests,
            "went_well": went_well,
            "to_improve": to_improve,
        }

    async def _refused(self, tool: str, args: Any, refusal: FutonError, extra: dict[str, Any] | None = None) -> None:
        self.state.refusals += 1
        self._touched = time.time()
        await self._write(
            "coordination",
            "tension",
            {"tool": tool, "args": _capped(args), "code": refusal.code, "message": refusal.message, **(extra or {})},
        )

    async def _write(self, entry_type: str, claim: str, body: dict[str, Any], *, ephemeral: bool = False) -> str:
        """Append an entry to the session's chain; its id. ``ephemeral``:
        outside the chain (see :meth:`record_item`)."""
        # Canonical keys, stored through append_own: the daemon's own entry
        # is not validated through the entry model again on every action.
        entry: dict[str, Any] = {
            "evidence/subject": {"ref/type": "session", "ref/id": self.id},
            "evidence/type": entry_type,
            "evidence/claim-type": claim,
            "evidence/author": self.agent_id,
            "evidence/session-id": self.id,
            "evidence/tags": ["peripheral", self.peripheral.id],
            "evidence/body": body,
        }
        if self._last_entry is not None:
            entry["evidence/in-reply-to"] = self._last_entry
        if ephemeral:
            del entry["evidence/session-id"]
            entry["evidence/ephemeral?"] = True
            entry["evidence/tags"] = [*entry["evidence/tags"], "native"]
            return str((await self._store.append_own(entry))["evidence/id"])
        stored = await self._store.append_own(entry)
        self._last_entry = stored["evidence/id"]
        self.state.evidence_ids.append(self._last_entry)
        return self._last_entry

    def _ensure_active(self) -> None:
        if not self.active:
            raise FutonError(f"session {self.id} has stopped", code="session-stopped")


def _test_outcome(run: dict[str, Any]) -> dict[str, Any]:
    """A test run as the step's evidence keeps it (the audit's tests-passed)."""
    summary = run["summary"]
    return {"exit": run.get("exit"), "passed": summary.passed, "failed": summary.failed,
            "errors": summary.errors, "parsed": summary.parsed, "workspace": run.get("workspace")}  # fmt: skip


def _shown(check: NativeCheck) -> tuple[str, Any]:
    """The tool and args a refused native check's tension names before a
    tool is known (the refusal's own context names the tool that refused)."""
    if check.kind == "tool":
        return str(check.tool), check.args
    if check.kind == "file_change":
        return "file_change", list(check.paths)
    return "command", [check.command]


def _command_of(args: ToolArgs) -> str:
    return str(getattr(args, "command", ""))


def _capped(value: Any) -> Any:
    """Inline when small; otherwise size, sha256 and a preview."""
    if _surely_small(value, EVIDENCE_CAP):
        return value  # the common case, told without serialising the value
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    data = text.encode("utf-8")
    if len(data) <= EVIDENCE_CAP:
        return value
    return {"truncated": True, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "preview": text[:2000]}


def _surely_small(value: Any, budget: int) -> bool:
    """True when the JSON of ``value`` is certainly within ``budget`` bytes,
    judged from its shape (6 bytes per character bounds any escape or UTF-8
    sequence); False means "serialise it to know". Looks at 64 items at most."""
    stack = [value]
    for _ in range(64):
        if not stack:
            return True
        item = stack.pop()
        if isinstance(item, str):
            budget -= 6 * len(item) + 3  # quotes and a separator
        elif item is None or isinstance(item, bool):
            budget -= 6
        elif isinstance(item, int) and -(10**18) < item < 10**18:
            budget -= 21
        elif isinstance(item, float):
            budget -= 26
        elif isinstance(item, list | tuple):
            budget -= 2
            stack.extend(item)
        elif isinstance(item, dict):
            budget -= 2
            for key, child in item.items():
                if not isinstance(key, str):
                    return False
                budget -= 6 * len(key) + 4
                stack.append(child)
        else:
            return False
        if budget < 0:
            return False
    return not stack


def _now() -> str:
    return format_at(datetime.now(UTC))


_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def head_commit(workspace: Path) -> str | None:
    """The commit HEAD names in ``workspace/.git`` (loose or packed ref),
    read as files; None when there is none or it cannot be read."""
    git = workspace / ".git"
    try:
        head = (git / "HEAD").read_text(errors="replace").strip()
        if _SHA.match(head):
            return head
        if not head.startswith("ref: "):
            return None
        ref = head[5:].strip()
        if not ref.startswith("refs/") or ".." in ref.split("/"):
            return None
        loose = git / ref
        if loose.is_file() and not loose.is_symlink():
            value = loose.read_text(errors="replace").strip()
            return value if _SHA.match(value) else None
        for line in (git / "packed-refs").read_text(errors="replace").splitlines():
            parts = line.split(" ", 1)
            if len(parts) == 2 and parts[1] == ref and _SHA.match(parts[0]):
                return parts[0]
    except OSError:
        return None
    return None
