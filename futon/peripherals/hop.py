"""The hop protocol (docs/peripherals.md, hops): may a live session move from one
peripheral to another, and what context crosses with it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from futon.peripherals.spec import Peripheral
from futon.protocol.errors import PermissionDenied


def check_hop(current: Peripheral, target: Peripheral, exit_condition: str) -> None:
    """Raise ``hop-not-allowed`` naming the rule the hop breaks.

    1. The exit condition must be one of the current peripheral's exits —
       unless the target's entry has ``from-any``, or the condition is
       ``user-request`` and the target's entry has ``user-request``.
    2. The target's entry must contain ``from-any``, ``from-<current>`` or
       (for ``user-request``) ``user-request``.

    One reading added to rule 2: an exit named ``hop-<target>`` that the
    current peripheral lists is the source declaring that hop, and admits
    it. Without it the shipped table contradicts itself — chat lists
    ``hop-explore`` and ``hop-edit``, mission-control and proof list
    ``hop-explore``, yet explore's entry is only ``default, from-reflect``.
    """
    entry = set(target.spec.entry)
    user = exit_condition == "user-request" and "user-request" in entry
    if exit_condition not in current.spec.exit and "from-any" not in entry and not user:
        raise PermissionDenied(
            f"exit condition {exit_condition!r} is not one of {current.id}'s exits ({', '.join(current.spec.exit)})",
            code="hop-not-allowed",
            context={"rule": "exit-condition", "from": current.id, "to": target.id},
        )
    declared = exit_condition == f"hop-{target.id}" and exit_condition in current.spec.exit
    if not ({"from-any", f"from-{current.id}"} & entry or user or declared):
        raise PermissionDenied(
            f"{target.id} cannot be entered from {current.id} (its entry: {', '.join(target.spec.entry)})",
            code="hop-not-allowed",
            context={"rule": "entry-condition", "from": current.id, "to": target.id},
        )


def carry(target: Peripheral, derived: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The context the target receives: each key of its ``context`` list,
    from what the hop request gave, else from what the session derived."""
    carried: dict[str, Any] = {}
    for key in target.spec.context:
        if key in given:
            carried[key] = given[key]
        elif key in derived and derived[key] not in (None, [], ""):
            carried[key] = derived[key]
    return carried
