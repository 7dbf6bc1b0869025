"""The social pipeline: the one dispatch path every transport uses.

    presence → authenticate → mode → dispatch → persist

A transport turns what it received into an :class:`Inbound` (having
authenticated the sender its own way: a WS handshake, an HTTP bearer token,
an IRC nick) and calls :meth:`Pipeline.dispatch`. Each stage returns or
raises a typed error whose code is the wire code (docs/http-api.md, errors), so
every transport renders the same failure the same way. This module imports
no transport.

Modes (docs/http-api.md, ``POST /dispatch``): a payload object with
``"coordination": true`` or a ``type`` in :data:`COORDINATION_TYPES` is
*coordination* — delivered to the agent, whose ``reply`` comes back within
``reply_timeout_s``; anything else is an *action* — the routed peripheral
runs the payload's ``actions`` inside its envelope.

Identity (issue 13, "identity that cannot be borrowed"): an action runs
with the caller's own identity and permissions. An agent may dispatch
actions only to itself, inside its own permitted peripherals; only the
admin (``Inbound.admin``: the HTTP admin token, or a loopback caller when no
admin token is configured) may run actions as another agent. Coordination
messages stay open between agents. The dispatch record's author is the real
caller, and the session it opens carries ``dispatched-by`` in its context.

Idempotency (issue 15): a message is identified by its sender and
``msg_id``. A repeat of one that was answered returns the FIRST receipt and
runs nothing (no second session, no second delivery, no second record); a
repeat that arrives while the first is still running waits for it and gets
the same receipt. Only receipts are kept: a first attempt that failed (a
typed error, a cancel) leaves nothing behind, so a retry after a failure
runs afresh. A repeat that carries a different target or payload is refused
with ``duplicate-msg-id`` (409). The newest :data:`RECEIPTS_KEPT` receipts
are kept (one LRU for all senders): bounded memory, and a retry within that
window is safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from futon.config.models import DispatchSection
from futon.evidence.model import format_at
from futon.evidence.related import related_work
from futon.evidence.store import EvidenceStore
from futon.peripherals.runner import ChainStep, PeripheralRunner
from futon.peripherals.spec import normalise_id
from futon.protocol import frames as f
from futon.protocol.errors import Conflict, FutonError, PermissionDenied, ProtocolError
from futon.social.registry import AgentRecord, AgentRegistry

log = logging.getLogger("futon.social")

COORDINATION_TYPES = frozenset({"standup", "handoff", "coordination", "bell", "whistle", "page"})
CONTEXT_KEYS = ("mission-id", "problem-id", "pattern-id", "channel", "commit-message")  # payload → session context

RECEIPTS_KEPT = 1000  # receipts remembered for repeated msg_ids (module doc)

Mode = Literal["coordination", "action"]


@dataclass(frozen=True)
class Inbound:
    """One message entering the pipeline, whatever carried it."""

    msg_id: str
    sender: str
    to: str
    payload: Any
    transport: str  # websocket | http | irc
    sender_type: str = "agent"  # agent | human | system
    # The caller proved the admin token (or is the loopback admin when none
    # is configured): it may run actions as any agent. Everyone else runs
    # actions only as themselves. A transport sets this; the default is no.
    admin: bool = False
    # Sent here by another daemon of the team (futon/social/team.py): run
    # here, never routed on again.
    forwarded: bool = False


@dataclass
class Receipt:
    msg_id: str
    to: str
    delivered: bool
    at: str
    route: str | None = None
    session_id: str | None = None
    peripheral_id: str | None = None
    fruit: Any = None
    reply: Any = None
    results: list[dict[str, Any]] | None = None
    related: list[dict[str, Any]] | None = None  # earlier work on the payload's text (issue 21)
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, target_type: str = "agent") -> dict[str, Any]:
        out: dict[str, Any] = {
            "msg_id": self.msg_id,
            "to": {"value": self.to, "type": target_type},
            "delivered": self.delivered,
            "at": self.at,
        }
        for key in ("route", "session_id", "peripheral_id", "fruit", "reply", "results", "related"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class TeamRoute(Protocol):
    """Where agents connected to another daemon of the team are reached
    (:class:`futon.social.team.TeamBus`); absent with the JSONL store."""

    async def known(self, agent_id: str) -> None: ...

    async def owner(self, agent_id: str) -> str | None: ...

    async def dispatch(self, daemon_id: str, inbound: Inbound, timeout_s: float) -> Receipt: ...

    async def push(self, daemon_id: str, agent_id: str, fields: dict[str, Any]) -> bool: ...


def classify(payload: Any) -> Mode:
    if isinstance(payload, dict) and (
        payload.get("coordination") is True or payload.get("type") in COORDINATION_TYPES
    ):
        return "coordination"
    return "action"


class Pipeline:
    def __init__(
        self,
        registry: AgentRegistry,
        runner: PeripheralRunner,
        store: EvidenceStore,
        *,
        reply_timeout_s: float = 30,
    ) -> None:
        self.registry = registry
        self.runner = runner
        self.store = store
        self.reply_timeout_s = reply_timeout_s
        # Set by the daemon when it is one of a team (PostgreSQL backend):
        # messages and pushes for agents connected elsewhere go there.
        self.team: TeamRoute | None = None
        self._waiting: dict[tuple[str, str], asyncio.Future[Any]] = {}
        # (sender, msg_id) → (what the message was, its receipt: None while it
        # runs or once it failed). Bounded by RECEIPTS_KEPT answered entries.
        self._receipts: OrderedDict[tuple[str, str], _Seen] = OrderedDict()

    def apply_settings(self, dispatch: DispatchSection) -> None:
        """A reload: the next dispatch uses the new reply timeout."""
        self.reply_timeout_s = dispatch.reply_timeout_s

    # ------------------------------------------------------------- stages

    async def dispatch(self, inbound: Inbound, *, reply_timeout_s: float | None = None) -> Receipt:
        """Run a message once per (sender, msg_id); a repeat gets the first
        receipt (module doc, Idempotency)."""
        if not inbound.msg_id:
            raise ProtocolError("a message needs a msg_id", code="invalid-message")
        key = (inbound.sender, inbound.msg_id)
        fingerprint = _fingerprint(inbound)
        while (seen := self._receipts.get(key)) is not None:
            if seen.fingerprint != fingerprint:
                raise Conflict(
                    f"msg_id {inbound.msg_id!r} was already used by {inbound.sender!r} for another "
                    "message; use a fresh msg_id for a new message",
                    code="duplicate-msg-id",
                    context={"msg_id": inbound.msg_id},
                )
            self._receipts.move_to_end(key)
            receipt = await asyncio.shield(seen.receipt)
            if receipt is not None:
                return receipt
            # The first attempt failed and left nothing: run this one afresh.
        seen = _Seen(fingerprint, asyncio.get_running_loop().create_future())
        self._receipts[key] = seen
        receipt = None
        try:
            receipt = await self._dispatch_once(inbound, reply_timeout_s)
            return receipt
        finally:
            seen.receipt.set_result(receipt)  # waiting repeats wake: the receipt, or None to run afresh
            if receipt is None and self._receipts.get(key) is seen:
                del self._receipts[key]
            self._forget_old_receipts()

    def _forget_old_receipts(self) -> None:
        """Keep the newest RECEIPTS_KEPT answered receipts (running ones stay:
        they are bounded by what each transport lets run at once)."""
        excess = len(self._receipts) - RECEIPTS_KEPT
        if excess <= 0:
            return
        for key in [k for k, seen in self._receipts.items() if seen.receipt.done()][:excess]:
            del self._receipts[key]

    async def _dispatch_once(self, inbound: Inbound, reply_timeout_s: float | None) -> Receipt:
        if self.team is not None and inbound.to and self.registry.find(inbound.to) is None:
            await self.team.known(inbound.to)  # registered at run time on another daemon?
        target = self._presence(inbound)
        mode = classify(inbound.payload)
        if mode == "coordination" and target.link is None and self.team and not inbound.forwarded:
            elsewhere = await self.team.owner(target.id)
            if elsewhere is not None:  # that daemon delivers, waits and records it
                timeout_s = reply_timeout_s or self.reply_timeout_s
                return await self.team.dispatch(elsewhere, inbound, timeout_s)
        if mode == "coordination":
            receipt = await self._invoke(inbound, target, reply_timeout_s or self.reply_timeout_s)
        else:
            await self._authorise_actions(inbound, target)
            receipt = await self._run_chain(inbound, target)
        await self._persist(inbound, mode, receipt)
        return receipt

    def _presence(self, inbound: Inbound) -> AgentRecord:
        if not inbound.msg_id:
            raise ProtocolError("a message needs a msg_id", code="invalid-message")
        if not inbound.to:
            raise ProtocolError("a message needs a target ('to')", code="invalid-target")
        target = self.registry.get(inbound.to)  # live lookup: agent-not-found
        sender = self.registry.find(inbound.sender)
        if sender is not None:
            sender.touch()
        return target

    async def _authorise_actions(self, inbound: Inbound, target: AgentRecord) -> None:
        """Actions run as ``target`` with its envelope: only the admin, or
        ``target`` itself (authenticated by its transport), may ask for that.
        A refusal runs nothing and is recorded as a ``tension`` by the real
        caller. Raises ``PermissionDenied`` (``forbidden``)."""
        if inbound.admin:
            return
        caller = self.registry.find(inbound.sender) if inbound.sender_type == "agent" else None
        if caller is target:
            return
        refusal = PermissionDenied(
            f"{inbound.sender!r} may not run actions as agent {target.id!r}: an action runs "
            f"with the caller's own identity, so only {target.id!r} itself or the admin may "
            "dispatch actions to it (send a coordination message instead)",
            code="forbidden",
            context={"agent_id": target.id},
        )
        await self._append(
            {
                "subject": {"ref/type": "agent", "ref/id": target.id},
                "type": "coordination",
                "claim-type": "tension",
                "author": inbound.sender,
                "tags": ["dispatch", "refused"],
                "body": {"msg_id": inbound.msg_id, "from": inbound.sender, "to": target.id,
                         "transport": inbound.transport, "code": refusal.code, "message": refusal.message},
            }
        )  # fmt: skip
        raise refusal

    async def _invoke(self, inbound: Inbound, target: AgentRecord, timeout_s: float) -> Receipt:
        """registry/invoke: push to the agent; wait for its reply."""
        at = _now()
        # seq=0: push_fields drops it; the registry stamps the agent's own.
        frame = f.PushedMessage.model_validate({
            "msg_id": inbound.msg_id, "from": {"value": inbound.sender, "type": inbound.sender_type},
            "payload": inbound.payload, "mode": "coordination", "seq": 0,
        })  # fmt: skip
        key = (target.id, inbound.msg_id)
        if key in self._waiting:
            raise ProtocolError(f"msg_id {inbound.msg_id!r} is already awaiting a reply", code="invalid-message")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            delivered = await self.push(target, frame)
            if not delivered:
                raise FutonError(
                    f"agent {target.id!r} is not connected; the message waits in its replay window",
                    code="agent-unreachable",
                )
            try:
                reply = await asyncio.wait_for(asyncio.shield(future), timeout=timeout_s)
            except TimeoutError:
                reply = None
        finally:
            self._waiting.pop(key, None)
        return Receipt(inbound.msg_id, target.id, True, at, route="registry/invoke", reply=reply)

    def reply(self, agent_id: str, msg_id: str, payload: Any) -> bool:
        """An agent answered a coordination message; False if nobody waits."""
        future = self._waiting.get((agent_id, msg_id))
        if future is None or future.done():
            return False
        future.set_result(payload)
        return True

    async def _run_chain(self, inbound: Inbound, target: AgentRecord) -> Receipt:
        """peripheral/run-chain: the routed peripheral runs the actions."""
        payload = inbound.payload if isinstance(inbound.payload, dict) else {"text": inbound.payload}
        requested = payload.get("peripheral")
        if requested is not None and not isinstance(requested, str):
            raise ProtocolError("'peripheral' must be a string", code="invalid-message")
        peripheral = normalise_id(requested) if requested else self.registry.default_peripheral(target)
        actions = payload.get("actions")
        if actions is None:
            actions = [{"tool": "mc-review", "args": []}] if peripheral == "mission-control" else []
        if not isinstance(actions, list):
            raise ProtocolError("'actions' must be a list of {tool, args}", code="invalid-message")
        context = {key: payload[key] for key in CONTEXT_KEYS if key in payload}
        context["dispatched-by"] = inbound.sender  # who asked: the session runs as target.id
        workspace = Path(target.spec.workspace) if target.spec.workspace else None
        result = await self.runner.run_chain(
            target.id,
            [ChainStep(peripheral, actions)],
            permitted=target.spec.peripherals,
            workspace=workspace,
            context=context,
        )
        results = [{"tool": r.tool, "ok": r.ok, "result": r.result} for r in result.results]
        # The payload's text is the session's goal: the earlier conclusions
        # and refusals relevant to it come back with the receipt.
        goal = payload.get("text")
        related = related_work(self.store, goal) if isinstance(goal, str) else None
        return Receipt(
            inbound.msg_id, target.id, True, _now(), route="peripheral/run-chain",
            session_id=result.session_id, peripheral_id=result.peripheral_id, fruit=result.fruit, results=results,
            related=related,
        )  # fmt: skip

    async def _persist(self, inbound: Inbound, mode: Mode, receipt: Receipt) -> None:
        body = {
            "msg_id": inbound.msg_id,
            "from": inbound.sender,
            "to": inbound.to,
            "transport": inbound.transport,
            "mode": mode,
            "route": receipt.route,
            "session_id": receipt.session_id,
            "replied": receipt.reply is not None,
        }
        entry: dict[str, Any] = {
            "subject": {"ref/type": "agent", "ref/id": inbound.to},
            "type": "coordination",
            "claim-type": "step",
            "author": inbound.sender,
            "tags": ["dispatch", mode],
            "body": body,
        }
        if receipt.session_id:
            entry["session-id"] = receipt.session_id
        await self._append(entry)

    async def _append(self, entry: dict[str, Any]) -> None:
        try:
            await self.store.append(entry)
        except FutonError as exc:  # what happened happened; say so even if the record fails
            log.error("could not record dispatch %s: %s", entry["body"].get("msg_id"), exc)

    # ------------------------------------------------------------- delivery

    async def push(self, record: AgentRecord, frame: f.ServerFrame) -> bool:
        """Stamp a push (built from its frame model) with the agent's seq,
        keep it for resume, and send it if the agent is connected. Returns
        whether it went out now. In a team, a push for an agent connected
        to another daemon is delivered there (its seq, its replay window) —
        except an ``irc_message``, which is neither sent nor kept here: that
        daemon's bot hears the same IRC line and relays it (True: the agent
        has it; keeping it here would repeat it if the agent moved here)."""
        fields = f.push_fields(frame)
        if record.link is None and self.team is not None:
            elsewhere = await self.team.owner(record.id)
            if elsewhere is not None and isinstance(frame, f.IrcMessage):
                return True
            if elsewhere is not None:
                try:
                    return await self.team.push(elsewhere, record.id, fields)
                except FutonError as exc:  # kept here for resume instead
                    log.info("push to %s via daemon %s failed: %s", record.id, elsewhere, exc.message)
        return await self.deliver(record, fields)

    async def deliver(self, record: AgentRecord, fields: dict[str, Any]) -> bool:
        """:meth:`push` on this daemon: stamp ``fields`` (a push without its
        seq) with the agent's next seq, keep it, send it if connected here."""
        stamped = self.registry.stamp(record, fields)
        link = record.link
        if link is None:
            return False
        try:
            await link.send(stamped)
        except (ConnectionError, RuntimeError) as exc:
            log.info("push to %s failed (%s); kept for resume", record.id, exc)
            return False
        return True


@dataclass(frozen=True)
class _Seen:
    fingerprint: str
    receipt: asyncio.Future[Receipt | None]


def _fingerprint(inbound: Inbound) -> str:
    """What makes a repeat the same message: its target and payload."""
    text = json.dumps([inbound.to, inbound.payload], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _now() -> str:
    return format_at(datetime.now(UTC))
