"""Streaming fake model servers for the real agent CLIs (tests only).

:class:`FakeMessages` speaks the Anthropic Messages API at ``/v1/messages``
(Claude Code posts to ``/v1/messages?beta=true``) with Server-Sent Events as
the real API sends them: ``message_start``, ``content_block_start``,
``content_block_delta`` (``text_delta``; ``input_json_delta`` for a
``tool_use``), ``content_block_stop``, ``message_delta``, ``message_stop``.
:class:`FakeResponses` speaks the OpenAI Responses API at ``/v1/responses``:
``response.created``, ``response.output_item.added``,
``response.function_call_arguments.delta``/``.done``,
``response.output_text.delta``/``.done``, ``response.output_item.done``,
``response.completed``.

A test scripts the model's turns (:class:`Use` a tool, :class:`Answer`
with text). The main conversation is the request that offers futon's MCP
tools; any other request a CLI makes on the side (a title, a quota probe)
gets a short text answer and does not advance the script. Before each step
after a tool call, the fake looks for that call's result in what the client
sent back; a missing result is recorded in ``problems`` (and the fake
answers 400) — a test asserts ``problems == []``, so a tool result that
never reached the model fails it; so does a result lacking the text its
:class:`Use` step ``expect``-s (a typed code such as ``out-of-scope``).
``results`` holds each call's result text, in order. A :class:`Drop` step
cuts the stream mid-event, and every later main request too (a CLI that
gives up mid-turn).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FUTON_SERVER = "futon"


@dataclass(frozen=True)
class Use:
    """The model calls a tool. ``tool`` is futon's name (``grep``,
    ``bash-test``, ``futon_hop``) — sent under the name the client offers
    for it (``mcp__futon__grep``, ``mcp__futon__bash_test``) — or, when no
    offered tool matches, sent literally (a CLI's own ``Bash``,
    ``exec_command``). ``named`` is the object of named arguments;
    ``positional`` is sent as ``{"args": [...]}`` instead when the offered
    schema takes only ``args`` (futon's older tool shape)."""

    tool: str
    named: dict[str, Any] = field(default_factory=dict)
    positional: list[Any] | None = None
    expect: str | None = None  # text the call's result must contain (else a problem)


@dataclass(frozen=True)
class Answer:
    """The model answers with text and ends its turn. ``text`` may be a
    function of the tool results so far (the real pytest count)."""

    text: str | Callable[[list[str]], str]


@dataclass(frozen=True)
class Hang:
    """The model never answers: the request waits until the server closes
    (a CLI stuck mid-turn, for the runner's budget to end)."""


@dataclass(frozen=True)
class Drop:
    """The model's stream breaks: half an event, then the connection is
    cut. Every later request of the main conversation (a CLI's retries) is
    cut the same way, so the CLI gives up mid-turn."""


Step = Use | Answer | Hang | Drop


def wire_name(tool: str) -> str:
    """How a CLI spells an MCP tool name (``-`` is not allowed everywhere)."""
    return tool.replace("-", "_")


class FakeModel:
    """The common part: the script, the checks, the records."""

    path = ""

    def __init__(self, script: list[Step]) -> None:
        self.script = list(script)
        self.position = 0
        self.requests: list[dict[str, Any]] = []  # every JSON body, side requests too
        self.main: list[dict[str, Any]] = []  # the main conversation's requests
        self.results: list[str] = []  # each tool call's result, as the client sent it
        self.problems: list[str] = []
        self.offered: list[list[str]] = []  # tool names of each main request
        self.pending: str | None = None  # the id of the call whose result is due
        self.expecting: str | None = None  # what that result must contain
        self.dropping = False  # a Drop step came: every main request is cut
        self.closing = asyncio.Event()  # ends the wait of a Hang step
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> FakeModel:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(self.path, self._handle)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        self.closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def done(self) -> bool:
        return self.position >= len(self.script)

    async def _other(self, request: web.Request) -> web.Response:
        # Anything else a CLI probes (model lists, telemetry) is not there.
        self.requests.append({"path": request.path_qs, "method": request.method})
        return web.json_response(
            {"error": {"type": "not_found", "message": "no such route"}}, status=404
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        names = self.tool_names(body)
        if not any(name.startswith(f"mcp__{FUTON_SERVER}") for name in names):
            return await self.send(request, body, [("text", "ok")], side=True)
        self.main.append(body)
        self.offered.append(names)
        if self.pending is not None:
            result = self.find_result(body, self.pending)
            if result is None:
                self.problems.append(f"the result of call {self.pending} never reached the model")
                return web.json_response(
                    {"error": {"type": "invalid_request_error", "message": "missing tool result"}},
                    status=400,
                )
            self.results.append(result)
            if self.expecting is not None and self.expecting not in result:
                self.problems.append(
                    f"the result of call {self.pending} lacks {self.expecting!r}: {result[:300]}"
                )
            self.pending = self.expecting = None
        if self.dropping:
            return await self.cut(request)
        if self.done:
            return await self.send(request, body, [("text", "(script over)")])
        step = self.script[self.position]
        self.position += 1
        if isinstance(step, Hang):
            await self.closing.wait()
            return web.Response(status=503)
        if isinstance(step, Drop):
            self.dropping = True
            return await self.cut(request)
        if isinstance(step, Answer):
            text = step.text(self.results) if callable(step.text) else step.text
            return await self.send(request, body, [("text", text)])
        name = self.offered_name(step.tool, names)
        arguments = dict(step.named)
        if step.positional is not None and self.takes_args_array(body, name):
            arguments = {"args": list(step.positional)}
        call_id = f"call_{next(self._ids)}"
        self.pending = call_id
        self.expecting = step.expect
        return await self.send(request, body, [("tool", (call_id, name, arguments))])

    @staticmethod
    async def cut(request: web.Request) -> web.StreamResponse:
        """Half an SSE event, then the connection cut under the client."""
        response = await open_sse(request)
        await response.write(b'event: message_start\ndata: {"type": "mess')
        if request.transport is not None:
            request.transport.abort()
        return response

    @staticmethod
    def offered_name(tool: str, names: list[str]) -> str:
        for name in names:
            if name.startswith("mcp__") and wire_name(name).endswith(wire_name(tool)):
                rest = wire_name(name)[: -len(wire_name(tool))]
                if rest in (f"mcp__{FUTON_SERVER}__", f"mcp__{FUTON_SERVER}."):
                    return name
        return tool

    # API-specific parts
    def tool_names(self, body: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def tool_schema(self, body: dict[str, Any], name: str) -> dict[str, Any]:
        raise NotImplementedError

    def takes_args_array(self, body: dict[str, Any], name: str) -> bool:
        props = self.tool_schema(body, name).get("properties") or {}
        return set(props) == {"args"}

    def find_result(self, body: dict[str, Any], call_id: str) -> str | None:
        raise NotImplementedError

    async def send(
        self,
        request: web.Request,
        body: dict[str, Any],
        blocks: list[tuple[str, Any]],
        side: bool = False,
    ) -> web.StreamResponse:
        raise NotImplementedError


async def open_sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    return response


async def event(response: web.StreamResponse, name: str, data: dict[str, Any]) -> None:
    await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            _text_of(part.get("text", part.get("content", "")))
            if isinstance(part, dict)
            else str(part)
            for part in content
        )
    return json.dumps(content)


class FakeMessages(FakeModel):
    """The Anthropic Messages API, streaming."""

    path = "/v1/messages"

    def tool_names(self, body: dict[str, Any]) -> list[str]:
        return [tool.get("name", "") for tool in body.get("tools") or []]

    def tool_schema(self, body: dict[str, Any], name: str) -> dict[str, Any]:
        for tool in body.get("tools") or []:
            if tool.get("name") == name:
                return tool.get("input_schema") or {}
        return {}

    def find_result(self, body: dict[str, Any], call_id: str) -> str | None:
        for message in body.get("messages") or []:
            content = message.get("content")
            if message.get("role") != "user" or not isinstance(content, list):
                continue
            for part in content:
                if (
                    isinstance(part, dict)
                    and part.get("type") == "tool_result"
                    and part.get("tool_use_id") == call_id
                ):
                    return _text_of(part.get("content", ""))
        return None

    async def send(
        self,
        request: web.Request,
        body: dict[str, Any],
        blocks: list[tuple[str, Any]],
        side: bool = False,
    ) -> web.StreamResponse:
        message_id = f"msg_{next(self._ids)}"
        model = body.get("model", "fake")
        stop = "tool_use" if any(kind == "tool" for kind, _ in blocks) else "end_turn"
        content: list[dict[str, Any]] = []
        for kind, value in blocks:
            if kind == "text":
                content.append({"type": "text", "text": value})
            else:
                call_id, name, arguments = value
                content.append(
                    {"type": "tool_use", "id": call_id, "name": name, "input": arguments}
                )
        usage = {"input_tokens": 10, "output_tokens": 5}
        if not body.get("stream"):
            return web.json_response({
                "id": message_id, "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": stop, "stop_sequence": None, "usage": usage,
            })  # fmt: skip
        response = await open_sse(request)
        await event(response, "message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 1},
        }})  # fmt: skip
        for index, block in enumerate(content):
            if block["type"] == "text":
                await event(
                    response,
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                text = block["text"]
                for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                    await event(
                        response,
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": piece},
                        },
                    )
            else:
                start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                await event(
                    response,
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
                raw = json.dumps(block["input"])
                for piece in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):
                    await event(
                        response,
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
            await event(
                response, "content_block_stop", {"type": "content_block_stop", "index": index}
            )
        await event(
            response,
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 5},
            },
        )
        await event(response, "message_stop", {"type": "message_stop"})
        await response.write_eof()
        return response


class FakeResponses(FakeModel):
    """The OpenAI Responses API, streaming (the wire Codex CLI speaks with a
    ``wire_api = "responses"`` provider)."""

    path = "/v1/responses"

    @staticmethod
    def functions(body: dict[str, Any]) -> dict[str, tuple[str | None, dict[str, Any]]]:
        """Every offered function as ``{flat name: (namespace, tool)}``. Codex
        0.169 groups an MCP server's tools in one ``{"type": "namespace",
        "name": "mcp__futon", "tools": [...]}``; flat names join the two
        with ``__`` as Claude Code spells them."""
        found: dict[str, tuple[str | None, dict[str, Any]]] = {}
        for tool in body.get("tools") or []:
            if not isinstance(tool, dict):
                continue
            if tool.get("type") == "namespace":
                for inner in tool.get("tools") or []:
                    found[f"{tool.get('name')}__{inner.get('name')}"] = (tool.get("name"), inner)
            elif tool.get("name"):
                found[tool["name"]] = (None, tool)
        return found

    def tool_names(self, body: dict[str, Any]) -> list[str]:
        return list(self.functions(body))

    def tool_schema(self, body: dict[str, Any], name: str) -> dict[str, Any]:
        _namespace, tool = self.functions(body).get(name, (None, {}))
        return tool.get("parameters") or {}

    def find_result(self, body: dict[str, Any], call_id: str) -> str | None:
        for item in body.get("input") or []:
            if (
                isinstance(item, dict)
                and item.get("type") in ("function_call_output", "custom_tool_call_output")
                and item.get("call_id") == call_id
            ):
                output = item.get("output")
                if isinstance(output, dict):  # {"content": ..., "success": ...}
                    output = output.get("content", output)
                return _text_of(output)
        return None

    async def send(
        self,
        request: web.Request,
        body: dict[str, Any],
        blocks: list[tuple[str, Any]],
        side: bool = False,
    ) -> web.StreamResponse:
        response_id = f"resp_{next(self._ids)}"
        model = body.get("model", "fake")
        seq = itertools.count()
        shell: dict[str, Any] = {
            "id": response_id,
            "object": "response",
            "created_at": 0,
            "model": model,
            "status": "in_progress",
            "output": [],
        }
        response = await open_sse(request)
        await event(
            response,
            "response.created",
            {"type": "response.created", "sequence_number": next(seq), "response": shell},
        )
        await event(
            response,
            "response.in_progress",
            {"type": "response.in_progress", "sequence_number": next(seq), "response": shell},
        )
        output: list[dict[str, Any]] = []
        for index, (kind, value) in enumerate(blocks):
            if kind == "text":
                item_id = f"msg_{next(self._ids)}"
                item: dict[str, Any] = {
                    "type": "message",
                    "id": item_id,
                    "role": "assistant",
                    "status": "in_progress",
                    "content": [],
                }
                await event(
                    response,
                    "response.output_item.added",
                    {
                        "type": "response.output_item.added",
                        "sequence_number": next(seq),
                        "output_index": index,
                        "item": item,
                    },
                )
                part = {"type": "output_text", "text": "", "annotations": []}
                where = {"item_id": item_id, "output_index": index, "content_index": 0}
                await event(
                    response,
                    "response.content_part.added",
                    {
                        "type": "response.content_part.added",
                        "sequence_number": next(seq),
                        **where,
                        "part": part,
                    },
                )
                for piece in (value[: len(value) // 2], value[len(value) // 2 :]):
                    await event(
                        response,
                        "response.output_text.delta",
                        {
                            "type": "response.output_text.delta",
                            "sequence_number": next(seq),
                            **where,
                            "delta": piece,
                        },
                    )
                await event(
                    response,
                    "response.output_text.done",
                    {
                        "type": "response.output_text.done",
                        "sequence_number": next(seq),
                        **where,
                        "text": value,
                    },
                )
                part = {"type": "output_text", "text": value, "annotations": []}
                await event(
                    response,
                    "response.content_part.done",
                    {
                        "type": "response.content_part.done",
                        "sequence_number": next(seq),
                        **where,
                        "part": part,
                    },
                )
                item = {**item, "status": "completed", "content": [part]}
            else:
                call_id, name, arguments = value
                item_id = f"fc_{next(self._ids)}"
                raw = json.dumps(arguments)
                namespace, tool = self.functions(body).get(name, (None, {}))
                item = {
                    "type": "function_call",
                    "id": item_id,
                    "call_id": call_id,
                    "name": tool.get("name", name),
                    "arguments": "",
                    "status": "in_progress",
                }
                if namespace:
                    item["namespace"] = namespace
                await event(
                    response,
                    "response.output_item.added",
                    {
                        "type": "response.output_item.added",
                        "sequence_number": next(seq),
                        "output_index": index,
                        "item": item,
                    },
                )
                where = {"item_id": item_id, "output_index": index}
                for piece in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):
                    await event(
                        response,
                        "response.function_call_arguments.delta",
                        {
                            "type": "response.function_call_arguments.delta",
                            "sequence_number": next(seq),
                            **where,
                            "delta": piece,
                        },
                    )
                await event(
                    response,
                    "response.function_call_arguments.done",
                    {
                        "type": "response.function_call_arguments.done",
                        "sequence_number": next(seq),
                        **where,
                        "arguments": raw,
                    },
                )
                item = {**item, "arguments": raw, "status": "completed"}
            await event(
                response,
                "response.output_item.done",
                {
                    "type": "response.output_item.done",
                    "sequence_number": next(seq),
                    "output_index": index,
                    "item": item,
                },
            )
            output.append(item)
        usage = {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 15,
        }
        done = {**shell, "status": "completed", "output": output, "usage": usage}
        await event(
            response,
            "response.completed",
            {"type": "response.completed", "sequence_number": next(seq), "response": done},
        )
        await response.write_eof()
        return response
