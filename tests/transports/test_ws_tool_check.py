"""``tool_check`` and ``native_item`` (issue 18) through the client library
(futon.agents.client) against a real daemon: the check methods return the
``tool_checked`` frame or raise the refusal with its wire code; items land
in the session chain (reasoning ephemeral, outside it); the frames are in
``futon schema``."""

from __future__ import annotations

from pathlib import Path

import pytest

from futon.agents.client import AgentClient
from futon.evidence import EvidenceQuery
from futon.peripherals.audit.replay import audit_session
from futon.protocol import frames as f
from futon.protocol.errors import FutonError, PermissionDenied, ProtocolError
from tests.transports.kit import running_daemon


def ws_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/agency/ws"


async def test_the_client_checks_commands_file_changes_and_tools(tmp_path: Path) -> None:
    async with (
        running_daemon(tmp_path) as daemon,
        AgentClient(ws_url(daemon.ports["http"]), "codex-1") as client,
    ):
        with pytest.raises(FutonError) as no_session:
            await client.check_command("ls")
        assert no_session.value.code == "no-active-peripheral"

        assert client.ready is not None and "native" in client.ready.features
        started = await client.start("edit")
        checked = await client.check_command("pytest -q", source="codex:item_1")
        assert isinstance(checked, f.ToolChecked)
        assert (checked.allowed, checked.tool) == (True, "bash")  # edit's bash runs anything
        changed = await client.check_file_change(
            ["src/app.py", "docs/new.md"], source="codex:item_2"
        )
        assert changed.tool == "write"
        tool = await client.check_tool("read", {"path": "src/app.py"})
        assert tool.tool == "read"
        with pytest.raises(PermissionDenied) as refused:
            await client.check_file_change(["README.md"])
        assert refused.value.code == "out-of-scope"
        with pytest.raises(PermissionDenied) as not_allowed:
            await client.check_tool("bash-git", ["git status"])
        assert not_allowed.value.code == "tool-not-allowed"

        entries = daemon.store.query(
            EvidenceQuery(session_id=started.session_id, limit=100)
        ).entries
        steps = [e for e in reversed(entries) if e["evidence/claim-type"] == "step"]
        assert [s["evidence/id"] for s in steps][-1] == tool.evidence_id
        assert [(s["evidence/body"]["tool"], s["evidence/body"]["args"]) for s in steps] == [
            ("bash", ["pytest -q"]), ("write", ["src/app.py", ""]), ("write", ["docs/new.md", ""]),
            ("read", ["src/app.py"]),
        ]  # fmt: skip
        assert changed.evidence_id == steps[2]["evidence/id"]
        assert [s["evidence/body"].get("source") for s in steps] == [
            "codex:item_1",
            "codex:item_2",
            "codex:item_2",
            None,
        ]


async def test_items_are_recorded_in_the_session_chain(tmp_path: Path) -> None:
    async with (
        running_daemon(tmp_path) as daemon,
        AgentClient(ws_url(daemon.ports["http"]), "codex-1") as client,
    ):
        started = await client.start("explore")
        message = await client.record_item("agent_message", {"text": "src/app.py subtracts"})
        assert isinstance(message, f.Recorded) and message.evidence_id
        thought = await client.record_item("reasoning", {"summary": "look at add"})
        command = await client.record_item(
            "command", {"command": "ls", "exit_code": 0, "output": "src\n"}
        )
        with pytest.raises(ProtocolError) as too_big:
            await client.record_item("plan", {"steps": ["x" * 17_000]})
        assert too_big.value.code == "invalid-input"
        with pytest.raises(ProtocolError) as unknown:
            await client.record_item("telepathy", {})
        assert unknown.value.code == "invalid-frame"  # refused by the client before it is sent
        stopped = await client.stop()
        assert stopped.peripheral_id == "explore"

        chain = list(
            reversed(
                daemon.store.query(EvidenceQuery(session_id=started.session_id, limit=100)).entries
            )
        )
        claims = [(e["evidence/claim-type"], e["evidence/body"].get("native")) for e in chain]
        assert claims == [("goal", None), ("observation", "agent_message"), ("observation", "command"),
                          ("conclusion", None)]  # fmt: skip
        assert (
            chain[2]["evidence/id"] == command.evidence_id
            and chain[2]["evidence/in-reply-to"] == message.evidence_id
        )
        # Reasoning: ephemeral, replying to the chain's head without becoming it.
        reasoning = daemon.store.get(thought.evidence_id)
        assert reasoning["evidence/ephemeral?"] is True
        assert reasoning["evidence/in-reply-to"] == message.evidence_id
        assert reasoning["evidence/subject"] == {
            "ref/type": "session",
            "ref/id": started.session_id,
        }
        assert reasoning["evidence/body"] == {"summary": "look at add", "native": "reasoning"}
        assert reasoning["evidence/author"] == "codex-1"


def test_the_new_frames_are_in_the_schemas() -> None:
    schemas = f.frame_schemas()
    for key in (
        "client.tool_check",
        "client.native_item",
        "server.tool_checked",
        "server.recorded",
    ):
        assert key in schemas, key


async def test_a_reported_run_of_an_admitted_test_command_is_a_test_run(tmp_path: Path) -> None:
    async with (
        running_daemon(tmp_path) as daemon,
        AgentClient(ws_url(daemon.ports["http"]), "codex-1") as client,
    ):
        await client.start("test")
        # Reported, but never admitted by a check: not a test run.
        await client.record_item(
            "command", {"command": "pytest -q src", "exit_code": 0, "output": "9 passed in 0.1s"}
        )
        checked = await client.check_command("bash -lc 'pytest -q'")
        assert checked.tool == "bash-test"
        failed = await client.record_item(
            "command",
            {
                "command": "/bin/bash -lc 'pytest -q'",
                "exitCode": 1,
                "aggregatedOutput": "1 failed, 2 passed in 0.2s",
            },
        )
        (tmp_path / "ws" / "src" / "app.py").write_text(
            "def add(a, b):\n    return a + b\n"
        )  # the fix
        await client.record_item(
            "command", {"command": "pytest -q", "exit_code": 0, "output": "3 passed in 0.1s"}
        )
        await client.record_item(
            "command", {"command": "pytest -q", "exit_code": "0", "output": "7 passed in 0.1s"}
        )
        stopped = await client.stop()
        assert daemon.store is not None
        entry = daemon.store.get(failed.evidence_id)
    assert (stopped.fruit["result"], stopped.fruit["test_count"], stopped.fruit["runs"]) == (
        "pass",
        3,
        2,
    ), stopped.fruit
    assert (
        entry["evidence/body"]["test_run"]["failed"] == 1
        and entry["evidence/body"]["native"] == "command"
    )


async def test_a_native_passing_run_supports_a_pass_hop_live_and_in_the_audit(tmp_path: Path) -> None:
    async with (
        running_daemon(tmp_path) as daemon,
        AgentClient(ws_url(daemon.ports["http"]), "codex-1") as client,
    ):
        await client.start("test")
        with pytest.raises(FutonError) as before:
            await client.hop("edit", "pass")  # no run yet: the claim does not check out
        assert before.value.code == "hop-not-allowed"
        assert (await client.check_command("pytest -q")).tool == "bash-test"
        await client.record_item(
            "command", {"command": "pytest -q", "exit_code": 0, "output": "3 passed in 0.1s"}
        )
        hopped = await client.hop("edit", "pass")
        await client.stop()
        assert daemon.store is not None
        # The audit replays the same native run: the hop's fact is supported.
        report = audit_session(daemon.store, daemon.runner.peripherals, hopped.session_id)
    assert report.clean and report.hops == 1, report.to_dict()
