"""An IRC client that stops reading is dropped once its unsent output
passes the SendQ limit ("SendQ exceeded" to its channels), while the
clients that read keep being served — nobody waits for it."""

from __future__ import annotations

import asyncio
import socket

from futon.transports.irc import IrcLimits
from tests.support import until
from tests.transports.irc.kit import RawClient, irc_server


async def test_a_client_that_never_reads_is_dropped_and_others_are_served() -> None:
    limits = IrcLimits(flood_burst=10_000, flood_rate=10_000, flood_max_pending=100_000, sendq_bytes=256 * 1024)
    async with irc_server(limits=limits) as server:
        talker = await RawClient.connect(server)
        talker.auto_pong = True
        await talker.register("talker")
        await talker.join("#room")
        listener = await RawClient.connect(server)
        listener.auto_pong = True
        await listener.register("listener")
        await listener.join("#room")
        # The sleeper: a raw socket that registers, joins, and never reads. Its
        # receive buffer is fixed small: left to autotune (up to
        # net.ipv4.tcp_rmem's max, 32 MiB here) the kernel would take in more
        # than this test sends, now that the server writes a run of lines at once.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.bound_port))
        _, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"NICK sleeper\r\nUSER s 0 * :Sleeper\r\nJOIN #room\r\n")
        await writer.drain()
        await until(lambda: "sleeper" in server.members("#room"), what="the sleeper joined")
        line = "x" * 400
        dropped = False
        for n in range(20_000):
            await talker.send(f"PRIVMSG #room :{n} {line}")
            if n % 500 == 0:
                await asyncio.sleep(0)
                if "sleeper" not in server.members("#room"):
                    dropped = True
                    break
        assert dropped, "the sleeper was never dropped"
        quit_line = await listener.expect("QUIT", where=lambda m: m.source.startswith("sleeper!"), timeout=30)
        assert "SendQ exceeded" in quit_line.params[-1]
        await listener.ping("still-here")  # the reading client is served at once
        assert server.members("#room") == ["talker", "listener"]
        writer.close()
        await talker.close()
        await listener.close()
