"""Registration: what a client sees from its first line to the end of the MOTD."""

from __future__ import annotations

from futon.transports.irc import IrcServer
from tests.transports.irc.conftest import Connect
from tests.transports.irc.kit import NETWORK, SERVER_NAME, RawClient, irc_server


async def test_nick_then_user_gets_welcome_isupport_and_motd(connect: Connect) -> None:
    alice = await connect()
    lines = await alice.register("alice", realname="Alice Liddell")
    assert [m.command for m in lines][:4] == ["001", "002", "003", "004"]
    assert lines[0].source == SERVER_NAME
    assert lines[0].params == [
        "alice",
        f"Welcome to the {NETWORK} IRC Network alice!~alice@127.0.0.1",
    ]
    isupport = {tok for m in lines if m.command == "005" for tok in m.params[1:-1]}
    assert {"CHANTYPES=#", "CASEMAPPING=rfc1459", "PREFIX=(o)@", f"NETWORK={NETWORK}"} <= isupport
    assert {"NICKLEN=30", "CHANNELLEN=50"} <= isupport
    assert [m.command for m in lines[-3:]] == ["375", "372", "376"]
    assert "humans and agents" in lines[-2].text


async def test_user_then_nick_registers_too(connect: Connect) -> None:
    bob = await connect()
    await bob.send("USER bob 0 * :Bob", "NICK bob")
    welcome = await bob.expect("001")
    assert welcome.params[0] == "bob"


async def test_no_motd_gives_422() -> None:
    async with irc_server(motd=None) as server:
        client = await RawClient.connect(server)
        lines = await client.register("carol")
        assert lines[-1].command == "422"
        assert not any(m.command in ("375", "372", "376") for m in lines)
        await client.close()


async def test_commands_before_registration_get_451(connect: Connect) -> None:
    early = await connect()
    await early.send("JOIN #room", "PRIVMSG #room :hi", "FOOBAR")
    for _ in range(3):
        await early.expect("451", "*")
    await early.send("PING :still-here")
    pong = await early.expect("PONG")
    assert pong.params == [SERVER_NAME, "still-here"]


async def test_cap_ls_302_holds_registration_until_cap_end(connect: Connect) -> None:
    """The pydle/irssi path: CAP LS 302, NICK, USER, CAP REQ, CAP END."""
    client = await connect()
    await client.send("CAP LS 302", "NICK dave", "USER dave 0 * :Dave")
    ls = await client.expect("CAP")
    assert ls.params[:2] == ["*", "LS"]
    assert set(ls.text.split()) == {"message-tags", "server-time"}
    await client.send("CAP REQ :server-time message-tags")
    ack = await client.expect("CAP")
    assert ack.params[1:] == ["ACK", "server-time message-tags"]
    assert not any(m.command == "001" for m in client.history)
    await client.send("CAP REQ :sasl", "CAP LIST")
    assert (await client.expect("CAP")).params[1:] == ["NAK", "sasl"]
    assert set((await client.expect("CAP")).text.split()) == {"message-tags", "server-time"}
    await client.send("CAP END")
    welcome = await client.expect("001")
    assert welcome.tags["time"].endswith("Z")  # server-time is on


async def test_unknown_cap_subcommand_gets_410(connect: Connect) -> None:
    client = await connect()
    await client.send("CAP FROB")
    assert (await client.expect("410")).params[1] == "FROB"


async def test_password_is_required_when_the_server_has_one() -> None:
    async with irc_server(password="s3cret") as server:
        good = await RawClient.connect(server)
        await good.send("PASS s3cret")
        await good.register("good")

        bad = await RawClient.connect(server)
        await bad.send("PASS wrong", "NICK bad", "USER bad 0 * :Bad")
        assert (await bad.expect("464")).text == "Password incorrect"
        error = await bad.expect("ERROR")
        assert error.text.startswith("Closing Link")
        await bad.expect_closed()

        none = await RawClient.connect(server)
        await none.send("NICK none", "USER none 0 * :None")
        await none.expect("464")
        await none.expect_closed()
        await good.close()


async def test_pass_after_registration_is_462(connect: Connect) -> None:
    alice = await connect("alice")
    await alice.send("PASS x", "USER a 0 * :b")
    await alice.expect_numeric("462")
    await alice.expect_numeric("462")


async def test_nick_errors_431_432_433_and_461(connect: Connect) -> None:
    await connect("alice")
    client = await connect()
    await client.send("NICK", "NICK 1bad", "NICK Alice", "USER x")
    await client.expect("431", "*")
    await client.expect("432", "*", "1bad")
    await client.expect("433", "*", "Alice")
    await client.expect("461", "*", "USER")


async def test_nicks_collide_case_insensitively_per_rfc1459(connect: Connect) -> None:
    await connect("x[a]")
    client = await connect()
    await client.send("NICK X{A}")
    await client.expect("433", "*", "X{A}")


async def test_clients_count_counts_connections(server: IrcServer, connect: Connect) -> None:
    await connect("alice")
    await connect()
    assert server.clients_count == 2
