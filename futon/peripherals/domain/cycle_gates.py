"""The gates a cycle passes before it may complete: G5 scope … G0 commit.

Each gate is computed from the cycle's recorded phase data and the state
document, so ``gate-check`` can be asked at any time (a gate whose phase is
not recorded yet fails and says so), and ``cycle-advance`` out of
``gate-review`` demands that all pass.

===== ============ ========================================================
gate  name         passes when
===== ============ ========================================================
G5    scope        the cycle's blocker is an item of the ledger/obligations
G4    proposal     ``proposal`` was recorded and does not repeat a failed
                   route/approach already recorded for this blocker
G3    execution    ``actions`` were recorded
G2    validation   ``validation`` was recorded and no item holds a status
                   its evidence does not support (cycle_status)
G1    integration  ``classification`` and ``integration`` were recorded and
                   the DAG is acyclic with no dangling dependency
G0    commit       ``commit`` was recorded
===== ============ ========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from futon.peripherals.domain import cycle_dag
from futon.peripherals.domain.cycle_state import Cycle, CycleState, Kind
from futon.peripherals.domain.cycle_status import status_problem


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "passed": self.passed, "reason": self.reason}


def run_gates(kind: Kind, state: CycleState, cycle: Cycle) -> list[GateResult]:
    """G5 … G0 for ``cycle`` of ``state``, in that order."""
    return [
        _scope(kind, state, cycle),
        _proposal(kind, state, cycle),
        _recorded("G3-execution", cycle, "execute", "actions"),
        _validation(kind, state, cycle),
        _integration(state, cycle),
        _recorded("G0-commit", cycle, "commit", "commit"),
    ]


def report(results: list[GateResult]) -> dict[str, Any]:
    return {"gates": [r.as_dict() for r in results], "all_passed": all(r.passed for r in results)}


def _has(cycle: Cycle, phase: str, key: str) -> bool:
    data = cycle.recorded(phase)
    return data is not None and data.get(key) not in (None, "", [], {})


def _recorded(gate: str, cycle: Cycle, phase: str, key: str) -> GateResult:
    if _has(cycle, phase, key):
        return GateResult(gate, True, f"{key!r} recorded in {phase}")
    return GateResult(gate, False, f"no {key!r} recorded: the cycle has not left {phase} yet")


def _scope(kind: Kind, state: CycleState, cycle: Cycle) -> GateResult:
    item = state.items.get(cycle.blocker_id)
    if item is None:
        return GateResult(
            "G5-scope",
            False,
            f"blocker {cycle.blocker_id!r} is not a {kind.item_word} of {state.id!r}",
        )
    return GateResult(
        "G5-scope",
        True,
        f"blocker {cycle.blocker_id!r} is a {kind.item_word} (status {item.status})",
    )


def _approach_text(proposal: Any) -> str:
    if isinstance(proposal, dict):
        proposal = proposal.get("approach", "")
    return " ".join(str(proposal).lower().split()) if isinstance(proposal, str) else ""


def _proposal(kind: Kind, state: CycleState, cycle: Cycle) -> GateResult:
    if not _has(cycle, "propose", "proposal"):
        return GateResult(
            "G4-proposal", False, "no 'proposal' recorded: the cycle has not left propose yet"
        )
    data = cycle.recorded("propose") or {}
    approach = _approach_text(data["proposal"])
    for failure in state.failures:
        if (
            failure.blocker_id == cycle.blocker_id
            and approach
            and approach == _approach_text(failure.approach)
        ):
            return GateResult(
                "G4-proposal",
                False,
                f"the proposal repeats {kind.failure_word} {failure.id}: {failure.failure_reason}",
            )
    return GateResult(
        "G4-proposal", True, "'proposal' recorded; it repeats no recorded " + kind.failure_word
    )


def _validation(kind: Kind, state: CycleState, cycle: Cycle) -> GateResult:
    if not _has(cycle, "validate", "validation"):
        return GateResult(
            "G2-validation", False, "no 'validation' recorded: the cycle has not left validate yet"
        )
    problems = [
        f"{item.id}: {problem}"
        for item in state.items.values()
        if (problem := status_problem(item.status, item.evidence_type)) is not None
    ]
    if problems:
        return GateResult("G2-validation", False, "invalid status: " + "; ".join(problems))
    return GateResult(
        "G2-validation", True, f"'validation' recorded; every {kind.item_word} status is supported"
    )


def _integration(state: CycleState, cycle: Cycle) -> GateResult:
    missing = [
        key
        for phase, key in (("classify", "classification"), ("integrate", "integration"))
        if not _has(cycle, phase, key)
    ]
    if missing:
        return GateResult("G1-integration", False, f"not recorded yet: {', '.join(missing)}")
    found = cycle_dag.check(state.graph())
    if not found["acyclic"]:
        return GateResult(
            "G1-integration",
            False,
            f"the DAG has a cycle through {', '.join(found['cycle_nodes'])}",
        )
    if found["dangling"]:
        names = "; ".join(f"{d['item_id']} → {', '.join(d['missing'])}" for d in found["dangling"])
        return GateResult("G1-integration", False, f"dangling dependencies: {names}")
    return GateResult(
        "G1-integration",
        True,
        "classification and integration recorded; the DAG is acyclic and complete",
    )
