"""futon.peripherals.eager: a coroutine started in the caller ends there
when it never waits, and otherwise goes on — in a task or under an await —
from the very wait it stopped at, cancellation included."""

from __future__ import annotations

import asyncio

import pytest

from futon.peripherals import eager


async def test_a_coroutine_that_never_waits_ends_in_the_caller() -> None:
    ran: list[str] = []

    async def work() -> int:
        ran.append("ran")
        return 7

    started = eager.start(work())
    assert (started.finished, started.value, ran) == (True, 7, ["ran"])


async def test_an_exception_before_any_wait_is_raised_by_start() -> None:
    async def work() -> None:
        raise ValueError("at once")

    with pytest.raises(ValueError, match="at once"):
        eager.start(work())


@pytest.mark.parametrize("drive", ["task", "await"])
async def test_a_coroutine_that_waits_goes_on_from_that_wait(drive: str) -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def work() -> str:
        steps.append("before")
        got = await gate
        steps.append("after")
        await asyncio.sleep(0)  # a bare yield goes through too
        return got + "!"

    resumed = eager.start(work())
    assert not resumed.finished and steps == ["before"]
    with pytest.raises(RuntimeError):
        _ = resumed.value
    runner = (
        asyncio.ensure_future(resumed)
        if drive == "task"
        else asyncio.ensure_future(_awaiting(resumed))
    )
    await asyncio.sleep(0)
    assert steps == ["before"] and not runner.done()  # still waiting on the same future
    gate.set_result("opened")
    assert await runner == "opened!"
    assert steps == ["before", "after"]


async def _awaiting(resumed: eager.Started[str]) -> str:
    return await resumed


async def test_a_task_cancelled_before_its_first_step_cancels_the_coroutine_where_it_waits() -> (
    None
):
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def work() -> None:
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled where it waited")
            raise
        finally:
            seen.append("finally ran")

    resumed = eager.start(work())
    assert not resumed.finished
    task = asyncio.ensure_future(resumed)
    task.cancel()  # before the task ever ran a step
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled where it waited", "finally ran"]
    assert gate.cancelled() or not gate.done()


async def test_cancelling_a_waiting_task_reaches_the_coroutine() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def work() -> str:
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled")
            return "stopped"
        return "not cancelled"

    resumed = eager.start(work())
    assert not resumed.finished
    task = asyncio.ensure_future(resumed)
    await asyncio.sleep(0)  # the task now waits on gate
    task.cancel()
    assert await task == "stopped"  # the coroutine caught it, as under a plain await
    assert seen == ["cancelled"]
