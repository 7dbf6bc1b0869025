"""Proof and mission: one cycle machine, two vocabularies.

The proof peripheral works a problem (ledger items, a canonical statement,
failed routes); the mission peripheral works a mission (obligations, a
mission spec, failed approaches, plus ``corpus-check`` and
``evidence-query``). Both run the phases of :mod:`cycle_phases` over a state
document kept by :mod:`cycle_state`.

Public surface:

- :func:`install` registers every cycle tool on a ``RealBackend`` and
  returns the :class:`~futon.peripherals.domain.cycle_phases.CyclePhaseGate`
  the dispatcher must be given;
- :func:`cycle_fruit` is what a proof or mission session returns on stop;
- the tools' argument models (their wire shapes) are in
  :mod:`futon.peripherals.domain.cycle_args`.

Every tool is ``[id, …]`` where the id names the problem or mission; tools
that change state load, change and save in one go (no await in between), so
a refused change (a ``ToolError``) saves nothing. Tools record into the
session context what the session works on: ``problem-id`` / ``mission-id``,
``cycle-id``, ``cycle-phase`` and ``cycles-completed``
(``["proof/P1/c-1", …]``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from futon.evidence.query import EvidenceQuery
from futon.peripherals.domain import cycle_corpus, cycle_dag
from futon.peripherals.domain.cycle_args import (
    CorpusCheckArgs,
    CycleAdvanceArgs,
    CycleBeginArgs,
    CycleGetArgs,
    EvidenceQueryArgs,
    GateCheckArgs,
    ItemChanges,
    StatusValidateArgs,
    _FailureArgs,
    _QueryArgs,
    _SaveArgs,
    _SpecUpdateArgs,
    _StateArgs,
    _UpsertArgs,
)
from futon.peripherals.domain.cycle_gates import report, run_gates
from futon.peripherals.domain.cycle_phases import (
    ActiveCycle,
    ActiveCycles,
    CyclePhaseGate,
    missing_outputs,
    next_phase,
)
from futon.peripherals.domain.cycle_state import (
    MISSION,
    PROOF,
    Cycle,
    CycleState,
    FailureRecord,
    Item,
    Kind,
    PhaseRecord,
    StateFiles,
    StatementVersion,
    StatusChange,
    kind_of,
    now,
    sha256_text,
    valid_id,
)
from futon.peripherals.domain.cycle_status import validate_transition
from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.protocol.errors import ToolError

# Parts of a state a save must bring back unchanged: their own tools keep them.
OWNED_BY_TOOLS = {
    "cycles": "cycle-begin and cycle-advance",
    "canonical": "canonical-update",
    "spec": "mission-spec-update",
    "failed_routes": "failed-route-add",
    "failed_approaches": "failed-approach-add",
}

NO_CORPUS = "no corpus configured (peripherals.yaml {peripheral}.config.corpus_dir)"


# ==================================================================== tools

ToolImpl = Callable[[Any, ToolContext], Awaitable[Any]]
KindTool = Callable[[Kind, Any, ToolContext], Any]


class CycleTools:
    """The cycle tools over one :class:`ActiveCycles` registry (shared with
    the phase gate). Methods are synchronous on purpose: a load-change-save
    never yields to another session half-way."""

    def __init__(self, active: ActiveCycles) -> None:
        self.active = active

    def implementations(self) -> dict[str, ToolImpl]:
        def fixed(kind: Kind, method: KindTool) -> ToolImpl:
            async def run(args: Any, ctx: ToolContext) -> Any:
                return method(kind, args, ctx)

            return run

        def shared(method: KindTool) -> ToolImpl:
            async def run(args: Any, ctx: ToolContext) -> Any:
                return method(kind_of(ctx.peripheral_id), args, ctx)

            return run

        async def status_validate(args: StatusValidateArgs, ctx: ToolContext) -> Any:
            return validate_transition(
                args.from_status or None, args.to_status, args.evidence_type
            ).as_dict()

        return {
            "proof-load": fixed(PROOF, self.load),
            "mission-load": fixed(MISSION, self.load),
            "proof-save": fixed(PROOF, self.save),
            "mission-save": fixed(MISSION, self.save),
            "ledger-query": fixed(PROOF, self.query),
            "obligation-query": fixed(MISSION, self.query),
            "ledger-upsert": fixed(PROOF, self.upsert),
            "obligation-upsert": fixed(MISSION, self.upsert),
            "canonical-get": fixed(PROOF, self.statement_get),
            "mission-spec-get": fixed(MISSION, self.statement_get),
            "canonical-update": fixed(PROOF, self.statement_update),
            "mission-spec-update": fixed(MISSION, self.statement_update),
            "failed-route-add": fixed(PROOF, self.failure_add),
            "failed-approach-add": fixed(MISSION, self.failure_add),
            "dag-check": shared(self.dag_check),
            "dag-impact": shared(self.dag_impact),
            "cycle-begin": shared(self.cycle_begin),
            "cycle-advance": shared(self.cycle_advance),
            "cycle-get": shared(self.cycle_get),
            "cycle-list": shared(self.cycle_list),
            "gate-check": shared(self.gate_check),
            "status-validate": status_validate,
            "corpus-check": corpus_check,
            "evidence-query": evidence_query,
        }

    # ------------------------------------------------------------ helpers

    def _session_cycle(self, kind: Kind, ctx: ToolContext) -> ActiveCycle | None:
        """The cycle this session works on, unless it is completed."""
        phase, active = self.active.phase(ctx.session_id, kind.name)
        return active if phase not in ("setup", "completed") else None

    def _working_on(self, kind: Kind, ctx: ToolContext, state_id: str) -> None:
        """Name ``state_id`` in the session context — unless the session is
        mid-cycle on another state, which stays the one it works on."""
        mine = self._session_cycle(kind, ctx)
        if mine is None or mine.state_id == state_id:
            ctx.session_context[kind.context_key] = state_id

    def _adopt(
        self, kind: Kind, ctx: ToolContext, files: StateFiles, state: CycleState, cycle: Cycle
    ) -> None:
        self.active.set(
            ctx.session_id,
            kind.name,
            ActiveCycle(state.id, cycle.id, files.path(kind, state.id), cycle.phase),
        )
        ctx.session_context[kind.context_key] = state.id
        ctx.session_context["cycle-id"] = cycle.id
        ctx.session_context["cycle-phase"] = cycle.phase

    def _cycle_id_for(self, kind: Kind, ctx: ToolContext, state_id: str) -> str | None:
        mine = self._session_cycle(kind, ctx)
        return mine.cycle_id if mine is not None and mine.state_id == state_id else None

    # ------------------------------------------------------------ state

    def load(self, kind: Kind, args: _StateArgs, ctx: ToolContext) -> dict[str, Any]:
        """The state document. A state with an open cycle is resumed by a
        session that works on no cycle yet (its phase becomes that cycle's)."""
        files = StateFiles(ctx.data_dir)
        state = files.load(kind, args.id)
        self._working_on(kind, ctx, args.id)
        open_cycle = state.open_cycle()
        if open_cycle is not None and self._session_cycle(kind, ctx) is None:
            self._adopt(kind, ctx, files, state, open_cycle)
        return state.model_dump(mode="json")

    def save(self, kind: Kind, args: _SaveArgs, ctx: ToolContext) -> dict[str, Any]:
        files = StateFiles(ctx.data_dir)
        state = files.load(kind, args.id)
        if args.state is not None:
            self._merge(kind, state, args.state, ctx)
        version = files.save(state)
        self._working_on(kind, ctx, args.id)
        return {"id": args.id, "version": version}

    def _merge(
        self, kind: Kind, state: CycleState, given: dict[str, Any], ctx: ToolContext
    ) -> None:
        """Apply a whole state given to ``*-save``: its items (through the
        upsert rules) and notes. What other tools own must come back as it
        was loaded."""
        fields = kind.model.model_fields
        unknown = sorted(set(given) - set(fields))
        if unknown:
            raise ToolError(f"state: unknown key(s) {', '.join(unknown)}; nothing saved")
        if given.get("id", state.id) != state.id or given.get("kind", kind.name) != kind.name:
            raise ToolError(
                f"state: this is {kind.name} {state.id!r}; the given state names another; nothing saved"
            )
        if "version" in given and given["version"] != state.version:
            raise ToolError(
                f"state: stale — it was loaded at version {given['version']!r}, the stored one is "
                f"{state.version}; load again and reapply your changes; nothing saved"
            )
        stored = state.model_dump(mode="json")
        items_key = next(name for name in fields if name in ("ledger", "obligations"))
        for key, owner in OWNED_BY_TOOLS.items():
            if key in given and given[key] != stored.get(key, given[key]):
                raise ToolError(
                    f"state: {key!r} is changed only by {owner}, not by a save; nothing saved"
                )
        items = given.get(items_key, stored[items_key])
        if not isinstance(items, dict):
            raise ToolError(f"state: {items_key!r} must be an object of items by id; nothing saved")
        removed = sorted(set(state.items) - set(items))
        if removed:
            raise ToolError(
                f"state: {kind.item_word}s cannot be removed ({', '.join(removed)}); mark them 'false' instead; nothing saved"
            )
        cycle_id = self._cycle_id_for(kind, ctx, state.id)
        editable = set(ItemChanges.model_fields)
        for item_id, body in items.items():
            if not isinstance(body, dict) or not valid_id(item_id):
                raise ToolError(
                    f"state: {items_key}[{item_id!r}] must be an object under a valid id; nothing saved"
                )
            try:
                changes = ItemChanges.model_validate(
                    {k: v for k, v in body.items() if k in editable}
                )
            except ValidationError as exc:
                error = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in error["loc"])
                raise ToolError(
                    f"state: {items_key}[{item_id!r}].{where}: {error['msg']}; nothing saved"
                ) from None
            apply_changes(kind, state, item_id, changes, ctx, cycle_id, check_dag=False)
        # The DAG is judged as a whole: edits may reverse an edge in two steps.
        looped = cycle_dag.cycle_nodes(state.graph())
        if looped:
            raise ToolError(
                f"state: depends_on would close a cycle through {', '.join(looped)}; nothing saved"
            )
        if "notes" in given:
            state.notes = given["notes"]

    def query(self, kind: Kind, args: _QueryArgs, ctx: ToolContext) -> list[dict[str, Any]]:
        state = StateFiles(ctx.data_dir).load(kind, args.id)
        wanted = args.options.status
        return [
            item.model_dump(mode="json")
            for item in state.items.values()
            if wanted in (None, item.status)
        ]

    def upsert(self, kind: Kind, args: _UpsertArgs, ctx: ToolContext) -> dict[str, Any]:
        files = StateFiles(ctx.data_dir)
        state = files.load(kind, args.id)
        item = apply_changes(
            kind, state, args.item_id, args.changes, ctx, self._cycle_id_for(kind, ctx, args.id)
        )
        files.save(state)
        self._working_on(kind, ctx, args.id)
        return item.model_dump(mode="json")

    def dag_check(self, kind: Kind, args: _StateArgs, ctx: ToolContext) -> dict[str, Any]:
        return cycle_dag.check(StateFiles(ctx.data_dir).load(kind, args.id).graph())

    def dag_impact(self, kind: Kind, args: _StateArgs, ctx: ToolContext) -> list[dict[str, Any]]:
        state = StateFiles(ctx.data_dir).load(kind, args.id)
        return cycle_dag.impact(state.graph(), {i: item.status for i, item in state.items.items()})

    def statement_get(self, kind: Kind, args: _StateArgs, ctx: ToolContext) -> dict[str, Any]:
        return StateFiles(ctx.data_dir).load(kind, args.id).statement.current()

    def statement_update(
        self, kind: Kind, args: _SpecUpdateArgs, ctx: ToolContext
    ) -> dict[str, Any]:
        files = StateFiles(ctx.data_dir)
        state = files.load(kind, args.id)
        statement = state.statement
        current = statement.current()
        if current["text"] == args.text:
            raise ToolError(
                f"the {kind.statement_word} is already this text (version {current['version']}); nothing saved"
            )
        version = StatementVersion(
            version=len(statement.versions) + 1,
            text=args.text,
            reason=args.reason,
            at=now(),
            sha256=sha256_text(args.text),
        )
        statement.versions.append(version)
        files.save(state)
        self._working_on(kind, ctx, args.id)
        return version.model_dump(mode="json")

    def failure_add(self, kind: Kind, args: _FailureArgs, ctx: ToolContext) -> dict[str, Any]:
        files = StateFiles(ctx.data_dir)
        state = files.load(kind, args.id)
        taken = {f.id for f in state.failures}
        number = len(state.failures) + 1
        while f"{kind.failure_prefix}-{number}" in taken:
            number += 1
        record = FailureRecord(
            id=f"{kind.failure_prefix}-{number}",
            **args.record.model_dump(),
            at=now(),
            cycle_id=self._cycle_id_for(kind, ctx, args.id),
            session_id=ctx.session_id,
        )
        state.failures.append(record)
        files.save(state)
        self._working_on(kind, ctx, args.id)
        return record.model_dump(mode="json")

    # ------------------------------------------------------------ cycles

    def cycle_begin(self, kind: Kind, args: CycleBeginArgs, ctx: ToolContext) -> dict[str, Any]:
        mine = self._session_cycle(kind, ctx)
        if mine is not None:
            raise ToolError(
                f"cycle {mine.cycle_id} of {mine.state_id!r} is still in phase {mine.phase!r}; "
                "this session finishes it before beginning another"
            )
        files = StateFiles(ctx.data_dir)
        state = files.load(kind, args.id)
        open_cycle = state.open_cycle()
        if open_cycle is not None:
            raise ToolError(
                f"cycle {open_cycle.id} is still in phase {open_cycle.phase!r}; "
                f"finish it first ({kind.name}-load {args.id} resumes it in this session)",
                context={"cycle_id": open_cycle.id, "phase": open_cycle.phase},
            )
        taken = {c.id for c in state.cycles}
        number = len(state.cycles) + 1
        while f"c-{number}" in taken:
            number += 1
        cycle = Cycle(
            id=f"c-{number}",
            blocker_id=args.blocker_id,
            started_at=now(),
            session_id=ctx.session_id,
        )
        state.cycles.append(cycle)
        files.save(state)
        self._adopt(kind, ctx, files, state, cycle)
        return {"cycle_id": cycle.id, "phase": cycle.phase}

    def cycle_advance(self, kind: Kind, args: CycleAdvanceArgs, ctx: ToolContext) -> dict[str, Any]:
        mine = self.active.get(ctx.session_id, kind.name)
        if mine is None or (mine.state_id, mine.cycle_id) != (args.id, args.cycle_id):
            working = f"cycle {mine.cycle_id} of {mine.state_id!r}" if mine else "no cycle"
            raise ToolError(f"this session works on {working}; cycle-advance moves only that cycle")
        files = StateFiles(ctx.data_dir)
        state = files.load(kind, args.id)
        cycle = state.cycle(args.cycle_id)
        phase = cycle.phase
        if cycle.completed:
            raise ToolError(f"cycle {cycle.id} is already completed")
        missing = missing_outputs(phase, args.phase_data)
        if missing:
            raise ToolError(
                f"cannot leave phase {phase!r}: phase_data needs non-empty {', '.join(repr(m) for m in missing)}; nothing saved",
                context={"phase": phase, "missing": missing},
            )
        if phase == "gate-review":
            failed = [g for g in run_gates(kind, state, cycle) if not g.passed]
            if failed:
                raise ToolError(
                    f"cycle {cycle.id} cannot complete: "
                    + "; ".join(f"{g.gate} failed ({g.reason})" for g in failed)
                    + "; nothing saved",
                    context={"failed": [g.gate for g in failed]},
                )
        at = now()
        cycle.history.append(
            PhaseRecord(phase=phase, data=args.phase_data, at=at, session_id=ctx.session_id)
        )
        cycle.phase = next_phase(phase)
        if cycle.completed:
            cycle.completed_at = at
        files.save(state)
        mine.phase = cycle.phase
        ctx.session_context["cycle-phase"] = cycle.phase
        if cycle.completed:
            done = list(ctx.session_context.get("cycles-completed") or [])
            done.append(f"{kind.name}/{state.id}/{cycle.id}")
            ctx.session_context["cycles-completed"] = done
        return {"cycle_id": cycle.id, "phase": cycle.phase}

    def cycle_get(self, kind: Kind, args: CycleGetArgs, ctx: ToolContext) -> dict[str, Any]:
        cycle = StateFiles(ctx.data_dir).load(kind, args.id).cycle(args.cycle_id)
        mine = self.active.get(ctx.session_id, kind.name)
        if mine is not None and (mine.state_id, mine.cycle_id) == (args.id, cycle.id):
            mine.phase = cycle.phase
            ctx.session_context["cycle-phase"] = cycle.phase
        return cycle.model_dump(mode="json")

    def cycle_list(self, kind: Kind, args: _StateArgs, ctx: ToolContext) -> list[dict[str, Any]]:
        return [
            c.model_dump(mode="json") for c in StateFiles(ctx.data_dir).load(kind, args.id).cycles
        ]

    def gate_check(self, kind: Kind, args: GateCheckArgs, ctx: ToolContext) -> dict[str, Any]:
        state = StateFiles(ctx.data_dir).load(kind, args.id)
        return report(run_gates(kind, state, state.cycle(args.cycle_id)))


def apply_changes(
    kind: Kind,
    state: CycleState,
    item_id: str,
    changes: ItemChanges,
    ctx: ToolContext,
    cycle_id: str | None,
    *,
    check_dag: bool = True,
) -> Item:
    """Create or change one item of ``state`` in memory, enforcing the status
    rule and (unless the caller judges the whole DAG itself) that the item
    closes no cycle — ``ToolError`` otherwise; the caller then saves nothing."""
    given = changes.model_fields_set
    existing = state.items.get(item_id)
    old_status = existing.status if existing else None

    def pick(name: str, default: Any) -> Any:
        value = getattr(changes, name)
        if name in given and (value is not None or name in ("evidence_type", "evidence", "notes")):
            return value
        return getattr(existing, name) if existing else default

    status = pick("status", "open")
    evidence_type = pick("evidence_type", None)
    if existing is None or status != old_status or evidence_type != existing.evidence_type:
        verdict = validate_transition(old_status, status, evidence_type)
        if not verdict.valid:
            raise ToolError(
                f"{kind.item_word} {item_id!r}: {verdict.reason}; nothing saved",
                context={"item_id": item_id, "from": old_status, "to": status},
            )
    fields = {
        "statement": pick("statement", ""),
        "status": status,
        "depends_on": list(dict.fromkeys(pick("depends_on", []))),
        "evidence_type": evidence_type,
        "evidence": pick("evidence", None),
        "notes": pick("notes", None),
    }
    if existing is not None and all(getattr(existing, k) == v for k, v in fields.items()):
        return existing  # nothing changes: keep its timestamps
    at = now()
    history = list(existing.history) if existing else []
    if status != old_status:
        history.append(
            StatusChange(
                at=at,
                from_status=old_status,
                to_status=status,
                evidence_type=evidence_type,
                session_id=ctx.session_id,
                cycle_id=cycle_id,
            )
        )
    item = Item(
        id=item_id,
        **fields,
        created_at=existing.created_at if existing else at,
        updated_at=at,
        history=history,
    )
    state.items[item_id] = item
    path = cycle_dag.closing_path(state.graph(), item_id) if check_dag else None
    if path is not None:
        raise ToolError(
            f"{kind.item_word} {item_id!r}: depends_on would close a cycle {' → '.join(path)}; nothing saved",
            context={"item_id": item_id, "cycle": path},
        )
    return item


async def corpus_check(args: CorpusCheckArgs, ctx: ToolContext) -> dict[str, Any]:
    """Search the folder named by the peripheral's ``config: {corpus_dir}``
    (relative to the workspace)."""
    configured = ctx.peripheral_config.get("corpus_dir")
    peripheral = ctx.peripheral_id or "mission"
    if not configured:
        return {"hits": [], "note": NO_CORPUS.format(peripheral=peripheral)}
    if not isinstance(configured, str):
        raise ToolError(
            f"peripherals.yaml {peripheral}.config.corpus_dir must be a path, got {configured!r}"
        )
    root = ctx.workspace / configured
    if not root.is_dir():
        raise ToolError(
            f"the corpus folder {configured!r} (peripherals.yaml {peripheral}.config.corpus_dir) does not exist"
        )
    hits = await asyncio.to_thread(
        cycle_corpus.search, root, args.query, args.options.top_k, ctx.hidden
    )
    return {"hits": hits}


async def evidence_query(args: EvidenceQueryArgs, ctx: ToolContext) -> dict[str, Any]:
    if ctx.store is None:
        raise ToolError("no evidence store is attached to this session")
    page = ctx.store.query(EvidenceQuery.from_params(args.filters, strict_keys=True))
    return {"entries": page.entries, "next_cursor": page.next_cursor}


# ============================================================ entry points


def install(backend: RealBackend) -> CyclePhaseGate:
    """Register every cycle tool on ``backend``; return the phase gate the
    dispatcher needs (``PeripheralRunner(..., phase_gate=...)``)."""
    active = ActiveCycles()
    for tool, impl in CycleTools(active).implementations().items():
        backend.register(tool, impl)
    return CyclePhaseGate(active)


def cycle_fruit(
    session_context: Mapping[str, Any], data_dir: Path | None, peripheral_id: str, steps: int
) -> dict[str, Any]:
    """The fruit of a proof or mission session:
    ``{problem_id|mission_id, cycles_completed, steps_taken, final_phase}``.

    ``final_phase`` is the phase of the session's cycle as stored (the
    context's ``cycle-phase`` when the state cannot be read), ``setup`` when
    the session began no cycle; ``cycles_completed`` counts the cycles this
    session completed."""
    kind = kind_of(peripheral_id)
    state_id = session_context.get(kind.context_key)
    cycle_id = session_context.get("cycle-id")
    done = [
        c
        for c in session_context.get("cycles-completed") or []
        if str(c).startswith(f"{kind.name}/")
    ]
    final_phase = "setup"
    if state_id and cycle_id:
        final_phase = str(session_context.get("cycle-phase") or "setup")
        if data_dir is not None and valid_id(state_id):
            with contextlib.suppress(ToolError):  # corrupt or missing: the context's account stands
                final_phase = StateFiles(data_dir).load(kind, state_id).cycle(str(cycle_id)).phase
    return {
        kind.fruit_key: state_id,
        "cycles_completed": len(done),
        "steps_taken": steps,
        "final_phase": final_phase,
    }
