"""Limits and hostile input: long lines, floods, connection caps, junk,
shutdown. The server must answer, never crash."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from futon.transports.irc import IrcLimits, IrcServer
from tests.support import until
from tests.transports.irc.conftest import Connect
from tests.transports.irc.kit import RawClient, irc_server


async def test_a_line_over_512_bytes_is_refused_with_417(connect: Connect) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join("#room")
    await bob.join("#room")
    await alice.send("PRIVMSG #room :" + "x" * 600)
    await alice.expect_numeric("417")
    await alice.send("PRIVMSG #room :" + "y" * 400)
    assert (await bob.expect("PRIVMSG")).text == "y" * 400
    assert all(m.command != "PRIVMSG" or m.text == "y" * 400 for m in bob.history)


async def test_a_line_without_end_is_refused_once_and_memory_stays_bounded(
    connect: Connect,
) -> None:
    alice = await connect("alice")
    await alice.send_raw(b"PRIVMSG #room :" + b"z" * 200_000)
    await alice.send_raw(b"\r\nPING :after\r\n")
    lines = await alice.ping("after")
    assert [m.command for m in lines] == ["417"]


async def test_message_tags_allow_8191_bytes_of_tags_and_are_relayed(connect: Connect) -> None:
    alice = await connect()
    await alice.send("CAP REQ :message-tags", "CAP END")
    await alice.register("alice")
    bob = await connect()
    await bob.send("CAP REQ :message-tags", "CAP END")
    await bob.register("bob")
    carol = await connect("carol")  # no message-tags
    big = "+example.com/blob=" + "t" * 4000
    await alice.send(f"@{big} PRIVMSG bob :tagged")
    msg = await bob.expect("PRIVMSG")
    assert msg.tags == {"+example.com/blob": "t" * 4000}
    await carol.send(f"@{big} PRIVMSG bob :tagged")
    await carol.expect_numeric("417")
    await alice.send("@+typing=active TAGMSG bob")
    assert (await bob.expect("TAGMSG")).tags == {"+typing": "active"}


async def test_excess_lines_are_delayed_not_dropped() -> None:
    limits = IrcLimits(flood_burst=5, flood_rate=20, flood_max_pending=50)
    async with irc_server(limits=limits) as server:
        client = await RawClient.connect(server)
        await client.register("alice")
        await asyncio.sleep(0.3)  # time: the bucket refills (20/s) after registration
        loop = asyncio.get_running_loop()
        start = loop.time()
        await client.send(*(f"PING :{i}" for i in range(15)))
        for i in range(15):
            assert (await client.expect("PONG")).text == str(i)
        assert loop.time() - start >= (15 - 5) / 20 * 0.8
        await client.close()


async def test_sustained_flood_is_disconnected_with_excess_flood() -> None:
    limits = IrcLimits(flood_burst=5, flood_rate=5, flood_max_pending=30)
    async with irc_server(limits=limits) as server:
        flooder = await RawClient.connect(server)
        await flooder.register("flooder")
        await flooder.join("#room")
        witness = await RawClient.connect(server)
        await witness.register("witness")
        await witness.join("#room")
        await flooder.send(*(f"PRIVMSG #room :spam {i}" for i in range(200)))
        lines = await flooder.expect_closed()
        assert [(m.command, m.params) for m in lines if m.command == "ERROR"] == [
            ("ERROR", ["Excess Flood"])
        ]
        quit_ = await witness.expect("QUIT")
        assert (quit_.source, quit_.params) == ("flooder!~flooder@127.0.0.1", ["Excess Flood"])
        received = [m for m in witness.history if m.command == "PRIVMSG"]
        assert len(received) < 30
        await witness.close()


async def test_connections_are_capped_per_ip() -> None:
    async with irc_server(max_clients_per_ip=2, max_clients=10) as server:
        first = await RawClient.connect(server)
        second = await RawClient.connect(server)
        third = await RawClient.connect(server)
        lines = await third.expect_closed()
        assert [m.text for m in lines] == [
            "Closing Link: 127.0.0.1 (Too many connections from your IP)"
        ]
        other_host = await RawClient.connect(server, source="127.0.0.2")
        await other_host.register("elsewhere")
        await first.register("first")
        assert server.clients_count == 3
        for client in (first, second, other_host):
            await client.close()


async def test_connections_are_capped_in_total() -> None:
    async with irc_server(max_clients=2) as server:
        first = await RawClient.connect(server, source="127.0.0.2")
        second = await RawClient.connect(server, source="127.0.0.3")
        await first.register("first")
        await second.register("second")
        third = await RawClient.connect(server, source="127.0.0.4")
        assert [m.text for m in await third.expect_closed()] == [
            "Closing Link: 127.0.0.4 (Server is full)"
        ]
        await second.close()
        await until(lambda: server.clients_count == 1)
        fourth = await RawClient.connect(server)
        await fourth.register("fourth")
        for client in (first, fourth):
            await client.close()


async def test_shutdown_tells_every_client() -> None:
    async with irc_server() as server:
        alice = await RawClient.connect(server)
        await alice.register("alice")
        early = await RawClient.connect(server)
        await early.send("NICK early")
        await alice.ping()
        await early.ping()
        await server.stop()
        for client in (alice, early):
            lines = await client.expect_closed()
            assert [(m.command, m.params) for m in lines] == [("ERROR", ["Server shutting down"])]
        assert server.clients_count == 0


async def test_malformed_lines_do_not_crash(connect: Connect) -> None:
    alice = await connect("alice")
    await alice.send_raw(
        b"\r\n\r\n\r\r\n   \r\n\xff\xfe\x00garbage\r\n:prefix-only\r\n@tags-only\r\n"
    )
    await alice.send_raw(
        b"PRIVMSG alice :caf\xe9 \xc3\x28\r\nPRIVMSG\x00 x\r\nJOIN #a\x07b\r\nNICK :\r\n"
    )
    await alice.send_raw(b"PING :lone-cr\rPING :lf-only\n")
    assert (await alice.expect("PONG")).text == "lone-cr"
    assert (await alice.expect("PONG")).text == "lf-only"
    msg = next(m for m in alice.history if m.command == "PRIVMSG")
    assert msg.text == "caf\ufffd \ufffd("  # invalid UTF-8 decoded with replacement


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    junk=st.one_of(
        st.binary(max_size=2048),
        st.lists(st.text(max_size=120), max_size=20).map(
            lambda ls: "\r\n".join(ls).encode("utf-8", "surrogatepass")
        ),
        st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "NICK",
                        "USER",
                        "JOIN",
                        "PART",
                        "PRIVMSG",
                        "MODE",
                        "CAP",
                        "WHO",
                        "KICK",
                        "TOPIC",
                        "@a=b",
                        ":x",
                    ]
                ),
                st.text(max_size=40),
            ).map(lambda t: f"{t[0]} {t[1]}"),
            max_size=20,
        ).map(lambda ls: "\r\n".join(ls).encode("utf-8", "surrogatepass")),
    )
)
async def test_random_input_never_stops_the_server_answering_ping(
    server: IrcServer, junk: bytes
) -> None:
    """Whatever a client sends, the server survives: the junk sender (unless
    it asked to QUIT) and a bystander still get PONG."""
    bystander = await RawClient.connect(server)
    sender = await RawClient.connect(server)
    sender.auto_pong = True
    try:
        await sender.send_raw(junk + b"\r\nPING :alive\r\n")
        if b"quit" not in junk.lower():
            await sender.expect("PONG", where=lambda m: m.text == "alive")
        await bystander.ping("bystander")
    finally:
        await sender.close()
        await bystander.close()
