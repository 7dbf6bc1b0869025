"""The shipped ALFWorld environment over HTTP (futon/peripherals/domain/alfworld_server.py):
its refusals on a real socket, one game per session, and `futon alfworld serve`
as a real process that an alfworld peripheral session plays and wins."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from futon.cli import main
from futon.peripherals.domain import alfworld
from futon.peripherals.domain.alfworld_env import MAX_ACTION, Game, new_game
from futon.peripherals.domain.alfworld_server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    MAX_BODY,
    GameTable,
    make_app,
    running,
)
from futon.protocol.errors import FutonError
from tests.peripherals.domain.test_alfworld import CLASSIC_SEED, WINNING_RUN, make_runner
from tests.peripherals.domain.test_alfworld_env import solve
from tests.peripherals.support import shipped_peripherals
from tests.support import futon_env

STARTUP_S = 60.0  # an upper bound for a cold `python -m futon` on a busy machine


async def call(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, url, **kwargs) as response:
        text = await response.text()
        assert response.content_type == "application/json", text
        return response.status, json.loads(text)


def refusal(status: int, body: Any, want_status: int, code: str) -> str:
    """Check one refusal's shape; its message."""
    assert status == want_status, body
    assert isinstance(body, dict) and body["code"] == code, body
    assert isinstance(body["error"], str) and "Traceback" not in body["error"]
    return str(body["error"])


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, GameTable, aiohttp.ClientSession]]:
    table = GameTable(CLASSIC_SEED, max_games=4, max_steps=5)
    async with (
        running(make_app(table), "127.0.0.1", 0) as url,
        aiohttp.ClientSession() as http,
    ):
        yield url, table, http


# ----------------------------------------------------------------- the wire


async def test_reset_step_state(server: tuple[str, GameTable, aiohttp.ClientSession]) -> None:
    url, table, http = server
    status, before = await call(http, "GET", url + "/state")
    assert status == 200 and before["observation"] == "" and before["step"] == 0
    status, reset = await call(http, "POST", url + "/reset", json={})
    assert status == 200 and reset["task"] == "Your task is to: put a clean apple in fridge."
    status, reset = await call(http, "POST", url + "/reset")  # futon3c's clients send nothing
    assert status == 200 and reset["seed"] == CLASSIC_SEED + 1  # the next reset, the next seed
    assert table.resets == 2 and table.next_seed == CLASSIC_SEED + 2
    status, reset = await call(http, "POST", url + "/reset", json={"seed": CLASSIC_SEED})
    assert reset["seed"] == CLASSIC_SEED and reset["step"] == 0 and reset["done"] is False
    assert alfworld.parse_state(reset, "POST /reset").task == reset["task"]
    status, step = await call(http, "POST", url + "/step", json={"action": "go to countertop 1"})
    assert status == 200 and step["observation"].startswith("You arrive at countertop 1.")
    assert step["step"] == 1 and "take apple 1 from countertop 1" in step["admissible_commands"]
    _, state = await call(http, "GET", url + "/state")
    assert state == step
    status, picked = await call(
        http, "POST", url + "/reset", json={"seed": 8, "task_type": "look_at_obj_in_light"}
    )
    assert picked["task_type"] == "look_at_obj_in_light" and picked["seed"] == 8


async def test_unknown_verbs_are_nothing_happens_as_in_alfworld(
    server: tuple[str, GameTable, aiohttp.ClientSession],
) -> None:
    url, _, http = server
    await call(http, "POST", url + "/reset")
    for n, action in enumerate(["dance", "jump over the fridge 1", "", "go to mars 1"], start=1):
        status, body = await call(http, "POST", url + "/step", json={"action": action})
        assert status == 200 and body["observation"] == "Nothing happens." and body["step"] == n


async def test_each_session_has_its_own_game(
    server: tuple[str, GameTable, aiohttp.ClientSession],
) -> None:
    url, table, http = server
    await call(http, "POST", url + "/reset", json={"session": "a"})
    await call(http, "POST", url + "/reset", json={"session": "b"})
    await call(http, "POST", url + "/step", json={"session": "a", "action": "go to fridge 1"})
    _, a = await call(http, "GET", url + "/state", params={"session": "a"})
    _, b = await call(http, "GET", url + "/state", params={"session": "b"})
    assert (a["step"], b["step"]) == (1, 0) and (a["seed"], b["seed"]) == (
        CLASSIC_SEED,
        CLASSIC_SEED + 1,
    )
    status, body = await call(http, "POST", url + "/step", json={"action": "look"})
    assert "No game running" in refusal(status, body, 400, "no-game")  # the "" session
    for name in ("c", "d", "e"):  # max_games=4: "a" (touched longest ago) goes
        await call(http, "POST", url + "/reset", json={"session": name})
    assert list(table.games) == ["b", "c", "d", "e"]
    status, body = await call(http, "POST", url + "/step", json={"session": "a", "action": "look"})
    refusal(status, body, 400, "no-game")


# ----------------------------------------------------------------- bad input


async def test_bad_input_is_a_typed_json_refusal(
    server: tuple[str, GameTable, aiohttp.ClientSession],
) -> None:
    url, table, http = server
    status, body = await call(http, "POST", url + "/step", json={"action": "look"})
    assert refusal(status, body, 400, "no-game") == "No game running. POST /reset first."
    await call(http, "POST", url + "/reset")
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", "/step", {"data": b"{not json"}, 400, "invalid-json"),
        ("POST", "/step", {"data": b"\xff\xfe"}, 400, "invalid-json"),
        ("POST", "/step", {"json": ["look"]}, 400, "invalid-json"),
        ("POST", "/step", {"data": b""}, 400, "invalid-json"),
        ("POST", "/step", {"json": {}}, 400, "invalid-input"),
        ("POST", "/step", {"json": {"action": 7}}, 400, "invalid-input"),
        ("POST", "/step", {"json": {"action": "look\ninventory"}}, 400, "invalid-input"),
        ("POST", "/step", {"json": {"action": "x" * (MAX_ACTION + 1)}}, 400, "invalid-input"),
        ("POST", "/step", {"json": {"action": "look", "session": ["a"]}}, 400, "invalid-input"),
        ("POST", "/reset", {"data": b"[1"}, 400, "invalid-json"),
        ("POST", "/reset", {"json": {"seed": -1}}, 400, "invalid-input"),
        ("POST", "/reset", {"json": {"seed": True}}, 400, "invalid-input"),
        ("POST", "/reset", {"json": {"seed": "7"}}, 400, "invalid-input"),
        ("POST", "/reset", {"json": {"task_type": "pick_and_juggle"}}, 400, "invalid-input"),
        ("POST", "/reset", {"json": {"session": "s" * 129}}, 400, "invalid-input"),
        ("GET", "/state", {"params": {"session": "s" * 129}}, 400, "invalid-input"),
        ("GET", "/nowhere", {}, 404, "not-found"),
        ("GET", "/step", {}, 405, "method-not-allowed"),
        ("DELETE", "/reset", {}, 405, "method-not-allowed"),
    ]
    for method, path, kwargs, want, code in cases:
        status, body = await call(http, method, url + path, **kwargs)
        refusal(status, body, want, code)
    assert table.get("").steps == 0  # type: ignore[union-attr]


async def test_huge_bodies_are_refused(
    server: tuple[str, GameTable, aiohttp.ClientSession],
) -> None:
    url, _, http = server
    huge = json.dumps({"action": "look", "pad": "x" * MAX_BODY}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 4096):
            yield huge[start : start + 4096]

    for path in ("/step", "/reset"):
        status, body = await call(http, "POST", url + path, data=huge)
        assert "over 16384 bytes" in refusal(status, body, 413, "payload-too-large")
        status, body = await call(http, "POST", url + path, data=chunks())  # no Content-Length
        refusal(status, body, 413, "payload-too-large")
    status, _ = await call(http, "POST", url + "/reset")
    assert status == 200  # still serving


async def test_the_end_of_a_game(server: tuple[str, GameTable, aiohttp.ClientSession]) -> None:
    url, _, http = server
    await call(http, "POST", url + "/reset")
    for _ in range(5):  # max_steps=5
        status, last = await call(http, "POST", url + "/step", json={"action": "look"})
    assert last["done"] is True and last["won"] is False and last["score"] == 0.0
    status, body = await call(http, "POST", url + "/step", json={"action": "look"})
    refusal(status, body, 400, "game-over")
    assert body["step"] == 5 and body["done"] is True  # the final state comes along
    client = alfworld.AlfworldClient(url)
    with pytest.raises(FutonError, match=r"HTTP 400\): Game is over"):
        await client.step("look")


async def test_a_failure_inside_is_a_500_without_a_traceback(
    server: tuple[str, GameTable, aiohttp.ClientSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _, http = server
    await call(http, "POST", url + "/reset")

    def broken(self: Game, action: str) -> str:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Game, "step", broken)
    status, body = await call(http, "POST", url + "/step", json={"action": "look"})
    assert "secret" not in refusal(status, body, 500, "internal-error")


# ----------------------------------------------------------------- `futon alfworld serve`


async def start_serve(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    """``futon alfworld serve`` on a port it picks; the process and its URL,
    read from its first line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "futon", "alfworld", "serve", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=futon_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), STARTUP_S)).decode()
    found = re.match(r"alfworld: serving (http://127\.0\.0\.1:\d+) \(seed (\d+)\)", line)
    if found is None:
        proc.kill()
        _, err = await proc.communicate()
        raise AssertionError(f"unexpected first line {line!r}; stderr: {err.decode()}")
    return proc, found.group(1)


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), STARTUP_S)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_futon_alfworld_serve_is_played_and_won_by_a_session(tmp_path: Path) -> None:
    """The first-day path: start the environment, point the alfworld
    peripheral at it, play, win — twice, in two sessions with their own games."""
    proc, url = await start_serve("--seed", str(CLASSIC_SEED))
    try:
        runner = make_runner(tmp_path, url)
        session = await runner.start("claude-1", "alfworld")
        results = [await session.step("alfworld-action", [a]) for a in ["look", *WINNING_RUN]]
        assert all(r.ok for r in results), [r.result for r in results]
        assert results[-1].result == {
            "observation": "You put the apple 1 in/on the fridge 1.",
            "done": True, "won": True, "score": 1.0, "step": 8,
        }  # fmt: skip
        fruit = alfworld.alfworld_fruit(session.state.context, session.state.steps)
        assert fruit["won"] is True and fruit["step_count"] == 8
        await session.stop("won")

        # The next reset plays the next seed; the same seed is the same game
        # here, so a run planned from a local copy wins over the wire.
        second = await runner.start("claude-2", "alfworld")
        plan = solve(new_game(CLASSIC_SEED + 1))
        played = [await second.step("alfworld-action", [a]) for a in plan]
        assert all(p.ok for p in played) and played[-1].result["won"] is True
        assert "Nothing happens." not in [p.result["observation"] for p in played]
        assert (
            second.state.context["alfworld-state"]["task"] == new_game(CLASSIC_SEED + 1).task_text
        )

        # The session's own game: the daemon's other sessions never saw it.
        client = alfworld.AlfworldClient(url)
        assert (await client.state()).step == 0
        assert (await client.state(second.id)).won is True

        # A second server on the same port: one clear line, exit 1.
        port = url.rsplit(":", 1)[1]
        clash = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "futon", "alfworld", "serve", "--port", port,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=futon_env(),
        )  # fmt: skip
        out, err = await asyncio.wait_for(clash.communicate(), STARTUP_S)
        assert clash.returncode == 1, (out, err)
        assert err.decode().startswith(f"futon: alfworld: cannot listen on 127.0.0.1:{port}")
        assert "Traceback" not in err.decode()
    finally:
        code, said = await stop(proc)
    assert code == 0 and "Traceback" not in said


@pytest.mark.parametrize(
    "args", [["--port", "70000"], ["--seed", "-3"], ["--max-games", "0"], ["--seed", "x"]]
)
def test_futon_alfworld_serve_usage_errors(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["alfworld", "serve", *args])
    assert exited.value.code == 2
    assert "futon alfworld serve: error:" in capsys.readouterr().err


async def test_a_random_seed_is_named() -> None:
    proc, url = await start_serve()
    try:
        assert url.startswith("http://127.0.0.1:")
    finally:
        code, _ = await stop(proc)
    assert code == 0


def test_the_shipped_config_points_at_the_default_address() -> None:
    spec = shipped_peripherals()["alfworld"].spec
    assert spec.config["alfworld_server"] == f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
