"""futon.agents — agents on the client side of futon.

The public API is what ``__all__`` lists; everything else (including the
submodules' other names) may change. Two layers:

- the client library, for any program that wants to be a futon agent:
  :class:`AgentClient` (handshake, reconnect + resume, typed requests, a
  de-duplicated stream of pushes), its error :class:`Disconnected`, and the
  frame models its methods return and its pushes are;
- the runtime behind ``futon agent run``: :class:`AgentRuntime` (the turn
  loop), :class:`TurnSettings`, :class:`Request`, :class:`TurnOutcome` and
  :func:`run_agent`. Model drivers live in :mod:`futon.agents.drivers`.

Names load on first use, so importing one piece does not pull the others in.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # the client library
    "AgentClient": "futon.agents.client",
    "Disconnected": "futon.agents.client",
    "Push": "futon.agents.client",
    # frames the client returns and yields (futon.protocol.frames)
    "ReadyAck": "futon.protocol.frames",
    "PeripheralStarted": "futon.protocol.frames",
    "ToolResult": "futon.protocol.frames",
    "Hopped": "futon.protocol.frames",
    "PeripheralStopped": "futon.protocol.frames",
    "Receipt": "futon.protocol.frames",
    "EvidenceResult": "futon.protocol.frames",
    "Subscribed": "futon.protocol.frames",
    "IrcMessage": "futon.protocol.frames",
    "ChatMessage": "futon.protocol.frames",
    "PushedMessage": "futon.protocol.frames",
    "EvidencePush": "futon.protocol.frames",
    # the runtime
    "AgentRuntime": "futon.agents.runtime",
    "Request": "futon.agents.runtime",
    "TurnOutcome": "futon.agents.runtime",
    "TurnSettings": "futon.agents.runtime",
    "run_agent": "futon.agents.runtime",
}

__all__ = [
    "AgentClient",
    "AgentRuntime",
    "ChatMessage",
    "Disconnected",
    "EvidencePush",
    "EvidenceResult",
    "Hopped",
    "IrcMessage",
    "PeripheralStarted",
    "PeripheralStopped",
    "Push",
    "PushedMessage",
    "ReadyAck",
    "Receipt",
    "Request",
    "Subscribed",
    "ToolResult",
    "TurnOutcome",
    "TurnSettings",
    "run_agent",
]

if TYPE_CHECKING:  # pragma: no cover
    from futon.agents.client import AgentClient, Disconnected, Push
    from futon.agents.runtime import AgentRuntime, Request, TurnOutcome, TurnSettings, run_agent
    from futon.protocol.frames import (
        ChatMessage,
        EvidencePush,
        EvidenceResult,
        Hopped,
        IrcMessage,
        PeripheralStarted,
        PeripheralStopped,
        PushedMessage,
        ReadyAck,
        Receipt,
        Subscribed,
        ToolResult,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'futon.agents' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
