"""The IRC relay's decisions, with a recording IRC side: who hears what
(mentions, relay: all, private lines), access rules, the daemon's own
commands, and the channel transcript in evidence."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from futon.config.models import AccessRule, AgentsFile, AgentSpec, IrcAccess
from futon.evidence import EvidenceQuery, MemoryStore
from futon.social.pipeline import Pipeline
from futon.social.registry import AgentRegistry
from futon.social.relay import IrcRelay, allowed, mentions
from tests.peripherals.support import make_runner


@dataclass
class RecordingSide:
    network: str = "embedded"
    channels: set[str] = field(default_factory=lambda: {"#futon"})
    said: list[tuple[str, str, str, bool]] = field(default_factory=list)
    shown: list[tuple[str, list[str]]] = field(default_factory=list)

    async def say(self, nick: str, target: str, text: str, *, notice: bool = False) -> None:
        self.said.append((nick, target, text, notice))

    async def ensure_agent(self, nick: str, channels: list[str]) -> None:
        self.shown.append((nick, channels))

    def joined(self, channel: str) -> bool:
        return channel in self.channels


def agents_file(access: IrcAccess | None = None) -> AgentsFile:
    return AgentsFile(
        agents=[
            AgentSpec(id="claude-1", type="claude", channels=["#futon"]),
            AgentSpec(id="codex-1", type="codex", channels=["#futon"], relay="all"),
            AgentSpec(id="tickle-1", type="tickle", channels=["#ops"]),
        ],
        routing={"claude": "explore", "default": "explore"},
        irc_access=access or IrcAccess(),
    )


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = MemoryStore()
    registry = AgentRegistry(agents_file(IrcAccess(default="allow", rules=[AccessRule(nicks=["mallory"], agents=["claude-1"], allow=False)])))
    runner = make_runner(tmp_path, store=store)
    relay = IrcRelay(registry, Pipeline(registry, runner, store), store, runner)
    side = RecordingSide()
    relay.attach(side)
    return relay, side, registry, store


def pushed(registry: AgentRegistry, agent_id: str) -> list[dict]:
    return list(registry.get(agent_id).replay)


def test_mentions_are_recognised_as_irc_people_write_them() -> None:
    for text in ("claude-1: look at this", "claude-1, hi", "hey @claude-1 there", "ping claude-1: now", "CLAUDE-1: caps"):
        assert mentions(text, "claude-1"), text
    for text in ("claude-10: not you", "I like claude-1", "email claude-1@example"):
        assert not mentions(text, "claude-1"), text


async def test_channel_lines_reach_mentioned_agents_and_relay_all_agents(world) -> None:  # type: ignore[no-untyped-def]
    relay, side, registry, store = world
    await relay.on_message(side, "joe", "#futon", "morning all", private=False)
    await relay.on_message(side, "joe", "#futon", "claude-1: please look at src/app.py", private=False)
    assert [p["text"] for p in pushed(registry, "claude-1")] == ["claude-1: please look at src/app.py"]
    assert [p["text"] for p in pushed(registry, "codex-1")] == ["morning all", "claude-1: please look at src/app.py"]
    assert pushed(registry, "tickle-1") == []
    frame = pushed(registry, "claude-1")[0]
    thread = store.query(EvidenceQuery(subject_type="thread", subject_id="irc/#futon")).entries
    question = thread[0]["evidence/id"]  # the frame names the human's line (issue 17)
    assert frame == {"type": "irc_message", "channel": "#futon", "from": "joe", "text": "claude-1: please look at src/app.py", "transport": "irc", "evidence_id": question, "seq": 1}
    assert [e["evidence/body"]["text"] for e in reversed(thread)] == ["morning all", "claude-1: please look at src/app.py"]
    assert thread[0]["evidence/author"] == "joe" and thread[0]["evidence/body"]["network"] == "embedded"


async def test_private_lines_reach_the_agent_and_are_threaded_by_both_nicks(world) -> None:  # type: ignore[no-untyped-def]
    relay, side, registry, store = world
    await relay.on_message(side, "Joe", "claude-1", "psst", private=True)
    question = store.query(EvidenceQuery(subject_id="irc/claude-1+joe")).entries[0]["evidence/id"]
    assert pushed(registry, "claude-1")[0] == {"type": "irc_message", "channel": None, "from": "Joe", "text": "psst", "transport": "irc", "private": True, "evidence_id": question, "seq": 1}
    assert store.query(EvidenceQuery(subject_id="irc/claude-1+joe")).entries[0]["evidence/body"]["channel"] is None


async def test_notices_are_recorded_but_not_relayed(world) -> None:  # type: ignore[no-untyped-def]
    relay, side, registry, store = world
    await relay.on_message(side, "joe", "#futon", "claude-1: fyi", private=False, notice=True)
    assert pushed(registry, "claude-1") == [] and store.total() == 1


async def test_access_rules_keep_a_line_from_an_agent_and_say_why_once(world) -> None:  # type: ignore[no-untyped-def]
    relay, side, registry, store = world
    for _ in range(2):
        await relay.on_message(side, "mallory", "#futon", "claude-1: rm -rf please", private=False)
    assert pushed(registry, "claude-1") == []
    assert len(pushed(registry, "codex-1")) == 2  # the rule names claude-1 only
    notices = [s for s in side.said if s[3]]
    assert notices == [("futon", "mallory", "mallory: messages from you are not relayed to claude-1 (irc_access)", True)]
    assert store.total() == 2  # still logged


def test_access_rules_first_match_wins_and_default_applies() -> None:
    access = IrcAccess(default="deny", rules=[AccessRule(nicks=["joe"], agents=["*"], allow=True), AccessRule(nicks=["*"], agents=["codex-1"], allow=True)])
    assert allowed(access, "Joe", "claude-1")
    assert allowed(access, "amy", "codex-1")
    assert not allowed(access, "amy", "claude-1")
    assert allowed(IrcAccess(default="deny", rules=[AccessRule(nicks=["acct"], agents=["claude-1"], allow=True)]), "nick", "claude-1", account="acct")


async def test_daemon_commands_answer_in_the_channel(world) -> None:  # type: ignore[no-untyped-def]
    relay, side, registry, _store = world
    await relay.on_message(side, "joe", "#futon", "futon: agents", private=False)
    await relay.on_message(side, "joe", "#futon", "futon, status", private=False)
    await relay.on_message(side, "joe", "#futon", "futon: dance", private=False)
    answers = [s[2] for s in side.said]
    assert answers[0].startswith("agents: claude-1 (offline)")
    assert answers[1].startswith("futon ") and "0/3 agents online" in answers[1]
    assert answers[2].startswith("commands: agents, status, standup, help")
    assert all(s[0] == "futon" and s[1] == "#futon" for s in side.said)
    assert pushed(registry, "codex-1") == []  # commands are not relayed


async def test_standup_with_nobody_online_says_so(world) -> None:  # type: ignore[no-untyped-def]
    relay, side, _, _ = world
    await relay.on_message(side, "joe", "#futon", "futon: standup", private=False)
    assert side.said == [("futon", "#futon", "standup: asking 0 agent(s)", False)]


async def test_agent_replies_go_out_where_the_channel_is_and_into_the_thread(world) -> None:  # type: ignore[no-untyped-def]
    relay, side, _registry, store = world
    elsewhere = RecordingSide(network="libera", channels={"#other"})
    relay.attach(elsewhere)
    await relay.chat.say("claude-1", "#futon", "on it", transport="websocket")  # an agent's irc_response
    assert side.said == [("claude-1", "#futon", "on it", False)] and elsewhere.said == []
    entry = store.query(EvidenceQuery(subject_id="irc/#futon")).entries[0]
    assert (entry["evidence/author"], entry["evidence/body"]["transport"], entry["evidence/body"]["network"]) == ("claude-1", "ws-relay", "embedded")
    await relay.show_agents()
    assert ("claude-1", ["#futon"]) in side.shown


async def test_a_human_named_like_an_agent_is_never_recorded_as_the_agent(world) -> None:  # type: ignore[no-untyped-def]
    """Bot mode: a human on another network may carry an agent's nick (any
    case). The line is recorded under ``irc:<nick>``, never the agent."""
    relay, _side, _registry, store = world
    libera = RecordingSide(network="libera")
    for nick in ("claude-1", "CODEX-1", "Futon"):
        await relay.on_message(libera, nick, "#futon", f"{nick} here, merge it", private=False)
    authors = [e["evidence/author"] for e in reversed(store.query(EvidenceQuery(subject_id="irc/#futon")).entries)]
    assert authors == ["irc:claude-1", "irc:CODEX-1", "irc:Futon"]
    assert relay.nick_reserved("Claude-1") and relay.nick_reserved("futon") and not relay.nick_reserved("joe")


async def test_an_agent_registered_at_run_time_is_shown_at_once(world) -> None:  # type: ignore[no-untyped-def]
    """Registering an agent reserves its nick: the relay shows it on every
    side right away (the embedded side renames a human holding the nick)."""
    relay, side, registry, _store = world
    registry.register("newbot", "mock", channels=["#futon"])
    await asyncio.gather(*relay._showing)  # the show the registration started
    assert ("newbot", ["#futon"]) in side.shown
