"""Bot mode against a real ngircd: what humans say reaches the relay hooks,
and what agents say reaches the humans — prefixed, split and paced."""

from __future__ import annotations

import asyncio

import pytest

from futon.protocol.errors import ProtocolError
from tests.transports.irc_bot.kit import Connect, MakeBot, Ngircd, bot_and_human, eventually


async def test_bot_connects_joins_its_channels_and_reports_both(
    ngircd: Ngircd, make_bot: MakeBot, connect: Connect
) -> None:
    (bot, hooks), human = await asyncio.gather(
        make_bot(ngircd.port, channels=["#futon", "#ops"]), connect(ngircd.port, "alice")
    )
    await hooks.event("joined", 2)
    assert hooks.kinds()[:3] == ["connected", "joined", "joined"]
    assert {detail for kind, detail in hooks.events if kind == "joined"} == {"#futon", "#ops"}
    assert bot.connected and bot.in_channel("#FUTON") and bot.joined("#ops")
    assert bot.network == "testnet"

    await human.send("NAMES #futon")
    names = await human.expect(lambda line: line.command == "353")
    assert "futonbot" in [name.lstrip("@+") for name in names.text.split()]


async def test_channel_message_reaches_on_message_with_sender_target_and_text(
    ngircd: Ngircd, make_bot: MakeBot, connect: Connect
) -> None:
    _, hooks, alice = await bot_and_human(make_bot, connect, ngircd.port)

    await alice.send("PRIVMSG #futon :claude-1: can you look at the build?")
    await alice.send("NOTICE #futon :deploy finished")
    await alice.send("PRIVMSG #futon :\x01ACTION waves\x01")

    await hooks.wait(lambda: len(hooks.messages) == 3)
    first, notice, action = hooks.messages
    assert (first.sender, first.target, first.text) == (
        "alice",
        "#futon",
        "claude-1: can you look at the build?",
    )
    assert first.private is False and first.notice is False and first.account is None
    assert (notice.text, notice.notice) == ("deploy finished", True)
    assert action.text == "/me waves"


async def test_private_message_to_the_bot_arrives_with_private_true(
    ngircd: Ngircd, make_bot: MakeBot, connect: Connect
) -> None:
    (_, hooks), bob = await asyncio.gather(make_bot(ngircd.port), connect(ngircd.port, "bob"))
    await hooks.event("joined")

    await bob.send("PRIVMSG futonbot :psst, are you there?")

    message = await hooks.message(lambda m: m.sender == "bob")
    assert (message.target, message.text, message.private) == (
        "futonbot",
        "psst, are you there?",
        True,
    )


async def test_say_from_an_agent_is_prefixed_and_the_bots_own_nick_is_not(
    ngircd: Ngircd, make_bot: MakeBot, connect: Connect
) -> None:
    bot, hooks, alice = await bot_and_human(make_bot, connect, ngircd.port)

    await bot.say("claude-1", "#futon", "the build is green")
    await bot.say("futonbot", "#futon", "standup in 5 minutes")
    await bot.say("claude-1", "alice", "a word in private", notice=True)

    lines = await alice.messages_from("futonbot", 3)
    assert [(line.command, line.params[0], line.text) for line in lines] == [
        ("PRIVMSG", "#futon", "[claude-1] the build is green"),
        ("PRIVMSG", "#futon", "standup in 5 minutes"),
        ("NOTICE", "alice", "[claude-1] a word in private"),
    ]
    assert hooks.messages == []  # the bot never hears itself


async def test_long_text_is_split_on_word_boundaries_and_newlines_become_lines(
    ngircd: Ngircd, make_bot: MakeBot, connect: Connect
) -> None:
    bot, _, alice = await bot_and_human(make_bot, connect, ngircd.port, bot_kwargs={"burst": 20})
    words = [f"wörd{i:03d}" for i in range(120)]  # 8 bytes each with the umlaut
    paragraph = " ".join(words)

    await bot.say("claude-1", "#futon", paragraph + "\nsecond line\n\nthird line")

    expected_long = 3  # 120 * 9 bytes = 1080 bytes in 389-byte pieces
    lines = await alice.messages_from("futonbot", expected_long + 2)
    texts = [line.text for line in lines]
    assert all(text.startswith("[claude-1] ") for text in texts)
    assert all(len(text.encode("utf-8")) <= 400 for text in texts)
    bodies = [text.removeprefix("[claude-1] ") for text in texts]
    assert " ".join(bodies[:expected_long]).split(" ") == words  # cut between words only
    assert bodies[expected_long:] == ["second line", "third line"]


async def test_lines_are_paced_per_target_a_burst_then_one_at_a_time(
    ngircd: Ngircd, make_bot: MakeBot, connect: Connect
) -> None:
    """Pins the per-target token bucket: #futon's burst of 4 goes out, then
    its bucket is empty — so a private line said *after* all seven channel
    lines overtakes the remaining three, which follow one by one."""
    bot, _, alice = await bot_and_human(
        make_bot, connect, ngircd.port, bot_kwargs={"lines_per_s": 4, "burst": 4}
    )

    await bot.say("claude-1", "#futon", "\n".join(f"line {i}" for i in range(1, 8)))
    await bot.say("claude-1", "alice", "private")

    lines = await alice.messages_from("futonbot", 8)
    assert [line.text.removeprefix("[claude-1] ") for line in lines] == [
        "line 1", "line 2", "line 3", "line 4", "private", "line 5", "line 6", "line 7",
    ]  # fmt: skip
    await eventually(lambda: bot.queued == 0)  # every line confirmed by the server's PONG


async def test_a_say_that_does_not_fit_the_queue_is_refused_whole_and_reported(
    ngircd: Ngircd, make_bot: MakeBot, connect: Connect
) -> None:
    bot, hooks, alice = await bot_and_human(
        make_bot, connect, ngircd.port, bot_kwargs={"max_queued": 5, "lines_per_s": 2, "burst": 1}
    )
    await bot.say("claude-1", "#futon", "one\ntwo\nthree")
    await bot.say("claude-1", "#futon", "four\nfive\nsix\nseven")  # 3 + 4 > 5: refused whole

    (detail,) = await hooks.event("queue-overflow")
    assert "refused 4 line(s) from claude-1 to #futon" in detail
    lines = await alice.messages_from("futonbot", 3)
    assert [line.text for line in lines] == ["[claude-1] one", "[claude-1] two", "[claude-1] three"]
    await eventually(lambda: bot.queued == 0)


async def test_say_to_a_channel_the_network_does_not_carry_is_refused(
    ngircd: Ngircd, make_bot: MakeBot
) -> None:
    bot, _ = await make_bot(ngircd.port)
    with pytest.raises(ProtocolError) as refused:
        await bot.say("claude-1", "#elsewhere", "hello")
    assert refused.value.code == "invalid-target"
    assert not bot.joined("#elsewhere")


async def test_nick_in_use_registers_as_nick_underscore(
    ngircd: Ngircd, make_bot: MakeBot, connect: Connect
) -> None:
    await connect(ngircd.port, "futonbot")
    bot, hooks = await make_bot(ngircd.port)
    await hooks.event("joined")
    assert bot.nick == "futonbot_"
    (detail,) = await hooks.event("nick-in-use")
    assert "futonbot_" in detail


async def test_stop_quits_and_does_not_reconnect(
    ngircd: Ngircd, make_bot: MakeBot, connect: Connect
) -> None:
    bot, hooks, alice = await bot_and_human(make_bot, connect, ngircd.port)

    await bot.stop()

    quit_line = await alice.expect(lambda line: line.command == "QUIT" and line.nick == "futonbot")
    assert "futon stopping" in quit_line.text
    assert hooks.kinds()[-1] == "disconnected" and hooks.events[-1][1] == "stopped"
    assert not bot.connected
    assert hooks.kinds().count("connected") == 1


async def test_a_kicked_bot_reports_it_and_rejoins(
    ngircd: Ngircd, make_bot: MakeBot, connect: Connect
) -> None:
    alice = await connect(ngircd.port, "alice", channel="#futon")  # first in: channel operator
    bot, hooks = await make_bot(ngircd.port)
    await hooks.event("joined")

    await alice.send("KICK #futon futonbot :out you go")

    (kicked,) = await hooks.event("kicked")
    assert kicked == "#futon: by alice: out you go"
    await hooks.event("joined", 2)
    assert bot.in_channel("#futon")
