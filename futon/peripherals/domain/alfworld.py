"""alfworld: drive an ALFWorld-style text environment over HTTP, and reach
other agents with the bell (broadcast to a room) and the whistle (ask one
agent and wait for the answer).

**The wire** (futon3c's ``scripts/alfworld-server.py``): ``POST /reset``,
``POST /step {"action": …}`` and ``GET /state`` each answer the state
document ``{observation, task, task_type, step, done, won, score, max_score,
admissible_commands}``. A session's requests also carry ``"session": id``
(``?session=id`` on ``GET /state``) so that a server that keeps one game per
session — ``futon alfworld serve`` does — gives each its own room; futon3c's
server ignores the key. A refusal is an HTTP error status, usually with
``{"error": …}``. :class:`AlfworldClient` checks every reply: ``observation``
must be a string; ``done``/``won`` booleans, ``score`` a number and
``step`` an integer when present (absent: false, false, 0, counted here).
Anything else — the server down, a timeout, a reply that is not JSON or has
the wrong shape, an error status — is a ``ToolError`` whose message says
which, with code ``invoke-timeout`` for timeouts and ``invoke-failed``
otherwise.

**The server** is ``alfworld_server`` in the peripheral's ``config:`` block
(the ``server`` given to :func:`install` is the fallback); ``timeout_s``
there bounds each HTTP request (default 10 s).

**A session's episode.** ``alfworld-action`` checks the verb of the action
(go, take, put, open, close, toggle, clean, heat, cool, use, examine,
inventory, look) while its arguments are parsed, so a bad verb is
``invalid-input`` before any HTTP. The first action of a session resets the
environment; the episode then lives in ``session_context["alfworld-state"]``
(``{session, task, observation, done, won, score, step, actions,
coordination_events, events}``), which hops carry. Once the episode is
done, further actions are refused with a ``ToolError``.

:func:`alfworld_fruit` turns that state into the peripheral's fruit.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp

from futon.peripherals.domain.alfworld_args import (
    VERBS,
    AlfworldActionArgs,
    BellArgs,
    WhistleArgs,
)
from futon.peripherals.tools import Messenger, ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.protocol.errors import FutonError, ToolError

STATE_KEY = "alfworld-state"
DEFAULT_TIMEOUT_S = 10.0
MAX_REPLY = 1024 * 1024
KEEP_ACTIONS = 50  # actions and events kept in the session state
WHISTLE_GRACE_S = 2.0  # beyond the asked timeout, in case a messenger ignores it

# ------------------------------------------------------------------ the client


@dataclass(frozen=True)
class EnvState:
    """One checked state document from the server."""

    observation: str
    done: bool = False
    won: bool = False
    score: float = 0.0
    step: int | None = None
    task: str | None = None
    admissible_commands: list[str] = field(default_factory=list)


def parse_state(data: Any, endpoint: str) -> EnvState:
    """Check a reply's shape; ``ToolError`` naming the first wrong field."""

    def wrong(what: str) -> ToolError:
        return ToolError(
            f"alfworld server sent a malformed reply to {endpoint}: {what}",
            context={"endpoint": endpoint},
        )

    if not isinstance(data, dict):
        raise wrong(f"a JSON {type(data).__name__} where an object was expected")
    observation = data.get("observation")
    if not isinstance(observation, str):
        raise wrong(f"'observation' must be a string, got {_kind(observation)}")
    for key in ("done", "won"):
        if key in data and not isinstance(data[key], bool):
            raise wrong(f"{key!r} must be a boolean, got {_kind(data[key])}")
    score = data.get("score", 0.0)
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise wrong(f"'score' must be a number, got {_kind(score)}")
    step = data.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise wrong(f"'step' must be an integer, got {_kind(step)}")
    task = data.get("task")
    commands = data.get("admissible_commands")
    return EnvState(
        observation=observation,
        done=bool(data.get("done", False)),
        won=bool(data.get("won", False)),
        score=float(score),
        step=step,
        task=task if isinstance(task, str) and task else None,
        admissible_commands=[c for c in commands if isinstance(c, str)][:200]
        if isinstance(commands, list)
        else [],
    )


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {json.dumps(value)[:40]}"


class AlfworldClient:
    """The three endpoints at ``base_url``. Each call opens its own HTTP
    session, so a client holds no connection between steps and needs no
    closing."""

    def __init__(self, base_url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not base_url.lower().startswith(("http://", "https://")):
            raise ToolError(f"alfworld_server must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    async def reset(self, session: str | None = None) -> EnvState:
        body = {"session": session} if session else {}
        return parse_state(await self._call("POST", "/reset", body), "POST /reset")

    async def step(self, action: str, session: str | None = None) -> EnvState:
        body = {"action": action, **({"session": session} if session else {})}
        return parse_state(await self._call("POST", "/step", body), "POST /step")

    async def state(self, session: str | None = None) -> EnvState:
        path = "/state?" + urlencode({"session": session}) if session else "/state"
        return parse_state(await self._call("GET", path), "GET /state")

    async def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        endpoint = f"{method} {path}"
        url = self.base_url + path
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.request(method, url, json=payload) as response,
            ):
                body = await response.content.read(MAX_REPLY + 1)
                status = response.status
        except TimeoutError:
            raise ToolError(
                f"alfworld server at {self.base_url} did not answer {endpoint} within {self.timeout_s:g} s",
                code="invoke-timeout",
                context={"endpoint": endpoint},
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise ToolError(
                f"alfworld server at {self.base_url} is unreachable ({exc.os_error.strerror or exc}); is it running? (`futon alfworld serve` starts one)",
                context={"endpoint": endpoint},
            ) from None
        except aiohttp.ClientError as exc:
            raise ToolError(
                f"alfworld server at {self.base_url} broke off {endpoint}: {exc or type(exc).__name__}",
                context={"endpoint": endpoint},
            ) from None
        if len(body) > MAX_REPLY:
            raise ToolError(
                f"alfworld server's reply to {endpoint} is over {MAX_REPLY // 1024} KiB"
            )
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
            if status < 400:
                preview = body[:80].decode("utf-8", "replace")
                raise ToolError(
                    f"alfworld server answered {endpoint} with something that is not JSON: {preview!r}",
                    context={"endpoint": endpoint},
                ) from None
        if status >= 400:
            said = data.get("error") if isinstance(data, dict) else None
            detail = said if isinstance(said, str) else body[:200].decode("utf-8", "replace")
            raise ToolError(
                f"alfworld server refused {endpoint} (HTTP {status}): {detail}",
                context={"endpoint": endpoint, "status": status},
            )
        return data


# ------------------------------------------------------------------ the tools


def _state(ctx: ToolContext) -> dict[str, Any]:
    """This session's episode state (a fresh one when absent or another session's)."""
    state = ctx.session_context.get(STATE_KEY)
    if not isinstance(state, dict) or state.get("session") != ctx.session_id:
        state = {
            "session": ctx.session_id,
            "started": False,
            "task": None,
            "observation": "",
            "done": False,
            "won": False,
            "score": 0.0,
            "step": 0,
            "actions": [],
            "coordination_events": 0,
            "events": [],
        }
        ctx.session_context[STATE_KEY] = state
    return state


def _keep(items: list[Any], item: Any) -> None:
    items.append(item)
    del items[:-KEEP_ACTIONS]


class AlfworldTools:
    def __init__(self, server: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.server = server
        self.timeout_s = timeout_s

    def client(self, ctx: ToolContext) -> AlfworldClient:
        server = ctx.peripheral_config.get("alfworld_server", self.server)
        if not isinstance(server, str) or not server:
            raise ToolError(
                "no alfworld_server is configured for this peripheral (peripherals.yaml, config:)"
            )
        timeout = ctx.peripheral_config.get("timeout_s", self.timeout_s)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ToolError("alfworld: config 'timeout_s' must be a positive number of seconds")
        return AlfworldClient(server, timeout_s=float(timeout))

    async def alfworld_action(self, args: AlfworldActionArgs, ctx: ToolContext) -> dict[str, Any]:
        client = self.client(ctx)
        state = _state(ctx)
        if state["done"]:
            outcome = "won" if state["won"] else "not won"
            raise ToolError(
                f"the episode is over ({outcome}, score {state['score']:g}, {state['step']} steps): "
                "stop the session or hop",
                context={"won": state["won"]},
            )
        if not state["started"]:
            first = await client.reset(ctx.session_id)
            state.update(
                started=True,
                task=first.task or first.observation,
                observation=first.observation,
                step=0,
            )
        env = await client.step(args.action, ctx.session_id)
        step = env.step if env.step is not None else state["step"] + 1
        state.update(
            observation=env.observation, done=env.done, won=env.won, score=env.score, step=step
        )
        _keep(state["actions"], args.action)
        return {
            "observation": env.observation,
            "done": env.done,
            "won": env.won,
            "score": env.score,
            "step": step,
        }

    async def bell(self, args: BellArgs, ctx: ToolContext) -> dict[str, Any]:
        messenger = _messenger(ctx, "bell")
        try:
            rung = await messenger.ring(args.room, args.text, author=ctx.agent_id)
        except FutonError as exc:
            raise ToolError(f"bell in {args.room} failed: {exc.message}", code=exc.code) from None
        if not isinstance(rung, list) or not all(isinstance(a, str) for a in rung):
            raise ToolError(f"bell in {args.room}: the relay did not say which agents it rang")
        _coordinated(ctx, {"kind": "bell", "room": args.room, "rung": len(rung)})
        return {"rung": rung}

    async def whistle(self, args: WhistleArgs, ctx: ToolContext) -> dict[str, Any]:
        messenger = _messenger(ctx, "whistle")
        wait = args.options.timeout_s
        event: dict[str, Any] = {"kind": "whistle", "agent": args.agent_id, "answered": False}
        try:
            answer = await asyncio.wait_for(
                messenger.ask(args.agent_id, args.text, author=ctx.agent_id, timeout_s=wait),
                wait + WHISTLE_GRACE_S,
            )
        except TimeoutError:
            _coordinated(ctx, event)
            raise ToolError(
                f"{args.agent_id} did not answer the whistle within {wait:g} s",
                code="invoke-timeout",
                context={"agent_id": args.agent_id},
            ) from None
        except FutonError as exc:
            _coordinated(ctx, event)
            message = (
                f"{args.agent_id} did not answer the whistle within {wait:g} s"
                if exc.code == "invoke-timeout"
                else f"whistle to {args.agent_id} failed: {exc.message}"
            )
            raise ToolError(message, code=exc.code, context={"agent_id": args.agent_id}) from None
        _coordinated(ctx, {**event, "answered": True})
        return {"answer": answer}


def _messenger(ctx: ToolContext, tool: str) -> Messenger:
    if ctx.messenger is None:
        raise ToolError(f"{tool}: no IRC relay in this daemon, so no agent can be reached")
    return ctx.messenger


def _coordinated(ctx: ToolContext, event: dict[str, Any]) -> None:
    state = _state(ctx)
    state["coordination_events"] += 1
    _keep(state["events"], event)


def alfworld_fruit(session_context: dict[str, Any], steps: int) -> dict[str, Any]:
    """The alfworld fruit ``{won, score, final_observation, step_count,
    coordination_events}``. ``step_count`` is the environment's step count
    from the session's ``alfworld-state``; ``steps`` (the session's count of
    tool actions) stands in only when the session never reached the
    environment and has no state at all."""
    state = session_context.get(STATE_KEY)
    if not isinstance(state, dict):
        return {
            "won": False,
            "score": 0.0,
            "final_observation": "",
            "step_count": steps,
            "coordination_events": 0,
        }
    step = state.get("step")
    return {
        "won": bool(state.get("won", False)),
        "score": state.get("score", 0.0),
        "final_observation": state.get("observation") or "",
        "step_count": step if isinstance(step, int) else steps,
        "coordination_events": int(state.get("coordination_events", 0)),
    }


def install(
    backend: RealBackend, *, server: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> AlfworldTools:
    """Register alfworld-action, bell and whistle. ``server``/``timeout_s``
    are fallbacks for the peripheral's ``config: {alfworld_server, timeout_s}``."""
    tools = AlfworldTools(server, timeout_s)
    backend.register("alfworld-action", tools.alfworld_action)
    backend.register("bell", tools.bell)
    backend.register("whistle", tools.whistle)
    return tools


__all__ = [
    "VERBS",
    "AlfworldClient",
    "AlfworldTools",
    "EnvState",
    "alfworld_fruit",
    "install",
    "parse_state",
]
