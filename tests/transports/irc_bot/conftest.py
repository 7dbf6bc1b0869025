"""Fixtures for bot mode: an ngircd per test, bots that are stopped after
it, and humans on raw sockets (helpers and types live in kit.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from futon.transports.irc_bot import IrcBot
from tests.transports.irc_bot.kit import (
    FAST,
    Connect,
    MakeBot,
    Ngircd,
    RawClient,
    RecordingHooks,
    make_ngircd,
    network_for,
)


@pytest.fixture
async def ngircd() -> AsyncIterator[Ngircd]:
    server = make_ngircd()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_bot() -> AsyncIterator[MakeBot]:
    """``await make_bot(port, **network_fields, bot_kwargs={…})`` → a started
    bot and its recording hooks; every bot is stopped after the test."""
    bots: list[IrcBot] = []

    async def _make(
        port: int, *, bot_kwargs: dict[str, Any] | None = None, **fields: Any
    ) -> tuple[IrcBot, RecordingHooks]:
        hooks = RecordingHooks()
        bot = IrcBot(network_for(port, **fields), hooks, **{**FAST, **(bot_kwargs or {})})
        bots.append(bot)
        await bot.start()
        return bot, hooks

    yield _make
    for bot in bots:
        await bot.stop()


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``await connect(port, "alice", channel="#futon")`` → a registered human."""
    clients: list[RawClient] = []

    async def _connect(
        port: int, nick: str, *, channel: str | None = None, password: str | None = None
    ) -> RawClient:
        client = await RawClient.connect(port)
        clients.append(client)
        await client.register(nick, password=password)
        if channel:
            await client.join(channel)
        return client

    yield _connect
    for client in clients:
        await client.close()
