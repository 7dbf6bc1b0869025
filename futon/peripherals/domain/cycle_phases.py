"""The phases of the cycle machine, what each allows, what each must
produce, and the phase gate the dispatcher consults.

    setup → observe → propose → execute → validate → classify → integrate
          → commit → gate-review → completed

A session of a cycle peripheral (one whose tools include ``cycle-begin``)
is in ``setup`` until it begins (or resumes) a cycle; from then on it is in
the phase of that cycle. Allowed tools, one table (tools a peripheral does
not have are refused earlier, as ``tool-not-allowed``):

=========== ==============================================================
phase       allowed tools
=========== ==============================================================
setup       read glob grep bash-readonly, *-load *-save, *-query *-upsert,
            dag-check dag-impact, canonical-get/update mission-spec-get/
            update, cycle-begin cycle-get cycle-list, failed-route-add
            failed-approach-add                                (docs/peripherals.md)
observe     LOOK = read glob grep bash-readonly, *-load, *-query, dag-*,
            canonical-get mission-spec-get, cycle-get cycle-list,
            corpus-check evidence-query, cycle-advance
propose     LOOK + status-validate
execute     LOOK + status-validate + write bash + *-upsert + *-save
validate    LOOK + status-validate
classify    LOOK + status-validate + *-upsert + *-save + failed-route-add
            failed-approach-add
integrate   LOOK + status-validate + *-upsert + canonical-update
            mission-spec-update + *-save
commit      LOOK + *-save
gate-review LOOK + status-validate + gate-check
completed   setup + gate-check   (begin the next cycle, or stop)
=========== ==============================================================

Required outputs (non-empty keys of ``phase_data`` that ``cycle-advance``
demands before leaving a phase) are :data:`REQUIRED_OUTPUTS`.

Where the phase comes from: the cycle tools tell :class:`ActiveCycles`
which cycle a session works on (``cycle-begin``, or a load that resumes an
open cycle). The gate then reads that cycle's phase from its state file —
the truth, even when another session advanced it — and falls back to the
last phase a tool saw when the file cannot be read. The session context
(``cycle-id``, ``cycle-phase``) mirrors this for people and the fruit, but
the gate never trusts it: a client may put anything in a session's starting
context, and that must not open a phase.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from futon.peripherals.dispatch import Envelope
from futon.peripherals.domain.cycle_state import PHASES, Phase, kind_of
from futon.protocol.errors import PermissionDenied

READ = frozenset({"read", "glob", "grep", "bash-readonly", "evidence-search"})  # evidence-search: every phase
LOAD = frozenset({"proof-load", "mission-load"})
SAVE = frozenset({"proof-save", "mission-save"})
QUERY = frozenset({"ledger-query", "obligation-query"})
UPSERT = frozenset({"ledger-upsert", "obligation-upsert"})
DAG = frozenset({"dag-check", "dag-impact"})
SPEC_GET = frozenset({"canonical-get", "mission-spec-get"})
SPEC_UPDATE = frozenset({"canonical-update", "mission-spec-update"})
CYCLE_READ = frozenset({"cycle-get", "cycle-list"})
FAILURES = frozenset({"failed-route-add", "failed-approach-add"})
RESEARCH = frozenset({"corpus-check", "evidence-query"})
VALIDATE = frozenset({"status-validate"})
CHANGE_FILES = frozenset({"write", "bash"})

SETUP = (
    READ
    | LOAD
    | SAVE
    | QUERY
    | UPSERT
    | DAG
    | SPEC_GET
    | SPEC_UPDATE
    | CYCLE_READ
    | FAILURES
    | {"cycle-begin"}
)
LOOK = READ | LOAD | QUERY | DAG | SPEC_GET | CYCLE_READ | RESEARCH | {"cycle-advance"}

PHASE_TOOLS: dict[str, frozenset[str]] = {
    "setup": SETUP,
    "observe": LOOK,
    "propose": LOOK | VALIDATE,
    "execute": LOOK | VALIDATE | CHANGE_FILES | UPSERT | SAVE,
    "validate": LOOK | VALIDATE,
    "classify": LOOK | VALIDATE | UPSERT | SAVE | FAILURES,
    "integrate": LOOK | VALIDATE | UPSERT | SPEC_UPDATE | SAVE,
    "commit": LOOK | SAVE,
    "gate-review": LOOK | VALIDATE | {"gate-check"},
    "completed": SETUP | {"gate-check"},
}

# The keys phase_data must carry (non-empty) to leave a phase.
REQUIRED_OUTPUTS: dict[str, tuple[str, ...]] = {
    "observe": ("observations",),
    "propose": ("proposal",),
    "execute": ("actions",),
    "validate": ("validation",),
    "classify": ("classification",),
    "integrate": ("integration",),
    "commit": ("commit",),
    "gate-review": ("gate_results",),
}

assert set(PHASE_TOOLS) == {"setup", *PHASES}
assert set(REQUIRED_OUTPUTS) == set(PHASES) - {"completed"}


def next_phase(phase: str) -> Phase:
    """The phase after ``phase`` (``completed`` has none)."""
    position = PHASES.index(phase)
    if position + 1 >= len(PHASES):
        raise ValueError(f"{phase!r} is the last phase")
    return PHASES[position + 1]


def missing_outputs(phase: str, phase_data: dict[str, object]) -> list[str]:
    """The required keys of ``phase`` that ``phase_data`` lacks or leaves empty."""
    return [key for key in REQUIRED_OUTPUTS[phase] if phase_data.get(key) in (None, "", [], {})]


@dataclass
class ActiveCycle:
    """The cycle a session works on, as its tools last saw it."""

    state_id: str
    cycle_id: str
    path: Path  # the state file
    phase: str


class ActiveCycles:
    """Which cycle each session works on, per kind; shared by the cycle tools
    (which set it) and the phase gate (which reads it). Remembers the most
    recent ``limit`` sessions."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._by_session: OrderedDict[tuple[str, str], ActiveCycle] = OrderedDict()
        self._phases: dict[Path, tuple[tuple[int, int, int], dict[str, str]]] = {}

    def get(self, session_id: str, kind: str) -> ActiveCycle | None:
        return self._by_session.get((session_id, kind))

    def set(self, session_id: str, kind: str, active: ActiveCycle) -> None:
        key = (session_id, kind)
        self._by_session[key] = active
        self._by_session.move_to_end(key)
        while len(self._by_session) > self._limit:
            self._by_session.popitem(last=False)

    def phase(self, session_id: str, kind: str) -> tuple[str, ActiveCycle | None]:
        """The session's phase: ``setup`` without a cycle; otherwise the
        cycle's phase in its state file (``setup`` if the cycle is gone from
        a readable file), or the last phase seen when the file is unreadable."""
        active = self.get(session_id, kind)
        if active is None:
            return "setup", None
        phases = self._file_phases(active.path)
        if phases is None:
            return active.phase, active
        phase = phases.get(active.cycle_id)
        if phase is None:
            return "setup", None
        active.phase = phase
        return phase, active

    def _file_phases(self, path: Path) -> dict[str, str] | None:
        """``{cycle_id: phase}`` from a state file, cached by its stat."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._phases.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            document = json.loads(path.read_bytes())
            phases = {
                str(c["id"]): str(c["phase"])
                for c in document["cycles"]
                if str(c.get("phase")) in PHASE_TOOLS
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        if len(self._phases) > self._limit:
            self._phases.clear()
        self._phases[path] = (stamp, phases)
        return phases


class CyclePhaseGate:
    """The dispatcher's :class:`~futon.peripherals.dispatch.PhaseGate` for
    cycle peripherals: refuses a tool the session's phase does not allow
    with ``phase-tool-not-allowed``. Peripherals without ``cycle-begin`` in
    their tool set are not cycle peripherals and pass untouched."""

    def __init__(self, active: ActiveCycles) -> None:
        self.active = active

    def phase_of(self, envelope: Envelope) -> str:
        phase, _ = self.active.phase(envelope.session_id, kind_of(envelope.peripheral.id).name)
        return phase

    def check(self, envelope: Envelope, tool: str) -> None:
        peripheral = envelope.peripheral
        if "cycle-begin" not in peripheral.tools:
            return
        phase, active = self.active.phase(envelope.session_id, kind_of(peripheral.id).name)
        allowed = PHASE_TOOLS[phase]
        if tool in allowed:
            return
        listed = ", ".join(t for t in peripheral.spec.tools if t in allowed) or "none"
        where = f"phase {phase!r}" + (
            f" of cycle {active.cycle_id} ({active.state_id})" if active else ""
        )
        hint = " (begin a cycle with cycle-begin first)" if phase == "setup" else ""
        raise PermissionDenied(
            f"tool {tool!r} is not allowed in {where}{hint}; allowed now: {listed}",
            code="phase-tool-not-allowed",
            context={"tool": tool, "phase": phase, "cycle_id": active.cycle_id if active else None},
        )
