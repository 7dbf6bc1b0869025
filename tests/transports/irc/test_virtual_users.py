"""Agents as virtual users, and the listener the daemon hears through."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from futon.protocol.errors import Conflict, NotFound, PermissionDenied, ProtocolError
from futon.transports.irc import IrcServer
from tests.transports.irc.kit import RawClient, RecordingListener, irc_server

AGENT = "claude-1!agent@futon"


@pytest.fixture
async def listener() -> RecordingListener:
    return RecordingListener()


@pytest.fixture
async def hosted(listener: RecordingListener) -> AsyncIterator[IrcServer]:
    async with irc_server(listener) as server:
        yield server


async def test_a_virtual_user_joins_and_speaks_like_anyone_else(hosted: IrcServer) -> None:
    alice = await RawClient.connect(hosted)
    await alice.register("alice")
    await alice.join("#futon")
    await hosted.add_virtual("claude-1", realname="Claude")
    await hosted.virtual_join("claude-1", "#futon")
    join = await alice.expect("JOIN")
    assert (join.source, join.params) == (AGENT, ["#futon"])
    assert hosted.members("#futon") == ["alice", "claude-1"]

    await hosted.virtual_say("claude-1", "#futon", "hello humans")
    msg = await alice.expect("PRIVMSG")
    assert (msg.source, msg.params) == (AGENT, ["#futon", "hello humans"])
    await hosted.virtual_say("claude-1", "alice", "just you", notice=True)
    notice = await alice.expect("NOTICE")
    assert (notice.source, notice.params) == (AGENT, ["alice", "just you"])

    await alice.send("WHOIS claude-1", "NAMES #futon")
    assert (await alice.expect_numeric("311", "claude-1")).params[2:] == [
        "agent",
        "futon",
        "*",
        "Claude",
    ]
    assert (await alice.expect_numeric("353")).text == "@alice claude-1"

    await hosted.virtual_part("claude-1", "#futon", "done")
    part = await alice.expect("PART")
    assert (part.source, part.params) == (AGENT, ["#futon", "done"])
    await hosted.virtual_join("claude-1", "#futon")
    await alice.expect("JOIN")
    await hosted.remove_virtual("claude-1", "shutting down")
    quit_ = await alice.expect("QUIT")
    assert (quit_.source, quit_.params) == (AGENT, ["shutting down"])
    assert hosted.members("#futon") == ["alice"]
    await alice.close()


async def test_long_and_multiline_agent_text_is_split_into_valid_lines(hosted: IrcServer) -> None:
    alice = await RawClient.connect(hosted)
    await alice.register("alice")
    await alice.join("#futon")
    await hosted.add_virtual("claude-1")
    await hosted.virtual_join("claude-1", "#futon")
    await hosted.virtual_say("claude-1", "#futon", "first line\n\nsecond " + "word " * 200)
    texts = [(await alice.expect("PRIVMSG")).text for _ in range(4)]
    assert texts[0] == "first line"
    assert " ".join(texts[1:]).split() == ["second", *["word"] * 200]
    await alice.close()


async def test_the_listener_hears_channel_and_private_messages(
    hosted: IrcServer, listener: RecordingListener
) -> None:
    await hosted.add_virtual("claude-1")
    await hosted.virtual_join("claude-1", "#futon")
    alice = await RawClient.connect(hosted)
    await alice.register("alice")
    await alice.join("#Futon")
    await listener.wait_for("join", "alice", "#futon")
    await alice.send(
        "PRIVMSG #FUTON :claude-1: status?", "PRIVMSG Claude-1 :a secret", "NOTICE claude-1 :fyi"
    )
    await listener.wait_for(
        "message", "alice", "#futon", "claude-1: status?", private=False, notice=False
    )
    await listener.wait_for("message", "alice", "claude-1", "a secret", private=True, notice=False)
    await listener.wait_for("message", "alice", "claude-1", "fyi", private=True, notice=True)

    bob = await RawClient.connect(hosted)
    await bob.register("bob")
    await alice.send("PRIVMSG bob :between humans")
    await bob.expect("PRIVMSG")
    assert not any(e[1][2] == "between humans" for e in listener.events if e[0] == "message")

    await alice.send("NICK alicia", "PART #futon :bye")
    await listener.wait_for("nick", "alice", "alicia")
    await listener.wait_for("part", "alicia", "#futon", "bye")
    await alice.send("QUIT :later")
    await listener.wait_for("quit", "alicia", "Quit: later")
    await bob.close()


async def test_a_kicked_agent_is_reported_as_a_part(
    hosted: IrcServer, listener: RecordingListener
) -> None:
    alice = await RawClient.connect(hosted)
    await alice.register("alice")
    await alice.join("#futon")
    await hosted.add_virtual("claude-1")
    await hosted.virtual_join("claude-1", "#futon")
    await alice.send("KICK #futon claude-1 :quiet please")
    await alice.expect("KICK")
    await listener.wait_for("part", "claude-1", "#futon", "kicked by alice: quiet please")
    assert hosted.members("#futon") == ["alice"]
    with pytest.raises(PermissionDenied):
        await hosted.virtual_say("claude-1", "#futon", "let me back")
    await alice.close()


async def test_a_failing_listener_does_not_break_the_client() -> None:
    class Broken(RecordingListener):
        async def on_message(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("daemon bug")

    async with irc_server(Broken()) as server:
        await server.add_virtual("claude-1")
        alice = await RawClient.connect(server)
        await alice.register("alice")
        await alice.send("PRIVMSG claude-1 :hello")
        await alice.ping()
        await alice.close()


async def test_virtual_api_errors(hosted: IrcServer) -> None:
    alice = await RawClient.connect(hosted)
    await alice.register("alice")
    with pytest.raises(Conflict):
        await hosted.add_virtual("ALICE")
    with pytest.raises(ProtocolError):
        await hosted.add_virtual("not a nick")
    await hosted.add_virtual("claude-1")
    with pytest.raises(Conflict):
        await hosted.add_virtual("claude-1")
    with pytest.raises(NotFound):
        await hosted.virtual_join("alice", "#futon")  # a real client, not virtual
    with pytest.raises(ProtocolError):
        await hosted.virtual_join("claude-1", "futon")
    with pytest.raises(NotFound):
        await hosted.virtual_say("claude-1", "#nowhere", "hi")
    with pytest.raises(NotFound):
        await hosted.virtual_say("claude-1", "nobody", "hi")
    with pytest.raises(NotFound):
        await hosted.virtual_part("claude-1", "#futon")
    await alice.send("NICK claude-1")
    await alice.expect_numeric("433", "claude-1")
    await alice.close()
