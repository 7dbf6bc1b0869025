"""``futon mcp``: an MCP server over stdio that acts inside futon's envelope.

An MCP client (Claude Code, Codex CLI, the ``mcp`` SDK's own client …)
starts ``futon mcp --agent ID`` and sees

- every futon tool, named as futon spells them, each a function of its
  named parameters (``read {path, offset?, limit?}`` …) with the schema
  from :mod:`futon.agents.tooldefs`, the very definitions ``futon agent
  run`` offers a model (one source of truth);
- the control tools ``futon_start(peripheral)``, ``futon_hop(to,
  exit_condition, reason)``, ``futon_stop(reason)``, ``futon_reply(to,
  text)``, ``futon_inbox()`` and ``futon_evidence(filters, limit)``.

Every tool is listed all the time, whatever the active peripheral: MCP
clients (Claude Code, Codex CLI) do not pick up a changed list in the middle
of a turn and refuse a tool they were not offered, so the envelope could not
answer for itself. The envelope is enforced at call time instead: a call
goes to the daemon with its arguments unchecked, and a tool outside the
active peripheral comes back as the MCP tool error ``tool-not-allowed: …``
(never an argument-shape error about a tool the peripheral does not offer).
``futon_start``/``futon_hop`` answer with the peripheral's ``tools``. After
a start, hop or stop (or a reconnect that lost the session) the server still
sends ``notifications/tools/list_changed``; the list itself changes only
when the peripheral offers a tool futon has no model for (a plugin's).

Every call is a frame on the agent's WebSocket connection (through
:class:`~futon.agents.client.AgentClient`), so it lands in evidence exactly
as a WS agent's action would: same author, same session chain. A refusal
(``tool-not-allowed``, ``out-of-scope`` …) comes back as an MCP tool result
with ``isError: true`` and the text ``<code>: <message>``; so does a lost
connection (``agent-unreachable``) — the client reconnects by itself and
the next call goes through. The MCP server itself never crashes on a call.

Two ways to reach the daemon:

- directly (default): ``futon mcp`` connects over WS as the agent (``ready``
  with its token). The daemon allows one connection per agent id, so this is
  for an agent that has no other process connected;
- through a relay (``--relay PATH``): ``futon agent run --driver command
  --mcp`` is already connected as the agent, so for each turn it serves a
  unix socket (:class:`Relay`) that forwards the bridge's requests onto its
  own connection, and writes an MCP config pointing at ``futon mcp --relay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import mcp_types as types
from mcp.server.lowlevel import NotificationOptions, Server

from futon import __version__
from futon.agents.client import AgentClient, Disconnected
from futon.agents.tooldefs import tool_spec, wire_args
from futon.peripherals.args import ARGS
from futon.protocol.errors import FutonError, ProtocolError

log = logging.getLogger("futon.agent.mcp")

CONTROL_PREFIX = "futon_"
INBOX_SIZE = 1000
RELAY_LINE_LIMIT = 16 * 1024 * 1024


def dump(frame: Any) -> Any:
    """A frame model as plain JSON data (wire names)."""
    if hasattr(frame, "model_dump"):
        return frame.model_dump(mode="json", by_alias=True, exclude_none=True)
    return frame


# ------------------------------------------------------------------ backends


class Backend(Protocol):
    """What the bridge needs from a connection to the daemon."""

    async def ensure(self) -> tuple[int, int]:
        """Be connected (or raise ``agent-unreachable``); return a key that
        changes whenever the connection was replaced (sessions end with it)."""
        ...

    async def request(self, op: str, **kw: Any) -> Any: ...

    async def aclose(self) -> None: ...


async def perform(client: AgentClient, op: str, kw: dict[str, Any]) -> Any:
    """Run one bridge operation on an :class:`AgentClient` (shared by the
    direct backend and the relay); the result as JSON data."""
    if op == "start":
        return dump(await client.start(kw.get("peripheral")))
    if op == "act":
        return dump(await client.act(kw["tool"], kw["args"]))
    if op == "hop":
        return dump(await client.hop(kw["to"], kw["exit_condition"], kw.get("reason", "")))
    if op == "stop":
        return dump(await client.stop(kw.get("reason") or "client-requested"))
    if op == "say":
        to, text = kw["to"], kw["text"]
        if to.startswith(("#", "&")):
            await client.irc_response(text, channel=to)
        else:
            await client.chat(to, text)
        return {"ok": True, "to": to}
    if op == "evidence":
        return dump(await client.query_evidence(kw.get("filters") or {}, kw.get("limit")))
    raise ProtocolError(f"unknown operation {op!r}", code="invalid-input")


class DirectBackend:
    """The bridge's own WS connection as the agent."""

    def __init__(
        self, url: str, agent_id: str, token: str | None, *, reconnect_wait_s: float = 10
    ) -> None:
        self.url = url
        self.agent_id = agent_id
        self.token = token
        self.reconnect_wait_s = reconnect_wait_s
        self.client: AgentClient | None = None
        self.inbox: deque[Any] = deque(maxlen=INBOX_SIZE)
        self._made = 0
        self._pump: asyncio.Task[None] | None = None

    async def ensure(self) -> tuple[int, int]:
        client = self.client
        if client is None or client.closed:
            client = AgentClient(
                self.url,
                self.agent_id,
                self.token,
                backoff_initial_s=0.2,
                backoff_max_s=5,
                client_name="futon-mcp",
            )
            try:
                await client.connect(wait=False)
            except FutonError:
                await client.close()
                raise
            if self._pump is not None:
                self._pump.cancel()
            self.client, self._made = client, self._made + 1
            self._pump = asyncio.ensure_future(self._collect(client))
        elif not client.connected:
            try:
                await client.wait_connected(timeout=self.reconnect_wait_s)
            except TimeoutError:
                raise Disconnected(
                    f"the daemon at {self.url} is unreachable (still reconnecting; try again)"
                ) from None
        return self._made, client.generation

    async def _collect(self, client: AgentClient) -> None:
        async for push in client:
            self.inbox.append(dump(push))

    async def request(self, op: str, **kw: Any) -> Any:
        if op == "inbox":
            drained = list(self.inbox)
            self.inbox.clear()
            return drained
        if self.client is None:
            raise Disconnected("not connected to the daemon")
        return await perform(self.client, op, kw)

    async def aclose(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        if self.client is not None:
            await self.client.close()


class RelayBackend:
    """Requests over the unix socket of a :class:`Relay` (one JSON object a
    line each way)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._ids = 0

    async def ensure(self) -> tuple[int, int]:
        result = await self.request("generation")
        return 0, int(result)

    async def request(self, op: str, **kw: Any) -> Any:
        async with self._lock:
            if self._writer is None or self._writer.is_closing():
                try:
                    self._reader, self._writer = await asyncio.open_unix_connection(
                        self.path, limit=RELAY_LINE_LIMIT
                    )
                except OSError as exc:
                    raise Disconnected(
                        f"cannot reach the agent's relay {self.path}: {exc}"
                    ) from None
            assert self._reader is not None
            self._ids += 1
            line = json.dumps({"id": self._ids, "op": op, "kw": kw}) + "\n"
            try:
                self._writer.write(line.encode())
                await self._writer.drain()
                answer = await self._reader.readline()
            except (OSError, asyncio.IncompleteReadError) as exc:
                self._writer = None
                raise Disconnected(f"the agent's relay went away: {exc}") from None
            if not answer:
                self._writer = None
                raise Disconnected("the agent's relay closed the connection")
        reply = json.loads(answer)
        if not reply.get("ok"):
            raise FutonError(
                reply.get("message", "refused"),
                code=reply.get("code"),
                context=reply.get("context") or {},
            )
        return reply.get("result")

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()


class Relay:
    """The agent process's side of ``--relay``: forwards bridge requests to
    its :class:`AgentClient` and remembers whether a peripheral session the
    bridge opened is still active (so the turn can stop it at its end)."""

    def __init__(self, client: AgentClient, path: str) -> None:
        self.client = client
        self.path = path
        self.active_generation: int | None = None  # generation of the session the bridge opened
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_unix_server(
            self._serve, self.path, limit=RELAY_LINE_LIMIT
        )
        os.chmod(self.path, 0o600)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        await self.stop_session("turn-ended")

    async def stop_session(self, reason: str) -> None:
        """Stop the session the bridge left open (if the connection that held it is still up)."""
        generation, self.active_generation = self.active_generation, None
        if generation is None or generation != self.client.generation or not self.client.connected:
            return
        with contextlib.suppress(FutonError, TimeoutError):
            await self.client.stop(reason, timeout=15)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write((json.dumps(await self._answer(line), default=str) + "\n").encode())
                await writer.drain()
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            op, kw = request["op"], dict(request.get("kw") or {})
            if op == "generation":
                if not self.client.connected:
                    await self.client.wait_connected(timeout=10)
                return {"ok": True, "result": self.client.generation}
            result = await perform(self.client, op, kw)
            if op in ("start", "hop"):
                self.active_generation = self.client.generation
            elif op == "stop":
                self.active_generation = None
            return {"ok": True, "result": result}
        except FutonError as exc:
            if exc.code == "no-active-peripheral":
                self.active_generation = None
            return {"ok": False, "code": exc.code, "message": exc.message, "context": exc.context}
        except TimeoutError:
            return {
                "ok": False,
                "code": "agent-unreachable",
                "message": "not connected to the daemon",
            }
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "code": "invalid-input", "message": f"bad relay request: {exc}"}


# ------------------------------------------------------------------ the MCP server


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def control_tools(peripherals: list[str] | None) -> list[types.Tool]:
    peripheral: dict[str, Any] = {"type": "string", "description": "the peripheral id"}
    if peripherals:
        peripheral["enum"] = list(peripherals)
    text = {"type": "string"}
    specs = [
        (
            "futon_start",
            "Start a peripheral session (without `peripheral`: the agent's routed default). "
            "The answer's `tools` are the tools it allows; others are refused (tool-not-allowed).",
            _object({"peripheral": peripheral}, []),
        ),
        (
            "futon_hop",
            "Move the session to another peripheral (another tool set and scope); the session "
            "carries over. The answer's `tools` are the tools now allowed.",
            _object(
                {
                    "to": peripheral,
                    "exit_condition": {
                        "type": "string",
                        "description": "why the current peripheral is done (one of its exit conditions)",
                    },
                    "reason": {"type": "string", "description": "one sentence, for the record"},
                },
                ["to", "exit_condition"],
            ),
        ),
        (
            "futon_stop",
            "End the peripheral session.",
            _object({"reason": text}, []),
        ),
        (
            "futon_reply",
            "Say `text` to an IRC channel (`#name`), a nick or an agent.",
            _object({"to": text, "text": text}, ["to", "text"]),
        ),
        (
            "futon_inbox",
            "The messages addressed to this agent (IRC lines, chats, coordination messages) "
            "received since the last call.",
            _object({}, []),
        ),
        (
            "futon_evidence",
            "Query the evidence landscape. `filters` takes the HTTP query keys "
            "(author, session-id, type, claim-type, tag, since …).",
            _object(
                {
                    "filters": {"type": "object", "additionalProperties": True},
                    "limit": {"type": "integer", "minimum": 1},
                },
                [],
            ),
        ),
    ]
    return [
        types.Tool(name=name, description=description, input_schema=schema)
        for name, description, schema in specs
    ]


class Refused(FutonError):
    default_code = "invalid-input"


class McpBridge:
    """The MCP server's state: the active peripheral and its tools."""

    def __init__(
        self,
        backend: Backend,
        agent_id: str,
        *,
        auto_start: bool = False,
        start_peripheral: str | None = None,
    ) -> None:
        self.backend = backend
        self.agent_id = agent_id
        self.auto_start = auto_start
        self.start_peripheral = start_peripheral
        self.peripheral: str | None = None
        self.session_id: str | None = None
        self.tools: list[str] = []
        self.permitted: list[str] | None = None
        self._key: tuple[int, int] | None = None
        self._notify: Callable[[], Awaitable[None]] | None = None
        self.server: Server[Any] = Server(
            "futon",
            version=__version__,
            instructions=(
                f"You act as the futon agent {agent_id!r}. Start a peripheral with futon_start; "
                "its answer lists the tools it allows (futon_hop moves to another peripheral and "
                "another tool set). Every futon tool is listed, but a tool outside the active "
                "peripheral is refused with `tool-not-allowed`."
            ),
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    # ------------------------------------------------------------- state

    def tool_list(self) -> list[types.Tool]:
        """The control tools and every futon tool (see the module docstring),
        plus any tool of the active peripheral futon has no model for."""
        listed = control_tools(self.permitted)
        extra = [tool for tool in self.tools if tool not in ARGS]
        for tool in [*sorted(ARGS), *extra]:
            if tool.startswith(CONTROL_PREFIX):
                continue  # cannot shadow a control tool
            spec = tool_spec(tool)
            listed.append(
                types.Tool(name=tool, description=spec.description, input_schema=spec.parameters)
            )
        return listed

    async def connect(self) -> None:
        """Connect now (and start the peripheral when asked to); a failure
        is logged, and the next call tries again."""
        try:
            await self._ensure()
        except FutonError as exc:
            log.warning("not connected yet: %s: %s", exc.code, exc.message)

    async def _ensure(self) -> None:
        key = await self.backend.ensure()
        if isinstance(self.backend, DirectBackend) and self.backend.client is not None:
            ready = self.backend.client.ready
            if ready is not None:
                self.permitted = list(ready.peripherals)
        if key == self._key:
            return
        lost = self._key is not None and self.peripheral is not None
        self._key = key
        if lost:
            log.info("the connection was replaced; the session %s ended with it", self.session_id)
            self._set(None, None, [])
            await self._changed()
        if self.auto_start and self.peripheral is None:
            try:
                await self._start(self.start_peripheral)
            except FutonError:
                self._key = None  # try again on the next call
                raise

    def _set(self, peripheral: str | None, session_id: str | None, tools: list[str]) -> None:
        self.peripheral, self.session_id, self.tools = peripheral, session_id, list(tools)

    async def _changed(self) -> None:
        if self._notify is not None:
            with contextlib.suppress(Exception):
                await self._notify()

    async def _start(self, peripheral: str | None) -> dict[str, Any]:
        started = await self.backend.request("start", peripheral=peripheral)
        self._set(started["peripheral_id"], started["session_id"], started.get("tools") or [])
        await self._changed()
        return started

    # ------------------------------------------------------------- handlers

    async def _list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        self._remember(ctx)
        return types.ListToolsResult(tools=self.tool_list())

    def _remember(self, ctx: Any) -> None:
        session = getattr(ctx, "session", None)
        if session is not None and hasattr(session, "send_tool_list_changed"):
            self._notify = session.send_tool_list_changed

    async def _call_tool(
        self, ctx: Any, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        self._remember(ctx)
        name = params.name
        arguments = params.arguments if params.arguments is not None else {}
        try:
            if not isinstance(arguments, dict):
                raise Refused(f"{name} takes a JSON object of arguments")
            await self._ensure()
            result, is_error = await self.call(name, arguments)
        except FutonError as exc:
            if exc.code == "no-active-peripheral" and self.peripheral is not None:
                self._set(None, None, [])
                await self._changed()
            return _error(exc.code, exc.message)
        except TimeoutError:
            return _error("agent-unreachable", "the daemon did not answer in time")
        except Exception as exc:  # a bug: an error result, never a dead server
            log.exception("the call of %s failed", name)
            return _error("internal-error", f"{type(exc).__name__}: {exc}")
        text = (
            result
            if isinstance(result, str)
            else json.dumps(result, ensure_ascii=False, default=str)
        )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], is_error=is_error
        )

    async def call(self, name: str, arguments: dict[str, Any]) -> tuple[Any, bool]:
        """Run one MCP tool call; (result data, is_error). Refusals raise."""
        if name == "futon_start":
            peripheral = _opt_str(arguments, "peripheral", name)
            return await self._start(peripheral.removeprefix(":") if peripheral else None), False
        if name == "futon_hop":
            hopped = await self.backend.request(
                "hop",
                to=_str(arguments, "to", name),
                exit_condition=_str(arguments, "exit_condition", name),
                reason=_opt_str(arguments, "reason", name) or "",
            )
            self._set(hopped["to"], hopped.get("session_id"), hopped.get("tools") or [])
            await self._changed()
            return hopped, False
        if name == "futon_stop":
            reason = _opt_str(arguments, "reason", name) or "client-requested"
            stopped = await self.backend.request("stop", reason=reason)
            self._set(None, None, [])
            await self._changed()
            return stopped, False
        if name == "futon_reply":
            to, text = _str(arguments, "to", name), _str(arguments, "text", name)
            return await self.backend.request("say", to=to, text=text), False
        if name == "futon_inbox":
            return await self.backend.request("inbox"), False
        if name == "futon_evidence":
            filters = arguments.get("filters") or {}
            limit = arguments.get("limit")
            if not isinstance(filters, dict):
                raise Refused("futon_evidence: `filters` must be an object")
            if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
                raise Refused("futon_evidence: `limit` must be an integer")
            return await self.backend.request("evidence", filters=filters, limit=limit), False
        # A futon tool — also one outside the envelope or unknown: the arguments
        # go unchecked, so the daemon answers tool-not-allowed before it looks
        # at them (and records the refusal like any WS agent's), else
        # invalid-input naming the parameter.
        result = await self.backend.request("act", tool=name, args=wire_args(arguments))
        return {"ok": result.get("ok"), "result": result.get("result")}, not result.get("ok")

    # ------------------------------------------------------------- serving

    async def serve_stdio(self) -> None:
        from mcp.server.stdio import stdio_server

        options = self.server.create_initialization_options(NotificationOptions(tools_changed=True))
        async with stdio_server() as (read_stream, write_stream):
            await self.server.run(read_stream, write_stream, options)


def _error(code: str, message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=f"{code}: {message}")], is_error=True
    )


def _str(arguments: dict[str, Any], key: str, tool: str) -> str:
    value = arguments.get(key)
    if not isinstance(value, str) or not value.strip():
        raise Refused(f"{tool}: `{key}` must be a non-empty string")
    return value


def _opt_str(arguments: dict[str, Any], key: str, tool: str) -> str | None:
    value = arguments.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Refused(f"{tool}: `{key}` must be a string")
    return value or None


async def run_mcp(
    agent_id: str,
    *,
    url: str | None = None,
    token: str | None = None,
    relay: str | None = None,
    start: bool = False,
    peripheral: str | None = None,
    reconnect_wait_s: float = 10,
) -> int:
    """``futon mcp``: serve MCP on stdin/stdout until the client closes it."""
    backend: Backend
    if relay:
        backend = RelayBackend(relay)
    else:
        if url is None:
            raise ValueError("a daemon URL is needed without --relay")
        backend = DirectBackend(url, agent_id, token, reconnect_wait_s=reconnect_wait_s)
    bridge = McpBridge(backend, agent_id, auto_start=start, start_peripheral=peripheral)
    try:
        await bridge.connect()
        await bridge.serve_stdio()
    finally:
        await backend.aclose()
    return 0
