"""Audit (issue 21): a session's recorded chain replayed against the
peripheral specs — clean sessions are clean; a step outside the tool set or
the scope, a hop the rules refuse, a broken chain are reported with the
entry that shows them; an unknown session is a 404."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ruamel.yaml import YAML

from futon.cli import main
from futon.daemon.app import Daemon
from futon.evidence import EvidenceQuery, JsonlStore, MemoryStore
from futon.evidence.jsonl import list_shards
from futon.peripherals.audit import SPECS_TAG, audit_session, record_specs, spec_digest
from futon.peripherals.spec import Peripheral
from futon.protocol.errors import FutonError
from futon.social.approvals import Approvals, Pending
from tests.peripherals.support import (
    PASSING_RUN,
    RecordingBackend,
    human_asks,
    make_runner,
    shipped_peripherals,
)
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


# ---------------------------------------------------------------- issue 21, the rest

def specs_with(**changes: dict[str, Any]) -> dict[str, Peripheral]:
    """The shipped peripherals, with some specs' fields replaced."""
    shipped = shipped_peripherals()
    for pid, update in changes.items():
        shipped[pid] = Peripheral(pid, shipped[pid].spec.model_copy(update=update))
    return shipped


def approving(approvals: Approvals, decision: str = "approve", by: str = "joe") -> None:
    """Every request is decided by ``by`` as soon as it is made."""

    def decide(pending: Pending) -> None:
        asyncio.get_running_loop().create_task(approvals.decide(pending.id, decision, by))

    approvals.on_request[:] = [decide]


def entries_of(store: MemoryStore, session_id: str) -> list[dict[str, Any]]:
    return list(reversed(store.query(EvidenceQuery(session_id=session_id, include_ephemeral=True)).entries))


async def test_real_sessions_with_approvals_facts_and_refusals_audit_clean(workspace: Path) -> None:
    store = MemoryStore()
    backend = RecordingBackend(replies={
        "grep": [{"file": "src/app.py", "line": 2, "content": "return a - b"}],
        "edit": {"file": "src/app.py", "replacements": 1}, "bash-test": PASSING_RUN,
    })  # fmt: skip
    runner = make_runner(workspace, backend, store)
    approvals = Approvals(store, approvers=["joe"], timeout_s=30)
    runner.approver = approvals
    await record_specs(store, runner.peripherals, "futon")
    approving(approvals)
    session = await runner.start("claude-1", "explore")
    await runner.step(session.id, "grep", ["a - b"])
    asked = await human_asks(store, "claude-1", "please fix add")
    await runner.hop(session.id, "edit", "user-request", "asked", context={"request": asked})
    await runner.step(session.id, "edit", ["./src/app.py", "a - b", "a + b"])
    await runner.hop(session.id, "test", "hop-test", "check")
    await runner.step(session.id, "bash-test", ["pytest tests"])
    await runner.hop(session.id, "deploy", "hop-deploy", "ship")  # approved by joe
    await runner.stop(session.id)
    report = audit_session(store, runner.peripherals, session.id)
    assert report.to_dict()["violations"] == [] and report.clean
    assert (report.specs, report.specs_changed, report.hops, report.approvals) == ("recorded", False, 3, 1)
    chain_ = entries_of(store, session.id)
    steps = [e["evidence/body"] for e in chain_ if e["evidence/type"] == "coordination" and e["evidence/claim-type"] == "step"]
    hops = [e["evidence/body"] for e in chain_ if e["evidence/type"] == "mode-transition"]
    assert "paths" not in steps[0] and steps[1]["paths"] == ["src/app.py"]  # as resolved, when not as given
    assert steps[2]["test_run"]["exit"] == 0
    assert hops[0]["request"] == asked  # the user-request hop keeps the fact it cites
    assert {h["spec-sha256"] for h in hops} == {runner.spec_sha256}

    approving(approvals, "deny")
    denied = await runner.start("claude-1", "test")
    await runner.step(denied.id, "bash-test", ["pytest tests"])
    with pytest.raises(FutonError):
        await runner.hop(denied.id, "deploy", "hop-deploy", "ship")
    await runner.stop(denied.id)
    report = audit_session(store, runner.peripherals, denied.id)
    assert report.clean and (report.refusals, report.approvals) == (1, 1)


async def test_the_audit_replays_against_the_specs_recorded_at_the_time(workspace: Path) -> None:
    store = MemoryStore()
    runner = make_runner(workspace, RecordingBackend(replies={"grep": []}), store)
    first = await record_specs(store, runner.peripherals, "futon")
    session = await runner.start("claude-1", "explore")
    await runner.step(session.id, "grep", ["x"])
    await runner.stop(session.id)
    (goal,) = [e for e in entries_of(store, session.id) if e["evidence/claim-type"] == "goal"]
    assert goal["evidence/body"]["spec-sha256"] == first == spec_digest(runner.peripherals)

    # A reload takes grep out of explore: the session ran under the old specs.
    tools = [t for t in shipped_peripherals()["explore"].spec.tools if t != "grep"]
    changed = specs_with(explore={"tools": tools})
    runner.apply_settings(runner.dispatcher.settings, changed)
    second = await record_specs(store, changed, "futon")
    assert await record_specs(store, changed, "futon") == second != first  # unchanged: not recorded again
    recorded = store.query(EvidenceQuery(tags=(SPECS_TAG,))).entries
    assert [e["evidence/body"]["spec-sha256"] for e in recorded] == [second, first]
    report = audit_session(store, changed, session.id)
    assert report.clean and (report.specs, report.spec_sha256) == ("recorded", first)

    # No record of the specs a session names: the given ones, and it says so.
    lost = chain("sess-lost", [
        ("coordination", "goal", {"peripheral": "explore", "agent": "claude-1", "spec-sha256": "f" * 64}),
        step("grep", "x"),
    ])  # fmt: skip
    store.append_many_sync(lost)
    report = audit_session(store, changed, "sess-lost")
    assert (report.specs, report.specs_changed) == ("given", True) and "no record" in report.notes[0]
    assert [(v.rule, v.evidence_id) for v in report.violations] == [("tool-not-in-envelope", "sess-lost-1")]


def approval_side(session: str, n: int, kind: str, peripheral: str, tool: str | None = None,
                  outcome: str = "approved", by: str = "joe") -> list[dict[str, Any]]:  # fmt: skip
    """A request and its decision, as Approvals records them beside the chain."""
    request = {"id": f"{session}-q{n}", "subject": {"ref/type": "session", "ref/id": session},
               "type": "coordination", "claim-type": "question", "author": "claude-1", "session-id": session,
               "tags": ["approval"], "body": {"approval_id": f"a{n}", "kind": kind, "peripheral": peripheral,
                                              "tool": tool}}  # fmt: skip
    decision = {"id": f"{session}-d{n}", "subject": request["subject"], "type": "coordination",
                "claim-type": "evidence", "author": by, "session-id": session, "tags": ["approval", outcome],
                "in-reply-to": request["id"], "body": {"approval_id": f"a{n}", "outcome": outcome, "by": by}}  # fmt: skip
    return [request, decision]


async def test_missing_approvals_unsupported_facts_and_unrecorded_refusals_are_reported() -> None:
    store = MemoryStore()
    specs = specs_with(explore={"approval": "human", "ask": ["grep"]})
    hop = "mode-transition"
    store.append_many_sync(chain("sess-a", [
        ("coordination", "goal", {"peripheral": "explore", "agent": "claude-1"}),  # 0: entered unapproved
        step("read", "src/app.py"),
        step("grep", "x"),                                                          # 2: asked for nothing
    ]))  # fmt: skip
    failing = step("bash-test", "pytest")
    failing[2]["result"] = {"exit": 1, "out": "1 failed in 0.1s", "err": ""}
    store.append_many_sync(chain("sess-h", [
        ("coordination", "goal", {"peripheral": "edit", "agent": "claude-1"}),
        (hop, "step", {"from": "edit", "to": "test", "exit_condition": "hop-test"}),
        failing,
        (hop, "step", {"from": "test", "to": "deploy", "exit_condition": "pass"}),  # 3: no pass, no approval
    ]))  # fmt: skip
    store.append_many_sync(chain("sess-u", [
        ("coordination", "goal", {"peripheral": "reflect", "agent": "claude-1"}),
        (hop, "step", {"from": "reflect", "to": "test", "exit_condition": "user-request"}),  # 1: nothing cited
    ]))  # fmt: skip
    store.append_many_sync(chain("sess-l", [
        ("coordination", "goal", {"peripheral": "reflect", "agent": "claude-1"}),
        (hop, "step", {"from": "reflect", "to": "test", "exit_condition": "user-request", "request": "ask-l"}),
    ]))  # fmt: skip
    store.append_many_sync([{  # a human's line to the agent, recorded after the hop that cites it
        "id": "ask-l", "subject": {"ref/type": "thread", "ref/id": "irc/#futon"}, "type": "forum-post",
        "claim-type": "observation", "author": "joe",
        "body": {"text": "claude-1: please", "channel": "#futon", "transport": "irc", "speaker": "human"},
    }])  # fmt: skip
    entries = chain("sess-r", [
        ("coordination", "goal", {"peripheral": "explore", "agent": "claude-1"}),
        step("grep", "x"),
        step("grep", "y"),
    ])  # fmt: skip
    entries[1:1] = approval_side("sess-r", 0, "enter", "explore")
    entries[3:3] = approval_side("sess-r", 1, "tool", "explore", "grep", outcome="denied")  # then no tension
    entries[-1:-1] = approval_side("sess-r", 2, "tool", "explore", "grep", by="claude-1")  # its own approval
    store.append_many_sync(entries)

    def found(session: str) -> list[tuple[str, str]]:
        return [(v.rule, v.evidence_id) for v in audit_session(store, specs, session).violations]

    assert found("sess-a") == [("approval-missing", "sess-a-0"), ("approval-missing", "sess-a-2")]
    assert found("sess-h") == [("hop-fact-unsupported", "sess-h-3"), ("approval-missing", "sess-h-3")]
    assert found("sess-u") == [("hop-fact-unsupported", "sess-u-1")]
    assert found("sess-l") == [("hop-fact-unsupported", "sess-l-1")]
    assert found("sess-r") == [
        ("refusal-unrecorded", "sess-r-d1"),
        ("approval-missing", "sess-r-1"),   # the grep that ran although joe denied it
        ("approval-missing", "sess-r-d2"),  # the agent approved its own request
        ("approval-missing", "sess-r-2"),
    ]


async def test_the_daemon_records_its_specs_for_the_first_session_and_on_a_reload_that_changes_them(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    def records() -> list[str]:
        found = daemon.store.query(EvidenceQuery(tags=(SPECS_TAG,))).entries
        return [e["evidence/body"]["spec-sha256"] for e in found]

    assert daemon.runner is not None and records() == []
    await daemon.reload()
    assert records() == []  # nothing changed, no session ran: nothing to record yet
    started_under = daemon.runner.spec_sha256
    async with connected(http, daemon, "claude-1") as agent:
        started = await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"})
        await agent.ask({"type": "tool_action", "tool": "grep", "args": ["add", "src"]})
        await agent.ask({"type": "peripheral_stop"})
        again = await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"})
        await agent.ask({"type": "peripheral_stop"})
    assert records() == [started_under] and again["type"] == "peripheral_started"  # once per version
    await daemon.reload()
    assert records() == [started_under]  # nothing changed: nothing recorded
    yaml = YAML()
    path = daemon.config.path.parent / "peripherals.yaml"
    doc = yaml.load(path)
    doc["peripherals"]["explore"]["tools"].remove("grep")
    yaml.dump(doc, path)
    await daemon.reload()
    assert records() == [daemon.runner.spec_sha256, started_under] and daemon.runner.spec_sha256 != started_under
    url = base_url(daemon) + f"/api/alpha/sessions/{started['session_id']}/audit"
    async with http.get(url) as r:
        body = await r.json()
    assert body["clean"] is True and (body["specs"], body["spec_sha256"]) == ("recorded", started_under)


async def test_http_audits_a_window_bounded_and_refuses_bad_times(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    async with connected(http, daemon, "claude-1") as agent:
        started = await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"})
        await agent.ask({"type": "peripheral_stop"})
    daemon.store.append_many_sync(chain("sess-w", [GOAL_EXPLORE, step("write", "src/x.py", "x")]))
    url = base_url(daemon) + "/api/alpha/audit"
    async with http.get(url, params={"since": "2000-01-01T00:00:00Z"}) as r:
        body = await r.json()
    assert r.status == 200 and body["cap"] == 100 and body["more"] is False and body["clean"] is False
    verdicts = {s["session_id"]: [v["rule"] for v in s["violations"]] for s in body["sessions"]}
    assert verdicts == {started["session_id"]: [], "sess-w": ["tool-not-in-envelope"]}
    async with http.get(url, params={"since": "2000-01-01T00:00:00Z", "until": "2000-01-02T00:00:00Z"}) as r:
        assert (await r.json())["sessions"] == []
    for params in ({}, {"since": "yesterday"}, {"since": "2000-01-01T00:00:00Z", "peripheral": "x"}):
        async with http.get(url, params=params) as r:
            assert (r.status, (await r.json())["code"]) == (400, "invalid-query"), params
