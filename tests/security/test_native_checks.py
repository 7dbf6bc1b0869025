"""Adversary tests for native checks (issue 18): an agent running its OWN
tools (Codex through its App Server) asks the daemon, with ``tool_check``,
whether the active peripheral would run a command or a file change; the
daemon judges with the admission ``tool_action`` uses and runs nothing.

Everything goes through a real daemon over a real WebSocket. Each admitted
check must leave a ``step`` entry (``native: true``), each refusal a
``tension``; the session's audit (replayed from the evidence) stays clean;
and no judged command ever runs (the files it would write never appear)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from ruamel.yaml import YAML

from futon.daemon.app import Daemon
from futon.evidence import EvidenceQuery
from futon.peripherals.audit.replay import audit_session
from tests.support import make_config
from tests.transports.kit import AgentClient, agent_socket, connected, daemon_of

SOURCE = "codex:item/commandExecution/requestApproval:item_1"


@asynccontextmanager
async def native_daemon(
    folder: Path, *, peripherals: dict[str, dict[str, Any]] | None = None, **overrides: Any
) -> AsyncIterator[Daemon]:
    """The shipped config on port 0; a workspace with src/app.py, README.md,
    a symlink src/escape → a folder outside it (holding a secret), and
    ``peripherals`` merged into peripherals.yaml (key by key)."""
    workspace = folder / "ws"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "app.py").write_text("def add(a, b):\n    return a - b\n")
    (workspace / "README.md").write_text("hello\n")
    outside = folder / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s3cret\n")
    (workspace / "src" / "escape").symlink_to(outside)
    overrides.setdefault("evidence__fsync", "never")
    config = make_config(folder / "cfg", workspace=str(workspace), **overrides)
    if peripherals:
        yaml = YAML()
        doc = yaml.load(config.parent / "peripherals.yaml")
        for pid, keys in peripherals.items():
            doc["peripherals"].setdefault(pid, {}).update(keys)
        yaml.dump(doc, config.parent / "peripherals.yaml")
    async with daemon_of(config) as daemon:
        yield daemon


async def start(agent: AgentClient, peripheral: str) -> str:
    started = await agent.ask({"type": "peripheral_start", "peripheral_id": peripheral})
    assert started["type"] == "peripheral_started", started
    return str(started["session_id"])


async def command(agent: AgentClient, line: str, **extra: Any) -> dict[str, Any]:
    return await agent.ask(
        {"type": "tool_check", "kind": "command", "command": line, "source": SOURCE, **extra}
    )


async def file_change(agent: AgentClient, *paths: str) -> dict[str, Any]:
    return await agent.ask(
        {"type": "tool_check", "kind": "file_change", "paths": list(paths), "source": SOURCE}
    )


def entries(daemon: Daemon, session_id: str) -> list[dict[str, Any]]:
    page = daemon.store.query(
        EvidenceQuery(session_id=session_id, include_ephemeral=True, limit=1000)
    )
    return list(reversed(page.entries))  # oldest first


def of_claim(daemon: Daemon, session_id: str, claim: str) -> list[dict[str, Any]]:
    return [e for e in entries(daemon, session_id) if e["evidence/claim-type"] == claim]


def assert_admitted(reply: dict[str, Any], tool: str) -> None:
    assert reply["type"] == "tool_checked", reply
    assert (reply["allowed"], reply["tool"]) == (True, tool), reply
    assert reply["evidence_id"]


def assert_refused(reply: dict[str, Any], *codes: str, note: str = "") -> None:
    assert reply["type"] == "error", (note, reply)
    assert reply["code"] in (codes or ("out-of-scope",)), (note, reply)
    assert "Traceback" not in reply["message"]


def assert_recorded(
    daemon: Daemon, session_id: str, admitted: list[dict[str, Any]], refused: int
) -> None:
    """Each admitted check left its step (native, its source), each refusal
    a tension (native, naming the code), and the audit replays clean."""
    steps = of_claim(daemon, session_id, "step")
    assert [s["evidence/id"] for s in steps] == [r["evidence_id"] for r in admitted]
    for step, reply in zip(steps, admitted, strict=True):
        body = step["evidence/body"]
        assert (body["tool"], body["native"], body["source"]) == (reply["tool"], True, SOURCE), body
        assert "ok" not in body and "result" not in body  # judged, never run
    tensions = of_claim(daemon, session_id, "tension")
    assert len(tensions) == refused
    assert all(
        t["evidence/body"]["native"] is True and t["evidence/body"]["code"] for t in tensions
    )
    report = audit_session(daemon.store, daemon.runner.peripherals, session_id)
    assert report.clean, report.to_dict()
    assert (report.steps, report.refusals) == (len(admitted), refused)


# ------------------------------------------------------------------ explore: read-only commands

READS = [
    "ls -la",
    "cat README.md | head -5",
    "grep -rn add src",
    "rg -n 'def add' src",
    "sed -n '1,20p' src/app.py",
    "find . -name '*.py'",
    "git status",
    "git log --oneline -n 5",
    "bash -lc 'cat src/app.py && wc -l README.md'",
]
WRITES = [
    "sh -c 'echo x > f'",
    "bash -lc 'echo x > f'",
    "echo x > f",
    "echo x >> README.md",
    "tee f",
    "cat README.md | tee f",
    "python -c \"open('f', 'w').write('x')\"",
    "python3 -c 'import os; os.remove(\"README.md\")'",
    "git commit -am x",
    "git -c core.pager=touch\\ f log",
    "touch f",
    "rm -rf src",
    "cp README.md f",
    "sed -i 's/a/b/' src/app.py",
    "sort -uo f README.md",
    "find . -name '*.py' -delete",
    "find . -exec touch f ;",
    "ls $(touch f)",
    "ls `touch f`",
    "ls; touch f",
    "ls\ntouch f",
    "ls & touch f",
    "FOO=1 touch f",
    "xargs touch < README.md",
    "rg --pre touch x src",
    "git diff --output=f",
    "uniq README.md f",
]
READS_OUTSIDE = [
    "cat /etc/passwd",
    "cat ../outside/secret.txt",
    "cat src/escape/secret.txt",
    "cat ~/.ssh/id_rsa",
    "ls .*/outside",
    "grep -r s3cret ..",
]


async def test_explore_admits_read_only_commands_and_refuses_any_that_writes_or_reads_outside(
    tmp_path: Path,
) -> None:
    async with native_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http, \
            connected(http, daemon, "codex-1") as agent:  # fmt: skip
        session = await start(agent, "explore")
        admitted = []
        for line in READS:
            reply = await command(agent, line)
            assert_admitted(reply, "bash-readonly")
            admitted.append(reply)
        for line in WRITES + READS_OUTSIDE:
            reply = await command(agent, line)
            assert_refused(reply)
            assert reply["context"]["tool"] == "bash-readonly", (line, reply)
        assert_recorded(daemon, session, admitted, len(WRITES) + len(READS_OUTSIDE))
    workspace = tmp_path / "ws"
    assert not (workspace / "f").exists()  # nothing judged ever ran
    assert (workspace / "README.md").read_text() == "hello\n"


async def test_a_command_may_run_only_in_the_workspace(tmp_path: Path) -> None:
    async with native_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http, \
            connected(http, daemon, "codex-1") as agent:  # fmt: skip
        session = await start(agent, "explore")
        inside = await command(agent, "ls", cwd=str(tmp_path / "ws" / "src"))
        assert_admitted(inside, "bash-readonly")
        relative = await command(agent, "cat app.py", cwd="src")
        assert_admitted(relative, "bash-readonly")
        up = await command(agent, "cat ../README.md", cwd="src")  # relative to cwd, still inside
        assert_admitted(up, "bash-readonly")
        for cwd in ("..", str(tmp_path / "outside"), "src/escape", "/", "src/app.py"):
            assert_refused(await command(agent, "ls", cwd=cwd))
        assert_refused(await command(agent, "cat ../../outside/secret.txt", cwd="src"))
        assert_recorded(daemon, session, [inside, relative, up], 6)


# ------------------------------------------------------------------ test: the configured test commands only

TEST_REFUSED = [
    "pytest -q; rm -rf src",
    "pytest -q && curl http://127.0.0.1:1/x",
    "pytest -q || rm -rf src",
    "pytest -q | tee f",
    "bash -lc 'pytest -q; rm -rf src'",
    "make build",
    "make test -f x.mk",
    "gradle test",
    "tox",
    "rm -rf src",
    "pytest --junitxml=/tmp/x",
    "pytest -q -p evil_plugin",
    "pytest -q --rootdir=/",
    "pytest -q ../outside",
    "pytest -q /etc",
    "pytest -q src/escape",
    "pytest -q @args.txt",
    "python -c 'import pytest'",
    "PYTHONPATH=/tmp pytest -q",
]


async def test_test_admits_only_the_configured_test_command_lines(tmp_path: Path) -> None:
    async with native_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http, \
            connected(http, daemon, "codex-1") as agent:  # fmt: skip
        session = await start(agent, "test")
        admitted = []
        for line in (
            "pytest -q",
            "pytest src",
            "python -m pytest -q src/app.py",
            "bash -lc 'pytest -q'",
            "sh -c 'pytest -q'",
        ):
            reply = await command(agent, line)
            assert_admitted(reply, "bash-test")
            admitted.append(reply)
        for line in TEST_REFUSED:
            assert_refused(await command(agent, line), note=line)
        # The allowlisted tools run in the workspace root, as futon runs them.
        assert_refused(await command(agent, "pytest -q", cwd="src"))
        assert_recorded(daemon, session, admitted, len(TEST_REFUSED) + 1)
    assert not (tmp_path / "ws" / "f").exists()
    assert (tmp_path / "ws" / "src" / "app.py").exists()


async def test_deploy_admits_only_the_git_allowlist(tmp_path: Path) -> None:
    # No human to let it into deploy: a copy of deploy without approval: human.
    deploy = {"description": "d", "tools": ["bash-git", "bash-deploy"], "scope": "git-push-only",
              "entry": ["user-request"], "exit": ["deployed"], "context": ["session-id"]}  # fmt: skip
    async with native_daemon(tmp_path, peripherals={"ship": deploy}) as daemon, aiohttp.ClientSession() as http, \
            connected(http, daemon, "codex-1") as agent:  # fmt: skip
        session = await start(agent, "ship")
        admitted = [
            await command(agent, "git commit -m fix"),
            await command(agent, "git push origin main"),
        ]
        for reply in admitted:
            assert_admitted(reply, "bash-git")
        refused = ["git -c core.sshCommand=touch\\ f push", "git push --receive-pack=touch origin",
                   "git rebase main", "git commit -m x; rm -rf src", "rm -rf src", "./deploy.sh"]  # fmt: skip
        for line in refused:
            assert_refused(await command(agent, line), note=line)
        assert_recorded(daemon, session, admitted, len(refused))


# ------------------------------------------------------------------ file changes


async def test_file_changes_outside_the_scope_are_refused(tmp_path: Path) -> None:
    async with native_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http, \
            connected(http, daemon, "codex-1") as agent:  # fmt: skip
        session = await start(agent, "edit")
        workspace = tmp_path / "ws"
        admitted = [
            await file_change(agent, "src/app.py"),
            await file_change(
                agent, str(workspace / "src" / "new.py")
            ),  # absolute, under the workspace
            await file_change(agent, "src/a.py", "docs/b.md"),  # two paths: two steps
        ]
        for reply in admitted:
            assert_admitted(reply, "write")
        refused = [
            ("../x",), ("/etc/passwd",), (str(tmp_path / "outside" / "secret.txt"),),
            ("src/escape/secret.txt",),  # a symlink in the workspace pointing out
            ("README.md",),  # in the workspace, outside edit's paths (src/, docs/, scripts/)
            ("src/../README.md",), ("src/ok.py", "../x"),  # one bad path refuses the change
            (str(tmp_path / "cfg" / "futon.yaml"),),  # the daemon's config
            (str(tmp_path / "cfg" / "var" / "evidence"),),  # its data dir
        ]  # fmt: skip
        for paths in refused:
            reply = await file_change(agent, *paths)
            assert_refused(reply)
        steps = of_claim(daemon, session, "step")
        assert [s["evidence/body"]["args"][0] for s in steps] == [
            "src/app.py",
            "src/new.py",
            "src/a.py",
            "docs/b.md",
        ]
        assert admitted[2]["evidence_id"] == steps[-1]["evidence/id"]  # the last step of the change
        admitted_steps = [{"tool": "write", "evidence_id": s["evidence/id"]} for s in steps]
        assert_recorded(daemon, session, admitted_steps, len(refused))
        # An admitted file change is what the edit's fruit reports.
        stopped = await agent.ask({"type": "peripheral_stop"})
        assert stopped["fruit"]["changed_files"] == [
            "src/app.py",
            "src/new.py",
            "src/a.py",
            "docs/b.md",
        ]
    assert not (tmp_path / "ws" / "src" / "new.py").exists()  # judged, not written


async def test_futon_own_paths_inside_the_workspace_are_refused(tmp_path: Path) -> None:
    """futon's data dir inside the scope itself (src/var): the hidden-path
    wall refuses a file change there, a command naming it, a glob reaching
    into it, and a program that would walk a folder holding it."""
    data = tmp_path / "ws" / "src" / "var"
    async with native_daemon(tmp_path, data_dir=str(data)) as daemon, aiohttp.ClientSession() as http, \
            connected(http, daemon, "codex-1") as agent:  # fmt: skip
        session = await start(agent, "edit")
        for raw in ("src/var/evidence/x.jsonl", str(data), "src/var"):
            reply = await file_change(agent, raw)
            assert_refused(reply)
            assert "futon's own data" in reply["message"], reply
        await agent.ask({"type": "peripheral_stop"})
        session2 = await start(agent, "explore")
        walks = ["ls src/var", "cat src/var/*", "cat src/*/evidence/anchor.json", "rg s3cret", "rg s3cret src",
                 "grep -r s3cret .", "grep -rn s3cret src", "find .", "find src -name '*.jsonl'", "ls -R src",
                 "du src", "tree", "ls src/var/../var"]  # fmt: skip
        for line in walks:
            reply = await command(agent, line)
            assert_refused(reply, note=line)
            assert "futon's own data" in reply["message"], (line, reply)
        fine = [await command(agent, line) for line in ("ls src", "rg add src/app.py", "cat src/*.py", "ls")]
        for reply in fine:
            assert_admitted(reply, "bash-readonly")
        assert_recorded(daemon, session, [], 3)
        assert_recorded(daemon, session2, fine, len(walks))


async def test_file_changes_in_a_read_only_peripheral_are_refused(tmp_path: Path) -> None:
    """Read-only peripherals have no write tool (the config refuses one), so
    a file change is tool-not-allowed; and a read-only peripheral with bash
    admits only read-only commands (its bash could write nothing in futon's
    sandbox, but a native command runs in the agent's)."""
    notes = {"description": "read-only, with bash", "tools": ["read", "bash"], "scope": "full-codebase",
             "read_only": True, "entry": ["user-request"], "exit": ["blocked"], "context": ["session-id"]}  # fmt: skip
    async with native_daemon(tmp_path, peripherals={"notes": notes}) as daemon, aiohttp.ClientSession() as http, \
            connected(http, daemon, "codex-1") as agent:  # fmt: skip
        for peripheral in ("explore", "mission-control", "notes"):
            session = await start(agent, peripheral)
            assert_refused(await file_change(agent, "src/app.py"), "tool-not-allowed")
            assert_recorded(daemon, session, [], 1)
            await agent.ask({"type": "peripheral_stop"})
        session = await start(agent, "notes")
        ls = await command(agent, "ls src")
        assert_admitted(ls, "bash")
        for line in ("touch f", "echo x > f", "sh -c 'rm -rf src'"):
            assert_refused(await command(agent, line), note=line)
        assert_recorded(daemon, session, [ls], 3)
    assert not (tmp_path / "ws" / "f").exists()


async def test_a_futon_tool_is_judged_as_tool_action_would_judge_it(tmp_path: Path) -> None:
    async with native_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http, \
            connected(http, daemon, "codex-1") as agent:  # fmt: skip
        session = await start(agent, "explore")
        read = await agent.ask({"type": "tool_check", "kind": "tool", "tool": "read", "args": {"path": "README.md"},
                                "source": SOURCE})  # fmt: skip
        assert_admitted(read, "read")
        assert_refused(await agent.ask({"type": "tool_check", "kind": "tool", "tool": "write",
                                        "args": ["src/x.py", "x"]}), "tool-not-allowed")  # fmt: skip
        assert_refused(await agent.ask({"type": "tool_check", "kind": "tool", "tool": "read",
                                        "args": ["../outside/secret.txt"]}))  # fmt: skip
        assert_refused(await agent.ask({"type": "tool_check", "kind": "tool", "tool": "read",
                                        "args": {"nope": 1}}), "invalid-input")  # fmt: skip
        step = of_claim(daemon, session, "step")[0]["evidence/body"]
        assert step["args"] == ["README.md"]  # named args recorded positionally, as tool_action's
        tensions = of_claim(daemon, session, "tension")
        assert [t["evidence/body"]["tool"] for t in tensions] == ["write", "read", "read"]
        report = audit_session(daemon.store, daemon.runner.peripherals, session)
        assert report.clean and (report.steps, report.refusals) == (1, 3), report.to_dict()


# ------------------------------------------------------------------ approvals: ask tools wait for a human


async def test_an_ask_tool_check_waits_for_a_human_then_is_admitted_or_denied(
    tmp_path: Path,
) -> None:
    async with native_daemon(tmp_path, peripherals={"test": {"ask": ["bash-test"]}}) as daemon, \
            aiohttp.ClientSession() as http, connected(http, daemon, "codex-1") as agent, \
            agent_socket(http, daemon) as operator:  # fmt: skip
        ack = await operator.ask(
            {"type": "ready", "agent_id": "tickle-1", "admin_token": "loopback"}
        )
        assert ack["type"] == "ready_ack"
        session = await start(agent, "test")
        await agent.send({"type": "tool_check", "kind": "command", "command": "pytest -q", "source": SOURCE,
                          "req_id": "c1"})  # fmt: skip
        pending = await agent.push_of("approval_pending")
        assert pending["session_id"] == session and "bash-test" in pending["what"], pending
        decided = await operator.ask({"type": "approval_decision", "approval_id": pending["approval_id"],
                                      "decision": "approve"})  # fmt: skip
        assert decided["outcome"] == "approved", decided
        admitted = await agent.reply_to("c1")
        assert_admitted(admitted, "bash-test")

        await agent.send({"type": "tool_check", "kind": "command", "command": "pytest -q src", "source": SOURCE,
                          "req_id": "c2"})  # fmt: skip
        pending = await agent.push_of("approval_pending")
        await operator.ask({"type": "approval_decision", "approval_id": pending["approval_id"],
                            "decision": "deny", "reason": "not now"})  # fmt: skip
        assert_refused(await agent.reply_to("c2"), "approval-denied")
        # A refused command never reaches the approver.
        assert_refused(await command(agent, "pytest -q; rm -rf src"))
        assert not [p for p in agent.pushes if p["type"] == "approval_pending"]
        assert_recorded(daemon, session, [admitted], 2)
        assert of_claim(daemon, session, "tension")[0]["evidence/body"]["code"] == "approval-denied"

        # A check waiting for a human ends with the session when it is interrupted.
        await agent.send({"type": "tool_check", "kind": "command", "command": "pytest -q", "req_id": "c3"})
        await agent.push_of("approval_pending")
        interrupted = await agent.ask({"type": "interrupt"})
        assert (interrupted["type"], interrupted["session_id"]) == ("interrupted", session), interrupted
        early = [p for p in agent.pushes if p.get("req_id") == "c3"]  # it may come before the interrupted
        assert_refused(early[0] if early else await agent.reply_to("c3"), "interrupted")
        assert daemon.approvals is not None and daemon.approvals.pending() == []


# ------------------------------------------------------------------ bad input and no session


async def test_checks_and_items_without_an_active_session_are_typed_errors(tmp_path: Path) -> None:
    async with native_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http, \
            connected(http, daemon, "codex-1") as agent:  # fmt: skip
        for frame in (
            {"type": "tool_check", "kind": "command", "command": "ls"},
            {"type": "tool_check", "kind": "file_change", "paths": ["src/app.py"]},
            {"type": "native_item", "kind": "agent_message", "body": {"text": "hi"}},
        ):
            reply = await agent.ask(frame)
            assert (reply["type"], reply["code"]) == ("error", "no-active-peripheral"), reply
        async with agent_socket(http, daemon) as stranger:  # no ready
            reply = await stranger.ask({"type": "tool_check", "kind": "command", "command": "ls"})
            assert (reply["type"], reply["code"]) == ("error", "not-ready"), reply


MALFORMED_CHECKS = [
    {"type": "tool_check", "kind": "command"},  # no command
    {"type": "tool_check", "kind": "file_change", "paths": []},
    {"type": "tool_check", "kind": "file_change", "paths": "src/app.py"},
    {"type": "tool_check", "kind": "tool"},
    {"type": "tool_check", "kind": "shell", "command": "ls"},
    {"type": "tool_check", "kind": "command", "command": "x" * (64 * 1024 + 1)},
    {"type": "tool_check", "kind": "command", "command": "ls", "source": "s" * 257},
    {"type": "tool_check", "kind": "file_change", "paths": ["a"] * 1001},
    {"type": "native_item", "kind": "telepathy", "body": {}},
    {"type": "native_item", "kind": "plan"},
]


async def test_malformed_and_oversized_frames_are_refused_and_the_socket_stays_usable(
    tmp_path: Path,
) -> None:
    async with native_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http, \
            connected(http, daemon, "codex-1") as agent:  # fmt: skip
        session = await start(agent, "explore")
        for frame in MALFORMED_CHECKS:
            reply = await agent.ask(frame)
            assert (reply["type"], reply["code"]) == ("error", "invalid-frame"), (frame, reply)
        big = {"text": "x" * (16 * 1024)}
        for body in (big, ["not", "an", "object"], "text"):
            reply = await agent.ask({"type": "native_item", "kind": "agent_message", "body": body})
            assert (reply["type"], reply["code"]) == ("error", "invalid-input"), reply
        recorded = await agent.ask(
            {"type": "native_item", "kind": "agent_message", "body": {"text": "done"}}
        )
        assert recorded["type"] == "recorded" and recorded["evidence_id"], recorded
        observation = of_claim(daemon, session, "observation")
        assert [o["evidence/body"] for o in observation] == [
            {"text": "done", "native": "agent_message"}
        ]
        assert observation[0]["evidence/author"] == "codex-1"
        assert not of_claim(daemon, session, "tension")  # bad frames are not actions
        report = audit_session(daemon.store, daemon.runner.peripherals, session)
        assert report.clean, report.to_dict()


async def test_a_flood_of_tool_checks_is_rate_limited_like_tool_actions(tmp_path: Path) -> None:
    async with native_daemon(tmp_path, ws__max_frames_per_s=2, ws__burst=3) as daemon, \
            aiohttp.ClientSession() as http, connected(http, daemon, "codex-1") as agent:  # fmt: skip
        session = await start(agent, "explore")  # the bucket (3) held ready's token and this one
        frames = 40
        for n in range(frames):
            await agent.send(
                {"type": "tool_check", "kind": "command", "command": "ls", "req_id": f"f{n}"}
            )
        answers: dict[str, dict[str, Any]] = {}
        while len(answers) < frames:  # answered in any order: rate refusals come at once
            frame = await agent.recv()
            answers[frame["req_id"]] = frame
        replies = [answers[f"f{n}"] for n in range(frames)]
        limited = [r for r in replies if r["type"] == "error" and r["code"] == "rate-limited"]
        checked = [r for r in replies if r["type"] == "tool_checked"]
        assert limited, "a flood of tool_check frames was not rate-limited"
        assert len(limited) + len(checked) == frames, replies
        assert len(of_claim(daemon, session, "step")) == len(
            checked
        )  # each admitted check: one step
        assert not agent.ws.closed  # refused, not dropped: 40 is far from RATE_IGNORED_AFTER
