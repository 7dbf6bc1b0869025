from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from futon.transports.irc import IrcServer
from tests.transports.irc.kit import RawClient, irc_server

Connect = Callable[..., Awaitable[RawClient]]


@pytest.fixture
async def server() -> AsyncIterator[IrcServer]:
    async with irc_server() as s:
        yield s


@pytest.fixture
async def connect(server: IrcServer) -> AsyncIterator[Connect]:
    """``await connect()`` → a raw client; ``await connect("alice")`` → one
    already registered as alice. All are closed after the test."""
    clients: list[RawClient] = []

    async def _connect(nick: str | None = None, *, to: IrcServer | None = None) -> RawClient:
        client = await RawClient.connect(to or server)
        clients.append(client)
        if nick:
            await client.register(nick)
        return client

    yield _connect
    for client in clients:
        await client.close()
