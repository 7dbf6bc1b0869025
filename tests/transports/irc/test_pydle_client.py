"""pydle (the library bot mode is built on) as a real client of the
embedded server: its CAP LS 302 registration, a join, messages both ways."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from futon.transports.irc import IrcServer
from tests.transports.irc.conftest import Connect

pydle = pytest.importorskip("pydle", reason="pydle is not installed in this environment")


class RecordingBot(pydle.Client):  # type: ignore[misc,name-defined]
    RECONNECT_ON_ERROR = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: asyncio.Queue[tuple[str, ...]] = asyncio.Queue()

    async def on_connect(self) -> None:
        await super().on_connect()
        await self.join("#futon")

    async def on_join(self, channel: str, user: str) -> None:
        await super().on_join(channel, user)
        await self.seen.put(("join", channel, user))

    async def on_channel_message(self, target: str, by: str, message: str) -> None:
        await super().on_channel_message(target, by, message)
        await self.seen.put(("channel", target, by, message))

    async def on_private_message(self, target: str, by: str, message: str) -> None:
        await super().on_private_message(target, by, message)
        await self.seen.put(("private", target, by, message))

    async def next(self, kind: str) -> tuple[str, ...]:
        while True:
            event = await asyncio.wait_for(self.seen.get(), 5)
            if event[0] == kind:
                return event


async def test_pydle_registers_with_cap_ls_302_joins_and_talks(
    server: IrcServer, connect: Connect
) -> None:
    bot = RecordingBot("pybot", realname="pydle bot")
    await bot.connect("127.0.0.1", server.bound_port, tls=False)
    try:
        assert await bot.next("join") == ("join", "#futon", "pybot")
        # pydle read our CAP LS answer, requested message-tags and got an ACK
        assert bot._capabilities == {"message-tags": True, "server-time": False}
        assert bot.network == "TestNet"

        human = await connect("human")
        await human.join("#futon")
        assert await bot.next("join") == ("join", "#futon", "human")
        await human.send("PRIVMSG #futon :hello pydle", "PRIVMSG pybot :psst")
        assert await bot.next("channel") == ("channel", "#futon", "human", "hello pydle")
        assert await bot.next("private") == ("private", "pybot", "human", "psst")

        await bot.message("#futon", "hello human")
        msg = await human.expect("PRIVMSG")
        assert (msg.source, msg.params) == ("pybot!~pybot@127.0.0.1", ["#futon", "hello human"])
        assert bot.channels["#futon"]["users"] == {"pybot", "human"}

        await bot.quit("bye from pydle")
        quit_ = await human.expect("QUIT")
        assert (quit_.source, quit_.params) == ("pybot!~pybot@127.0.0.1", ["Quit: bye from pydle"])
    finally:
        if bot.connected:
            await bot.disconnect(expected=True)
