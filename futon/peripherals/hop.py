"""The hop protocol (docs/peripherals.md, hops): may a live session move from one
peripheral to another, and what context crosses with it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from futon.evidence.store import EvidenceStore
from futon.peripherals.spec import Peripheral
from futon.protocol.errors import FutonError, PermissionDenied

# Claims that name a passing test run (an exit claimed, or an entry listed).
TESTS_PASSED = frozenset({"tests-passed", "tests-pass", "pass"})
# Where a human's line is recorded: the IRC relay and the HTTP chat route.
HUMAN_TRANSPORTS = frozenset({"irc", "http"})
# Who said it, as the chat path records it (futon/social/chat.py, Speaker):
# an agent may post on HTTP chat with its own token, so the transport alone
# does not make a line a human's.
HUMAN_SPEAKER = "human"


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


def _refuse(message: str, fact: str, current: Peripheral, target: Peripheral) -> PermissionDenied:
    return PermissionDenied(
        message, code="hop-not-allowed", context={"rule": "fact", "fact": fact, "from": current.id, "to": target.id}
    )


def check_facts(
    current: Peripheral,
    target: Peripheral,
    exit_condition: str,
    *,
    agent_id: str,
    test_result: str,
    context: Mapping[str, Any],
    store: EvidenceStore,
) -> None:
    """Raise ``hop-not-allowed`` (``rule: fact``) when a condition the hop
    rests on names a fact that the evidence does not bear out (issue 17).
    Run after :func:`check_hop` (the structural rules).

    - ``tests-passed`` (an exit claimed as ``tests-passed``/``tests-pass``/
      ``pass``, or listed in the target's entry, as deploy's is): the
      session's last test run passed (``test_result`` is the test fruit's
      ``result`` over the session's runs: the last run decides);
    - ``user-request``: ``context["request"]`` is the evidence id of a
      human's line (recorded by the IRC relay or the HTTP chat route with
      ``body.speaker: human`` — never an agent's line, whatever nick it
      names — and not by this agent) that addresses the agent — it
      mentions the agent or was said to it privately;
    - ``from-<p>`` claimed as the exit condition: the session is in ``p``.
    """
    claims_pass = exit_condition in TESTS_PASSED or "tests-passed" in target.spec.entry
    if claims_pass and test_result != "pass":
        raise _refuse(
            f"{target.id} needs the session's last test run to have passed (it is: {test_result})",
            "tests-passed", current, target,
        )  # fmt: skip
    if exit_condition.startswith("from-") and exit_condition != "from-any" and exit_condition[5:] != current.id:
        raise _refuse(f"the session is in {current.id}, not {exit_condition[5:]}", exit_condition, current, target)
    if exit_condition == "user-request":
        why = _not_a_request(context.get("request"), agent_id, store)
        if why is not None:
            raise _refuse(f"user-request needs context.request citing a human's message to {agent_id}: {why}",
                          "user-request", current, target)  # fmt: skip


def _not_a_request(request: Any, agent_id: str, store: EvidenceStore) -> str | None:
    """Why ``request`` is not a human's message to ``agent_id`` (None: it is)."""
    if not isinstance(request, str) or not request:
        return "none was cited"
    try:
        entry = store.get(request)
    except FutonError:
        return f"no evidence entry {request!r}"
    body = entry.get("evidence/body")
    if entry.get("evidence/type") != "forum-post" or not isinstance(body, dict):
        return f"{request} is not a chat line"
    if body.get("transport") not in HUMAN_TRANSPORTS or body.get("speaker") != HUMAN_SPEAKER:
        return f"{request} was not said by a human over IRC or HTTP"
    author = str(entry.get("evidence/author", ""))
    if author.lower() == agent_id.lower():
        return f"{request} is the agent's own line"
    subject = entry.get("evidence/subject") or {}
    thread = str(subject.get("ref/id", "")) if isinstance(subject, dict) else ""
    private = body.get("channel") is None and agent_id.lower() in thread.lower().removeprefix("irc/").split("+")
    named = re.search(rf"(?<![\w-]){re.escape(agent_id)}(?![\w-])", str(body.get("text", "")), re.IGNORECASE)
    if not (private or named):
        return f"{request} is not addressed to {agent_id}"
    return None
