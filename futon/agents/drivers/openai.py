"""``openai``: any OpenAI-compatible Chat Completions endpoint with tools
(OpenAI, vLLM, llama.cpp server, Ollama, LM Studio, gateways).

``POST {base_url}/chat/completions`` with ``tools: [{type: function,
function: {name, description, parameters}}]`` and ``stream: false``; the
key (``Authorization: Bearer``) is optional so local servers work without
one. 429 (honouring ``Retry-After``), 5xx and connection errors are retried
(:class:`~futon.agents.drivers.base.RetryPolicy`).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from futon.agents.drivers.base import (
    DriverError,
    HttpDriver,
    ModelMessage,
    ModelTurn,
    RetryPolicy,
    ToolCall,
    ToolSpec,
    post_json,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIDriver(HttpDriver):
    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key
        self.retry = retry or RetryPolicy()
        self.extra_body = dict(extra_body or {})
        self._session: aiohttp.ClientSession | None = None

    async def complete(self, messages: list[ModelMessage], tools: list[ToolSpec]) -> ModelTurn:
        body: dict[str, Any] = {
            **self.extra_body,
            "model": self.model,
            "messages": [_message(m) for m in messages],
            "stream": False,
        }
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in tools
            ]
        data = await post_json(
            self._http(),
            f"{self.base_url}/chat/completions",
            body,
            headers=self._headers(),
            retry=self.retry,
        )
        return parse_response(data)


    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def _message(message: ModelMessage) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments_json},
                }
                for c in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


def parse_response(data: dict[str, Any]) -> ModelTurn:
    """The first choice of a Chat Completions response as a :class:`ModelTurn`."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise DriverError(f"the response has no choices: {json.dumps(data)[:200]}")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise DriverError("the response's first choice has no message")
    content = message.get("content")
    if isinstance(content, list):  # some servers send content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    calls = []
    for index, raw in enumerate(message.get("tool_calls") or []):
        function = raw.get("function") if isinstance(raw, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise DriverError("the response has a tool call without a function name")
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):  # some servers send the object itself
            arguments = json.dumps(arguments)
        calls.append(
            ToolCall(
                id=str(raw.get("id") or f"call_{index}"),
                name=function["name"],
                arguments_json=arguments,
            )
        )
    return ModelTurn(text=content if isinstance(content, str) else "", tool_calls=calls)
