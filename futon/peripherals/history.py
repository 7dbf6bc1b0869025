"""What a session looks like from outside: one view, built from the live
session or, for a session this process no longer holds (it ended before a
restart, or was forgotten), from its evidence.

A session writes goal → steps/hops/tensions → conclusion (session.py), each
entry with ``session-id`` = the session and tags ``["peripheral", <id>]``.
So the evidence alone says who ran it, where it is, how many steps it took
and how it ended. States:

- ``active``: live in this process and not stopping;
- ``stopped``: it concluded (the conclusion's reason and fruit are shown);
- ``interrupted``: the daemon stopped while it was open — a conclusion with
  reason ``shutdown`` (a graceful stop), or no conclusion at all and no live
  session (a crash or a kill: nobody can ever conclude it now).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from futon.evidence.model import EntryDict
from futon.evidence.query import MAX_LIMIT, EvidenceQuery
from futon.evidence.store import EvidenceStore

SessionState = Literal["active", "stopped", "interrupted"]
INTERRUPTED_REASONS = frozenset({"shutdown"})  # stop reasons that mean "the daemon went away"
SESSION_TAG = "peripheral"  # every entry a session writes carries it (the dispatch record does not)


@dataclass(frozen=True)
class SessionInfo:
    """The one description of a session, for ``GET /session/{id}`` and
    ``GET /api/alpha/sessions`` alike."""

    session_id: str
    agent_id: str
    peripheral_id: str
    state: SessionState
    started_at: str
    at: str  # when it last did something
    steps: int
    reason: str | None = None  # why it stopped (None while active, or when it never concluded)
    fruit: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "agent_id": self.agent_id,
            "peripheral_id": self.peripheral_id,
            "state": self.state,
            "started_at": self.started_at,
            "at": self.at,
            "steps": self.steps,
            "reason": self.reason,
            "fruit": self.fruit,
        }


def state_of(stopped: bool, reason: str | None) -> SessionState:
    if not stopped:
        return "active"
    return "interrupted" if reason in INTERRUPTED_REASONS else "stopped"


def recorded_session(store: EvidenceStore, session_id: str) -> SessionInfo | None:
    """The session as its evidence tells it; None when it has no goal entry.
    Called for sessions this process does not hold, so one without a
    conclusion is ``interrupted``."""
    mine = EvidenceQuery(
        session_id=session_id, tags=(SESSION_TAG,), subject_type="session", limit=1
    )
    first = store.query(_with(mine, after_seq=0)).entries  # oldest first: the goal
    if not first or first[0].get("evidence/claim-type") != "goal":
        return None
    return info_from_goal(store, first[0])


def recorded_sessions(store: EvidenceStore, agent_id: str | None, limit: int) -> list[EntryDict]:
    """Goal entries of sessions, newest first (at most ``limit``, capped at
    the store's page size)."""
    query = EvidenceQuery(
        subject_type="session",
        type="coordination",
        claim_type="goal",
        tags=(SESSION_TAG,),
        author=agent_id,
        limit=max(1, min(limit, MAX_LIMIT)),
    )
    return [goal for goal in store.query(query).entries if _opens_its_session(store, goal)]


def _opens_its_session(store: EvidenceStore, goal: EntryDict) -> bool:
    """Whether ``goal`` is the first entry of its session. Anyone may post
    an entry naming a session; only the one that opened it (written by the
    runner at start, with an id nobody knew before) says whose it is."""
    session_id = _session_of(goal)
    if session_id is None:
        return False
    mine = EvidenceQuery(
        session_id=session_id, tags=(SESSION_TAG,), subject_type="session", limit=1
    )
    first = store.query(_with(mine, after_seq=0)).entries
    return bool(first) and first[0].get("evidence/id") == goal.get("evidence/id")


def info_from_goal(store: EvidenceStore, goal: EntryDict) -> SessionInfo:
    """A session this process does not hold, described from its goal entry
    and what followed it."""
    session_id = _session_of(goal) or ""
    # Only the session's own agent writes its story: entries another agent
    # posted with this session-id (a forged step, conclusion or fruit) are
    # not part of it.
    owner = str(goal.get("evidence/author", ""))
    mine = EvidenceQuery(
        session_id=session_id, tags=(SESSION_TAG,), subject_type="session", author=owner, limit=1
    )
    newest = store.query(mine).entries
    last = newest[0] if newest else goal
    ended = store.query(_with(mine, claim_type="conclusion")).entries
    steps = store.count(_with(mine, type="coordination", claim_type="step"))
    body = goal.get("evidence/body") or {}
    peripheral = _peripheral_of(last) or str(body.get("peripheral", ""))
    if ended:
        conclusion = ended[0].get("evidence/body") or {}
        reason = conclusion.get("reason") if isinstance(conclusion.get("reason"), str) else None
        fruit = conclusion.get("fruit") if isinstance(conclusion.get("fruit"), dict) else None
        peripheral = str(conclusion.get("peripheral") or peripheral)
        state = state_of(True, reason)
    else:  # nobody holds it and it never concluded: the daemon died under it
        reason, fruit, state = None, None, "interrupted"
    return SessionInfo(
        session_id=session_id,
        agent_id=owner,
        peripheral_id=peripheral,
        state=state,
        started_at=str(goal.get("evidence/at", "")),
        at=str(last.get("evidence/at", "")),
        steps=steps,
        reason=reason,
        fruit=fruit,
    )


def _with(query: EvidenceQuery, **changes: Any) -> EvidenceQuery:
    return replace(query, **changes)


def _session_of(entry: EntryDict) -> str | None:
    subject = entry.get("evidence/subject") or {}
    session_id = entry.get("evidence/session-id")
    if subject.get("ref/type") != "session" or subject.get("ref/id") != session_id:
        return None  # not written by a session (its subject and session-id agree)
    return str(session_id) if session_id else None


def _peripheral_of(entry: EntryDict) -> str | None:
    tags = entry.get("evidence/tags") or []
    return str(tags[1]) if len(tags) > 1 and tags[0] == SESSION_TAG else None
