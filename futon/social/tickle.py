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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from futon.config.models import TickleSection
from futon.evidence.query import EvidenceQuery
from futon.evidence.store import EvidenceStore
from futon.peripherals.runner import ChainStep, PeripheralRunner
from futon.protocol.errors import FutonError
from futon.social.chat import Chat, Reach
from futon.social.registry import AgentRecord, AgentRegistry

log = logging.getLogger("futon.tickle")

Clock = Callable[[], datetime]


@dataclass
class Watch:
    """What Tickle remembers of one agent between scans."""

    paged_at: float | None = None
    escalated: bool = False


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
