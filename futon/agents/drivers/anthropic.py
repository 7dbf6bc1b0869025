"""``anthropic``: the Anthropic Messages API with tool use.

``POST {base_url}/v1/messages`` (default base ``https://api.anthropic.com``)
with ``x-api-key`` and ``anthropic-version: 2023-06-01``; tools go as
``{name, description, input_schema}``; the model's ``tool_use`` blocks come
back as tool calls and their results go in as ``tool_result`` blocks of the
next user message. System messages become the ``system`` field; consecutive
messages of one role are merged, as the API wants strict alternation.
Retries as the ``openai`` driver.
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

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"


class AnthropicDriver(HttpDriver):
    name = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        max_tokens: int = 4096,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.model = model
        self.api_key = api_key
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.max_tokens = max_tokens
        self.retry = retry or RetryPolicy()
        self._session: aiohttp.ClientSession | None = None

    async def complete(self, messages: list[ModelMessage], tools: list[ToolSpec]) -> ModelTurn:
        system, converted = to_anthropic(messages)
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": converted,
        }
        if system:
            body["system"] = system
        if tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in tools
            ]
        headers = {
            "x-api-key": self.api_key,
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
        }
        data = await post_json(
            self._http(), f"{self.base_url}/v1/messages", body, headers=headers, retry=self.retry
        )
        return parse_response(data)



def to_anthropic(messages: list[ModelMessage]) -> tuple[str, list[dict[str, Any]]]:
    """(system text, messages with content blocks, roles alternating)."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        blocks: list[dict[str, Any]] = []
        if message.role == "tool":
            role = "user"
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content,
            }
            if message.is_error:
                block["is_error"] = True
            blocks.append(block)
        else:
            role = message.role
            if message.content.strip():
                blocks.append({"type": "text", "text": message.content})
            for call in message.tool_calls:
                try:
                    arguments = json.loads(call.arguments_json)
                except ValueError:
                    arguments = None
                blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                               "input": arguments if isinstance(arguments, dict) else {}})  # fmt: skip
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    if out and out[0]["role"] != "user":
        out.insert(
            0, {"role": "user", "content": [{"type": "text", "text": "(conversation continues)"}]}
        )
    return system, out


def parse_response(data: dict[str, Any]) -> ModelTurn:
    content = data.get("content")
    if not isinstance(content, list):
        raise DriverError(f"the response has no content: {json.dumps(data)[:200]}")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            if not isinstance(block.get("name"), str):
                raise DriverError("the response has a tool_use block without a name")
            calls.append(ToolCall(id=str(block.get("id") or f"toolu_{len(calls)}"), name=block["name"],
                                  arguments_json=json.dumps(block.get("input", {}))))  # fmt: skip
    return ModelTurn(text="".join(texts), tool_calls=calls)
