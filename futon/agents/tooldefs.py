"""Futon tools as function definitions: the one source of truth for the
schemas a model sees, whether through ``futon agent run`` (the runtime's
function-calling drivers) or through ``futon mcp`` (MCP ``inputSchema``).

Each tool is a function of **named parameters** — ``read {path, offset?,
limit?}``, ``grep {pattern, path?, case_insensitive?, max_matches?}``,
``edit {path, old, new}`` … — whose schema is
:func:`futon.peripherals.args.named_schema`: an object with a described
property per parameter, nested models inlined (no ``$ref``, no
``prefixItems``, which several clients drop). A call to ``read`` looks like
``{"path": "README.md", "offset": 10}``; the client sends that object as the
``tool_action``'s ``args`` and the daemon turns it positional
(:func:`futon.peripherals.args.to_positional`) *after* checking the tool is
in the envelope, so a tool outside it is refused ``tool-not-allowed``, never
for the shape of its arguments.

The older form, one parameter ``args`` holding the positional array
(``{"args": ["README.md", {"offset": 10}]}``), is still understood
(:func:`wire_args`); a tool without an argument model (a plugin's) is only
offered that way.

The schemas come from :data:`futon.peripherals.args.ARGS`, which holds every
tool's argument model at import — core and domain — as pure pydantic models:
this module (and so the agent client side) imports the tools' *shapes*, never
a backend or the code that runs them (``tests/test_layers.py`` checks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from futon.peripherals.args import ARGS, named_schema
from futon.peripherals.argtypes import RESERVED_NAME

SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class ToolSpec:
    """A tool as a model sees it: a function with JSON-Schema parameters
    (always an object schema)."""

    name: str
    description: str
    parameters: dict[str, Any]


def safe_tool_name(tool: str, taken: set[str]) -> str:
    """``tool`` itself when providers accept it and it is free, else an alias."""
    name = tool if SAFE_NAME.match(tool) else (re.sub(r"[^A-Za-z0-9_-]", "_", tool)[:64] or "tool")
    if name in taken:
        base, n = name[:58], 2
        while f"{base}_{n}" in taken:
            n += 1
        name = f"{base}_{n}"
    return name


def tool_spec(tool: str, name: str | None = None) -> ToolSpec:
    """A futon tool as a function of its named parameters (see the module
    docstring); a tool without an argument model takes ``{"args": [...]}``."""
    if tool in ARGS:
        parameters = named_schema(tool)
        summary = str(parameters.pop("description", "") or f"The futon tool {tool}.")
        return ToolSpec(name or tool, summary, parameters)
    parameters = {
        "type": "object",
        "properties": {
            RESERVED_NAME: {
                "type": "array",
                "description": f"The arguments of {tool}, in order.",
            }
        },
        "required": [RESERVED_NAME],
        "additionalProperties": False,
    }
    description = f"The futon tool {tool}. Pass its arguments, in order, as the JSON array `args`."
    return ToolSpec(name or tool, description, parameters)


def wire_args(arguments: dict[str, Any]) -> list[Any] | dict[str, Any]:
    """What a model's call object becomes on the wire (``tool_action.args``):
    the named parameters as they are — the daemon converts and checks them
    — or, for the older form ``{"args": [...]}``, that positional array. No
    validation here: that is the daemon's, after its tool-set check."""
    legacy = arguments.get(RESERVED_NAME)
    if len(arguments) == 1 and isinstance(legacy, list):
        return legacy
    return arguments
