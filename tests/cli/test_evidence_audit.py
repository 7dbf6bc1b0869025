"""``futon evidence audit`` (issue 21) on sessions a real daemon ran: a
clean session is clean; the shard edited by hand to show a write outside
the scope is a violation naming the entry, and ``verify`` still reports the
edit; ``--all --since`` audits a window (exit 0 clean, 1 a violation, 2
usage); an unknown session is exit 2 with a message."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from futon.cli import main
from futon.evidence.jsonl import list_shards
from tests.transports.kit import connected, running_daemon


def forged(session: str) -> list[dict[str, object]]:
    """A session that wrote from explore (read-only, no write tool)."""
    subject = {"ref/type": "session", "ref/id": session}
    base = {"subject": subject, "type": "coordination", "author": "claude-1", "session-id": session, "tags": ["peripheral"]}
    return [
        {**base, "id": f"{session}-0", "claim-type": "goal", "body": {"peripheral": "explore", "agent": "claude-1"}},
        {**base, "id": f"{session}-1", "claim-type": "step", "in-reply-to": f"{session}-0",
         "body": {"tool": "write", "args": ["src/x.py", "x"], "ok": True}},
    ]  # fmt: skip


async def test_an_edited_shard_is_a_violation_with_its_entry_and_verify_still_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http:
        config = str(daemon.config.path)
        async with connected(http, daemon, "claude-1") as agent:
            started = await agent.ask({"type": "peripheral_start", "peripheral_id": "edit"})
            wrote = await agent.ask({"type": "tool_action", "tool": "write", "args": ["src/new.py", "x = 1\n"]})
            assert wrote["type"] == "tool_result" and wrote["ok"] is True, wrote
            await agent.ask({"type": "peripheral_stop"})
    session = started["session_id"]
    assert main(["evidence", "audit", session, "--config", config]) == 0
    assert f"{session}: " in (out := capsys.readouterr().out) and out.rstrip().endswith("clean")

    # By hand, same length (the index still points right): the write now
    # shows a file outside edit's src/ docs/ scripts/.
    shard = list_shards(Path(config).parent / "var" / "evidence")[-1].path
    shard.write_bytes(shard.read_bytes().replace(b'"src/new.py"', b'"tst/new.py"'))
    assert main(["evidence", "audit", session, "--config", config, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    (violation,) = report["violations"]
    step = json.loads(next(line for line in shard.read_text().splitlines() if '"tst/new.py"' in line and '"step"' in line))
    assert (violation["rule"], violation["evidence_id"]) == ("path-out-of-scope", step["evidence/id"])
    assert report["specs"] == "recorded" and report["spec_sha256"]
    assert main(["evidence", "verify", "--config", config, "--no-progress"]) == 1
    capsys.readouterr()

    assert main(["evidence", "audit", "sess-nope", "--config", config]) == 2
    assert "no session 'sess-nope'" in capsys.readouterr().err


async def test_all_since_audits_a_window_with_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with running_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http:
        config = str(daemon.config.path)
        async with connected(http, daemon, "claude-1") as agent:
            clean = (await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"}))["session_id"]
            await agent.ask({"type": "tool_action", "tool": "read", "args": ["src/app.py"]})
            await agent.ask({"type": "peripheral_stop"})
        daemon.store.append_many_sync(forged("sess-w"))
    window = ["evidence", "audit", "--all", "--since", "2000-01-01T00:00:00Z", "--config", config]
    assert main(window) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{clean}: clean" in out and "sess-w: 1 violation(s)" in out
    assert "  sess-w-1 (seq" in "\n".join(out) and "tool-not-in-envelope" in "\n".join(out)
    assert out[-1] == "2 session(s) audited, 1 with violations"
    assert main([*window, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["count"], report["violations"], report["more"]) == (2, 1, False)

    assert main([*window, "--until", "2000-01-02T00:00:00Z"]) == 0
    assert capsys.readouterr().out.strip() == "0 session(s) audited, 0 with violations"

    for usage in (
        ["evidence", "audit", "--all", "--config", config],                       # no --since
        ["evidence", "audit", "--all", "--since", "soon", "--config", config],    # not a time
        ["evidence", "audit", clean, "--all", "--since", "2000-01-01", "--config", config],
        ["evidence", "audit", "--config", config],                                # nothing to audit
        ["evidence", "audit", clean, "--since", "2000-01-01", "--config", config],
    ):  # fmt: skip
        assert main(usage) == 2, usage
        assert capsys.readouterr().err.strip(), usage
