"""Tickle, built into the daemon (docs/configuration.md, tickle): it watches, pages, escalates.

Every ``tickle.interval_s`` a scan infers each agent's liveness from the
evidence landscape (the newest entry it authored) and its connection —
never by asking the agent. An agent with an open session that has been
silent longer than ``stale_after_s`` is paged (a mention in its channels
and a ``chat_message`` over WS); if it stays silent for another period, the
humans in ``escalate_to`` are told. Each scan, page and escalation is an
evidence entry (type ``coordination``, tag ``tickle``). Everything Tickle
says goes through the one chat path (:class:`futon.social.chat.Chat`), as
Tickle's agent (or, with no tickle agent configured, ``tickle``).

The audit (issue 21): every ``tickle.audit_every_s`` (0: never; checked each
round) Tickle audits every session concluded since its last audit — the
window runs from the ``until`` of the newest audit on record, so a restart
leaves no gap — against the specs it ran under
(:mod:`futon.peripherals.audit`), records the audit (tags ``tickle``,
``audit``; claim ``tension`` when a session broke a rule, else
``observation``) and pages the humans in ``escalate_to`` and the agent's
channels with each violating session's id, first rule and entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from futon.config.models import TickleSection
from futon.evidence.model import format_at
from futon.evidence.query import EvidenceQuery
from futon.evidence.store import EvidenceStore
from futon.peripherals.audit import AuditReport, audit_sessions_async, sessions_in
from futon.peripherals.runner import ChainStep, PeripheralRunner
from futon.protocol.errors import FutonError
from futon.social.chat import Chat, Reach
from futon.social.registry import AgentRecord, AgentRegistry

log = logging.getLogger("futon.tickle")

AUDIT_SESSIONS_CAP = 1000  # sessions one scheduled audit replays (the rest: "more" in its record)
AUDIT_RECORDED = 100  # violations an audit's record lists in full

Clock = Callable[[], datetime]


@dataclass
class Watch:
    """What Tickle remembers of one agent between scans."""

    paged_at: float | None = None
    escalated: bool = False


@dataclass
class AuditRound:
    """One scheduled audit: its window and the sessions' reports."""

    since: str
    until: str
    sessions: list[AuditReport] = field(default_factory=list)
    more: bool = False

    @property
    def dirty(self) -> list[AuditReport]:
        return [s for s in self.sessions if not s.clean]


@dataclass
class ScanReport:
    at: str
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    paged: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)


def _parse(at: str | None) -> float | None:
    if not at:
        return None
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


class Tickle:
    def __init__(
        self,
        registry: AgentRegistry,
        store: EvidenceStore,
        runner: PeripheralRunner,
        chat: Chat,
        settings: TickleSection,
        *,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.registry = registry
        self.store = store
        self.runner = runner
        self.chat = chat
        self.settings = settings
        self.clock = clock
        self.watches: dict[str, Watch] = {}
        self._task: asyncio.Task[None] | None = None
        self._audited_at: datetime | None = None  # when the last audit ran (this process)

    @property
    def identity(self) -> str:
        """Tickle's agent id: the tickle agent of agents.yaml, else 'tickle'."""
        for record in self.registry.all():
            if record.type == "tickle":
                return record.id
        return "tickle"

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Run the watch in a task of its own (tests); the daemon runs
        :meth:`run` under its background tasks instead."""
        if self._task is None:
            self._task = asyncio.ensure_future(self.run())

    def apply_settings(self, settings: TickleSection) -> None:
        """A reload: the watch reads interval and staleness each round.
        Starting or stopping the watch (``enabled``) is its owner's call."""
        self.settings = settings

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        """The watch: scan every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.settings.interval_s)
            try:
                await self.scan()
            except Exception:  # a bad scan must not end the watch
                log.exception("tickle scan failed")
            if self.audit_due():
                try:
                    await self.audit()
                except Exception:  # nor a bad audit
                    log.exception("tickle audit failed")

    # ------------------------------------------------------------- the audit

    def audit_due(self) -> bool:
        """Audits are on, and none ran in this process for ``audit_every_s``
        (the first round after a start audits what concluded meanwhile)."""
        every = self.settings.audit_every_s
        if every <= 0:
            return False
        return self._audited_at is None or (self.clock() - self._audited_at).total_seconds() >= every

    async def audit(self) -> AuditRound:
        """Audit the sessions concluded since the last audit on record (else
        in the last ``audit_every_s``); record it; page on a violation."""
        now = self.clock()
        self._audited_at = now
        until = format_at(now)
        since = self._last_audit_until() or format_at(now - timedelta(seconds=self.settings.audit_every_s or 3600))
        sessions, more = sessions_in(self.store, since, until, claim="conclusion", cap=AUDIT_SESSIONS_CAP)
        reports = await audit_sessions_async(self.store, self.runner.peripherals, sessions)
        round_ = AuditRound(since, until, reports, more)
        for report in round_.dirty:
            await self._page_violation(report)
        violations = [
            {"session": r.session_id, "agent": r.agent_id, **v.to_dict()} for r in round_.dirty for v in r.violations
        ]
        await self._record(
            "audit",
            "tension" if violations else "observation",
            {"since": since, "until": until, "sessions": len(round_.sessions), "dirty": len(round_.dirty),
             "more": more, "violations": violations[:AUDIT_RECORDED], "violation_count": len(violations)},
        )  # fmt: skip
        return round_

    def _last_audit_until(self) -> str | None:
        page = self.store.query(EvidenceQuery(tags=("tickle", "audit"), limit=1)).entries
        body = page[0].get("evidence/body") if page else None
        until = body.get("until") if isinstance(body, dict) else None
        return until if isinstance(until, str) else None

    async def _page_violation(self, report: AuditReport) -> None:
        first = report.violations[0]
        more = f" (and {len(report.violations) - 1} more)" if len(report.violations) > 1 else ""
        text = (
            f"audit: session {report.session_id} of {report.agent_id or 'an agent'} broke {first.rule} "
            f"at {first.evidence_id}{more} — futon evidence audit {report.session_id}"
        )
        humans = self.settings.escalate_to
        for human in humans:
            await self._say(human, text)
        record = self.registry.find(report.agent_id) if report.agent_id else None
        for channel in record.spec.channels if record is not None else []:
            await self._say(channel, (", ".join(humans) + ": " if humans else "") + text, reach="nobody")

    # ------------------------------------------------------------- the scan

    async def scan(self) -> ScanReport:
        now = self.clock()
        report = ScanReport(at=now.isoformat())
        me = self.identity
        for record in self.registry.all():
            if record.id == me or record.type == "tickle":
                continue
            seen = self._last_seen(record)
            silent = None if seen is None else now.timestamp() - seen
            session = self._open_session(record)
            report.agents[record.id] = {
                "connected": record.connected,
                "session": session,
                "silent_s": silent,
            }
            watch = self.watches.setdefault(record.id, Watch())
            stale = session is not None and (silent is None or silent > self.settings.stale_after_s)
            if not stale:
                self.watches[record.id] = Watch()  # active again (or nothing open): forget the page
                continue
            assert session is not None  # stale implies an open session
            if watch.paged_at is None:
                await self._page(record, session, silent)
                watch.paged_at = now.timestamp()
                report.paged.append(record.id)
            elif (
                not watch.escalated
                and now.timestamp() - watch.paged_at > self.settings.stale_after_s
            ):
                await self._escalate(record, session, silent)
                watch.escalated = True
                report.escalated.append(record.id)
        await self._record(
            "scan",
            "observation",
            {"agents": report.agents, "paged": report.paged, "escalated": report.escalated},
        )
        return report

    def _last_seen(self, record: AgentRecord) -> float | None:
        """Newest of: its newest evidence entry, its last frame."""
        page = self.store.query(EvidenceQuery(author=record.id, include_ephemeral=True, limit=1))
        times = [
            _parse(page.entries[0]["evidence/at"]) if page.entries else None,
            _parse(record.last_active),
        ]
        known = [t for t in times if t is not None]
        return max(known) if known else None

    def _open_session(self, record: AgentRecord) -> str | None:
        if record.session_id:
            return record.session_id
        for session in self.runner.sessions(record.id):
            if session.active:
                return session.id
        return None

    # ------------------------------------------------------------- actions

    async def _page(self, record: AgentRecord, session: str, silent: float | None) -> None:
        how_long = "no activity on record" if silent is None else f"silent for {silent:.0f} s"
        text = f"{record.nick}: tickle here — session {session} is open and you are {how_long}. Still there?"
        # The humans see the page in the agent's channels; the agent gets it once, below.
        for channel in record.spec.channels:
            await self._say(channel, text, reach="nobody")
        await self._say(record.id, text)
        await self._record(
            "page",
            "question",
            {"agent": record.id, "session": session, "silent_s": silent, "text": text},
        )

    async def _escalate(self, record: AgentRecord, session: str, silent: float | None) -> None:
        humans = self.settings.escalate_to
        text = f"{record.nick} has not answered a page; session {session} is still open ({'' if silent is None else f'{silent:.0f} s silent'})."
        for human in humans:
            await self._say(human, text)
        for channel in record.spec.channels:
            await self._say(channel, (", ".join(humans) + ": " if humans else "") + text)
        await self._record(
            "escalation",
            "tension",
            {"agent": record.id, "session": session, "to": humans, "text": text},
        )

    async def standup(self, channel: str) -> str:
        """``futon: standup``: run the mission-control review and post its summary."""
        me = self.identity
        result = await self.runner.run_chain(
            me, [ChainStep("mission-control", [{"tool": "mc-review", "args": []}])]
        )
        review = result.fruit.get("review") or {}
        summary = review.get("summary") or "no review summary"
        await self._say(channel, f"standup review: {summary}")
        await self._record(
            "standup",
            "observation",
            {"channel": channel, "session": result.session_id, "summary": summary},
        )
        return summary

    async def _say(self, to: str, text: str, *, reach: Reach = "addressed") -> None:
        """Say ``text`` to a channel, a human or an agent; a line that
        reaches nobody (no IRC, nobody in the channel) is logged, not fatal."""
        try:
            await self.chat.say(self.identity, to, text, transport="tickle", reach=reach)
        except (FutonError, ConnectionError) as exc:
            log.warning("tickle could not say to %s: %s", to, exc)

    async def _record(self, kind: str, claim: str, body: dict[str, Any]) -> None:
        try:
            await self.store.append(
                {
                    "subject": {"ref/type": "agent", "ref/id": body.get("agent", self.identity)},
                    "type": "coordination",
                    "claim-type": claim,
                    "author": self.identity,
                    "tags": ["tickle", kind],
                    "body": body,
                }
            )
        except FutonError as exc:
            log.error("tickle could not record its %s: %s", kind, exc)
