"""alfworld on the real engine: the shipped text environment
(futon/peripherals/domain/alfworld_server.py, what `futon alfworld serve`
runs) on a real socket, a runner with RealBackend, and a recording messenger
for bell and whistle — plus servers that are down, slow or answer junk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from futon.config.models import ToolsSection
from futon.evidence import MemoryStore
from futon.evidence.store import EvidenceStore
from futon.peripherals.domain import alfworld
from futon.peripherals.domain.alfworld_server import TABLE_KEY, GameTable, make_app, running
from futon.peripherals.runner import PeripheralRunner
from futon.peripherals.spec import Peripheral
from futon.peripherals.tools import Messenger
from futon.peripherals.tools.backend import RealBackend
from futon.protocol.errors import FutonError, ProtocolError, ToolError
from tests.peripherals.support import session_entries, shipped_peripherals
from tests.support import refused_port

# The shipped environment's game of this seed is the classic one: a kitchen
# with apple 1 on countertop 1, and the task "put a clean apple in fridge."
# (test_alfworld_env.py::test_the_classic_seed guards that.)
CLASSIC_SEED = 3520
WINNING_RUN = [
    "go to countertop 1",
    "take apple 1 from countertop 1",
    "go to sinkbasin 1",
    "clean apple 1 with sinkbasin 1",
    "go to fridge 1",
    "open fridge 1",
    "put apple 1 in/on fridge 1",
]


class RecordingMessenger:
    """``rooms``: room → agent ids rung; ``answers``: agent → answer. An
    agent without an answer stays silent until ``timeout_s``, then the
    messenger raises invoke-timeout, as the Messenger protocol says."""

    def __init__(
        self, rooms: dict[str, list[str]] | None = None, answers: dict[str, Any] | None = None
    ) -> None:
        self.rooms = rooms or {}
        self.answers = answers or {}
        self.rings: list[tuple[str, str, str]] = []
        self.asks: list[tuple[str, str, str, float]] = []

    async def post(self, channel: str, text: str, *, author: str) -> None:
        raise AssertionError("alfworld never posts")

    async def ring(self, room: str, text: str, *, author: str) -> list[str]:
        self.rings.append((room, text, author))
        return list(self.rooms.get(room, []))

    async def ask(self, agent_id: str, text: str, *, author: str, timeout_s: float) -> Any:
        self.asks.append((agent_id, text, author, timeout_s))
        if agent_id not in self.answers:
            await asyncio.sleep(timeout_s)  # a fake: nobody answering IS the time running out
            raise FutonError(f"{agent_id} did not answer", code="invoke-timeout")
        return self.answers[agent_id]


def make_runner(
    workspace: Path,
    server: str | None,
    store: EvidenceStore | None = None,
    messenger: Messenger | None = None,
    **config: Any,
) -> PeripheralRunner:
    peripherals = shipped_peripherals()
    spec = peripherals["alfworld"].spec
    block = {"alfworld_server": server, **config} if server else config
    peripherals["alfworld"] = Peripheral("alfworld", spec.model_copy(update={"config": block}))
    backend = RealBackend()
    alfworld.install(backend)
    return PeripheralRunner(
        peripherals, backend, store or MemoryStore(), ToolsSection(), workspace, messenger=messenger
    )


class Watch:
    """What the server saw: ``resets`` counted, ``actions`` of every game
    it holds (one per session), in the order the games started."""

    def __init__(self, table: GameTable) -> None:
        self.table = table

    @property
    def resets(self) -> int:
        return self.table.resets

    @property
    def actions(self) -> list[str]:
        return [action for game in self.table.games.values() for action in game.actions]


def serving(app: web.Application) -> AbstractAsyncContextManager[str]:
    """Run ``app`` on 127.0.0.1, port 0; the base URL."""
    return running(app, "127.0.0.1", 0, shutdown_timeout=0.1)


def junk_app(mode: str) -> web.Application:
    """A server that answers every endpoint wrongly, one way:

    - ``not-json``: 200 with an HTML page;
    - ``wrong-shape``: 200 with JSON whose fields have the wrong types;
    - ``list``: 200 with a JSON array;
    - ``http-500``: 500 with ``{"error": "the simulator crashed"}``;
    - ``slow``: answers after 30 s (for timeouts);
    - ``hang-up``: closes the connection without answering.
    """

    async def handler(request: web.Request) -> web.StreamResponse:
        if mode == "not-json":
            return web.Response(
                text="<html><body>502 Bad Gateway</body></html>", content_type="text/html"
            )
        if mode == "wrong-shape":
            return web.json_response(
                {"observation": 42, "done": "nope", "won": None, "score": "high"}
            )
        if mode == "list":
            return web.json_response(["observation", "done"])
        if mode == "http-500":
            return web.json_response({"error": "the simulator crashed"}, status=500)
        if mode == "slow":
            await asyncio.sleep(30)  # a fake: a simulator slower than the client's timeout
            return web.json_response({})
        if mode == "hang-up":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        raise ValueError(f"unknown junk mode {mode!r}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@pytest.fixture
async def env() -> AsyncIterator[tuple[str, Watch]]:
    table = GameTable(CLASSIC_SEED)
    app = make_app(table)
    assert app[TABLE_KEY] is table
    async with serving(app) as url:
        yield url, Watch(table)


@pytest.fixture
def closed_url() -> Iterator[str]:
    """A URL on which nothing listens (for the whole test: see refused_port)."""
    with refused_port() as port:
        yield f"http://127.0.0.1:{port}"


# ----------------------------------------------------------------- a session


async def test_alfworld_session_wins_the_game_with_help(
    env: tuple[str, Watch], tmp_path: Path
) -> None:
    """The whole mechanism: reset on the first action, steps over real HTTP,
    a bell and a whistle through the messenger, the state in the session
    context, the fruit, and the session's evidence."""
    url, game = env
    store = MemoryStore()
    messenger = RecordingMessenger(
        rooms={"#kitchen": ["codex-1", "claude-2"]}, answers={"codex-1": "rinse it first"}
    )
    runner = make_runner(tmp_path, url, store, messenger)
    session = await runner.start("claude-1", "alfworld")

    look = await session.step("alfworld-action", ["look"])
    assert look.ok and look.result == {
        "observation": "You are in the middle of a room. Next to it, you see nothing.",
        "done": False, "won": False, "score": 0.0, "step": 1,
    }  # fmt: skip
    assert game.resets == 1
    state = session.state.context["alfworld-state"]
    assert state["task"] == "Your task is to: put a clean apple in fridge."

    rung = await session.step("bell", ["#kitchen", "where is the apple?"])
    assert rung.result == {"rung": ["codex-1", "claude-2"]}
    advice = await session.step(
        "whistle", ["codex-1", "does the apple need cleaning?", {"timeout_s": 5}]
    )
    assert advice.result == {"answer": "rinse it first"}

    results = [await session.step("alfworld-action", [action]) for action in WINNING_RUN]
    assert all(r.ok for r in results)
    assert results[1].result["observation"] == "You pick up the apple 1 from the countertop 1."
    last = results[-1].result
    assert last == {
        "observation": "You put the apple 1 in/on the fridge 1.",
        "done": True, "won": True, "score": 1.0, "step": 8,
    }  # fmt: skip
    over = await session.step("alfworld-action", ["look"])
    assert not over.ok and "the episode is over (won" in over.result["error"]

    assert game.resets == 1 and game.actions == ["look", *WINNING_RUN]
    assert messenger.rings == [("#kitchen", "where is the apple?", "claude-1")]
    assert messenger.asks == [("codex-1", "does the apple need cleaning?", "claude-1", 5.0)]
    fruit = alfworld.alfworld_fruit(session.state.context, session.state.steps)
    assert fruit == {
        "won": True, "score": 1.0, "final_observation": "You put the apple 1 in/on the fridge 1.",
        "step_count": 8, "coordination_events": 2,
    }  # fmt: skip
    await session.stop("won")
    entries = session_entries(store, session.id)
    assert [e["evidence/claim-type"] for e in entries] == ["goal"] + ["step"] * 11 + ["conclusion"]
    assert entries[1]["evidence/body"]["tool"] == "alfworld-action"
    assert entries[-2]["evidence/body"]["ok"] is False


async def test_each_session_resets_its_own_episode(
    env: tuple[str, Watch], tmp_path: Path
) -> None:
    url, game = env
    runner = make_runner(tmp_path, url)
    first = await runner.start("claude-1", "alfworld")
    await first.step("alfworld-action", ["go to fridge 1"])
    await first.step("alfworld-action", ["open fridge 1"])
    second = await runner.start(
        "claude-2", "alfworld", context={"alfworld-state": first.state.context["alfworld-state"]}
    )
    again = await second.step("alfworld-action", ["examine fridge 1"])
    assert again.result["step"] == 1 and again.result["observation"] == "Nothing happens."
    assert game.resets == 2


async def test_client_reads_the_state_document(env: tuple[str, Watch]) -> None:
    url, _ = env
    client = alfworld.AlfworldClient(url + "/")
    before = await client.state()
    assert before.observation == "" and before.step == 0
    with pytest.raises(ToolError, match=r"refused POST /step \(HTTP 400\): No game running"):
        await client.step("look")
    reset = await client.reset()
    assert "You are in the middle of a room" in reset.observation
    assert "go to fridge 1" in reset.admissible_commands
    await client.step("go to fridge 1")
    assert (await client.state()).step == 1


# ----------------------------------------------------------------- bad input


async def test_invalid_verbs_are_refused_before_any_http(
    env: tuple[str, Watch], tmp_path: Path
) -> None:
    url, game = env
    store = MemoryStore()
    runner = make_runner(tmp_path, url, store)
    session = await runner.start("claude-1", "alfworld")
    for action in ("jump over the fridge", "", "   ", "look\nrm -rf /", 42):
        with pytest.raises(ProtocolError) as refused:
            await session.step("alfworld-action", [action])
        assert refused.value.code == "invalid-input"
    with pytest.raises(ProtocolError, match="unknown verb 'dance'"):
        await session.step("alfworld-action", ["dance"])
    assert game.resets == 0 and game.actions == []
    tensions = [
        e for e in session_entries(store, session.id) if e["evidence/claim-type"] == "tension"
    ]
    assert len(tensions) == 6
    ok = await session.step("alfworld-action", ["Look"])  # verbs are case-insensitive
    assert ok.ok and game.actions == ["look"]


async def test_server_down_is_a_clear_tool_error(tmp_path: Path, closed_url: str) -> None:
    runner = make_runner(tmp_path, closed_url)
    session = await runner.start("claude-1", "alfworld")
    down = await session.step("alfworld-action", ["look"])
    assert not down.ok and down.result["code"] == "invoke-failed"
    assert "is unreachable" in down.result["error"] and "is it running?" in down.result["error"]
    assert (
        session.state.context["alfworld-state"]["started"] is False
    )  # the next action tries the reset again


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("not-json", "answered POST /reset with something that is not JSON: '<html>"),
        (
            "wrong-shape",
            "malformed reply to POST /reset: 'observation' must be a string, got int 42",
        ),
        ("list", "malformed reply to POST /reset: a JSON list where an object was expected"),
        ("http-500", "refused POST /reset (HTTP 500): the simulator crashed"),
        ("hang-up", "broke off POST /reset"),
    ],
)
async def test_junk_answers_are_clear_tool_errors(tmp_path: Path, mode: str, message: str) -> None:
    async with serving(junk_app(mode)) as url:
        runner = make_runner(tmp_path, url)
        session = await runner.start("claude-1", "alfworld")
        junk = await session.step("alfworld-action", ["look"])
    assert not junk.ok and junk.result["code"] == "invoke-failed"
    assert message in junk.result["error"]


def test_wrong_field_types_are_named() -> None:
    base = {"observation": "ok"}
    assert alfworld.parse_state(base, "x").done is False
    for field, value, said in [
        ("done", "nope", "'done' must be a boolean"),
        ("won", 1, "'won' must be a boolean"),
        ("score", True, "'score' must be a number"),
        ("step", 1.5, "'step' must be an integer"),
    ]:
        with pytest.raises(ToolError, match=said):
            alfworld.parse_state({**base, field: value}, "POST /step")


async def test_a_slow_server_times_out(tmp_path: Path) -> None:
    async with serving(junk_app("slow")) as url:
        runner = make_runner(tmp_path, url, timeout_s=0.3)
        session = await runner.start("claude-1", "alfworld")
        slow = await session.step("alfworld-action", ["look"])
    assert not slow.ok and slow.result["code"] == "invoke-timeout"
    assert "did not answer POST /reset within 0.3 s" in slow.result["error"]


async def test_no_server_configured(tmp_path: Path) -> None:
    runner = make_runner(tmp_path, None)
    session = await runner.start("claude-1", "alfworld")
    none = await session.step("alfworld-action", ["look"])
    assert not none.ok and "no alfworld_server is configured" in none.result["error"]


async def test_whistle_timeout_and_no_relay(tmp_path: Path, closed_url: str) -> None:
    messenger = RecordingMessenger(rooms={"#kitchen": []})
    runner = make_runner(tmp_path, closed_url, messenger=messenger)
    session = await runner.start("claude-1", "alfworld")
    silent = await session.step("whistle", ["codex-1", "anyone?", {"timeout_s": 0.05}])
    assert not silent.ok and silent.result["code"] == "invoke-timeout"
    assert silent.result["error"] == "codex-1 did not answer the whistle within 0.05 s"
    empty = await session.step("bell", ["#kitchen", "hello?"])
    assert empty.result == {"rung": []}
    assert (
        alfworld.alfworld_fruit(session.state.context, session.state.steps)["coordination_events"]
        == 2
    )
    for args in (["not an id!", "hi"], ["codex-1", "hi", {"timeout_s": 0}], ["codex-1"]):
        with pytest.raises(ProtocolError):
            await session.step("whistle", args)
    with pytest.raises(ProtocolError):
        await session.step("bell", ["two words", "hi"])

    lonely = await make_runner(tmp_path, closed_url).start("claude-1", "alfworld")
    for tool, args in (("bell", ["#kitchen", "hi"]), ("whistle", ["codex-1", "hi"])):
        result = await lonely.step(tool, args)
        assert not result.ok and "no IRC relay in this daemon" in result.result["error"]


def test_fruit_of_a_session_that_never_played() -> None:
    assert alfworld.alfworld_fruit({}, 3) == {
        "won": False, "score": 0.0, "final_observation": "", "step_count": 3, "coordination_events": 0,
    }  # fmt: skip


def test_install_without_options() -> None:
    backend = RealBackend()
    alfworld.install(backend)
    assert {"alfworld-action", "bell", "whistle"} <= backend.tools()
