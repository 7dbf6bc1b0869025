"""Local fake model servers: aiohttp apps on 127.0.0.1:0 that speak the
OpenAI Chat Completions and Anthropic Messages HTTP APIs closely enough for
the drivers — and check what they are sent the way the real APIs would.

Each plays a script of steps, one per request (:class:`Say`, :class:`Call`
or a list of calls, :class:`Fail`, :class:`Garbage`), records every request
(``requests``: the JSON bodies, ``headers``), and answers 400 with an API-
shaped error when a request breaks the API's rules (a tool result that
answers no call, roles out of order, a missing header …), so a driver bug
shows up as a failed turn.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Say:
    """The model answers with text and no tool call."""

    text: str


@dataclass(frozen=True)
class Call:
    """The model calls a tool. ``arguments``: an object/array is sent as
    JSON; a string is sent as-is (garbled JSON, for OpenAI)."""

    name: str
    arguments: Any = None

    @classmethod
    def tool(cls, name: str, *args: Any) -> Call:
        """A futon tool call in the older positional form: ``{"args": [...]}``."""
        return cls(name, {"args": list(args)})

    @classmethod
    def named(cls, name: str, **params: Any) -> Call:
        """A futon tool call with named parameters, as its schema shows them."""
        return cls(name, dict(params))


@dataclass(frozen=True)
class Fail:
    """An HTTP error (``Retry-After`` optional)."""

    status: int
    retry_after: str | None = None
    message: str = "scripted failure"


@dataclass(frozen=True)
class Garbage:
    """A 200 whose body is not JSON."""

    body: str = "<html>not json</html>"


Step = Say | Call | list[Call] | Fail | Garbage


class FakeModelServer:
    path = "/"

    def __init__(self, script: list[Step], *, repeat_last: bool = False) -> None:
        self.script = list(script)
        self.repeat_last = repeat_last
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.problems: list[str] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.root = ""

    async def start(self) -> FakeModelServer:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.root = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def with_tools(self) -> list[dict[str, Any]]:
        """The requests that offered tools (not summaries)."""
        return [r for r in self.requests if r.get("tools")]

    def _next(self) -> Step | None:
        if not self.script:
            return None
        if len(self.script) == 1 and self.repeat_last:
            return self.script[0]
        return self.script.pop(0)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "request body is not JSON")
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        problem = self.check(body, request)
        if problem:
            self.problems.append(problem)
            return self._error(400, problem)
        step = self._next()
        if step is None:
            return self._error(500, "the fake's script is exhausted")
        if isinstance(step, Fail):
            response = self._error(step.status, step.message)
            if step.retry_after is not None:
                response.headers["Retry-After"] = step.retry_after
            return response
        if isinstance(step, Garbage):
            return web.Response(text=step.body, content_type="application/json")
        calls = [step] if isinstance(step, Call) else step if isinstance(step, list) else []
        text = step.text if isinstance(step, Say) else ""
        return web.json_response(self.render(body, text, calls))

    def _error(self, status: int, message: str) -> web.Response:
        return web.json_response(
            {"error": {"type": "fake_error", "message": message}}, status=status
        )

    def check(self, body: dict[str, Any], request: web.Request) -> str | None:
        raise NotImplementedError

    def render(self, body: dict[str, Any], text: str, calls: list[Call]) -> dict[str, Any]:
        raise NotImplementedError


class FakeOpenAI(FakeModelServer):
    """``POST /v1/chat/completions``; the driver's base URL is ``root + /v1``."""

    path = "/v1/chat/completions"

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def check(self, body: dict[str, Any], request: web.Request) -> str | None:
        if not isinstance(body.get("model"), str):
            return "model is required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages must be a non-empty array"
        for tool in body.get("tools", []):
            function = tool.get("function", {}) if isinstance(tool, dict) else {}
            if tool.get("type") != "function" or not TOOL_NAME.match(str(function.get("name"))):
                return f"invalid tool definition: {tool!r}"
            params = function.get("parameters")
            if not isinstance(params, dict) or params.get("type") != "object":
                return (
                    f"tools[].function.parameters must be an object schema: {function.get('name')}"
                )
        open_calls: set[str] = set()
        for index, message in enumerate(messages):
            role = message.get("role")
            if role not in ("system", "user", "assistant", "tool"):
                return f"messages[{index}]: bad role {role!r}"
            if role == "tool":
                if message.get("tool_call_id") not in open_calls:
                    return f"messages[{index}]: tool message answers no open tool call"
                open_calls.discard(message["tool_call_id"])
                continue
            if open_calls:
                return f"messages[{index}]: tool calls {sorted(open_calls)} were not answered"
            if role == "assistant":
                for call in message.get("tool_calls") or []:
                    open_calls.add(call["id"])
                    if not isinstance(call.get("function", {}).get("arguments"), str):
                        return f"messages[{index}]: function.arguments must be a string"
        return None

    def render(self, body: dict[str, Any], text: str, calls: list[Call]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{next(self._ids)}",
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": call.arguments
                        if isinstance(call.arguments, str)
                        else json.dumps(call.arguments or {}),
                    },
                }
                for call in calls
            ]
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


class FakeAnthropic(FakeModelServer):
    """``POST /v1/messages``; the driver's base URL is ``root``."""

    path = "/v1/messages"

    def __init__(
        self, script: list[Step], *, api_key: str = "test-key", repeat_last: bool = False
    ) -> None:
        super().__init__(script, repeat_last=repeat_last)
        self.api_key = api_key

    @property
    def base_url(self) -> str:
        return self.root

    def check(self, body: dict[str, Any], request: web.Request) -> str | None:
        if request.headers.get("x-api-key") != self.api_key:
            return "invalid x-api-key"
        if request.headers.get("anthropic-version") != "2023-06-01":
            return "anthropic-version header is required"
        if not isinstance(body.get("model"), str) or not isinstance(body.get("max_tokens"), int):
            return "model and max_tokens are required"
        for tool in body.get("tools", []):
            if (
                not TOOL_NAME.match(str(tool.get("name")))
                or tool.get("input_schema", {}).get("type") != "object"
            ):
                return f"invalid tool definition: {tool!r}"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or messages[0].get("role") != "user":
            return "messages must start with a user message"
        expected: set[str] = set()
        for index, message in enumerate(messages):
            if message.get("role") != ("user" if index % 2 == 0 else "assistant"):
                return f"messages[{index}]: roles must alternate user/assistant"
            content = message.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not isinstance(blocks, list) or not blocks:
                return f"messages[{index}]: content must be a non-empty list"
            if message["role"] == "user":
                answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
                if answered != expected:
                    return f"messages[{index}]: tool_result blocks {sorted(map(str, answered))} do not match tool_use {sorted(expected)}"
                expected = set()
            else:
                expected = {b["id"] for b in blocks if b.get("type") == "tool_use"}
            for block in blocks:
                if block.get("type") == "text" and not block.get("text"):
                    return f"messages[{index}]: text content blocks must be non-empty"
        return None

    def render(self, body: dict[str, Any], text: str, calls: list[Call]) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if text:
            content.append({"type": "text", "text": text})
        for call in calls:
            arguments = call.arguments
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    arguments = {"garbled": arguments}
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{next(self._ids)}",
                    "name": call.name,
                    "input": arguments or {},
                }
            )
        return {
            "id": f"msg_{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": "tool_use" if calls else "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
