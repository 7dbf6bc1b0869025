"""Futon tools as function definitions: the one source of truth for the
schemas a model sees, whether through ``futon agent run`` (the runtime's
function-calling drivers) or through ``futon mcp`` (MCP ``inputSchema``).

futon tools take a JSON *array* of positional arguments, but function-calling
APIs and MCP want an object. Each tool is therefore a function of one
parameter, ``args``, whose schema is the tool's argument-array schema
(:func:`futon.peripherals.args.args_schema`, ``prefixItems`` in order; nested
``$defs`` are lifted to the top of the parameters object so their ``$ref``\\ s
resolve). A call to ``read`` looks like ``{"args": ["README.md", {"offset": 10}]}``.

The schemas come from :data:`futon.peripherals.args.ARGS`, which holds every
tool's argument model at import — core and domain — as pure pydantic models:
this module (and so the agent client side) imports the tools' *shapes*, never
a backend or the code that runs them (``tests/test_layers.py`` checks).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from futon.peripherals.args import ARGS, args_schema

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
    """A futon tool as a function: one parameter ``args``, the JSON array
    of its positional arguments (see the module docstring)."""
    if tool in ARGS:
        schema = copy.deepcopy(args_schema(tool))
    else:  # a tool without an argument model takes any array
        schema = {"type": "array", "description": f"The arguments of {tool}."}
    defs = schema.pop("$defs", None)
    summary = str(schema.get("description") or f"The futon tool {tool}.")
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {"args": schema},
        "required": ["args"],
        "additionalProperties": False,
    }
    if defs:
        parameters["$defs"] = defs  # `#/$defs/...` refs resolve from the root
    description = f"{summary} Pass the positional arguments, in order, as the JSON array `args`."
    return ToolSpec(name or tool, description, parameters)
