"""The one interface between the agent runtime and a model.

A driver turns a conversation and a list of tool definitions into the
model's next move: ``await driver.complete(messages, tools)`` returns a
:class:`ModelTurn` — some text and zero or more tool calls. The runtime owns
the loop (running calls, feeding results back, budgets); a driver only
speaks its provider's wire format. Drivers raise :class:`DriverError` when
the model cannot give a turn (HTTP failure after retries, an unreadable
response, a command that failed or timed out); the runtime ends the turn
with a ``could not`` reply.

Conversations use :class:`ModelMessage`, a provider-neutral shape close to
Chat Completions: ``system`` / ``user`` / ``assistant`` (with tool calls) /
``tool`` (the result of one call, by id).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from futon.agents.tooldefs import ToolSpec  # defined with the schemas it carries

log = logging.getLogger("futon.agent.driver")

Role = Literal["system", "user", "assistant", "tool"]


class DriverError(Exception):
    """The model could not give a turn; the message says why, in a few words."""


@dataclass(frozen=True)
class ToolCall:
    """One call the model made: the provider's call id, the (safe) tool
    name, and the arguments as the model wrote them (JSON text, possibly
    invalid — the runtime checks)."""

    id: str
    name: str
    arguments_json: str


@dataclass(frozen=True)
class ModelTurn:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass(frozen=True)
class ModelMessage:
    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)  # assistant
    tool_call_id: str | None = None  # tool
    is_error: bool = False  # tool: the call was refused or failed


class Driver(ABC):
    """Base of every driver. Subclasses implement :meth:`complete`."""

    #: Shown in logs and evidence.
    name = "driver"
    #: False for drivers whose model brings its own tools (``command``):
    #: the runtime then opens no peripheral session and offers no tools.
    uses_tools = True

    @abstractmethod
    async def complete(self, messages: list[ModelMessage], tools: list[ToolSpec]) -> ModelTurn:
        """One model turn for ``messages`` with ``tools`` on offer."""

    async def summarize(self, transcript: str) -> str | None:
        """A summary of ``transcript`` made by the model, for compaction;
        ``None`` means "truncate instead" (the default)."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the driver holds (HTTP sessions)."""

    def bind(self, client: Any) -> None:  # noqa: B027 - optional hook
        """The agent's connection, for drivers that need it (``command --mcp``)."""


class HttpDriver(Driver):
    """A driver that talks to a model over HTTP: one lazily opened
    aiohttp session, and summaries made by the model itself."""

    _session: aiohttp.ClientSession | None = None

    async def summarize(self, transcript: str) -> str | None:
        turn = await self.complete([ModelMessage("system", SUMMARY_PROMPT), ModelMessage("user", transcript)], [])
        return turn.text.strip() or None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session


SUMMARY_PROMPT = (
    "Summarise the conversation below for your own later use: keep the requests, the facts found "
    "(file names, values, tool results that matter), what was answered and what is still open. "
    "Be brief; plain text, no preamble."
)


@dataclass(frozen=True)
class RetryPolicy:
    """How HTTP drivers retry: 429 (honouring ``Retry-After``) and 5xx, and
    connection errors, up to ``attempts`` tries in all, with exponential
    backoff between them."""

    attempts: int = 4
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 20.0
    retry_after_max_s: float = 60.0
    request_timeout_s: float = 300.0

    def backoff(self, attempt: int) -> float:
        return min(self.backoff_initial_s * 2 ** (attempt - 1), self.backoff_max_s)


def retry_after(value: str | None, cap: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, min(seconds, cap))


def error_text(body: str) -> str:
    """The message of an API error body (OpenAI and Anthropic both use
    ``{"error": {"message": …}}``), or the start of the body."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:200] or "(empty body)"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"][:300]
        if isinstance(error, str):
            return error[:300]
    return body.strip()[:200]


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str],
    retry: RetryPolicy,
) -> dict[str, Any]:
    """POST ``body`` as JSON and return the JSON object answered, retrying
    per ``retry``; :class:`DriverError` when it cannot."""
    timeout = aiohttp.ClientTimeout(total=retry.request_timeout_s)
    for attempt in range(1, retry.attempts + 1):
        last = attempt == retry.attempts
        try:
            async with session.post(url, json=body, headers=headers, timeout=timeout) as response:
                text = await response.text()
                if 200 <= response.status < 300:
                    try:
                        data = json.loads(text)
                    except ValueError:
                        raise DriverError(
                            f"the model server answered with invalid JSON: {text[:120]!r}"
                        ) from None
                    if not isinstance(data, dict):
                        raise DriverError(
                            "the model server answered with JSON that is not an object"
                        )
                    return data
                reason = f"HTTP {response.status} from {url}: {error_text(text)}"
                if response.status != 429 and response.status < 500:
                    raise DriverError(reason)
                if last:
                    raise DriverError(f"{reason} (after {attempt} attempts)")
                wait = retry_after(response.headers.get("Retry-After"), retry.retry_after_max_s)
                if wait is None:
                    wait = retry.backoff(attempt)
                log.warning("%s; retrying in %.1f s", reason, wait)
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = f"cannot reach {url}: {exc or type(exc).__name__}"
            if last:
                raise DriverError(f"{reason} (after {attempt} attempts)") from None
            wait = retry.backoff(attempt)
            log.warning("%s; retrying in %.1f s", reason, wait)
        await asyncio.sleep(wait)
    raise DriverError("no attempts were made")  # attempts < 1


def transcript(messages: list[ModelMessage]) -> str:
    """A plain-text rendering of a conversation (command prompts, summaries)."""
    parts = []
    for message in messages:
        if message.role in ("system", "user"):
            parts.append(message.content)
        elif message.role == "assistant":
            text = message.content
            for call in message.tool_calls:
                text += f"\n[called {call.name} {call.arguments_json}]"
            parts.append(f"Assistant: {text.strip()}")
        else:
            parts.append(f"[result of {message.tool_call_id}] {message.content}")
    return "\n\n".join(part for part in parts if part)
