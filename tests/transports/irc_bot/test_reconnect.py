"""futon owns the reconnect loop: a crashed server is retried with backoff
forever, channels are rejoined, and nothing said meanwhile is lost."""

from __future__ import annotations

import signal

from futon.transports.irc_bot import IrcBot
from tests.support import refused_port
from tests.transports.irc_bot.kit import (
    Connect,
    MakeBot,
    Ngircd,
    RawClient,
    RecordingHooks,
    eventually,
    network_for,
)

HUMANS_ONLY = "only-humans"


async def restart_with_human_first(
    ngircd: Ngircd, connect: Connect, hooks: RecordingHooks
) -> RawClient:
    """Bring the killed server back so that a human is in #futon before the
    bot can return: the server first asks for a password the bot does not
    have (the bot keeps failing and retrying), the human joins with it,
    then a rehash drops the password and lets the bot in."""
    ngircd.password = HUMANS_ONLY
    ngircd.write_config()
    await ngircd.start()
    human = await connect(ngircd.port, "alice", channel="#futon", password=HUMANS_ONLY)
    await hooks.wait(
        lambda: any(k == "connect-failed" and "password" in d for k, d in hooks.events)
    )
    ngircd.rehash(password=None)
    return human


async def test_bot_reconnects_after_a_crash_rejoins_and_delivers_what_was_said_meanwhile(
    ngircd: Ngircd, make_bot: MakeBot, connect: Connect
) -> None:
    bot, hooks = await make_bot(ngircd.port)
    await hooks.event("joined")

    await ngircd.kill()
    (reason,) = await hooks.event("disconnected")
    assert "retrying in" in reason
    assert not bot.connected and bot.joined("#futon")  # still carries it: say() queues
    await bot.say("claude-1", "#futon", "said while the server was down")
    await bot.say("claude-1", "#futon", "and a second line")
    assert bot.queued == 2

    alice = await restart_with_human_first(ngircd, connect, hooks)

    lines = await alice.messages_from("futonbot", 2)
    assert [line.text for line in lines] == [
        "[claude-1] said while the server was down",
        "[claude-1] and a second line",
    ]
    kinds = hooks.kinds()
    assert kinds[:3] == ["connected", "joined", "disconnected"]
    assert kinds.count("connected") == 2 and kinds.count("joined") == 2
    assert kinds.index("connect-failed") > kinds.index("disconnected")
    assert bot.connected and bot.in_channel("#futon")
    await eventually(lambda: bot.queued == 0)


async def test_a_line_written_into_a_dying_connection_is_sent_again(
    ngircd: Ngircd, make_bot: MakeBot, connect: Connect
) -> None:
    """Pins delivery receipts: a line leaves the queue only when the server
    has answered a later PING, so a line written to a server that never
    read it is resent after the reconnect."""
    bot, hooks = await make_bot(ngircd.port)
    await hooks.event("joined")
    assert ngircd.process is not None
    ngircd.process.send_signal(signal.SIGSTOP)  # the server reads nothing more

    await bot.say("claude-1", "#futon", "written into a frozen server")
    # the writer puts it on the wire at once (full bucket); in flight = written, unconfirmed
    await eventually(lambda: bot._inflight)
    await ngircd.kill()
    await hooks.event("disconnected")
    assert bot.queued == 1  # written, never confirmed: still owed

    alice = await restart_with_human_first(ngircd, connect, hooks)

    lines = await alice.messages_from("futonbot", 1)
    assert lines[0].text == "[claude-1] written into a frozen server"
    await eventually(lambda: bot.queued == 0)


async def test_the_bot_keeps_retrying_while_nothing_listens(make_bot: MakeBot) -> None:
    with refused_port() as port:
        bot, hooks = await make_bot(port)
        failures = await hooks.event("connect-failed", 3)
        assert all(detail.startswith("connection refused; retrying in ") for detail in failures)
        assert not bot.connected


async def test_backoff_grows_exponentially_with_full_jitter_up_to_the_maximum() -> None:
    """The retry delays stay within [0, min(max, initial * 2**failures)]."""
    hooks = RecordingHooks()
    with refused_port() as port:
        bot = IrcBot(network_for(port), hooks, backoff_initial_s=0.01, backoff_max_s=0.08)
        await bot.start()
        try:
            failures = await hooks.event("connect-failed", 6)
        finally:
            await bot.stop()
    delays = [float(detail.rsplit(" ", 1)[1].rstrip("s")) for detail in failures]
    caps = [min(0.08, 0.01 * 2**n) for n in range(1, 7)]
    assert all(0 <= delay <= cap + 0.005 for delay, cap in zip(delays, caps, strict=True))
