"""Tickle pages a silent agent and escalates to humans, with a clock the
test moves instead of waiting; every action is in the evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from futon.config.models import TickleSection
from futon.daemon.app import Daemon
from futon.evidence import EvidenceQuery
from futon.social.chat import Chat
from futon.social.tickle import Tickle
from tests.support import until
from tests.transports.kit import connected, running_daemon


@dataclass
class RecordingSpeaker:
    """An IRC side carrying #futon that records what is said on it."""

    network: str = "recording"
    said: list[tuple[str, str, str]] = field(default_factory=list)

    async def say(self, nick: str, target: str, text: str, *, notice: bool = False) -> None:
        self.said.append((nick, target, text))

    async def ensure_agent(self, nick: str, channels: list[str]) -> None:
        pass

    def joined(self, channel: str) -> bool:
        return channel == "#futon"


def chat_with(daemon: Daemon, speaker: RecordingSpeaker | None = None) -> Chat:
    """The one chat path over the daemon's registry and store, speaking on ``speaker``."""
    chat = Chat(daemon.registry, daemon.pipeline, daemon.store)
    if speaker is not None:
        chat.attach(speaker)
    return chat


async def test_tickle_pages_a_silent_agent_then_escalates_then_forgets_once_it_speaks(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    now = [datetime.now(UTC)]
    speaker = RecordingSpeaker()
    settings = TickleSection(enabled=True, interval_s=1, stale_after_s=30, escalate_to=["joe"])
    tickle = Tickle(daemon.registry, daemon.store, daemon.runner, chat_with(daemon, speaker), settings, clock=lambda: now[0])
    async with connected(http, daemon, "codex-1") as codex:
        started = await codex.ask({"type": "peripheral_start"})
        first = await tickle.scan()
        assert first.paged == [] and first.agents["codex-1"]["session"] == started["session_id"]

        now[0] += timedelta(seconds=45)
        paged = await tickle.scan()
        assert paged.paged == ["codex-1"] and paged.escalated == []
        push = await codex.push_of("chat_message")
        assert push["from"] == "tickle-1" and "still there?" in push["text"].lower()
        assert speaker.said[0][:2] == ("tickle-1", "#futon") and speaker.said[0][2].startswith("codex-1: tickle here")

        now[0] += timedelta(seconds=45)
        escalated = await tickle.scan()
        assert escalated.escalated == ["codex-1"]
        assert ("tickle-1", "joe") in [(nick, to) for nick, to, _ in speaker.said]

        now[0] += timedelta(seconds=45)
        assert (await tickle.scan()).escalated == []  # escalated once

        await codex.ask({"type": "tool_action", "tool": "read", "args": ["README.md"]})
        now[0] = datetime.now(UTC) + timedelta(seconds=1)
        assert (await tickle.scan()).paged == []
        assert tickle.watches["codex-1"].paged_at is None

    kinds = [e["evidence/tags"][1] for e in daemon.store.query(EvidenceQuery(tags=("tickle",), limit=100)).entries]
    assert kinds.count("page") == 1 and kinds.count("escalation") == 1 and kinds.count("scan") == 5
    escalation = daemon.store.query(EvidenceQuery(tags=("tickle", "escalation"))).entries[0]
    assert escalation["evidence/claim-type"] == "tension" and escalation["evidence/author"] == "tickle-1"


async def test_agents_without_an_open_session_are_not_paged(daemon: Daemon) -> None:
    now = [datetime.now(UTC) + timedelta(hours=1)]
    tickle = Tickle(daemon.registry, daemon.store, daemon.runner, chat_with(daemon), TickleSection(stale_after_s=1), clock=lambda: now[0])
    report = await tickle.scan()
    assert report.paged == [] and set(report.agents) == {"claude-1", "codex-1"}


async def test_standup_runs_the_mission_control_review_and_posts_its_summary(daemon: Daemon) -> None:
    speaker = RecordingSpeaker()
    tickle = Tickle(daemon.registry, daemon.store, daemon.runner, chat_with(daemon, speaker), TickleSection())
    summary = await tickle.standup("#futon")
    assert speaker.said == [("tickle-1", "#futon", f"standup review: {summary}")]
    assert daemon.store.query(EvidenceQuery(tags=("tickle", "standup"))).entries[0]["evidence/body"]["summary"] == summary


async def test_the_watch_runs_by_itself_on_its_interval(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    """With a shortened interval, the background loop pages a silent agent
    without anyone calling scan()."""
    import asyncio

    settings = TickleSection(enabled=True, interval_s=0.05, stale_after_s=0.2)
    tickle = Tickle(daemon.registry, daemon.store, daemon.runner, chat_with(daemon), settings)
    async with connected(http, daemon, "codex-1") as codex:
        await codex.ask({"type": "peripheral_start"})
        tickle.start()
        try:
            push = await codex.push_of("chat_message", timeout=10)
        finally:
            await tickle.stop()
    assert push["from"] == "tickle-1"
    await asyncio.sleep(0)
    assert daemon.store.query(EvidenceQuery(tags=("tickle", "page"))).entries


def forged_session(session: str) -> list[dict[str, object]]:
    """A concluded session of claude-1 that wrote from read-only explore."""
    base = {"subject": {"ref/type": "session", "ref/id": session}, "type": "coordination", "author": "claude-1",
            "session-id": session, "tags": ["peripheral"]}  # fmt: skip
    bodies = [("goal", {"peripheral": "explore", "agent": "claude-1"}),
              ("step", {"tool": "write", "args": ["src/x.py", "x"], "ok": True}),
              ("conclusion", {"peripheral": "explore", "reason": "client-requested"})]  # fmt: skip
    entries: list[dict[str, object]] = []
    for n, (claim, body) in enumerate(bodies):
        entry = {**base, "id": f"{session}-{n}", "claim-type": claim, "body": body}
        if n:
            entry["in-reply-to"] = f"{session}-{n - 1}"
        entries.append(entry)
    return entries


async def test_the_watch_audits_concluded_sessions_on_schedule_and_pages_a_violation(tmp_path: Path) -> None:
    """A real daemon's watch, on a short interval with a clock the test
    moves: the first round audits (nothing yet), the next audit waits for
    audit_every_s of the clock, covers what concluded since the last one,
    is recorded, and pages joe and #futon with the session and the rule."""
    speaker = RecordingSpeaker()
    overrides = {"tickle__enabled": True, "tickle__interval_s": 0.05, "tickle__escalate_to": ["joe"]}
    async with running_daemon(tmp_path, **overrides) as daemon, aiohttp.ClientSession() as http:
        now = [datetime.now(UTC)]
        assert daemon.tickle is not None and daemon.chat is not None
        daemon.tickle.clock = lambda: now[0]
        daemon.chat.attach(speaker)

        def audits() -> list[dict[str, Any]]:
            return list(reversed(daemon.store.query(EvidenceQuery(tags=("tickle", "audit"))).entries))

        def scans() -> int:
            return daemon.store.count(EvidenceQuery(tags=("tickle", "scan")))

        await until(lambda: len(audits()) == 1, what="the first audit")
        async with connected(http, daemon, "claude-1") as agent:
            clean = (await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"}))["session_id"]
            await agent.ask({"type": "tool_action", "tool": "read", "args": ["README.md"]})
            await agent.ask({"type": "peripheral_stop"})
        daemon.store.append_many_sync(forged_session("sess-t"))
        seen = scans()
        await until(lambda: scans() >= seen + 3, what="three more scans")
        assert len(audits()) == 1  # the clock has not moved: no audit is due

        now[0] += timedelta(seconds=3600)
        await until(lambda: len(audits()) == 2, what="the scheduled audit")
        first, second = audits()
    body = second["evidence/body"]
    assert body["since"] == first["evidence/body"]["until"] and second["evidence/claim-type"] == "tension"
    assert (body["sessions"], body["dirty"], body["violation_count"]) == (2, 1, 1)
    (violation,) = body["violations"]
    assert (violation["session"], violation["rule"], violation["evidence_id"]) == ("sess-t", "tool-not-in-envelope", "sess-t-1")
    assert first["evidence/claim-type"] == "observation" and first["evidence/author"] == "tickle-1"
    pages = [(to, text) for nick, to, text in speaker.said if nick == "tickle-1" and text.find("audit: session") >= 0]
    assert [to for to, _ in pages] == ["joe", "#futon"]
    assert all("sess-t" in text and "tool-not-in-envelope" in text and "sess-t-1" in text for _, text in pages)
    assert clean not in "".join(text for _, text in pages)


def test_audits_are_off_at_zero(daemon: Daemon) -> None:
    tickle = Tickle(daemon.registry, daemon.store, daemon.runner, chat_with(daemon), TickleSection(audit_every_s=0))
    assert tickle.audit_due() is False
    assert Tickle(daemon.registry, daemon.store, daemon.runner, chat_with(daemon), TickleSection()).audit_due()
