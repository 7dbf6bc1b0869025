"""The daemon as host (issue 15): the MOTD tells a newcomer where to go and
what to say, and the daemon's channels have a topic. Raw socket clients."""

from __future__ import annotations

from pathlib import Path

from futon.transports.irc import IrcHome
from tests.transports.irc.kit import RawClient, irc_server
from tests.transports.kit import running_daemon

HOME = IrcHome("futon", ("#futon", "#ops"))


async def test_the_motd_suggests_the_daemons_channel_and_its_help_command() -> None:
    async with irc_server(home=HOME) as server:
        alice = await RawClient.connect(server)
        lines = await alice.register("alice")
        motd = [m.text for m in lines if m.command == "372"]
        assert "humans and agents" in motd[0]  # the configured text comes first
        assert any("/join #futon" in line for line in motd), motd
        assert any("futon: help" in line for line in motd), motd
        assert lines[-1].command == "376"
        await alice.close()


async def test_the_hints_use_the_configured_nick_and_channel() -> None:
    async with irc_server(home=IrcHome("daemon", ("#team",))) as server:
        alice = await RawClient.connect(server)
        await alice.register("alice")
        await alice.send("MOTD")
        motd = [m.text for m in await alice.through(lambda m: m.command == "376") if m.command == "372"]
        assert any("/join #team" in line for line in motd), motd
        assert any("daemon: help" in line for line in motd), motd
        assert not any("#futon" in line for line in motd), motd
        await alice.close()


async def test_joining_a_daemon_channel_shows_the_topic() -> None:
    async with irc_server(home=HOME) as server:
        await server.add_virtual("futon")
        await server.virtual_join("futon", "#futon")  # the daemon creates its channel
        alice = await RawClient.connect(server)
        await alice.register("alice")
        lines = await alice.join("#futon")
        assert [m.command for m in lines] == ["JOIN", "332", "333", "353", "366"]
        topic = lines[1]
        assert topic.params[:2] == ["alice", "#futon"]
        assert topic.text == "futon — humans and agents; say 'futon: help'"
        assert lines[2].params[2] == "futon"  # set by the daemon
        await alice.send("TOPIC #futon")
        assert (await alice.expect_numeric("332", "#futon")).text == topic.text
        await alice.close()


async def test_the_topic_is_configurable_and_follows_the_nick() -> None:
    async with irc_server(home=IrcHome("helper", ("#ops",)), topic="ask {nick}: help") as server:
        alice = await RawClient.connect(server)
        await alice.register("alice")
        lines = await alice.join("#OPS")  # case-folded: still the daemon's channel
        assert lines[1].command == "332" and lines[1].text == "ask helper: help"
        await alice.close()


async def test_other_channels_and_a_null_topic_get_none() -> None:
    async with irc_server(home=HOME) as server:
        alice = await RawClient.connect(server)
        await alice.register("alice")
        assert [m.command for m in await alice.join("#random")] == ["JOIN", "353", "366"]
        await alice.close()
    async with irc_server(home=HOME, topic=None) as server:
        bob = await RawClient.connect(server)
        await bob.register("bob")
        assert [m.command for m in await bob.join("#futon")] == ["JOIN", "353", "366"]
        await bob.close()


async def test_a_bare_server_has_no_hints() -> None:
    async with irc_server() as server:
        alice = await RawClient.connect(server)
        lines = await alice.register("alice")
        assert [m.command for m in lines[-3:]] == ["375", "372", "376"]
        assert [m.command for m in await alice.join("#futon")] == ["JOIN", "353", "366"]
        await alice.close()


async def test_the_daemon_hosts_its_channels_with_hints_and_topic(tmp_path: Path) -> None:
    """The wiring in the daemon: irc.nick and irc.channels reach the server."""
    async with running_daemon(
        tmp_path, irc__server__enabled=True, irc__server__port=0, irc__nick="hostbot"
    ) as daemon:
        alice = await RawClient.connect(daemon.ports["irc"])
        motd = [m.text for m in await alice.register("alice") if m.command == "372"]
        assert any("/join #futon" in line for line in motd), motd
        assert any("hostbot: help" in line for line in motd), motd
        lines = await alice.join("#futon")
        assert lines[1].command == "332", [m.command for m in lines]
        assert lines[1].text == "futon — humans and agents; say 'hostbot: help'"
        await alice.close()
