"""The arena's own checks can fail: a wall check that cannot fail would make
every attack test in this folder pass for nothing."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.security.conftest import SECRET_NAME, Arena
from tests.support import until


async def test_the_arena_sees_a_changed_sentinel(arena: Arena) -> None:
    arena.assert_walls_held()
    arena.sentinel.write_text("changed\n")
    with pytest.raises(AssertionError, match="sentinel"):
        arena.assert_walls_held()


async def test_the_arena_sees_a_file_created_outside(arena: Arena) -> None:
    (arena.outside / "planted").write_text("x")
    with pytest.raises(AssertionError, match="appeared outside"):
        arena.assert_walls_held()


async def test_the_arena_sees_a_connection_to_the_listener(arena: Arena) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", arena.listener_port)
    writer.close()
    await until(lambda: arena.listener_hits, what="the listener's accept")
    with pytest.raises(AssertionError, match="listener"):
        arena.assert_walls_held()


async def test_the_secret_is_in_the_daemons_environment_and_a_leak_is_seen(arena: Arena) -> None:
    assert arena.secret in os.environ[SECRET_NAME]
    with pytest.raises(AssertionError, match="secret"):
        arena.assert_no_secret(f"output: {os.environ[SECRET_NAME]}")


async def test_a_frozen_loop_fails_the_responsiveness_check(arena: Arena) -> None:
    with pytest.raises(AssertionError, match="/health"):
        async with arena.responsive():
            # time, not synchronisation: the check samples /health over a span of time
            await asyncio.sleep(0.2)
            time.sleep(0.8)  # the event loop (and so the daemon) frozen on purpose
            await asyncio.sleep(0.2)


async def test_an_idle_daemon_is_responsive(arena: Arena) -> None:
    async with arena.responsive():
        await asyncio.sleep(0.5)  # time: an idle span for the responsiveness sampler
    assert len(arena.health_times) >= 3
