"""The ALFWorld text environment over HTTP — what ``futon alfworld serve`` runs
and the alfworld peripheral talks to (:mod:`futon.peripherals.domain.alfworld`).

**The wire** (futon3c's ``scripts/alfworld-server.py``, plus optional keys):

- ``POST /reset`` with an optional JSON object ``{session?, seed?, task_type?}``
  starts a new game and answers its state document;
- ``POST /step {"action": str, "session"?: str}`` plays one command;
- ``GET /state[?session=…]`` answers the state document (an empty one —
  ``observation ""``, ``step 0`` — before the first reset).

The state document is ``{observation, task, task_type, step, done, won,
score, max_score, admissible_commands, seed}``. ``session`` (at most 128
characters; default ``""``) keeps one game per caller, so agents playing at
the same time do not share a room; the peripheral sends its session id.

**Games.** A reset without ``seed`` plays the server's next seed: ``--seed N``
gives N, N+1, N+2 … in the order resets arrive, so a run is reproducible.
At most ``max_games`` games are kept; a reset beyond that drops the game
touched longest ago. A game ends (``done``) when won or after ``max_steps``
steps.

**Refusals** are JSON ``{"error": message, "code": code}`` with an HTTP
status, never a traceback: 400 ``invalid-json`` (a body that is not JSON),
400 ``invalid-input`` (a missing or non-string action, a multi-line or
over-long one, a bad session, seed or task_type), 400 ``no-game`` (a step
before any reset), 400 ``game-over`` (a step after the end; the body also
carries the final state), 413 ``payload-too-large`` (a body over
``max_body`` bytes), 404 ``not-found``, 405 ``method-not-allowed``, 500
``internal-error``. A command the game does not understand is not a refusal:
it answers ``Nothing happens.``, as ALFWorld does.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from futon.peripherals.domain.alfworld_env import MAX_ACTION, MAX_STEPS, TASK_TYPES, Game, new_game
from futon.protocol.errors import FutonError
from futon.protocol.frames import JsonError, loads_bounded

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3000
MAX_GAMES = 64
MAX_BODY = 16 * 1024
MAX_SESSION = 128
MAX_SEED = 2**63 - 1


class Refused(Exception):
    """A request the server answers with ``{"error", "code"}``."""

    def __init__(self, message: str, code: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.extra = extra

    def response(self) -> web.Response:
        return web.json_response(
            {"error": self.message, "code": self.code, **self.extra}, status=self.status
        )


class GameTable:
    """The games in memory, one per session, least recently touched first.
    Pure: the HTTP layer is :func:`make_app`."""

    def __init__(
        self, seed: int = 0, *, max_games: int = MAX_GAMES, max_steps: int = MAX_STEPS
    ) -> None:
        if max_games < 1 or max_steps < 1:
            raise ValueError("max_games and max_steps must be at least 1")
        self.next_seed = seed
        self.max_games = max_games
        self.max_steps = max_steps
        self.resets = 0
        self.games: OrderedDict[str, Game] = OrderedDict()

    def reset(
        self, session: str = "", seed: int | None = None, task_type: str | None = None
    ) -> Game:
        if seed is None:
            seed, self.next_seed = self.next_seed, (self.next_seed + 1) % (MAX_SEED + 1)
        game = new_game(seed, task_type, max_steps=self.max_steps)
        self.games.pop(session, None)
        while len(self.games) >= self.max_games:
            dropped, _ = self.games.popitem(last=False)
            log.info(
                "alfworld: dropped the game of session %r (at most %d games)",
                dropped,
                self.max_games,
            )
        self.games[session] = game
        self.resets += 1
        return game

    def get(self, session: str = "") -> Game | None:
        game = self.games.get(session)
        if game is not None:
            self.games.move_to_end(session)
        return game


def empty_state() -> dict[str, Any]:
    """The state document before any reset."""
    return {
        "observation": "", "task": "", "task_type": "", "step": 0, "done": False, "won": False,
        "score": 0.0, "max_score": 1.0, "admissible_commands": [],
    }  # fmt: skip


# ------------------------------------------------------------------ HTTP

TABLE_KEY: web.AppKey[GameTable] = web.AppKey("alfworld-games", GameTable)
MAX_BODY_KEY: web.AppKey[int] = web.AppKey("alfworld-max-body", int)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as JSON: routing errors, oversized bodies, and the
    unexpected (logged, never shown)."""
    try:
        return await handler(request)
    except Refused as refused:
        return refused.response()
    except web.HTTPRequestEntityTooLarge:
        return _too_large(request)
    except web.HTTPNotFound:
        return Refused(f"no route {request.path}", "not-found", 404).response()
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return Refused(
            f"{request.method} is not allowed on {request.path} (use {allowed})",
            "method-not-allowed",
            405,
        ).response()
    except web.HTTPException:
        raise
    except Exception:
        log.exception("alfworld: %s %s failed", request.method, request.path)
        return Refused("the environment failed on this request", "internal-error", 500).response()


def _too_large(request: web.Request) -> web.Response:
    limit = request.app[MAX_BODY_KEY]
    return Refused(f"the body is over {limit} bytes", "payload-too-large", 413).response()


async def _body(request: web.Request, *, optional: bool) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip() and optional:
        return {}
    try:  # bounded: deep nesting or a huge integer is bad input, not a 500
        data = loads_bounded(raw, what="the body")
    except JsonError as exc:
        raise Refused(f"the body must be a JSON object ({exc.message})", "invalid-json") from None
    if not isinstance(data, dict):
        raise Refused(
            f"the body must be a JSON object, not a {type(data).__name__}", "invalid-json"
        )
    return data


def _session(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_SESSION:
        raise Refused(
            f"'session' must be a string of at most {MAX_SESSION} characters", "invalid-input"
        )
    return value


async def _reset(request: web.Request) -> web.Response:
    body = await _body(request, optional=True)
    seed = body.get("seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED
    ):
        raise Refused("'seed' must be a non-negative integer", "invalid-input")
    task_type = body.get("task_type")
    if task_type is not None and task_type not in TASK_TYPES:
        raise Refused(f"'task_type' must be one of: {', '.join(TASK_TYPES)}", "invalid-input")
    game = request.app[TABLE_KEY].reset(_session(body.get("session")), seed, task_type)
    return web.json_response(game.state())


async def _step(request: web.Request) -> web.Response:
    body = await _body(request, optional=False)
    action = body.get("action")
    if not isinstance(action, str):
        raise Refused(
            'the body needs a string \'action\', e.g. {"action": "look"}', "invalid-input"
        )
    if len(action) > MAX_ACTION or "\n" in action or "\r" in action:
        raise Refused(f"an action is one line of at most {MAX_ACTION} characters", "invalid-input")
    game = request.app[TABLE_KEY].get(_session(body.get("session")))
    if game is None:
        raise Refused("No game running. POST /reset first.", "no-game")
    if game.done:
        raise Refused("Game is over. POST /reset for a new one.", "game-over", **game.state())
    game.step(action)
    return web.json_response(game.state())


async def _state(request: web.Request) -> web.Response:
    game = request.app[TABLE_KEY].get(_session(request.query.get("session")))
    return web.json_response(game.state() if game else empty_state())


def make_app(table: GameTable | None = None, *, max_body: int = MAX_BODY) -> web.Application:
    """The environment as an aiohttp application; ``app[TABLE_KEY]`` holds its games."""
    app = web.Application(middlewares=[_refusals], client_max_size=max_body)
    app[TABLE_KEY] = table or GameTable()
    app[MAX_BODY_KEY] = max_body
    app.router.add_post("/reset", _reset)
    app.router.add_post("/step", _step)
    app.router.add_get("/state", _state)
    return app


@asynccontextmanager
async def running(
    app: web.Application,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    shutdown_timeout: float = 1.0,
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` (0: a free port the system picks);
    yield the base URL of the bound address; on leaving, requests still
    running get ``shutdown_timeout`` seconds. ``FutonError`` when it cannot listen."""
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise FutonError(
                f"alfworld: cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
        yield f"http://{shown}:{bound_port}"
    finally:
        await runner.cleanup()


async def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    seed: int = 0,
    *,
    max_games: int = MAX_GAMES,
    max_steps: int = MAX_STEPS,
    announce: Callable[[str], None] = print,
) -> None:
    """Run the environment until SIGINT/SIGTERM. ``announce`` gets one line
    naming the bound URL (and so the port, when ``port`` is 0) once it listens."""
    table = GameTable(seed, max_games=max_games, max_steps=max_steps)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with running(make_app(table), host, port) as url:
            announce(f"alfworld: serving {url} (seed {seed}); POST /reset, POST /step, GET /state")
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


__all__ = [
    "DEFAULT_PORT",
    "MAX_BODY",
    "MAX_GAMES",
    "TABLE_KEY",
    "GameTable",
    "empty_state",
    "make_app",
    "running",
    "serve",
]
