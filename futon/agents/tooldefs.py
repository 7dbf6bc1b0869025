"""Futon tools as function definitions: the one source of truth for the
schemas a model sees, whether through ``futon agent run`` (the runtime's
function-calling drivers) or through ``futon mcp`` (MCP ``inputSchema``).

futon tools take a JSON *array* of positional arguments, but function-calling
APIs and MCP want an object. Each tool is therefore a function of one
parameter, ``args``, whose schema is the tool's argument-array schema
(:func:`futon.peripherals.args.args_schema`, ``prefixItems`` in order; nested
``$defs`` are lifted to the top of the parameters object so their ``$ref``\\ s
resolve). A call to ``read`` looks like ``{"args": ["README.md", {"offset": 10}]}``.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from futon.agents.drivers.base import ToolSpec
from futon.peripherals.args import ARGS, args_schema

log = logging.getLogger("futon.agent.tooldefs")

SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_schemas_installed = False


def ensure_tool_schemas() -> None:
    """Register the domain tools' argument models (once per process), so
    :func:`args_schema` knows every tool a peripheral may offer."""
    global _schemas_installed
    if _schemas_installed:
        return
    _schemas_installed = True
    from futon.peripherals.domain import install
    from futon.peripherals.tools.backend import RealBackend

    try:
        install(RealBackend())
    except Exception as exc:  # their tools are then offered with a generic array schema
        log.warning("domain tool schemas unavailable: %s", exc)


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
