"""Channels, messages and queries between real clients, line by line."""

from __future__ import annotations

from futon.transports.irc import IrcServer
from tests.transports.irc.conftest import Connect
from tests.transports.irc.kit import SERVER_NAME

ALICE = "alice!~alice@127.0.0.1"
BOB = "bob!~bob@127.0.0.1"


async def test_join_is_seen_by_both_sides_with_names_and_first_joiner_op(connect: Connect) -> None:
    alice = await connect("alice")
    lines = await alice.join("#room")
    assert [(m.source, m.command, m.params) for m in lines] == [
        (ALICE, "JOIN", ["#room"]),
        (SERVER_NAME, "353", ["alice", "=", "#room", "@alice"]),
        (SERVER_NAME, "366", ["alice", "#room", "End of /NAMES list"]),
    ]
    bob = await connect("bob")
    lines = await bob.join("#ROOM")
    assert lines[0].params == ["#room"]  # the channel keeps the name it was created with
    assert lines[1].text == "@alice bob"
    join = await alice.expect("JOIN")
    assert (join.source, join.params) == (BOB, ["#room"])


async def test_join_takes_comma_lists_and_join_0_parts_everything(
    connect: Connect, server: IrcServer
) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await bob.join("#a")
    await alice.send("JOIN #a,#b,#c")
    for channel in ("#a", "#b", "#c"):
        await alice.expect_numeric("366", channel)
    await bob.expect("JOIN", "#a")
    await alice.send("JOIN 0")
    for channel in ("#a", "#b", "#c"):
        part = await alice.expect("PART", channel)
        assert part.source == ALICE
    assert (await bob.expect("PART", "#a")).source == ALICE
    assert server.members("#a") == ["bob"]
    assert server.members("#b") == []


async def test_privmsg_and_notice_reach_the_channel_but_not_the_sender(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join("#room")
    await bob.join("#room")
    await alice.send("PRIVMSG #room :hello bob", "NOTICE #room :a notice")
    msg = await bob.expect("PRIVMSG")
    assert (msg.source, msg.params) == (ALICE, ["#room", "hello bob"])
    notice = await bob.expect("NOTICE")
    assert (notice.source, notice.params) == (ALICE, ["#room", "a notice"])
    assert not any(m.command in ("PRIVMSG", "NOTICE") for m in await alice.ping())


async def test_private_messages_reach_the_target_nick_case_insensitively(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.send("PRIVMSG BOB :psst", "NOTICE Bob :fyi")
    msg = await bob.expect("PRIVMSG")
    assert (msg.source, msg.params) == (ALICE, ["bob", "psst"])
    assert (await bob.expect("NOTICE")).params == ["bob", "fyi"]


async def test_message_errors_401_404_411_412_and_none_for_notice(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await bob.join("#closed")
    await alice.send(
        "PRIVMSG nobody :hi",
        "PRIVMSG #nowhere :hi",
        "PRIVMSG #closed :hi",
        "PRIVMSG",
        "PRIVMSG bob",
    )
    await alice.expect_numeric("401", "nobody")
    await alice.expect_numeric("401", "#nowhere")
    await alice.expect_numeric("404", "#closed")
    await alice.expect_numeric("411")
    await alice.expect_numeric("412")
    await alice.send("NOTICE nobody :hi", "NOTICE #closed :hi")
    assert await alice.ping() == []
    assert not any(m.command == "NOTICE" for m in await bob.ping())


async def test_unknown_command_is_421(connect: Connect) -> None:
    alice = await connect("alice")
    await alice.send("FROBNICATE now")
    assert (await alice.expect_numeric("421", "FROBNICATE")).text == "Unknown command"


async def test_not_enough_parameters_is_461(connect: Connect) -> None:
    alice = await connect("alice")
    await alice.send("JOIN", "KICK #room", "MODE")
    for command in ("JOIN", "KICK", "MODE"):
        await alice.expect_numeric("461", command)


async def test_part_is_seen_by_both_sides_and_errors_are_403_442(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join("#room")
    await bob.join("#room")
    await bob.send("PART #room :see you")
    for side in (alice, bob):
        part = await side.expect("PART")
        assert (part.source, part.params) == (BOB, ["#room", "see you"])
    await bob.send("PART #room", "PART #nowhere")
    await bob.expect_numeric("442", "#room")
    await bob.expect_numeric("403", "#nowhere")


async def test_quit_goes_to_channel_peers_and_closes_with_error(
    connect: Connect, server: IrcServer
) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join("#room")
    await bob.join("#room")
    await bob.send("QUIT :off to lunch")
    assert (await bob.expect("ERROR")).text.startswith("Closing Link")
    await bob.expect_closed()
    quit_ = await alice.expect("QUIT")
    assert (quit_.source, quit_.params) == (BOB, ["Quit: off to lunch"])
    assert server.members("#room") == ["alice"]


async def test_nick_change_is_seen_by_self_and_peers_once(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    for channel in ("#a", "#b"):
        await alice.join(channel)
        await bob.join(channel)
    await bob.send("NICK robert")
    for side in (alice, bob):
        nick = await side.expect("NICK")
        assert (nick.source, nick.params) == (BOB, ["robert"])
    assert not any(m.command == "NICK" for m in await alice.ping())
    await alice.send("PRIVMSG robert :hi", "PRIVMSG bob :hi")
    assert (await bob.expect("PRIVMSG")).params == ["robert", "hi"]
    await alice.expect_numeric("401", "bob")
    await bob.send("PRIVMSG #a :renamed")
    assert (await alice.expect("PRIVMSG")).source == "robert!~bob@127.0.0.1"
    await bob.send("NICK Robert")  # case change of one's own nick is allowed
    assert (await bob.expect("NICK")).params == ["Robert"]


async def test_topic_query_set_and_errors(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join("#room")
    await alice.send("TOPIC #room")
    await alice.expect_numeric("331", "#room")
    await alice.send("TOPIC #room :plans for today")
    topic = await alice.expect("TOPIC")
    assert (topic.source, topic.params) == (ALICE, ["#room", "plans for today"])
    await bob.send("TOPIC #room", "TOPIC #room :mine now", "TOPIC #nowhere")
    assert (await bob.expect_numeric("332", "#room")).text == "plans for today"
    assert (await bob.expect_numeric("333", "#room")).params[2] == ALICE
    await bob.expect_numeric("442", "#room")
    await bob.expect_numeric("403", "#nowhere")
    lines = await bob.join("#room")
    assert [m.command for m in lines] == ["JOIN", "332", "333", "353", "366"]


async def test_topic_lock_needs_op(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join("#room")
    await bob.join("#room")
    await alice.send("MODE #room +t")
    await bob.expect("MODE", "#room", "+t")
    await bob.send("TOPIC #room :nope")
    await bob.expect_numeric("482", "#room")


async def test_names_lists_members_with_op_prefix(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join("#room")
    await bob.join("#room")
    await bob.send("NAMES #room", "NAMES #nowhere")
    assert (await bob.expect_numeric("353", "=", "#room")).text == "@alice bob"
    await bob.expect_numeric("366", "#room")
    await bob.expect_numeric("366", "#nowhere")


async def test_who_lists_channel_members_and_matching_nicks(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join("#room")
    await bob.join("#room")
    await bob.send("AWAY :brb")
    await bob.expect_numeric("306")
    await alice.send("WHO #room")
    first = await alice.expect_numeric("352")
    second = await alice.expect_numeric("352")
    assert first.params[1:] == [
        "#room",
        "~alice",
        "127.0.0.1",
        SERVER_NAME,
        "alice",
        "H@",
        "0 Test User",
    ]
    assert second.params[1:] == [
        "#room",
        "~bob",
        "127.0.0.1",
        SERVER_NAME,
        "bob",
        "G",
        "0 Test User",
    ]
    await alice.expect_numeric("315", "#room")
    await alice.send("WHO b*")
    assert (await alice.expect_numeric("352")).params[5] == "bob"
    await alice.expect_numeric("315", "b*")


async def test_whois_gives_311_319_312_and_318_or_401(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await bob.join("#room")
    await bob.join("#other")
    await alice.send("WHOIS bob")
    assert (await alice.expect_numeric("311", "bob")).params[2:] == [
        "~bob",
        "127.0.0.1",
        "*",
        "Test User",
    ]
    assert (await alice.expect_numeric("319", "bob")).text == "@#room @#other"
    assert (await alice.expect_numeric("312", "bob")).params[2] == SERVER_NAME
    await alice.expect_numeric("318", "bob")
    await alice.send("WHOIS ghost")
    await alice.expect_numeric("401", "ghost")
    await alice.expect_numeric("318", "ghost")


async def test_list_shows_channels_with_counts_and_topics(connect: Connect) -> None:
    alice = await connect("alice")
    await alice.join("#room")
    await alice.send("TOPIC #room :the topic", "LIST")
    entry = await alice.expect_numeric("322", "#room")
    assert entry.params[2:] == ["1", "[+n] the topic"]
    await alice.expect_numeric("323")


async def test_mode_query_op_grant_and_482_for_non_ops(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join("#room")
    await bob.join("#room")
    await bob.send("MODE #room")
    assert (await bob.expect_numeric("324", "#room")).params[2] == "+n"
    await bob.send("MODE #room +o bob")
    await bob.expect_numeric("482", "#room")
    await alice.send("MODE #room +o bob")
    for side in (alice, bob):
        mode = await side.expect("MODE")
        assert (mode.source, mode.params) == (ALICE, ["#room", "+o", "bob"])
    await alice.send("MODE #room +o ghost", "MODE #room +z", "MODE #room b")
    await alice.expect_numeric("401", "ghost")
    await alice.expect_numeric("472", "z")
    await alice.expect_numeric("368", "#room")


async def test_user_mode_query_and_set(connect: Connect) -> None:
    alice = await connect("alice")
    await connect("bob")
    await alice.send("MODE alice", "MODE alice +i", "MODE alice", "MODE bob +i")
    assert (await alice.expect_numeric("221")).params[1] == "+"
    assert (await alice.expect("MODE")).params == ["alice", "+i"]
    assert (await alice.expect_numeric("221")).params[1] == "+i"
    await alice.expect_numeric("502")


async def test_ison_and_userhost(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await bob.send("AWAY :gone")
    await bob.expect_numeric("306")
    await alice.send("ISON BOB carol alice", "USERHOST bob alice carol")
    assert (await alice.expect_numeric("303")).text == "bob alice"
    assert (await alice.expect_numeric("302")).text == "bob=-~bob@127.0.0.1 alice=+~alice@127.0.0.1"


async def test_away_answers_301_to_private_messages_and_305_306(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await bob.send("AWAY :at lunch")
    await bob.expect_numeric("306")
    await alice.send("PRIVMSG bob :you there?")
    assert (await alice.expect_numeric("301", "bob")).text == "at lunch"
    await bob.expect("PRIVMSG")  # still delivered
    await bob.send("AWAY")
    await bob.expect_numeric("305")
    await alice.send("PRIVMSG bob :back?")
    await bob.expect("PRIVMSG")
    assert not any(m.command == "301" for m in await alice.ping())


async def test_kick_by_op_and_482_otherwise(connect: Connect, server: IrcServer) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join("#room")
    await bob.join("#room")
    await bob.send("KICK #room alice :coup")
    await bob.expect_numeric("482", "#room")
    await alice.send("KICK #room bob :behave")
    for side in (alice, bob):
        kick = await side.expect("KICK")
        assert (kick.source, kick.params) == (ALICE, ["#room", "bob", "behave"])
    assert server.members("#room") == ["alice"]
    await alice.send("KICK #room bob")
    await alice.expect_numeric("441", "bob", "#room")


async def test_server_queries_ping_motd_version_time_lusers(connect: Connect) -> None:
    alice = await connect("alice")
    await alice.send("PING", "MOTD", "VERSION", "TIME", "LUSERS")
    await alice.expect_numeric("409")
    await alice.expect_numeric("375")
    await alice.expect_numeric("376")
    assert (await alice.expect_numeric("351")).params[1].startswith("futon-")
    assert (await alice.expect_numeric("391")).params[1] == SERVER_NAME
    await alice.expect_numeric("251")
    await alice.expect_numeric("255")
    assert all(not m.tags for m in alice.history)  # no tags without CAP REQ
