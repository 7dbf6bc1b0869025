"""Starting a coroutine at once, and making a task of it only if it waits.

The hot path of a tool action (a small ``read``, an evidence append that
writes inline) usually runs to its end without waiting on anything, yet a
task made for it costs a turn of the event loop before it starts and
another to hand back its result. :func:`start` runs the coroutine in the
caller until its first real wait: when there is none, the result (or the
exception) comes back at once; otherwise the caller gets the suspended
coroutine as :class:`Started`, which a task (``asyncio.ensure_future``)
or an ``await`` drives on from the very wait it stopped at — cancellation
included (what Python 3.12's eager tasks do; this daemon runs on 3.11).

Contract: the coroutine's code runs exactly as under ``await``, in the
caller's task and context up to its first suspension; a cancellation
thrown into a :class:`Started` before its first step reaches the
suspended coroutine (never lost, so its ``finally`` blocks run in a task).
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


class Started(Coroutine[Any, Any, T], Generic[T]):
    """A coroutine :func:`start` ran up to its first wait. ``finished``:
    it needed none, and ``value`` is its result. Otherwise it waits on
    what it yielded (a future, or None for a bare yield) and this object
    is the coroutine to drive on, once, with a task or an ``await``: its
    first ``send`` yields that again, so the driver waits on the same
    thing; every later step goes to the coroutine itself."""

    __slots__ = ("_coro", "_started", "_value", "_waiting", "finished")

    def __init__(
        self, coro: Coroutine[Any, Any, T], waiting: Any, finished: bool, value: Any
    ) -> None:
        self._coro = coro
        self._waiting = waiting
        self._started = finished
        self._value = value
        self.finished = finished

    @property
    def value(self) -> T:
        """The result of a coroutine that finished in :func:`start`."""
        if not self.finished:
            raise RuntimeError("the coroutine is still waiting: drive it on")
        return cast(T, self._value)

    def send(self, value: Any) -> Any:
        if not self._started:
            self._started = True
            waiting, self._waiting = self._waiting, None
            return waiting
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        # Thrown before the first step too (a task cancelled before it ran):
        # the suspended coroutine gets it where it waits.
        self._started = True
        self._waiting = None
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, T]:
        return self  # type: ignore[return-value]  # an iterator with send/throw: what yield from drives

    def __next__(self) -> Any:
        return self.send(None)


def start(coro: Coroutine[Any, Any, T]) -> Started[T]:
    """Run ``coro`` up to its first suspension (see :class:`Started`). An
    exception it raises before waiting is raised here."""
    try:
        waiting = coro.send(None)
    except StopIteration as finished:
        return Started(coro, None, True, finished.value)
    return Started(coro, waiting, False, None)
