"""The state document of a proof or a mission, and where it lives.

One JSON file per problem or mission: ``<data_dir>/proof/<id>.json`` and
``<data_dir>/mission/<id>.json``. Contract:

- ids match :data:`ID_PATTERN`, so an id can never name a path outside its
  folder (no ``/``, no leading ``.``);
- a missing file is a fresh state at version 0; every save bumps
  ``version`` by one and is atomic (a temp file in the same folder, fsync,
  ``os.replace``, fsync of the folder), so a reader sees the old document or
  the new one, never half of one;
- a file that is not a valid document is *corrupt*: loading raises
  ``ToolError`` saying where, and because every save loads first, nothing
  overwrites it until a person fixes or moves it.

Proof and mission share one shape under different names (ledger /
obligations, canonical / spec, failed_routes / failed_approaches);
:class:`Kind` says which, and the generic accessors (``items``,
``statement``, ``failures``) let the cycle machine ignore the difference.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from futon.evidence.model import format_at
from futon.peripherals.domain.cycle_args import ID_PATTERN, Id
from futon.peripherals.domain.cycle_status import Status
from futon.protocol.errors import ToolError

_ID = re.compile(ID_PATTERN)

Phase = Literal[
    "observe",
    "propose",
    "execute",
    "validate",
    "classify",
    "integrate",
    "commit",
    "gate-review",
    "completed",
]
PHASES: tuple[Phase, ...] = get_args(Phase)


def valid_id(value: object) -> bool:
    """Whether ``value`` is an id a state file may be named by."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def now() -> str:
    return format_at(datetime.now(UTC))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ items


class StatusChange(_Doc):
    at: str
    from_status: Status | None
    to_status: Status
    evidence_type: str | None = None
    session_id: str | None = None
    cycle_id: str | None = None


class Item(_Doc):
    """A ledger item (proof) or an obligation (mission)."""

    id: Id
    statement: str = ""
    status: Status = "open"
    depends_on: list[Id] = Field(default_factory=list)
    evidence_type: str | None = None
    evidence: str | None = None
    notes: str | None = None
    created_at: str
    updated_at: str
    history: list[StatusChange] = Field(default_factory=list)


# ------------------------------------------------------------- statement


class StatementVersion(_Doc):
    version: int = Field(ge=1)
    text: str
    reason: str
    at: str
    sha256: str

    @model_validator(mode="after")
    def _hash_matches(self) -> StatementVersion:
        if self.sha256 != sha256_text(self.text):
            raise ValueError(f"sha256 of version {self.version} does not match its text")
        return self


class Statement(_Doc):
    """The canonical statement (proof) or mission spec, with every version."""

    versions: list[StatementVersion] = Field(default_factory=list)

    @model_validator(mode="after")
    def _numbered(self) -> Statement:
        for index, version in enumerate(self.versions, start=1):
            if version.version != index:
                raise ValueError(
                    f"versions must be numbered 1, 2, …; found {version.version} at position {index}"
                )
        return self

    def current(self) -> dict[str, Any]:
        """``{text, version, sha256, reason, at}``; version 0 and nulls before
        the first update."""
        if not self.versions:
            return {"text": None, "version": 0, "sha256": None, "reason": None, "at": None}
        last = self.versions[-1]
        return {
            "text": last.text,
            "version": last.version,
            "sha256": last.sha256,
            "reason": last.reason,
            "at": last.at,
        }


# ---------------------------------------------------------------- cycles


class PhaseRecord(_Doc):
    """The required outputs (and anything else) recorded on leaving a phase."""

    phase: Phase
    data: dict[str, Any]
    at: str
    session_id: str | None = None


class Cycle(_Doc):
    id: Id
    blocker_id: Id
    phase: Phase = "observe"
    started_at: str
    completed_at: str | None = None
    session_id: str | None = None
    history: list[PhaseRecord] = Field(default_factory=list)

    @property
    def completed(self) -> bool:
        return self.phase == "completed"

    def recorded(self, phase: str) -> dict[str, Any] | None:
        """The data recorded on leaving ``phase`` (the latest), or None."""
        for record in reversed(self.history):
            if record.phase == phase:
                return record.data
        return None


class FailureRecord(_Doc):
    """A failed route (proof) or failed approach (mission)."""

    id: Id
    blocker_id: Id
    approach: str
    structural_obstruction: str
    failure_reason: str
    at: str
    cycle_id: str | None = None
    session_id: str | None = None


# ------------------------------------------------------------- documents


class CycleState(_Doc):
    """Fields shared by both kinds; subclasses name the rest."""

    id: Id
    kind: str
    version: int = Field(default=0, ge=0)
    created_at: str
    updated_at: str | None = None
    cycles: list[Cycle] = Field(default_factory=list)
    notes: Any = None

    # Generic views over the kind-specific fields; ProofState and
    # MissionState say which of their fields each one is.
    @property
    def items(self) -> dict[str, Item]:
        raise TypeError(f"{type(self).__name__} is abstract: use ProofState or MissionState")

    @property
    def statement(self) -> Statement:
        raise TypeError(f"{type(self).__name__} is abstract: use ProofState or MissionState")

    @property
    def failures(self) -> list[FailureRecord]:
        raise TypeError(f"{type(self).__name__} is abstract: use ProofState or MissionState")

    @model_validator(mode="after")
    def _consistent(self) -> CycleState:
        for key, item in self.items.items():
            if item.id != key:
                raise ValueError(f"item under key {key!r} has id {item.id!r}")
        ids = [c.id for c in self.cycles]
        if len(set(ids)) != len(ids):
            raise ValueError("two cycles share an id")
        if sum(1 for c in self.cycles if not c.completed) > 1:
            raise ValueError("more than one cycle is not completed")
        return self

    def cycle(self, cycle_id: str) -> Cycle:
        for cycle in self.cycles:
            if cycle.id == cycle_id:
                return cycle
        known = ", ".join(c.id for c in self.cycles) or "none yet"
        raise ToolError(f"{self.kind} {self.id!r} has no cycle {cycle_id!r} (cycles: {known})")

    def open_cycle(self) -> Cycle | None:
        """The cycle not yet completed (there is at most one)."""
        return next((c for c in self.cycles if not c.completed), None)

    def graph(self) -> dict[str, list[str]]:
        return {item_id: list(item.depends_on) for item_id, item in self.items.items()}


class ProofState(CycleState):
    kind: Literal["proof"] = "proof"
    ledger: dict[Id, Item] = Field(default_factory=dict)
    canonical: Statement = Field(default_factory=Statement)
    failed_routes: list[FailureRecord] = Field(default_factory=list)

    @property
    def items(self) -> dict[str, Item]:
        return self.ledger

    @property
    def statement(self) -> Statement:
        return self.canonical

    @property
    def failures(self) -> list[FailureRecord]:
        return self.failed_routes


class MissionState(CycleState):
    kind: Literal["mission"] = "mission"
    obligations: dict[Id, Item] = Field(default_factory=dict)
    spec: Statement = Field(default_factory=Statement)
    failed_approaches: list[FailureRecord] = Field(default_factory=list)

    @property
    def items(self) -> dict[str, Item]:
        return self.obligations

    @property
    def statement(self) -> Statement:
        return self.spec

    @property
    def failures(self) -> list[FailureRecord]:
        return self.failed_approaches


@dataclass(frozen=True)
class Kind:
    """Proof or mission: the words and names that differ between them."""

    name: str  # folder under data_dir, and the state's "kind"
    context_key: str  # the session-context key naming the state
    fruit_key: str  # the fruit key naming it
    model: type[CycleState]
    item_word: str
    statement_word: str
    failure_word: str
    failure_prefix: str  # ids of failure records: fr-1, fa-1…


PROOF = Kind(
    "proof",
    "problem-id",
    "problem_id",
    ProofState,
    "ledger item",
    "canonical statement",
    "failed route",
    "fr",
)
MISSION = Kind(
    "mission",
    "mission-id",
    "mission_id",
    MissionState,
    "obligation",
    "mission spec",
    "failed approach",
    "fa",
)
KINDS = {PROOF.name: PROOF, MISSION.name: MISSION}


def kind_of(peripheral_id: str) -> Kind:
    """The kind a cycle peripheral works on: ``mission`` for the mission
    peripheral, ``proof`` for every other one."""
    return MISSION if peripheral_id == "mission" else PROOF


# --------------------------------------------------------------- storage


class StateFiles:
    """Reads and writes state documents under ``data_dir``. Callers run a
    whole load → change → save without awaiting in between, so two sessions
    of one daemon never interleave on a document."""

    def __init__(self, data_dir: Path | None) -> None:
        if data_dir is None:
            raise ToolError("no data_dir is configured, so proof and mission state cannot be kept")
        self.data_dir = Path(data_dir)

    def path(self, kind: Kind, state_id: str) -> Path:
        return self.data_dir / kind.name / f"{state_id}.json"

    def load(self, kind: Kind, state_id: str) -> CycleState:
        """The stored document, or a fresh one (version 0) when there is none.
        Raises ``ToolError`` when the file is corrupt; the file is left as it is."""
        path = self.path(kind, state_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            # model_validate: mypy sees the base class, whose `kind` has no default.
            return kind.model.model_validate({"id": state_id, "created_at": now()})
        except OSError as exc:
            raise ToolError(
                f"cannot read {kind.name} state {state_id!r}: {exc.strerror or exc}"
            ) from None
        return parse_state(kind, state_id, raw, where=f"{kind.name}/{state_id}.json")

    def save(self, state: CycleState) -> int:
        """Write ``state`` with its version bumped; return the new version."""
        kind = KINDS[state.kind]
        state.version += 1
        state.updated_at = now()
        data = (
            json.dumps(state.model_dump(mode="json"), ensure_ascii=False, indent=2).encode("utf-8")
            + b"\n"
        )
        try:
            atomic_write(self.path(kind, state.id), data)
        except OSError as exc:
            state.version -= 1
            raise ToolError(
                f"cannot save {kind.name} state {state.id!r}: {exc.strerror or exc}"
            ) from None
        return state.version


def parse_state(kind: Kind, state_id: str, raw: bytes, *, where: str) -> CycleState:
    """Parse a stored document; ``ToolError`` naming ``where`` when it is corrupt."""

    def corrupt(detail: str) -> ToolError:
        return ToolError(
            f"{kind.name} state {state_id!r} is corrupt ({where}: {detail}); "
            "it is left untouched and will not be overwritten — fix or move the file, then retry",
            context={"kind": kind.name, "id": state_id, "file": where},
        )

    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise corrupt(f"not UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise corrupt(f"line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(document, dict):
        raise corrupt(f"expected a JSON object, found {type(document).__name__}")
    try:
        state = kind.model.model_validate(document)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        place = ".".join(str(p) for p in error["loc"]) or "document"
        raise corrupt(f"{place}: {error['msg']}") from None
    if state.id != state_id:
        raise corrupt(f"it holds id {state.id!r}")
    return state


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers (and a crash) see the
    old bytes or the new ones, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be fsynced
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
