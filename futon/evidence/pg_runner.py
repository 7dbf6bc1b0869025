"""A private event loop in a thread, owning every asyncpg connection of one
PostgreSQL evidence store.

asyncpg is async-only and its connections belong to the loop that opened
them, while the store's read interface is synchronous (like the JSONL
store's, whose reads are file reads) and its callers may run in any loop or
none (the daemon's loop, a CLI, a test). So the connections live here:
:meth:`PgRunner.call` runs a coroutine on this loop and blocks for its
result; :meth:`PgRunner.acall` awaits it from another loop without
blocking that loop. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from futon.protocol.errors import StoreError

T = TypeVar("T")
CALL_TIMEOUT_S = 60.0  # no database call may hold a caller longer than this


class PgRunner:
    def __init__(self, name: str = "futon-evidence-pg") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT_S) -> T:
        """Run ``coro`` on the runner's loop; block until it is done."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("PgRunner.call from its own thread would wait for itself")
        future = self._submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise StoreError(f"the evidence database did not answer within {timeout:g}s") from None

    async def acall(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT_S) -> T:
        """Run ``coro`` on the runner's loop; await it from the caller's."""
        future = self._submit(coro)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            raise StoreError(f"the evidence database did not answer within {timeout:g}s") from None

    def spawn(self, coro: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
        """Start ``coro`` on the runner's loop without waiting for it."""
        return self._submit(coro)

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self.loop.is_closed() or not self._thread.is_alive():
            coro.close()
            raise StoreError("the evidence store is closed")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        """Stop the loop and its thread (after the caller closed its
        connections through :meth:`call`)."""
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=CALL_TIMEOUT_S)
        if not self._thread.is_alive():
            self.loop.close()
