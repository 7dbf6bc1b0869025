"""The daemon's long-lived background tasks, owned in one place.

Every background loop the daemon runs (Tickle's watch, the SIGHUP reload
loop, the service manager's watchdog …) is started through
:class:`BackgroundTasks`, which:

- names it, holds it and sees how it ends: a loop that raises is logged
  with its name and kept in :attr:`BackgroundTasks.failed` (what
  ``/health`` can show) — never a "Task exception was never retrieved";
- stops one by name (a reload that disables Tickle), or all at once
  (:meth:`BackgroundTasks.stop`): every task is cancelled together and
  waited for within a bound; one that does not end in time is named in
  the log and left behind, so shutdown always goes on.

Components with their own lifecycle (the HTTP and IRC servers, IRC bot
connections) keep their own ``start``/``stop`` and wait for their own
tasks; this class is for loops the daemon itself starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("futon.daemon")

Loop = Callable[[], Coroutine[Any, Any, None]]


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.failed: dict[str, str] = {}  # name → the error a loop ended with

    def __contains__(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    @property
    def names(self) -> list[str]:
        """The loops running now."""
        return [name for name in self._tasks if name in self]

    def start(self, name: str, loop: Loop) -> None:
        """Run ``loop()`` as the task ``name``; nothing if it already runs."""
        if name in self:
            return
        self.failed.pop(name, None)
        task = asyncio.get_running_loop().create_task(loop(), name=f"futon-{name}")
        self._tasks[name] = task
        task.add_done_callback(lambda done: self._ended(name, done))

    def _ended(self, name: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(name) is task:
            del self._tasks[name]
        if task.cancelled():
            return
        error = task.exception()  # retrieved here: the error is seen, logged and kept
        if error is not None:
            self.failed[name] = f"{type(error).__name__}: {error}"
            log.error("background task %s failed", name, exc_info=error)
        else:
            log.info("background task %s ended", name)

    async def cancel(self, name: str, timeout_s: float = 2.0) -> None:
        """Stop one loop and wait for it (at most ``timeout_s``)."""
        task = self._tasks.get(name)
        if task is not None:
            await self._cancel_all([(name, task)], timeout_s)

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Cancel every loop at once and wait for them all, within ``timeout_s``."""
        await self._cancel_all(list(self._tasks.items()), timeout_s)

    @staticmethod
    async def _cancel_all(tasks: list[tuple[str, asyncio.Task[None]]], timeout_s: float) -> None:
        if not tasks:
            return
        for _, task in tasks:
            task.cancel()
        _, pending = await asyncio.wait([task for _, task in tasks], timeout=timeout_s)
        for name, task in tasks:
            if task in pending:
                log.warning("background task %s did not stop within %.1fs; leaving it", name, timeout_s)


__all__ = ["BackgroundTasks", "Loop"]
