"""``futon mcp`` with named parameters, through the ``mcp`` SDK's stdio
client: every futon tool listed all the time with its named, described
schema; the envelope answering at call time — ``edit`` in explore is the
MCP tool error ``tool-not-allowed``, never an argument-shape error — and
bad parameters refused naming the field."""

from __future__ import annotations

import json
from pathlib import Path

from futon.agents.tooldefs import tool_spec
from futon.peripherals.args import ARGS
from tests.mcp.kit import futon_mcp, text, ws_url
from tests.support import until
from tests.transports.kit import running_daemon

CONTROLS = {
    "futon_start",
    "futon_hop",
    "futon_stop",
    "futon_reply",
    "futon_inbox",
    "futon_evidence",
}


async def test_every_tool_is_listed_and_the_envelope_answers_at_call_time(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon, futon_mcp("claude-1", ws_url(daemon)) as mcp:
        workspace = daemon.config.workspace
        before = (workspace / "src" / "app.py").read_text()
        listed = {t.name: t for t in (await mcp.session.list_tools()).tools}
        assert set(listed) == CONTROLS | set(ARGS)
        for tool in ARGS:
            schema = listed[tool].input_schema
            assert schema == tool_spec(tool).parameters, tool
            assert "prefixItems" not in json.dumps(schema), tool
            assert schema["type"] == "object" and "properties" in schema, tool
            assert all(p.get("description") for p in schema["properties"].values()), tool
            assert listed[tool].description, tool

        started = await mcp.ok("futon_start", {"peripheral": "explore"})
        assert "edit" not in started["tools"]
        await until(lambda: len(mcp.notifications) >= 1)  # announced, harmlessly
        assert {t.name for t in (await mcp.session.list_tools()).tools} == set(listed)

        for arguments in (
            {"path": "src/app.py", "old": "a - b", "new": "a + b"},
            {"path": 42},  # wrong type: still refused for the tool, not the shape
            {"nonsense": True},
        ):
            refused = await mcp.call("edit", arguments)
            assert refused.is_error and text(refused).startswith("tool-not-allowed: "), text(
                refused
            )
        assert (workspace / "src" / "app.py").read_text() == before

        missing = await mcp.call("frobnicate", {"path": "README.md"})
        assert missing.is_error and text(missing).startswith("tool-not-allowed: "), text(missing)

        for arguments, fragment in (
            ({"path": 42}, "argument 'path'"),
            ({}, "missing parameter 'path'"),
            ({"path": "README.md", "offset": "ten"}, "argument 'offset'"),
            ({"path": "README.md", "lines": 3}, "unknown parameter 'lines'"),
        ):
            bad = await mcp.call("read", arguments)
            assert bad.is_error and text(bad).startswith("invalid-input: read: "), text(bad)
            assert fragment in text(bad), text(bad)
        outside = await mcp.call("read", {"path": "../secret.txt"})
        assert outside.is_error and text(outside).startswith("out-of-scope: "), text(outside)

        read = await mcp.ok("read", {"path": "src/app.py", "offset": 1})
        assert read["ok"] is True and read["result"].strip() == "return a - b"
