"""``tool_action`` over WebSocket with named parameters: the same result as
the positional array, the same (positional) evidence, refusals naming the
parameter — and a tool outside the envelope refused as such, whatever its
arguments look like."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from futon.evidence import EvidenceQuery
from tests.transports.kit import connected, running_daemon


def action(tool: str, args: Any) -> dict[str, Any]:
    return {"type": "tool_action", "tool": tool, "args": args}


async def test_named_and_positional_tool_actions_give_the_same_result(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_daemon(tmp_path) as daemon:
        async with connected(http, daemon, "claude-1") as agent:
            started = await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"})
            pairs = [
                (action("read", ["README.md"]), action("read", {"path": "README.md"})),
                (
                    action("read", ["src/app.py", {"offset": 1, "limit": 1}]),
                    action("read", {"limit": 1, "path": "src/app.py", "offset": 1}),
                ),
                (
                    action("grep", ["RETURN", None, {"case_insensitive": True}]),
                    action("grep", {"pattern": "RETURN", "case_insensitive": True}),
                ),
                (action(":glob", ["src/*.py"]), action(":glob", {"pattern": "src/*.py"})),
            ]
            for positional, named in pairs:
                by_position = await agent.ask(positional)
                by_name = await agent.ask(named)
                assert by_position["type"] == "tool_result" and by_position["ok"] is True
                assert {k: v for k, v in by_name.items() if k != "req_id"} == {
                    k: v for k, v in by_position.items() if k != "req_id"
                }
        store = daemon.store
        assert store is not None
        steps = [
            e["evidence/body"]
            for e in reversed(
                store.query(EvidenceQuery(session_id=started["session_id"], limit=100)).entries
            )
            if "ok" in e["evidence/body"]
        ]
    # Each named call is on record exactly as its positional twin.
    assert len(steps) == 8
    for first, second in zip(steps[::2], steps[1::2], strict=True):
        assert (first["tool"], first["args"]) == (second["tool"], second["args"])


async def test_bad_named_parameters_are_invalid_input_naming_the_field(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_daemon(tmp_path) as daemon, connected(http, daemon, "claude-1") as agent:
        await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"})
        for args, field, fragment in [
            ({}, "path", "missing parameter 'path'"),
            ({"path": 42}, "path", "argument 'path'"),
            ({"path": "README.md", "offset": "ten"}, "offset", "argument 'offset'"),
            ({"path": "README.md", "colour": "red"}, "colour", "unknown parameter 'colour'"),
        ]:
            error = await agent.ask(action("read", args))
            assert error["type"] == "error" and error["code"] == "invalid-input", error
            assert fragment in error["message"], error
            assert error["context"]["field"] == field and error["context"]["tool"] == "read"
        # Still usable afterwards.
        assert (await agent.ask(action("read", {"path": "README.md"})))["ok"] is True


async def test_a_tool_outside_the_envelope_is_tool_not_allowed_whatever_its_arguments(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_daemon(tmp_path) as daemon, connected(http, daemon, "claude-1") as agent:
        workspace = daemon.config.workspace
        before = (workspace / "src" / "app.py").read_text()
        await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"})
        for args in (
            {"path": "src/app.py", "old": "a - b", "new": "a + b"},  # fits edit
            {"file": "src/app.py"},  # fits nothing
            ["src/app.py", "a - b", "a + b"],
            [42],
        ):
            refused = await agent.ask(action("edit", args))
            assert refused["type"] == "error" and refused["code"] == "tool-not-allowed", refused
        unknown = await agent.ask(action("no-such-tool", {"x": 1}))
        assert unknown["code"] == "tool-not-allowed"
        assert (workspace / "src" / "app.py").read_text() == before
