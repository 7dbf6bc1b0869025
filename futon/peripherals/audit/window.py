"""Audit every session of a time window (``futon evidence audit --all``,
``GET /api/alpha/audit``, Tickle's scheduled audit).

Contract: :func:`sessions_in` lists the sessions with an entry of the given
claim (``goal``: started in the window; ``conclusion``: concluded in it)
with ``since <= at < until``, oldest first, at most ``cap`` (``more`` says
the cap cut the list); :func:`audit_window` audits each against the specs
it ran under (one :class:`SpecsLibrary` for all) and reports them together.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from futon.evidence.query import MAX_LIMIT, EvidenceQuery
from futon.evidence.store import EvidenceStore
from futon.peripherals.audit.replay import CHAIN_TAG, AuditReport, audit_session
from futon.peripherals.audit.specs import Specs, SpecsLibrary
from futon.protocol.errors import NotFound

MAX_WINDOW_SESSIONS = 10_000  # sessions one window audit reads (the CLI's cap)


@dataclass
class WindowReport:
    since: str | None
    until: str | None
    cap: int
    more: bool = False  # the window holds more sessions than the cap
    sessions: list[AuditReport] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return all(s.clean for s in self.sessions)

    @property
    def violations(self) -> int:
        return sum(len(s.violations) for s in self.sessions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "cap": self.cap,
            "more": self.more,
            "count": len(self.sessions),
            "clean": self.clean,
            "violations": self.violations,
            "sessions": [s.to_dict() for s in self.sessions],
        }


def sessions_in(
    store: EvidenceStore,
    since: str | None,
    until: str | None,
    *,
    claim: Literal["goal", "conclusion"] = "goal",
    cap: int = MAX_WINDOW_SESSIONS,
) -> tuple[list[str], bool]:
    """Session ids with a ``claim`` entry in the window, oldest first (at
    most ``cap``), and whether there were more."""
    found: dict[str, None] = {}
    after = 0
    while True:
        query = EvidenceQuery(
            claim_type=claim, tags=(CHAIN_TAG,), since=since, until=until, after_seq=after, limit=MAX_LIMIT
        )
        page = store.query(query).entries
        for entry in page:
            session = entry.get("evidence/session-id")
            if isinstance(session, str) and session not in found:
                if len(found) >= cap:
                    return list(found), True
                found[session] = None
        if len(page) < MAX_LIMIT:
            return list(found), False
        after = page[-1]["evidence/seq"]


def audit_sessions(store: EvidenceStore, peripherals: Specs, sessions: Iterable[str]) -> list[AuditReport]:
    """Each session's report (one spec library for all); a session whose
    entries are gone by now (compacted) is skipped."""
    library = SpecsLibrary(store, peripherals)
    reports = []
    for session in sessions:
        try:
            reports.append(audit_session(store, peripherals, session, library=library))
        except NotFound:
            continue
    return reports


async def audit_sessions_async(
    store: EvidenceStore, peripherals: Specs, sessions: Iterable[str]
) -> list[AuditReport]:
    """:func:`audit_sessions` for the daemon's loop: it yields between
    sessions, so a long window does not hold up other work (one session is
    the longest stretch: ~40 µs an entry, measured)."""
    library = SpecsLibrary(store, peripherals)
    reports = []
    for session in sessions:
        with contextlib.suppress(NotFound):  # its entries are gone by now (compacted)
            reports.append(audit_session(store, peripherals, session, library=library))
        await asyncio.sleep(0)
    return reports


async def audit_window_async(
    store: EvidenceStore, peripherals: Specs, since: str | None, until: str | None = None, *, cap: int
) -> WindowReport:
    """:func:`audit_window` for the daemon's loop (see :func:`audit_sessions_async`)."""
    sessions, more = sessions_in(store, since, until, cap=cap)
    report = WindowReport(since, until, cap, more)
    report.sessions = await audit_sessions_async(store, peripherals, sessions)
    return report


def audit_window(
    store: EvidenceStore,
    peripherals: Specs,
    since: str | None,
    until: str | None = None,
    *,
    cap: int = MAX_WINDOW_SESSIONS,
) -> WindowReport:
    """Every session with a goal in ``[since, until)``, audited."""
    sessions, more = sessions_in(store, since, until, cap=cap)
    report = WindowReport(since, until, cap, more)
    report.sessions = audit_sessions(store, peripherals, sessions)
    return report
