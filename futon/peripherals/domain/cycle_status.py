"""Statuses of ledger items (proof) and obligations (mission), and the rule
for moving between them — one rule, used by ``status-validate``, by every
upsert and save, and by gate G2.

The rule (docs/peripherals.md, "Cycle peripherals"):

- the statuses are ``proved``, ``partial``, ``open``, ``false`` and
  ``numerically-verified``; any other name is invalid;
- nothing leaves ``false`` (a refuted item stays refuted; record a new item);
- ``proved`` needs evidence that is not numerical alone: an
  ``evidence_type`` of ``numerical`` (or ``simulation``…) may support
  ``numerically-verified``, never ``proved``;
- ``numerically-verified`` needs numerical evidence.

``evidence_type`` is free text naming one or more kinds of evidence,
joined by ``+``, ``,``, ``;``, ``/``, ``&`` or spaces
(``"numerical+proof"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

Status = Literal["proved", "partial", "open", "false", "numerically-verified"]
STATUSES: tuple[str, ...] = get_args(Status)

# Evidence kinds that establish a claim numerically, not deductively.
NUMERICAL_KINDS = frozenset(
    {"numerical", "numeric", "numerics", "computational", "computation", "simulation", "sampling"}
)

_SPLIT = re.compile(r"[+,;/&\s]+")


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"valid": self.valid, "reason": self.reason}


def evidence_kinds(evidence_type: str | None) -> frozenset[str]:
    """The kinds of evidence named by ``evidence_type`` (lower-cased)."""
    if not evidence_type:
        return frozenset()
    return frozenset(part for part in _SPLIT.split(evidence_type.lower()) if part and part != "and")


def validate_transition(
    from_status: str | None, to_status: str, evidence_type: str | None
) -> Verdict:
    """Whether an item may move from ``from_status`` (None: a new item) to
    ``to_status`` on evidence ``evidence_type``, and why."""
    known = ", ".join(STATUSES)
    if to_status not in STATUSES:
        return Verdict(False, f"unknown status {to_status!r}; expected one of {known}")
    if from_status is not None and from_status not in STATUSES:
        return Verdict(False, f"unknown status {from_status!r}; expected one of {known}")
    if from_status == "false" and to_status != "false":
        return Verdict(
            False,
            "nothing leaves 'false': a refuted item stays refuted (record a new item instead)",
        )
    problem = status_problem(to_status, evidence_type)
    if problem is not None:
        return Verdict(False, problem)
    if from_status is None:
        return Verdict(True, f"a new item may start as {to_status!r}")
    if from_status == to_status:
        return Verdict(True, f"status stays {to_status!r}")
    return Verdict(True, f"{from_status!r} → {to_status!r} is allowed")


def status_problem(status: str, evidence_type: str | None) -> str | None:
    """What is wrong with an item holding ``status`` on ``evidence_type``
    (None: nothing). Gate G2 asks this of every item."""
    kinds = evidence_kinds(evidence_type)
    if status == "proved":
        if not kinds:
            return "'proved' needs evidence: give an evidence_type (e.g. 'proof')"
        if kinds <= NUMERICAL_KINDS:
            return (
                f"'proved' cannot rest on numerical evidence alone ({evidence_type!r}); "
                "use 'numerically-verified' until there is a proof"
            )
    if status == "numerically-verified" and not kinds & NUMERICAL_KINDS:
        return f"'numerically-verified' needs numerical evidence (evidence_type {evidence_type!r})"
    return None
