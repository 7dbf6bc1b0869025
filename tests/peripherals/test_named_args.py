"""Named parameters: every tool's model-facing schema (named, described, no
``prefixItems``), the one conversion named → positional, and its typed
refusals naming the parameter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from futon.agents.tooldefs import tool_spec, wire_args
from futon.evidence import MemoryStore
from futon.peripherals.args import (
    ARGS,
    InvalidArgument,
    named_schema,
    parse_args,
    to_positional,
)
from futon.peripherals.runner import ChainStep
from futon.protocol.errors import FutonError
from tests.peripherals.support import RecordingBackend, make_runner


def undescribed(schema: dict[str, Any], where: str) -> list[str]:
    """Properties without a description, nested objects and arrays included."""
    found = []
    for name, prop in schema.get("properties", {}).items():
        if not prop.get("description"):
            found.append(f"{where}.{name}")
        found += undescribed(prop, f"{where}.{name}")
        if isinstance(prop.get("items"), dict):
            found += undescribed(prop["items"], f"{where}.{name}[]")
    return found


def test_every_tool_has_named_described_parameters_and_no_prefix_items() -> None:
    missing: list[str] = []
    for tool in sorted(ARGS):
        schema = named_schema(tool)
        text = json.dumps(schema)
        assert schema["type"] == "object" and schema["additionalProperties"] is False, tool
        assert "prefixItems" not in text and "$ref" not in text and "$defs" not in text, tool
        assert set(schema.get("required", [])) <= set(schema["properties"]), tool
        assert list(schema["properties"]) == ARGS[tool].named(), tool
        assert schema["description"], tool
        missing += undescribed(schema, tool)
        # What a model is shown is that schema (the summary as the description).
        spec = tool_spec(tool)
        assert spec.description == schema.pop("description") and spec.parameters == schema, tool
    assert not missing, f"parameters without a description: {', '.join(missing)}"


def test_the_shapes_the_issue_names() -> None:
    def shape(tool: str) -> tuple[list[str], list[str]]:
        schema = named_schema(tool)
        return list(schema["properties"]), schema.get("required", [])

    assert shape("read") == (["path", "offset", "limit"], ["path"])
    assert shape("grep") == (["pattern", "path", "case_insensitive", "max_matches"], ["pattern"])
    assert shape("edit") == (["path", "old", "new"], ["path", "old", "new"])
    assert shape("write") == (["path", "content"], ["path", "content"])
    assert shape("bash") == (["command", "timeout_ms"], ["command"])
    assert shape("failed-route-add") == (["id", "record"], ["id", "record"])
    # `X | None = None` is shown as plain X: leaving it out means null.
    assert named_schema("read")["properties"]["limit"]["type"] == "integer"
    # A required nullable parameter keeps its null.
    assert {"type": "null"} in named_schema("status-validate")["properties"]["from_status"]["anyOf"]


@pytest.mark.parametrize(
    ("tool", "named", "positional"),
    [
        ("read", {"path": "README.md"}, ["README.md"]),
        (
            "read",
            {"path": "README.md", "offset": 10, "limit": 2},
            ["README.md", {"offset": 10, "limit": 2}],
        ),
        (
            "grep",
            {"pattern": "x", "case_insensitive": True},
            ["x", None, {"case_insensitive": True}],
        ),
        ("grep", {"path": "src", "pattern": "x"}, ["x", "src"]),
        ("edit", {"new": "b", "old": "a", "path": "f"}, ["f", "a", "b"]),
        ("bash-readonly", {"command": "ls", "timeout_ms": 5}, ["ls", {"timeout_ms": 5}]),
        ("mc-bulletin", {"text": "hi"}, ["hi"]),
        ("mc-inventory", {}, []),
        ("status-validate", {"from_status": None, "to_status": "open"}, [None, "open"]),
        ("evidence-query", {}, []),
    ],
)
def test_named_parameters_become_the_positional_array(
    tool: str, named: dict[str, Any], positional: list[Any]
) -> None:
    assert to_positional(tool, named) == positional
    assert parse_args(tool, named) == parse_args(tool, positional)


@pytest.mark.parametrize(
    ("tool", "named", "field", "fragment"),
    [
        ("read", {}, "path", "missing parameter 'path'"),
        (
            "read",
            {"path": "a", "colour": 1},
            "colour",
            "unknown parameter 'colour' (takes: path, offset, limit)",
        ),
        ("read", {"path": 42}, "path", "argument 'path'"),
        ("read", {"path": "a", "offset": "ten"}, "offset", "argument 'offset'"),
        ("read", {"path": "a", "offset": -1}, "offset", "argument 'offset'"),
        ("read", {"path": "a\x00b"}, "path", "NUL"),
        ("edit", {"path": "a", "old": "x"}, "new", "missing parameter 'new'"),
        ("grep", {"regex": "x"}, "regex", "unknown parameter 'regex'"),
        ("bash", {"command": "ls", "timeout_ms": "soon"}, "timeout_ms", "argument 'timeout_ms'"),
        (
            "failed-route-add",
            {"id": "p1", "record": {"blocker_id": "L1"}},
            "record",
            "argument 'record.approach'",
        ),
        ("read", {"args": ["a"], "x": 1}, "args", "unknown parameter 'args'"),
    ],
)
def test_bad_named_parameters_are_invalid_input_naming_the_field(
    tool: str, named: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_args(tool, named)
    error = caught.value
    assert error.code == "invalid-input" and error.field == field
    assert error.context == {"tool": tool, "field": field}
    assert error.message.startswith(f"{tool}: ") and fragment in error.message


def test_a_tool_without_a_model_takes_only_the_array() -> None:
    with pytest.raises(InvalidArgument) as caught:
        to_positional("no-such-tool", {"x": 1})
    assert caught.value.code == "invalid-input" and "JSON array" in caught.value.message
    spec = tool_spec("no-such-tool")
    assert spec.parameters["properties"]["args"]["type"] == "array"


def test_wire_args_keeps_named_parameters_and_unwraps_the_older_form() -> None:
    assert wire_args({"path": "README.md"}) == {"path": "README.md"}
    assert wire_args({"args": ["README.md"]}) == ["README.md"]
    # Not the older form: passed on for the daemon to refuse, naming `args`.
    assert wire_args({"args": "README.md"}) == {"args": "README.md"}
    assert wire_args({"args": ["a"], "x": 1}) == {"args": ["a"], "x": 1}


async def test_a_chain_takes_named_parameters_and_refuses_outside_tools_first(
    workspace: Path,
) -> None:
    """The dispatcher (behind /dispatch chains as behind WS) converts named
    parameters after its tool-set check."""
    store = MemoryStore()
    backend = RecordingBackend(replies={"read": "text"})
    runner = make_runner(workspace, backend, store)
    result = await runner.run_chain(
        "claude-1", [ChainStep("explore", [{"tool": "read", "args": {"path": "src/app.py"}}])]
    )
    assert backend.tools == ["read"] and result.results[0].ok
    steps = [
        ([{"tool": "read", "args": {"path": "src/app.py"}}, {"tool": "edit", "args": {"x": 1}}],
         "tool-not-allowed"),
        ([{"tool": "read", "args": {"path": "src/app.py", "lines": 2}}], "invalid-input"),
    ]  # fmt: skip
    for actions, code in steps:
        with pytest.raises(FutonError) as caught:
            await runner.run_chain("claude-1", [ChainStep("explore", actions)])
        assert caught.value.code == code
    assert backend.tools == ["read"]  # nothing more ran
