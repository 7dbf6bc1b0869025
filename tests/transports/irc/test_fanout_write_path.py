"""The server's write path (issue 19): a channel line is rendered once per
tag shape and a run of lines is written in one go per receiver — and every
receiver still gets every line, in order, with the tags its caps asked for,
and a client that quits gets its lines before the connection closes."""

from __future__ import annotations

from futon.transports.irc import IrcServer
from tests.transports.irc.kit import RawClient, irc_server


async def client_with(server: IrcServer, nick: str, *caps: str) -> RawClient:
    client = await RawClient.connect(server)
    if caps:
        await client.send("CAP LS 302", f"CAP REQ :{' '.join(caps)}")
        await client.expect("CAP", "*", "ACK")
        await client.send("CAP END")
    await client.register(nick)
    await client.join("#room")
    return client


async def test_a_burst_of_channel_lines_reaches_every_receiver_in_order_with_its_tags() -> None:
    async with irc_server() as server:
        plain = await client_with(server, "plain")
        timed = await client_with(server, "timed", "server-time")
        tagged = await client_with(server, "tagged", "message-tags", "server-time")
        also_plain = await client_with(server, "plain2")
        sender = await client_with(server, "sender", "message-tags")
        lines = [f"@+draft/label=l{i} PRIVMSG #room :line {i}" for i in range(150)]
        await sender.send(*lines)
        for receiver in (plain, timed, tagged, also_plain):
            got = []
            while len(got) < 150:
                message = await receiver.expect("PRIVMSG", "#room")
                got.append(message)
            assert [m.text for m in got] == [f"line {i}" for i in range(150)]
            assert all(m.source and m.source.startswith("sender!") for m in got)
            if receiver in (plain, also_plain):
                assert all(m.tags == {} for m in got)
            elif receiver is timed:
                assert all(set(m.tags) == {"time"} for m in got)
            else:
                assert all(set(m.tags) == {"time", "+draft/label"} for m in got)
                assert [m.tags["+draft/label"] for m in got] == [f"l{i}" for i in range(150)]
        for client in (plain, timed, tagged, also_plain, sender):
            await client.close()


async def test_lines_sent_just_before_quit_arrive_before_the_hang_up() -> None:
    async with irc_server() as server:
        witness = await client_with(server, "witness")
        leaver = await client_with(server, "leaver")
        await leaver.send(*(f"PRIVMSG #room :bye {i}" for i in range(20)), "QUIT :done")
        closing = await leaver.expect_closed()
        assert [m.command for m in closing][-1] == "ERROR"
        said = [m.text for m in [await witness.expect("PRIVMSG", "#room") for _ in range(20)]]
        assert said == [f"bye {i}" for i in range(20)]
        quit_ = await witness.expect("QUIT")
        assert quit_.source and quit_.source.startswith("leaver!")
        await witness.close()
