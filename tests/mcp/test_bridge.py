"""``futon mcp`` against a real daemon, driven by the ``mcp`` SDK's stdio
client: every tool listed all the time, the envelope enforced at call time
(refusals as MCP tool errors), hops that change the allowed tools, an IRC
reply a raw IRC client sees, and the evidence chain of it all."""

from __future__ import annotations

import itertools
from pathlib import Path

from futon.agents.tooldefs import tool_spec
from futon.evidence import EvidenceQuery
from futon.peripherals.args import ARGS
from tests.mcp.kit import futon_mcp, text, ws_url
from tests.support import until
from tests.transports.irc.kit import RawClient
from tests.transports.kit import running_daemon

CONTROLS = {
    "futon_start",
    "futon_hop",
    "futon_stop",
    "futon_reply",
    "futon_inbox",
    "futon_evidence",
}


async def test_an_mcp_client_works_inside_the_envelope(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon:
        workspace = daemon.config.workspace
        joe = await RawClient.connect(daemon.ports["irc"])
        joe.auto_pong = True
        await joe.register("joe")
        await joe.join("#futon")
        async with futon_mcp("claude-1", ws_url(daemon)) as mcp:
            # Every tool, all the time: clients do not pick up a changed list
            # mid-turn, so the envelope answers at call time instead.
            everything = CONTROLS | set(ARGS)
            assert set(await mcp.tool_names()) == everything

            started = await mcp.ok("futon_start", {"peripheral": "explore"})
            assert started["peripheral_id"] == "explore"
            await until(lambda: len(mcp.notifications) >= 1)
            listed = {t.name: t for t in (await mcp.session.list_tools()).tools}
            assert set(listed) == everything and set(started["tools"]) < set(listed)
            assert "read" in started["tools"] and "edit" not in started["tools"]
            assert "edit" in listed and "write" in listed  # listed, refused below
            # The input schema is the runtime's own tool definition.
            assert listed["read"].input_schema == tool_spec("read").parameters

            read = await mcp.ok("read", {"path": "README.md"})
            assert read["ok"] is True and "hello" in str(read["result"])
            grep = await mcp.ok("grep", {"pattern": "return a - b", "path": "src"})
            assert grep["ok"] is True and "app.py" in str(grep["result"])

            refused = await mcp.call("edit", {"path": "src/app.py", "old": "a - b", "new": "a + b"})
            assert refused.is_error and text(refused).startswith("tool-not-allowed: ")
            assert (
                workspace / "src" / "app.py"
            ).read_text() == "def add(a, b):\n    return a - b\n"

            before = len(mcp.notifications)
            hopped = await mcp.ok(
                "futon_hop", {"to": "edit", "exit_condition": "found-target", "reason": "fix add"}
            )
            assert hopped["to"] == "edit" and hopped["session_id"] == started["session_id"]
            await until(lambda: len(mcp.notifications) > before)
            names = set(await mcp.tool_names())
            assert names == everything and {"edit", "write"} <= set(hopped["tools"])

            # The older positional form still works.
            wrote = await mcp.ok("write", {"args": ["src/new.py", "X = 1\n"]})
            assert wrote["ok"] is True
            assert (workspace / "src" / "new.py").read_text() == "X = 1\n"
            outside = await mcp.call("write", {"path": "../escape.txt", "content": "no"})
            assert outside.is_error and text(outside).startswith("out-of-scope: ")
            assert not (tmp_path / "escape.txt").exists()

            await mcp.ok("futon_reply", {"to": "#futon", "text": "joe: wrote src/new.py"})
            line = await joe.expect("PRIVMSG", timeout=10)
            assert line.source.startswith("claude-1!")
            assert line.params == ["#futon", "joe: wrote src/new.py"]

            chain = await mcp.ok(
                "futon_evidence", {"filters": {"session-id": started["session_id"]}, "limit": 50}
            )
            assert chain["count"] >= 4

            before = len(mcp.notifications)
            await mcp.ok("futon_stop", {"reason": "done"})
            await until(lambda: len(mcp.notifications) > before)
            assert set(await mcp.tool_names()) == everything
        await joe.close()

        store = daemon.store
        assert store is not None
        story = list(
            reversed(
                store.query(EvidenceQuery(session_id=started["session_id"], limit=100)).entries
            )
        )
    assert {e["evidence/author"] for e in story} == {"claude-1"}
    steps = [
        (e["evidence/type"], e["evidence/body"].get("tool") or e["evidence/body"].get("to"))
        for e in story
    ]
    tools_run = [s[1] for s in steps if s[0] == "coordination" and s[1]]
    assert tools_run[:2] == ["read", "grep"] and "write" in tools_run
    # Named parameters are recorded in the positional form, like a WS agent's.
    ran = [e["evidence/body"] for e in story if "ok" in e["evidence/body"]]
    assert ran[0]["args"] == ["README.md"] and ran[1]["args"] == ["return a - b", "src"]
    assert ("mode-transition", "edit") in steps
    # The refusal is on record like a WS agent's, and each entry answers the
    # one before it: one session chain, one author.
    assert any(
        e["evidence/body"].get("code") == "tool-not-allowed"
        and e["evidence/body"].get("tool") == "edit"
        for e in story
    )
    assert all(
        e["evidence/in-reply-to"] == prev["evidence/id"] for prev, e in itertools.pairwise(story)
    )
