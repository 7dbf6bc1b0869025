"""The one chat path (futon/social/chat.py): every caller — the messenger's
bulletin and bell, Tickle's page, the daemon's command answers and standup,
an agent's line — reaches the agents, every IRC side that carries the
channel, and the evidence thread exactly once; threads are case-folded;
a line that reaches nobody is a typed error with no effect.

Two recording IRC sides (the embedded server and a bot network) both carry
``#futon``; pushes are counted in each agent's replay window (what the
registry stamped), so an offline agent counts too."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from futon.config.models import AgentsFile, AgentSpec, TickleSection
from futon.evidence import EvidenceQuery, MemoryStore
from futon.protocol.errors import FutonError, NotFound
from futon.social.chat import Chat, thread_id
from futon.social.messenger import DaemonMessenger
from futon.social.pipeline import Pipeline
from futon.social.registry import AgentRegistry
from futon.social.relay import IrcRelay
from futon.social.tickle import Tickle
from tests.peripherals.support import make_runner


@dataclass
class RecordingSide:
    network: str
    channels: set[str] = field(default_factory=lambda: {"#futon"})
    nicks: set[str] = field(default_factory=lambda: {"joe"})  # humans this side knows
    said: list[tuple[str, str, str]] = field(default_factory=list)

    async def say(self, nick: str, target: str, text: str, *, notice: bool = False) -> None:
        if not target.startswith("#") and target.lower() not in self.nicks:
            raise NotFound(f"no nick {target}")  # as the embedded server does
        self.said.append((nick, target, text))

    async def ensure_agent(self, nick: str, channels: list[str]) -> None:
        pass

    def joined(self, channel: str) -> bool:
        return channel.lower() in self.channels


@dataclass
class AnsweringLink:
    """A connected agent that answers every coordination message with
    ``answer`` (None: an empty reply) the moment it is pushed."""

    pipeline: Pipeline
    agent_id: str
    answer: Any = None
    transport: str = "websocket"
    frames: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        if frame["type"] == "message":
            self.pipeline.reply(self.agent_id, frame["msg_id"], self.answer)

    async def close(self, code: int, reason: str) -> None:
        pass


@dataclass
class World:
    chat: Chat
    relay: IrcRelay
    registry: AgentRegistry
    pipeline: Pipeline
    store: MemoryStore
    embedded: RecordingSide
    libera: RecordingSide
    runner: Any

    def pushed(self, agent_id: str) -> list[dict[str, Any]]:
        return list(self.registry.get(agent_id).replay)

    def thread(self, thread: str) -> list[dict[str, Any]]:
        return list(
            reversed(
                self.store.query(
                    EvidenceQuery(subject_type="thread", subject_id=thread, limit=100)
                ).entries
            )
        )

    def irc(self) -> list[tuple[str, str, str, str]]:
        return [
            (side.network, *line) for side in (self.embedded, self.libera) for line in side.said
        ]


@pytest.fixture
def world(tmp_path: Path) -> World:
    agents = AgentsFile(
        agents=[
            AgentSpec(id="claude-1", type="claude", channels=["#futon"]),
            AgentSpec(id="codex-1", type="codex", channels=["#futon"]),
            AgentSpec(id="tickle-1", type="tickle", channels=["#futon"]),
            AgentSpec(
                id="loner", type="mock", channels=["#quiet"]
            ),  # a channel no IRC side carries
        ],
        routing={"default": "explore"},
    )
    store = MemoryStore()
    registry = AgentRegistry(agents)
    runner = make_runner(tmp_path, store=store)
    pipeline = Pipeline(registry, runner, store)
    chat = Chat(registry, pipeline, store)
    relay = IrcRelay(registry, pipeline, store, runner, chat=chat, standup_timeout_s=5)
    embedded, libera = RecordingSide("embedded"), RecordingSide("libera")
    relay.attach(embedded)
    relay.attach(libera)
    return World(chat, relay, registry, pipeline, store, embedded, libera, runner)


# ------------------------------------------------------------------ each caller, exactly once


async def test_an_agents_channel_line_reaches_irc_the_mentioned_agent_and_the_thread_once(
    world: World,
) -> None:
    said = await world.chat.say(
        "claude-1", "#futon", "codex-1: please review", transport="websocket"
    )
    assert sorted(world.irc()) == [
        ("embedded", "claude-1", "#futon", "codex-1: please review"),
        ("libera", "claude-1", "#futon", "codex-1: please review"),
    ]
    (push,) = world.pushed("codex-1")
    assert push == {
        "type": "chat_message",
        "to": "#futon",
        "from": "claude-1",
        "text": "codex-1: please review",
        "transport": "websocket",
        "evidence_id": said.evidence_id,  # the line's entry, recorded before the push
        "seq": 1,
    }
    # Neither the speaker nor an agent the line does not mention is pushed it.
    assert world.pushed("claude-1") == [] and world.pushed("tickle-1") == []
    (entry,) = world.thread("irc/#futon")
    body = entry["evidence/body"]
    assert (entry["evidence/author"], body["transport"], body["network"]) == (
        "claude-1",
        "ws-relay",
        "embedded,libera",
    )
    assert entry["evidence/id"] == said.evidence_id
    assert (
        said.agents == ("codex-1",)
        and said.networks == ("embedded", "libera")
        and said.thread == "irc/#futon"
    )


async def test_a_line_to_an_agent_is_pushed_never_sent_to_irc_and_threaded_privately(
    world: World,
) -> None:
    said = await world.chat.say("bob", "CODEX-1", "deploy is done", transport="http")
    assert [p["text"] for p in world.pushed("codex-1")] == ["deploy is done"]
    assert world.irc() == []
    (entry,) = world.thread("irc/bob+codex-1")
    assert (
        entry["evidence/body"]["channel"] is None and entry["evidence/body"]["transport"] == "http"
    )
    assert said.thread == "irc/bob+codex-1"


async def test_a_line_to_an_irc_nick_goes_to_the_sides_that_know_it(world: World) -> None:
    world.libera.nicks = set()  # joe is only on the embedded server
    await world.chat.say("claude-1", "Joe", "got it", transport="websocket")
    assert world.irc() == [("embedded", "claude-1", "Joe", "got it")]
    (entry,) = world.thread("irc/claude-1+joe")
    assert entry["evidence/body"]["network"] == "embedded"


async def test_someone_who_is_no_agent_is_spoken_for_by_the_daemon(world: World) -> None:
    await world.chat.say("bob", "#futon", "build is green", transport="http")
    assert {line[1:] for line in world.irc()} == {("futon", "#futon", "[bob] build is green")}
    (entry,) = world.thread("irc/#futon")
    assert entry["evidence/author"] == "bob" and entry["evidence/body"]["text"] == "build is green"


async def test_a_bulletin_goes_through_the_one_path(world: World) -> None:
    messenger = DaemonMessenger(world.chat, world.pipeline)
    await messenger.post("#futon", "3 missions ready, @claude-1", author="tickle-1")
    assert sorted(world.irc()) == [
        ("embedded", "tickle-1", "#futon", "3 missions ready, @claude-1"),
        ("libera", "tickle-1", "#futon", "3 missions ready, @claude-1"),
    ]
    assert [p["transport"] for p in world.pushed("claude-1")] == ["bulletin"] and world.pushed(
        "codex-1"
    ) == []
    assert len(world.thread("irc/#futon")) == 1


async def test_a_bell_rings_every_agent_in_the_room_once_and_is_heard_on_irc(world: World) -> None:
    messenger = DaemonMessenger(world.chat, world.pipeline)
    rung = await messenger.ring("#futon", "standup in 5", author="claude-1")
    assert sorted(rung) == ["codex-1", "tickle-1"]
    for agent in ("codex-1", "tickle-1"):
        assert [(p["transport"], p["text"]) for p in world.pushed(agent)] == [
            ("bell", "standup in 5")
        ]
    assert world.pushed("claude-1") == []
    assert len(world.irc()) == 2 and len(world.thread("irc/#futon")) == 1
    assert await messenger.ring("quiet", "anyone?", author="claude-1") == [
        "loner"
    ]  # a room is a channel


async def test_a_tickle_page_reaches_the_agent_once_and_the_humans_in_its_channel(
    world: World,
) -> None:
    record = world.registry.get("codex-1")
    record.session_id = "s-open"  # an open session, no activity on record: stale
    tickle = Tickle(
        world.registry,
        world.store,
        world.runner,
        world.chat,
        TickleSection(stale_after_s=30),
        clock=lambda: datetime.now(UTC),
    )
    report = await tickle.scan()
    assert "codex-1" in report.paged
    (push,) = world.pushed("codex-1")
    assert (
        push["from"] == "tickle-1"
        and push["transport"] == "tickle"
        and "Still there?" in push["text"]
    )
    assert sorted(
        network for network, nick, to, _ in world.irc() if to == "#futon" and nick == "tickle-1"
    ) == ["embedded", "libera"]
    assert len(world.thread("irc/#futon")) == 1 and len(world.thread("irc/codex-1+tickle-1")) == 1


async def test_the_daemons_answer_goes_where_it_was_asked_in_its_own_nick(world: World) -> None:
    await world.relay.on_message(world.libera, "joe", "#futon", "futon: status", private=False)
    ((nick, to, text),) = world.libera.said
    assert (nick, to) == ("futon", "#futon") and text.startswith("futon ")
    assert world.embedded.said == []  # the question was not asked there
    assert [p for a in ("claude-1", "codex-1", "tickle-1") for p in world.pushed(a)] == []
    question, answer = world.thread("irc/#futon")
    assert (question["evidence/author"], answer["evidence/author"]) == ("joe", "futon")
    assert answer["evidence/body"]["network"] == "libera"


# ------------------------------------------------------------------ standup


async def test_standup_reports_a_silent_agent_in_the_daemons_nick(world: World) -> None:
    world.registry.get("claude-1").link = AnsweringLink(world.pipeline, "claude-1", answer=None)
    world.registry.get("codex-1").link = AnsweringLink(
        world.pipeline, "codex-1", answer={"text": "fixing the add test"}
    )
    await world.relay.on_message(world.embedded, "joe", "#futon", "futon: standup", private=False)
    said = world.embedded.said
    assert said[0] == ("futon", "#futon", "standup: asking 2 agent(s): claude-1, codex-1")
    assert ("futon", "#futon", "(no answer from claude-1)") in said
    assert ("codex-1", "#futon", "fixing the add test") in said  # an answer is the agent's own line
    assert not [
        line for line in said if line[0] == "claude-1"
    ]  # the daemon never speaks as an agent
    authors = {e["evidence/body"]["text"]: e["evidence/author"] for e in world.thread("irc/#futon")}
    assert (
        authors["(no answer from claude-1)"] == "futon"
        and authors["fixing the add test"] == "codex-1"
    )


# ------------------------------------------------------------------ one thread rule


async def test_thread_ids_fold_case_as_irc_does(world: World) -> None:
    assert thread_id("#Futon") == thread_id("#futon") == "irc/#futon"
    assert thread_id("Joe", "claude-1") == thread_id("claude-1", "joe") == "irc/claude-1+joe"
    assert thread_id("#[x]") == thread_id("#{X}")  # rfc1459: [] are the upper case of {}
    await world.relay.on_message(world.embedded, "joe", "#FUTON", "morning", private=False)
    await world.chat.say("claude-1", "#Futon", "morning joe", transport="websocket")
    await world.chat.say("futon", "#futon", "morning all", transport="daemon")
    assert [e["evidence/body"]["text"] for e in world.thread("irc/#futon")] == [
        "morning",
        "morning joe",
        "morning all",
    ]
    await world.relay.on_message(world.embedded, "JOE", "claude-1", "psst", private=True)
    await world.chat.say("claude-1", "joe", "yes?", transport="websocket")
    assert [e["evidence/body"]["text"] for e in world.thread("irc/claude-1+joe")] == [
        "psst",
        "yes?",
    ]


# ------------------------------------------------------------------ who spoke


async def test_the_record_says_who_spoke_whatever_the_name(world: World) -> None:
    """``body.speaker``: the relay's lines are a human's; an agent's lines
    are the agent's, and the daemon's its own, unless the caller (the HTTP
    chat route, for a caller without an agent token) says a person spoke.
    A user-request hop accepts only ``human`` (tests/security/test_request_forgery.py)."""
    await world.relay.on_message(world.embedded, "joe", "#futon", "claude-1: hi", private=False)
    await world.relay.on_message(world.embedded, "joe", "claude-1", "psst", private=True)
    await world.chat.say("claude-1", "#futon", "hi joe", transport="websocket")
    await world.chat.say("futon", "#futon", "status: fine", transport="daemon")
    # Tickle speaking for itself (no agent of that name): the daemon's line
    await world.chat.say("tickle", "#futon", "[page] claude-1?", transport="tickle")
    await world.chat.say("ann", "#futon", "claude-1: and me", transport="http", speaker="human")
    # an agent's token on HTTP chat: the agent's line, whatever it says
    await world.chat.say("codex-1", "#futon", "claude-1: as joe", transport="http")
    speakers = {
        e["evidence/body"]["text"]: e["evidence/body"]["speaker"]
        for thread in ("irc/#futon", "irc/claude-1+joe")
        for e in world.thread(thread)
    }
    assert speakers == {
        "claude-1: hi": "human",
        "psst": "human",
        "hi joe": "agent",
        "status: fine": "daemon",
        "[page] claude-1?": "daemon",
        "claude-1: and me": "human",
        "claude-1: as joe": "agent",
    }


# ------------------------------------------------------------------ typed errors, no effect


@pytest.mark.parametrize(
    ("to", "text", "code"),
    [
        ("#nowhere", "hello?", "no-such-channel"),  # no side carries it, no agent sits in it
        ("ghost", "hello?", "unknown-target"),  # no agent, no side knows the nick
        ("two words", "hello?", "invalid-target"),
        ("#bad,channel", "hello?", "invalid-target"),
        ("#futon", "  \n", "invalid-input"),
    ],
)
async def test_a_line_that_reaches_nobody_is_a_typed_error_and_changes_nothing(
    world: World, to: str, text: str, code: str
) -> None:
    with pytest.raises(FutonError) as caught:
        await world.chat.say("claude-1", to, text, transport="websocket")
    assert caught.value.code == code and caught.value.status == (
        400 if code.startswith("invalid") else 404
    )
    assert world.irc() == [] and world.store.total() == 0
    assert all(world.pushed(a) == [] for a in ("claude-1", "codex-1", "tickle-1", "loner"))


async def test_a_channel_with_agents_but_no_irc_is_still_a_place_to_talk(world: World) -> None:
    said = await world.chat.say("claude-1", "#quiet", "loner: you there?", transport="websocket")
    assert said.networks == () and said.agents == ("loner",) and world.irc() == []
    assert len(world.thread("irc/#quiet")) == 1
