"""The daemon's background tasks (futon/daemon/tasks.py): each is owned,
its failure is seen and kept, and stop cancels them all in one place."""

from __future__ import annotations

import asyncio
import logging

import pytest

from futon.daemon.tasks import BackgroundTasks


async def test_a_failing_loop_is_logged_and_kept_and_the_others_run_on(caplog: pytest.LogCaptureFixture) -> None:
    tasks = BackgroundTasks()
    failing = asyncio.Event()
    forever = asyncio.Event()

    async def broken() -> None:
        await failing.wait()
        raise RuntimeError("scan exploded")

    async def steady() -> None:
        await forever.wait()

    tasks.start("broken", broken)
    tasks.start("steady", steady)
    tasks.start("steady", steady)  # already running: nothing new
    assert sorted(tasks.names) == ["broken", "steady"]
    with caplog.at_level(logging.ERROR, logger="futon.daemon"):
        failing.set()
        while "broken" not in tasks.failed:  # the done-callback has run
            await asyncio.sleep(0)
    assert tasks.failed == {"broken": "RuntimeError: scan exploded"}
    assert "background task broken failed" in caplog.text
    assert tasks.names == ["steady"]
    await tasks.stop()
    assert tasks.names == []


async def test_stop_cancels_every_loop_at_once_and_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    tasks = BackgroundTasks()
    cancelled: list[str] = []
    release = asyncio.Event()

    async def polite(name: str) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancelled.append("stubborn")  # and carries on: a bug stop must survive

    tasks.start("a", lambda: polite("a"))
    tasks.start("b", lambda: polite("b"))
    tasks.start("stubborn", stubborn)
    await asyncio.sleep(0)  # let each loop reach its first wait
    with caplog.at_level(logging.WARNING, logger="futon.daemon"):
        await tasks.stop(timeout_s=0.05)
    assert sorted(cancelled) == ["a", "b", "stubborn"]
    assert "background task stubborn did not stop" in caplog.text
    assert tasks.names == ["stubborn"]
    release.set()
    await tasks.cancel("stubborn")
    assert tasks.names == [] and tasks.failed == {}


async def test_one_loop_stops_by_name_and_can_start_again() -> None:
    tasks = BackgroundTasks()
    runs: list[int] = []

    async def loop() -> None:
        runs.append(1)
        await asyncio.Event().wait()

    tasks.start("tickle", loop)
    await asyncio.sleep(0)
    await tasks.cancel("tickle")
    assert "tickle" not in tasks
    tasks.start("tickle", loop)
    await asyncio.sleep(0)
    assert "tickle" in tasks and runs == [1, 1]
    await tasks.stop()
