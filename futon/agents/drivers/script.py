"""``script``: replay canned model turns from a YAML or JSON file, for
demos and tests.

The file is a list (or ``{turns: [...]}``) of model turns, used in order
across the whole run, each either

- ``{text: "..."}`` — the model answers (no tool call), or
- ``{tool_calls: [{name, arguments}], text?: "..."}`` — the model calls
  tools. ``arguments`` is the object the model passes (the named parameters
  of a futon tool, e.g. ``{path: README.md}`` for ``read``, or the older
  ``{args: [...]}``; ``{to, exit_condition, reason}`` for ``hop``,
  ``{text}`` for ``reply``); a string is sent as-is, so a script can also
  play a model that writes invalid JSON.

A turn may add ``delay_s`` (think time). When the script runs out, the
driver fails the turn (``DriverError``). Every request is kept in
``requests`` as ``(messages, tools)`` for tests to inspect.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from futon.agents.drivers.base import (
    Driver,
    DriverError,
    ModelMessage,
    ModelTurn,
    ToolCall,
    ToolSpec,
)


class ScriptDriver(Driver):
    name = "script"

    def __init__(self, turns: list[dict[str, Any]]) -> None:
        self.turns = [_check(index, turn) for index, turn in enumerate(turns)]
        self.position = 0
        self.requests: list[tuple[list[ModelMessage], list[ToolSpec]]] = []

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptDriver:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read the script {path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(text) if str(path).endswith(".json") else YAML(typ="safe").load(text)
        except Exception as exc:
            raise ValueError(f"the script {path} is not valid YAML/JSON: {exc}") from None
        if isinstance(data, dict) and "turns" in data:
            data = data["turns"]
        if not isinstance(data, list):
            raise ValueError(f"the script {path} must be a list of model turns")
        return cls(data)

    async def complete(self, messages: list[ModelMessage], tools: list[ToolSpec]) -> ModelTurn:
        self.requests.append((list(messages), list(tools)))
        if self.position >= len(self.turns):
            raise DriverError(f"the script has no more model turns (it had {len(self.turns)})")
        turn = self.turns[self.position]
        self.position += 1
        if turn.get("delay_s"):
            await asyncio.sleep(float(turn["delay_s"]))
        calls = []
        for index, call in enumerate(turn.get("tool_calls") or []):
            arguments = call.get("arguments", {})
            arguments_json = arguments if isinstance(arguments, str) else json.dumps(arguments)
            calls.append(
                ToolCall(
                    id=f"script-{self.position}-{index}",
                    name=call["name"],
                    arguments_json=arguments_json,
                )
            )
        return ModelTurn(text=str(turn.get("text") or ""), tool_calls=calls)


def _check(index: int, turn: Any) -> dict[str, Any]:
    if not isinstance(turn, dict) or not ("text" in turn or "tool_calls" in turn):
        raise ValueError(
            f"script turn {index}: expected {{text}} or {{tool_calls: [...]}}, got {turn!r}"
        )
    calls = turn.get("tool_calls") or []
    if not isinstance(calls, list) or not all(
        isinstance(c, dict) and isinstance(c.get("name"), str) for c in calls
    ):
        raise ValueError(f"script turn {index}: tool_calls must be a list of {{name, arguments}}")
    return dict(turn)
