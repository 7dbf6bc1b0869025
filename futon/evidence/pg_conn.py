"""One asyncpg connection used by one coroutine at a time, re-opened when lost.

The PostgreSQL store keeps two of these on its runner's loop — one for
append transactions, one for reads — instead of an asyncpg pool: a pool
resets each connection on release (a round trip per use, measured +0.3 ms
per call), and the store never needs more than one connection per kind
because its calls of a kind are serial anyway. A connection that the server
closed (restart, failover) is noticed by ``is_closed`` and replaced on the
next use; a refused connect raises, for the store to type.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 30.0


class PgConnection:
    def __init__(self, dsn: str, password: str | None) -> None:
        self._dsn = dsn
        self._password = password
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # created on the runner's loop, used only there

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[asyncpg.Connection]:
        """The connection, exclusively, (re)opened if needed. A failure
        while it is in use drops it, so the next use starts afresh."""
        async with self._lock:
            conn = self._conn
            if conn is None or conn.is_closed():
                self._conn = None
                conn = await asyncpg.connect(
                    self._dsn,
                    password=self._password,
                    timeout=CONNECT_TIMEOUT_S,
                    command_timeout=COMMAND_TIMEOUT_S,
                )
                self._conn = conn
            try:
                yield conn
            except BaseException:
                if conn.is_closed() or conn.is_in_transaction():
                    # A half-finished transaction (cancelled mid-way) must not
                    # leak into the next use: drop the connection.
                    self._conn = None
                    conn.terminate()
                raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()
