"""Approvals: the humans who decide what an agent may do next (issue 17).

:class:`Approvals` is the daemon's :class:`futon.peripherals.approval.Approver`.
Contract:

- ``approve(request)`` makes a pending approval with a short id, records it
  (``type: coordination, claim-type: question``, tag ``approval``, the agent
  as author), announces it in the agent's channel (``announce``) and tells
  the agent (``notify``: an ``approval_pending`` push), then waits: it
  returns on ``approve``, raises ``approval-denied`` on ``deny`` or when
  nobody decided within ``timeout_s`` (expired). Cancelling it withdraws
  the request.
- At most ``max_pending`` wait at once: one more expires the oldest first.
- ``decide(id, decision, by)`` records the decision as a reply to the
  request (``in-reply-to``, claim-type ``evidence``, the human as author)
  and releases the agent. Typed refusals, and nothing changes: an unknown id
  (``approval-not-found``), an expired one (``approval-expired``), one
  decided already (``approval-already-decided``), a decider who is not an
  approver (``not-an-approver``), the agent deciding its own request
  (``approval-self``).
- Finished ids are remembered (bounded) so a late answer is told why.
- In a team (``team`` set: several daemons on one PostgreSQL database), an
  id is unique in the team, and a decision for an approval another daemon
  holds is sent there; that daemon makes every check above and answers
  (:class:`TeamApprovals`). :meth:`Approvals.listing` lists the team's.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from futon.evidence.store import EvidenceStore
from futon.peripherals.approval import ApprovalRequest
from futon.protocol import frames as f
from futon.protocol.errors import Conflict, FutonError, NotFound, PermissionDenied, ProtocolError
from futon.protocol.irc_lines import irc_lower
from futon.social.chat import Chat
from futon.social.pipeline import Pipeline
from futon.social.registry import AgentRegistry

log = logging.getLogger("futon.approvals")

MAX_PENDING = 100  # approvals waiting at once; one more expires the oldest
KEEP_FINISHED = 1000  # finished ids remembered for a clear answer to a late decision

Decision = Literal["approve", "deny"]
Outcome = Literal["approved", "denied", "expired", "withdrawn"]
Announce = Callable[[str, str], Awaitable[None]]  # (agent id, line) → said in its channel
Notify = Callable[[str, f.ServerFrame], Awaitable[None]]  # (agent id, push frame)


class TeamApprovals(Protocol):
    """The team's side of approvals (futon/social/team.py's TeamBus)."""

    daemon_id: str

    async def approval_opened(self, approval_id: str, shape: dict[str, Any], expires_in_s: float) -> bool:
        """List a new approval; False when the team holds the id already."""
        ...

    async def approval_described(self, approval_id: str, shape: dict[str, Any]) -> None:
        """The approval's public shape changed (its request was recorded)."""
        ...

    async def approval_closed(self, approval_id: str, outcome: str) -> None:
        """The approval finished with ``outcome``."""
        ...

    async def approval_daemon(self, approval_id: str) -> str | None:
        """The other live daemon holding ``approval_id``, if any."""
        ...

    async def decide_elsewhere(self, daemon_id: str, approval_id: str, decision: dict[str, Any]) -> dict[str, Any]:
        """Run :meth:`Approvals.decide` on ``daemon_id``; its answer or its typed error."""
        ...

    async def approvals_elsewhere(self) -> list[dict[str, Any]]:
        """Pending approvals of the other daemons (public shape + ``daemon``)."""
        ...


MAX_ID_TRIES = 20  # ids taken in the team before giving up on a unique one


@dataclass
class Pending:
    """One approval waiting for a human."""

    id: str
    request: ApprovalRequest
    created: float
    expires_at: float
    entry_id: str | None = None
    outcome: asyncio.Future[tuple[Outcome, str, str]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def describe(self) -> dict[str, Any]:
        """The public shape (GET /api/alpha/approvals)."""
        r = self.request
        return {
            "approval_id": self.id,
            "agent_id": r.agent_id,
            "session_id": r.session_id,
            "kind": r.kind,
            "peripheral_id": r.peripheral_id,
            "tool": r.tool,
            "what": r.what,
            "evidence_id": self.entry_id,
            "expires_in_s": max(0.0, round(self.expires_at - time.monotonic(), 1)),
        }


class Approvals:
    def __init__(
        self,
        store: EvidenceStore,
        *,
        approvers: Iterable[str] = (),
        timeout_s: float = 300,
        daemon_nick: str = "futon",
        announce: Announce | None = None,
        notify: Notify | None = None,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.store = store
        self.approvers = [str(a) for a in approvers]
        self.timeout_s = timeout_s
        self.daemon_nick = daemon_nick
        self.announce = announce
        self.notify = notify
        self.max_pending = max_pending
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self._finished: OrderedDict[str, Outcome] = OrderedDict()
        self.on_request: list[Callable[[Pending], None]] = []  # told of each new request (tests, the web page)
        self.team: TeamApprovals | None = None  # set by the daemon when it is one of a team

    def apply_settings(self, approvers: Iterable[str], timeout_s: float) -> None:
        """A reload: who may decide changes at once; the timeout applies to
        requests made from now on."""
        self.approvers = [str(a) for a in approvers]
        self.timeout_s = timeout_s

    def is_approver(self, nick: str, account: str | None = None) -> bool:
        """``nick`` (or its services ``account``) is listed in ``approvers``."""
        listed = {irc_lower(a) for a in self.approvers}
        return irc_lower(nick) in listed or (account is not None and irc_lower(account) in listed)

    def pending(self) -> list[Pending]:
        """Waiting approvals, oldest first."""
        return list(self._pending.values())

    async def listing(self) -> list[dict[str, Any]]:
        """The public shapes of the approvals waiting here and, in a team,
        on every live daemon (each with its ``daemon``)."""
        if self.team is None:
            return [p.describe() for p in self.pending()]
        here = [{**p.describe(), "daemon": self.team.daemon_id} for p in self.pending()]
        return here + await self.team.approvals_elsewhere()

    # ------------------------------------------------------------- asking

    async def approve(self, request: ApprovalRequest) -> None:
        """See the module doc."""
        while len(self._pending) >= self.max_pending:
            oldest = next(iter(self._pending.values()))
            await self._finish(oldest, "expired", self.daemon_nick, "too many approvals pending; oldest expire first")
        now = time.monotonic()
        pending = Pending(self._new_id(), request, now, now + self.timeout_s)
        if self.team is not None:  # an id unique in the team, so any daemon can route a decision
            for _ in range(MAX_ID_TRIES):
                if await self.team.approval_opened(pending.id, pending.describe(), self.timeout_s):
                    break
                pending.id = self._new_id()
            else:
                raise FutonError("could not find an approval id free in the team; try again", code="rate-limited")
        self._pending[pending.id] = pending
        pending.entry_id = await self._record_request(pending)
        if self.team is not None and pending.entry_id is not None:
            await self.team.approval_described(pending.id, pending.describe())
        for listener in list(self.on_request):
            listener(pending)
        hint = f"'{self.daemon_nick}: approve {pending.id}' or '{self.daemon_nick}: deny {pending.id} [reason]'"
        await self._tell(request.agent_id, f"approval {pending.id}: {request.agent_id} asks to {request.what} — "
                                           f"{hint} (expires in {self.timeout_s:g}s)")  # fmt: skip
        if self.notify is not None:
            frame = f.ApprovalPending(approval_id=pending.id, what=request.what,
                                      session_id=request.session_id, expires_in_s=self.timeout_s)  # fmt: skip
            try:
                await self.notify(request.agent_id, frame)
            except (FutonError, ConnectionError) as exc:  # the agent is away: it still waits
                log.info("could not tell %s about approval %s: %s", request.agent_id, pending.id, exc)
        try:
            outcome, by, reason = await asyncio.wait_for(asyncio.shield(pending.outcome), self.timeout_s)
        except TimeoutError:
            await self._finish(pending, "expired", self.daemon_nick, f"nobody decided within {self.timeout_s:g}s")
            try:
                # A decision that took the request just before is still being
                # recorded: its outcome, once set (bounded: else expired).
                outcome, by, reason = await asyncio.wait_for(asyncio.shield(pending.outcome), self.timeout_s)
            except TimeoutError:
                outcome, by, reason = "expired", self.daemon_nick, f"nobody decided within {self.timeout_s:g}s"
        except asyncio.CancelledError:
            if pending.id in self._pending:
                await asyncio.shield(self._finish(pending, "withdrawn", request.agent_id, "the session stopped"))
            raise
        if outcome != "approved":
            said = f": {reason}" if reason else ""
            raise PermissionDenied(
                f"approval {pending.id} ({request.what}) was {outcome} by {by}{said}",
                code="approval-denied",
                context={"approval_id": pending.id, "outcome": outcome, "by": by},
            )

    # ------------------------------------------------------------- deciding

    async def decide(
        self, approval_id: str, decision: str, by: str, reason: str = "", *, admin: bool = False,
        account: str | None = None, agent: str | None = None, here_only: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        """A human decides (see the module doc). ``admin``: the HTTP admin
        token, which may always decide. ``agent``: the agent whose
        connection carries the decision (a WS operator client), refused
        ``approval-self`` on its own request. Returns the approval's public
        shape with its ``outcome``. In a team, an approval another daemon
        holds is decided there (``here_only``: the call came from there)."""
        if decision not in ("approve", "deny"):
            raise ProtocolError(f"decision must be 'approve' or 'deny', not {decision!r}", code="invalid-input")
        pending = self._pending.get(approval_id)
        if pending is None and self.team is not None and not here_only:
            where = await self.team.approval_daemon(approval_id)
            if where is not None:
                asked = {"decision": decision, "by": by, "reason": reason, "admin": admin,
                         "account": account, "agent": agent}  # fmt: skip
                return await self.team.decide_elsewhere(where, approval_id, asked)
        if pending is None:
            finished = self._finished.get(approval_id)
            if finished == "expired":
                raise Conflict(f"approval {approval_id} has expired", code="approval-expired")
            if finished is not None:
                raise Conflict(f"approval {approval_id} was already {finished}", code="approval-already-decided")
            raise NotFound(f"no approval {approval_id!r}", code="approval-not-found")
        if irc_lower(by) == irc_lower(pending.request.agent_id):
            raise PermissionDenied(f"{by} may not decide its own request", code="approval-self")
        if agent is not None and irc_lower(agent) == irc_lower(pending.request.agent_id):
            raise PermissionDenied(f"{agent} may not decide its own request", code="approval-self")
        if not admin and not self.is_approver(by, account):
            raise PermissionDenied(f"{by} is not an approver (agents.yaml approvers)", code="not-an-approver")
        outcome: Outcome = "approved" if decision == "approve" else "denied"
        await self._finish(pending, outcome, by, reason)
        decided = {**pending.describe(), "outcome": outcome, "by": by}
        if self.team is not None:
            decided["daemon"] = self.team.daemon_id
        return decided

    # ------------------------------------------------------------- internals

    async def _finish(self, pending: Pending, outcome: Outcome, by: str, reason: str) -> None:
        """Take ``pending`` out of the queue at once (so a second decision
        is refused), record the outcome as a reply to the request, then
        release the waiting agent."""
        if self._pending.pop(pending.id, None) is None:
            return
        self._finished[pending.id] = outcome
        while len(self._finished) > KEEP_FINISHED:
            self._finished.popitem(last=False)
        if self.team is not None:
            await self.team.approval_closed(pending.id, outcome)
        await self._record_decision(pending, outcome, by, reason)
        if outcome in ("denied", "expired"):
            said = f": {reason}" if reason else ""
            await self._tell(pending.request.agent_id, f"approval {pending.id} {outcome} by {by}{said}")
        elif outcome == "approved":
            await self._tell(pending.request.agent_id, f"approval {pending.id} approved by {by}")
        if not pending.outcome.done():
            pending.outcome.set_result((outcome, by, reason))

    def _new_id(self) -> str:
        while True:
            short = secrets.token_hex(2)  # four hex digits: easy to type, checked for collisions
            if short not in self._pending and short not in self._finished:
                return short

    async def _tell(self, agent_id: str, line: str) -> None:
        if self.announce is None:
            return
        try:
            await self.announce(agent_id, line)
        except FutonError as exc:  # no channel carries it: the record and the push still do
            log.info("could not announce in %s's channel: %s", agent_id, exc)

    async def _record_request(self, pending: Pending) -> str | None:
        r = pending.request
        entry = {
            "subject": {"ref/type": "session", "ref/id": r.session_id},
            "type": "coordination",
            "claim-type": "question",
            "author": r.agent_id,
            "session-id": r.session_id,
            "tags": ["approval"],
            "body": {"approval_id": pending.id, "kind": r.kind, "peripheral": r.peripheral_id, "tool": r.tool,
                     "args": r.args, "reason": r.reason, "what": r.what, "timeout_s": self.timeout_s},
        }  # fmt: skip
        try:
            stored = await self.store.append(entry)
        except FutonError as exc:
            log.error("could not record approval %s: %s", pending.id, exc)
            return None
        return str(stored["evidence/id"])

    async def _record_decision(self, pending: Pending, outcome: Outcome, by: str, reason: str) -> None:
        r = pending.request
        entry: dict[str, Any] = {
            "subject": {"ref/type": "session", "ref/id": r.session_id},
            "type": "coordination",
            "claim-type": "evidence",
            "author": by,
            "session-id": r.session_id,
            "tags": ["approval", outcome],
            "body": {"approval_id": pending.id, "outcome": outcome, "by": by, "reason": reason, "what": r.what},
        }
        if pending.entry_id is not None:
            entry["in-reply-to"] = pending.entry_id
        try:
            await self.store.append(entry)
        except FutonError as exc:
            log.error("could not record the decision on approval %s: %s", pending.id, exc)


def wire(
    store: EvidenceStore,
    chat: Chat,
    registry: AgentRegistry,
    pipeline: Pipeline,
    *,
    approvers: Iterable[str],
    timeout_s: float,
    daemon_nick: str,
) -> Approvals:
    """The daemon's approvals: requests are said in the agent's first
    channel in the daemon's nick (the one chat path, recorded in the
    channel's thread) and pushed to the agent as ``approval_pending``."""

    async def announce(agent_id: str, line: str) -> None:
        record = registry.find(agent_id)
        channels = list(record.spec.channels) if record is not None else []
        if channels:
            await chat.say(daemon_nick, channels[0], line, transport="daemon", reach="nobody")

    async def notify(agent_id: str, frame: f.ServerFrame) -> None:
        record = registry.find(agent_id)
        if record is not None:
            await pipeline.push(record, frame)

    return Approvals(
        store, approvers=approvers, timeout_s=timeout_s, daemon_nick=daemon_nick, announce=announce, notify=notify
    )
