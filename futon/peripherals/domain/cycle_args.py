"""The argument models of the proof and mission tools (the cycle machine of
:mod:`futon.peripherals.domain.cycles`): their wire shapes, and nothing that
runs them, so :mod:`futon.peripherals.args` lists them without a backend.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from pydantic import Field, field_validator

from futon.evidence.query import EvidenceQuery
from futon.peripherals.argtypes import Options, ToolArgs
from futon.peripherals.domain.cycle_status import Status
from futon.protocol.errors import ProtocolError

# The id of a problem or mission: every cycle tool takes one first, and it
# names the state file (cycle_state), so it may not climb or hide.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
Id = Annotated[str, Field(pattern=ID_PATTERN)]

MAX_PHASE_DATA = 256 * 1024  # bytes of JSON recorded per phase
MAX_STATE = 8 * 1024 * 1024  # bytes of JSON of a state given to *-save
MAX_STATEMENT = 1024 * 1024
MAX_NOTE = 64 * 1024


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))


_V = TypeVar("_V")


def _at_most(value: _V, limit: int, what: str) -> _V:
    if value is not None and _json_bytes(value) > limit:
        raise ValueError(f"{what} is over {limit} bytes of JSON")
    return value


ID_DOC = "The id of the problem or mission (letters, digits, `.`, `_`, `-`)."
CYCLE_DOC = "The id of the cycle (as cycle-begin returned it)."


class _StateArgs(ToolArgs):
    id: Id = Field(description=ID_DOC)


class ProofLoadArgs(_StateArgs):
    tool = "proof-load"
    summary = "Load a problem's state (a new id gives a fresh state)."


class MissionLoadArgs(_StateArgs):
    tool = "mission-load"
    summary = "Load a mission's state (a new id gives a fresh state)."


class _SaveArgs(ToolArgs):
    id: Id = Field(description=ID_DOC)
    state: dict[str, Any] | None = Field(
        default=None, description="The edited state to save (default: the current state)."
    )

    @field_validator("state")
    @classmethod
    def _bounded(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return _at_most(value, MAX_STATE, "state")


class ProofSaveArgs(_SaveArgs):
    tool = "proof-save"
    summary = (
        "Save a problem's state (optionally with edited ledger items and notes); bumps its version."
    )


class MissionSaveArgs(_SaveArgs):
    tool = "mission-save"
    summary = (
        "Save a mission's state (optionally with edited obligations and notes); bumps its version."
    )


class QueryOptions(Options):
    status: Status | None = Field(
        default=None, description="Only the items with this status (default: all)."
    )


class _QueryArgs(ToolArgs):
    id: Id = Field(description=ID_DOC)
    options: QueryOptions = Field(default_factory=QueryOptions)


class LedgerQueryArgs(_QueryArgs):
    tool = "ledger-query"
    summary = "List a problem's ledger items (optionally those with one status)."


class ObligationQueryArgs(_QueryArgs):
    tool = "obligation-query"
    summary = "List a mission's obligations (optionally those with one status)."


class ItemChanges(Options):
    """What an upsert may set. Keys left out keep their value; ``null``
    clears ``evidence_type``, ``evidence`` and ``notes``."""

    statement: str | None = Field(
        default=None, max_length=MAX_NOTE, description="What the item states."
    )
    status: str | None = Field(
        default=None, max_length=64, description="The new status (the status rules apply)."
    )
    depends_on: list[Id] | None = Field(
        default=None, max_length=1000, description="The ids of the items this one depends on."
    )
    evidence_type: str | None = Field(
        default=None, max_length=200, description="The kind of evidence for the status."
    )
    evidence: str | None = Field(
        default=None, max_length=MAX_NOTE, description="The evidence for the status."
    )
    notes: str | None = Field(default=None, max_length=MAX_NOTE, description="Free notes.")


class _UpsertArgs(ToolArgs):
    id: Id = Field(description=ID_DOC)
    item_id: Id = Field(description="The id of the item to create or change.")
    changes: ItemChanges = Field(description="The keys to set; keys left out keep their value.")


class LedgerUpsertArgs(_UpsertArgs):
    tool = "ledger-upsert"
    summary = "Create or change a ledger item (status rules and an acyclic DAG enforced)."


class ObligationUpsertArgs(_UpsertArgs):
    tool = "obligation-upsert"
    summary = "Create or change an obligation (status rules and an acyclic DAG enforced)."


class DagCheckArgs(_StateArgs):
    tool = "dag-check"
    summary = "Check the dependency DAG: {acyclic, cycle_nodes, dangling}."


class DagImpactArgs(_StateArgs):
    tool = "dag-impact"
    summary = "Rank items not yet proved by how many others they unlock."


class CanonicalGetArgs(_StateArgs):
    tool = "canonical-get"
    summary = "The canonical statement: {text, version, sha256, reason, at}."


class MissionSpecGetArgs(_StateArgs):
    tool = "mission-spec-get"
    summary = "The mission spec: {text, version, sha256, reason, at}."


class _SpecUpdateArgs(ToolArgs):
    id: Id = Field(description=ID_DOC)
    text: str = Field(min_length=1, max_length=MAX_STATEMENT, description="The whole new text.")
    reason: str = Field(min_length=1, max_length=4096, description="Why it changes.")


class CanonicalUpdateArgs(_SpecUpdateArgs):
    tool = "canonical-update"
    summary = "Record a new version of the canonical statement, with the reason."


class MissionSpecUpdateArgs(_SpecUpdateArgs):
    tool = "mission-spec-update"
    summary = "Record a new version of the mission spec, with the reason."


class CycleBeginArgs(ToolArgs):
    tool = "cycle-begin"
    summary = "Begin a cycle on a blocker (an item id); the session enters phase observe."
    id: Id = Field(description=ID_DOC)
    blocker_id: Id = Field(description="The id of the item the cycle works on.")


class CycleAdvanceArgs(ToolArgs):
    tool = "cycle-advance"
    summary = "Record the current phase's outputs and move the session's cycle to the next phase."
    id: Id = Field(description=ID_DOC)
    cycle_id: Id = Field(description=CYCLE_DOC)
    phase_data: dict[str, Any] = Field(
        description="The outputs the current phase requires, as an object."
    )

    @field_validator("phase_data")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _at_most(value, MAX_PHASE_DATA, "phase_data")


class CycleGetArgs(ToolArgs):
    tool = "cycle-get"
    summary = "One cycle with its phase history."
    id: Id = Field(description=ID_DOC)
    cycle_id: Id = Field(description=CYCLE_DOC)


class CycleListArgs(_StateArgs):
    tool = "cycle-list"
    summary = "Every cycle of a problem or mission."


class FailureInput(Options):
    blocker_id: Id = Field(description="The id of the item the attempt was for.")
    approach: str = Field(min_length=1, max_length=MAX_NOTE, description="What was tried.")
    structural_obstruction: str = Field(
        max_length=MAX_NOTE, description="What in the structure of the problem stood in the way."
    )
    failure_reason: str = Field(
        min_length=1, max_length=MAX_NOTE, description="Why the attempt failed."
    )


class _FailureArgs(ToolArgs):
    id: Id = Field(description=ID_DOC)
    record: FailureInput = Field(description="The failed attempt.")


class FailedRouteAddArgs(_FailureArgs):
    tool = "failed-route-add"
    summary = "Record a proof route that failed, and why, so it is not tried again."


class FailedApproachAddArgs(_FailureArgs):
    tool = "failed-approach-add"
    summary = "Record a mission approach that failed, and why, so it is not tried again."


class StatusValidateArgs(ToolArgs):
    tool = "status-validate"
    summary = "Whether a status change is allowed on the given evidence: {valid, reason}."
    from_status: str | None = Field(
        max_length=64, description="The current status (null: a new item)."
    )
    to_status: str = Field(min_length=1, max_length=64, description="The status to move to.")
    evidence_type: str | None = Field(
        default=None, max_length=200, description="The kind of evidence offered for it."
    )


class GateCheckArgs(ToolArgs):
    tool = "gate-check"
    summary = "Run gates G5 scope … G0 commit on a cycle: {gates, all_passed}."
    id: Id = Field(description=ID_DOC)
    cycle_id: Id = Field(description=CYCLE_DOC)


class CorpusOptions(Options):
    top_k: int = Field(default=10, ge=1, le=50, description="How many hits at most.")


class CorpusCheckArgs(ToolArgs):
    tool = "corpus-check"
    summary = "Search the mission's local corpus folder: {hits: [{source, score, excerpt}]}."
    query: str = Field(min_length=1, max_length=2000, description="What to search for.")
    options: CorpusOptions = Field(default_factory=CorpusOptions)


class EvidenceQueryArgs(ToolArgs):
    tool = "evidence-query"
    summary = "Query the evidence landscape with the HTTP query keys: {entries, next_cursor}."
    filters: dict[str, Any] = Field(
        default_factory=dict,
        description="The HTTP query keys (author, session-id, type, claim-type, tag, since …).",
    )

    @field_validator("filters")
    @classmethod
    def _known_filters(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            EvidenceQuery.from_params(value, strict_keys=True)
        except ProtocolError as exc:
            raise ValueError(exc.message) from None
        return value


ARG_MODELS: tuple[type[ToolArgs], ...] = (
    ProofLoadArgs,
    MissionLoadArgs,
    ProofSaveArgs,
    MissionSaveArgs,
    LedgerQueryArgs,
    ObligationQueryArgs,
    LedgerUpsertArgs,
    ObligationUpsertArgs,
    DagCheckArgs,
    DagImpactArgs,
    CanonicalGetArgs,
    MissionSpecGetArgs,
    CanonicalUpdateArgs,
    MissionSpecUpdateArgs,
    CycleBeginArgs,
    CycleAdvanceArgs,
    CycleGetArgs,
    CycleListArgs,
    FailedRouteAddArgs,
    FailedApproachAddArgs,
    StatusValidateArgs,
    GateCheckArgs,
    CorpusCheckArgs,
    EvidenceQueryArgs,
)
