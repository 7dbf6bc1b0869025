"""Keepalive and ghost reclaim, with intervals short enough for a test."""

from __future__ import annotations

import asyncio

from tests.transports.irc.kit import SERVER_NAME, RawClient, irc_server


async def test_silent_client_is_pinged_then_dropped_with_ping_timeout() -> None:
    """The keepalive loop: PING after ping_interval_s of silence, drop after
    ping_timeout_s, QUIT :Ping timeout to the channel."""
    async with irc_server(ping_interval_s=0.2, ping_timeout_s=1.0) as server:
        alice = await RawClient.connect(server)
        alice.auto_pong = True
        await alice.register("alice")
        await alice.join("#room")
        bob = await RawClient.connect(server)
        await bob.register("bob")
        await bob.join("#room")

        ping = await bob.expect("PING", timeout=2)
        assert ping.text == SERVER_NAME
        error = await bob.expect("ERROR", timeout=3)
        assert error.text.startswith("Closing Link: 127.0.0.1 (Ping timeout")
        await bob.expect_closed()

        quit_ = await alice.expect("QUIT", timeout=3)
        assert (quit_.source, quit_.params) == ("bob!~bob@127.0.0.1", ["Ping timeout"])
        assert server.members("#room") == ["alice"]  # alice answered her PINGs
        assert any(m.command == "PING" for m in alice.history)
        await alice.close()


async def test_a_ghost_nick_is_reclaimed_and_a_live_one_is_not() -> None:
    """Nick collision: 433 while the holder is live; once it leaves a PING
    unanswered past the deadline the newcomer gets the nick, the ghost
    gets ERROR and its channels see QUIT :Ping timeout."""
    async with irc_server(ping_interval_s=0.2, ping_timeout_s=30) as server:
        ghost = await RawClient.connect(server)
        await ghost.register("alice")
        await ghost.join("#room")
        witness = await RawClient.connect(server)
        witness.auto_pong = True
        await witness.register("bob")
        await witness.join("#room")

        newcomer = await RawClient.connect(server)
        newcomer.auto_pong = True
        await newcomer.send("NICK alice")
        await newcomer.expect("433", "*", "alice")

        await ghost.expect("PING", timeout=2)  # ...and it never answers
        # time, not synchronisation: a ghost is a PING left unanswered for the
        # grace period (ghost_after_s = ping_interval_s = 0.2 s), so let it pass
        await asyncio.sleep(0.4)
        await newcomer.send("NICK alice", "USER alice 0 * :Alice again")
        welcome = await newcomer.expect("001")
        assert welcome.params[0] == "alice"

        error = await ghost.expect("ERROR")
        assert error.text.startswith("Closing Link: 127.0.0.1 (Ping timeout")
        await ghost.expect_closed()
        quit_ = await witness.expect("QUIT")
        assert quit_.params == ["Ping timeout"]
        assert server.members("#room") == ["bob"]

        # bob answers his PINGs: never a ghost, however long the time (several
        # grace periods) that passes here
        await asyncio.sleep(0.5)
        thief = await RawClient.connect(server)
        await thief.send("NICK bob")
        await thief.expect("433", "*", "bob")
        for client in (witness, newcomer, thief):
            await client.close()
