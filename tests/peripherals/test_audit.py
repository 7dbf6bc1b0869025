"""Audit (issue 21): a session's recorded chain replayed against the
peripheral specs — clean sessions are clean; a step outside the tool set or
the scope, a hop the rules refuse, a broken chain are reported with the
entry that shows them; an unknown session is a 404."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from futon.cli import main
from futon.daemon.app import Daemon
from futon.evidence import JsonlStore
from futon.evidence.jsonl import list_shards
from tests.support import make_config
from tests.transports.kit import base_url, connected


def chain(session: str, steps: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Entries as a session writes them: each replies to the previous."""
    out: list[dict[str, Any]] = []
    for n, (entry_type, claim, body) in enumerate(steps):
        entry = {"id": f"{session}-{n}", "subject": {"ref/type": "session", "ref/id": session},
                 "type": entry_type, "claim-type": claim, "author": "claude-1", "session-id": session,
                 "tags": ["peripheral"], "body": body}  # fmt: skip
        if n:
            entry["in-reply-to"] = f"{session}-{n - 1}"
        out.append(entry)
    return out


def step(tool: str, *args: Any) -> tuple[str, str, dict[str, Any]]:
    return ("coordination", "step", {"tool": tool, "args": list(args), "ok": True, "result": None})


GOAL_EXPLORE = (
    "coordination",
    "goal",
    {"peripheral": "explore", "agent": "claude-1", "context": {}},
)


async def test_a_real_session_audits_clean_and_an_unknown_one_is_404(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    async with connected(http, daemon, "claude-1") as agent:
        started = await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"})
        await agent.ask({"type": "tool_action", "tool": "read", "args": ["src/app.py"]})
        refused = await agent.ask(
            {"type": "tool_action", "tool": "write", "args": ["src/x.py", "x"]}
        )
        assert refused["type"] == "error"
        await agent.ask({"type": "peripheral_stop"})
    url = base_url(daemon) + f"/api/alpha/sessions/{started['session_id']}/audit"
    async with http.get(url) as r:
        body = await r.json()
    assert r.status == 200 and body["clean"] is True and body["violations"] == []
    assert (body["steps"], body["refusals"]) == (1, 1)
    async with http.get(base_url(daemon) + "/api/alpha/sessions/sess-nope/audit") as r:
        missing = await r.json()
        assert r.status == 404 and missing["code"] == "session-not-found"


async def test_forged_steps_are_reported_with_their_entry(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    forged = chain("sess-f", [
        GOAL_EXPLORE,
        step("write", "src/x.py", "x"),            # 1: not an explore tool
        step("read", "/etc/passwd"),               # 2: absolute path
        ("mode-transition", "step", {"from": "explore", "to": "edit", "exit_condition": "ready-to-edit"}),
        step("edit", "tests/t.py", "a", "b"),      # 4: outside edit's src/ docs/ scripts/
        ("mode-transition", "step", {"from": "edit", "to": "deploy", "exit_condition": "tests-pass"}),  # 5
    ])  # fmt: skip
    daemon.store.append_many_sync(forged)
    async with http.get(base_url(daemon) + "/api/alpha/sessions/sess-f/audit") as r:
        body = await r.json()
    assert body["clean"] is False
    found = [(v["rule"], v["evidence_id"]) for v in body["violations"]]
    assert found == [
        ("tool-not-in-envelope", "sess-f-1"),
        ("path-out-of-scope", "sess-f-2"),
        ("path-out-of-scope", "sess-f-4"),
        ("hop-not-admitted", "sess-f-5"),
    ]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_config(tmp_path / "cfg")


def test_cli_audit_catches_an_edited_shard_that_verify_also_catches(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = config.parent / "var" / "evidence"
    with JsonlStore(directory, fsync="always") as store:
        store.append_many_sync(
            chain("sess-c", [GOAL_EXPLORE, step("read", "src/app.py"), step("grep", "x")])
        )
    assert main(["evidence", "audit", "sess-c", "--config", str(config)]) == 0
    assert "clean" in capsys.readouterr().out
    # Hand-edit the shard (same length, so the index still points right):
    # the read now shows a path outside the workspace.
    shard = list_shards(directory)[-1].path
    shard.write_bytes(shard.read_bytes().replace(b'"src/app.py"', b'"/etc/pass"'))
    assert main(["evidence", "audit", "sess-c", "--config", str(config), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(v["rule"], v["evidence_id"]) for v in report["violations"]] == [
        ("path-out-of-scope", "sess-c-1")
    ]
    assert main(["evidence", "verify", "--config", str(config), "--no-progress"]) == 1
    capsys.readouterr()
    assert main(["evidence", "audit", "sess-nope", "--config", str(config)]) != 0
    assert "no session 'sess-nope'" in capsys.readouterr().err


def test_a_broken_chain_is_reported(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entries = chain("sess-b", [GOAL_EXPLORE, step("read", "src/app.py"), step("read", "README.md")])
    entries[2]["in-reply-to"] = "sess-b-0"  # the middle step no longer in the chain
    with JsonlStore(config.parent / "var" / "evidence", fsync="always") as store:
        store.append_many_sync(entries)
    assert main(["evidence", "audit", "sess-b", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "sess-b-2 (seq 3): chain-broken" in out
