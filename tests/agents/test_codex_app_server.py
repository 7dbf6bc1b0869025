"""The ``codex-app-server`` driver: the real Codex (the version pinned in
agents-cli/package-lock.json) through its App Server, using its own shell
and patch tools, with every approval answered by the active peripheral.

The story: a human on the embedded IRC server asks codex-1 (routed to
explore) to fix src/app.py, in two messages. The fake Responses server
(tests/agents/fake_models.py) scripts the model: in explore it reads the
file with Codex's shell (futon admits it under bash-readonly; the command
runs and is recorded), tries a patch (declined: the file is unchanged, a
tension names the rule) and hops to edit through futon's MCP tool. The
second message's turn runs under the edit policy: a patch inside src/ is
applied, one outside the scope is declined; it hops to test, where the
configured test command runs and ``rm -rf src`` is declined. joe sees the
answers in the channel; one session chain holds the native steps, the
refusals and the items.

The bad-input tests drive a stand-in App Server (tests/agents/codex_app_kit.py,
a real process) that asks an unknown method, asks approval for an item it
never announced, floods garbage, or dies mid-turn.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from futon.agents.client import AgentClient
from futon.agents.drivers import make_driver
from futon.agents.drivers.base import DriverError, ModelMessage
from futon.agents.drivers.codex_app import models as m
from futon.agents.drivers.codex_app import schema
from futon.agents.drivers.codex_app_server import CodexAppServerDriver, line_counts, unwrap_shell
from futon.config.models import SandboxSpec
from futon.daemon.app import Daemon
from futon.evidence import EvidenceQuery
from futon.peripherals.spec import Peripheral
from tests.agents.fake_models import Answer, FakeModel, FakeResponses, Use
from tests.mcp.kit import ws_url
from tests.support import futon_env, until
from tests.transports.irc.kit import RawClient
from tests.transports.kit import base_url, running_daemon

AGENTS_CLI = Path(__file__).resolve().parents[2] / "agents-cli"
CODEX = AGENTS_CLI / "node_modules" / ".bin" / "codex"
KIT = Path(__file__).with_name("codex_app_kit.py")
PYTEST = f"{sys.executable} -m pytest"
AGENT = "codex-1"


@pytest.fixture
def private_home() -> Iterator[Path]:
    """A HOME under /var/tmp (Codex's sandbox refuses one under /tmp)."""
    folder = Path(tempfile.mkdtemp(prefix="futon-codex-app-", dir="/var/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def require_codex() -> None:
    if not os.access(CODEX, os.X_OK):
        pytest.fail(
            f"{CODEX} is missing: `make test` installs the pinned CLIs (npm ci in agents-cli/)"
        )


# ------------------------------------------------------------------ the schema


def _properties(definition: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(properties, required) of a definition (object or oneOf of objects)."""
    variants = definition.get("oneOf") or [definition]
    props: set[str] = set(definition.get("properties") or {})
    required: set[str] = set(definition.get("required") or [])
    for variant in variants:
        props |= set(variant.get("properties") or {})
    return props, required


def _literals(annotation: Any) -> set[str]:
    found: set[str] = set()
    if typing.get_origin(annotation) is typing.Literal:
        found |= {str(a) for a in typing.get_args(annotation)}
    for arg in typing.get_args(annotation):
        found |= _literals(arg)
    return found


def _enum(definition: dict[str, Any]) -> set[str]:
    values: set[str] = set(definition.get("enum") or [])
    for variant in definition.get("oneOf") or definition.get("anyOf") or []:
        values |= set(variant.get("enum") or [])
    return values


def test_the_kept_schema_and_the_models_match_the_pinned_binary(private_home: Path) -> None:
    require_codex()
    out = private_home / "schema"
    done = subprocess.run(
        [str(CODEX), "app-server", "generate-json-schema", "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "CODEX_HOME": str(private_home), "HOME": str(private_home)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    fresh = schema.subset(out)
    kept = schema.kept()
    assert kept == json.loads(json.dumps(fresh)), "schema-0.169.0.json differs from the binary's"
    assert kept["version"] == schema.PINNED_VERSION
    assert set(kept["client_requests"]) == set(schema.CLIENT_REQUESTS)
    assert set(kept["notifications"]) == set(schema.NOTIFICATIONS)
    definitions = kept["definitions"]
    for model, name in m.SCHEMA_NAMES.items():
        props, required = _properties(definitions[name])
        aliases = {field.alias or key for key, field in model.model_fields.items()}
        assert aliases <= props, (name, aliases - props)
        if model in m.OUTGOING:
            assert required <= aliases, (name, required - aliases)
    # The literals futon sends are values of the schema's enums.
    assert _literals(m.Decision) <= _enum(definitions["CommandExecutionApprovalDecision"])
    assert _literals(m.Decision) <= _enum(definitions["FileChangeApprovalDecision"])
    assert _literals(m.ApprovalPolicy) <= _enum(definitions["AskForApproval"])
    assert _literals(m.SandboxMode) == _enum(definitions["SandboxMode"])
    sandboxes = {v["properties"]["type"]["enum"][0] for v in definitions["SandboxPolicy"]["oneOf"]}
    assert {"readOnly", "workspaceWrite"} <= sandboxes
    items = {v["properties"]["type"]["enum"][0] for v in definitions["ThreadItem"]["oneOf"]}
    assert set(m.ITEM_MODELS) <= items
    # Every server→client request of the version is one futon answers, or
    # answers -32601 knowingly (dynamic tools, auth refreshes, v1 approvals).
    assert set(kept["server_requests"]) == {
        "item/commandExecution/requestApproval", "item/fileChange/requestApproval",
        "item/permissions/requestApproval", "mcpServer/elicitation/request",
        "item/tool/requestUserInput", "item/tool/call", "account/chatgptAuthTokens/refresh",
        "attestation/generate", "applyPatchApproval", "execCommandApproval",
    }  # fmt: skip


def fake_codex(folder: Path, version: str | None = None) -> str:
    """An executable ``codex`` that runs the kit (and prints ``version``),
    in a folder of its own (the driver shows that folder in its sandbox)."""
    path = folder / "fakebin" / "codex"
    path.parent.mkdir(exist_ok=True)
    kit = shutil.copy(KIT, path.parent)
    pin = f"FAKE_APP_VERSION={version} " if version else ""
    path.write_text(f'#!/bin/sh\n{pin}exec {sys.executable} {kit} "$@"\n')
    path.chmod(0o755)
    return str(path)


def test_another_codex_version_is_refused_naming_both(tmp_path: Path) -> None:
    other = fake_codex(tmp_path, "0.170.1")
    with pytest.raises(ValueError) as refused:
        make_driver("codex-app-server", cli=other, workspace=str(tmp_path), env={})
    assert "0.170.1" in str(refused.value) and schema.PINNED_VERSION in str(refused.value)
    # As a user meets it: futon agent run refuses to start, naming both.
    done = subprocess.run(
        [sys.executable, "-m", "futon", "agent", "run", AGENT, "--driver", "codex-app-server",
         "--cli", other, "--url", "ws://127.0.0.1:9/agency/ws"],
        capture_output=True, text=True, timeout=60, env=futon_env(), check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "0.170.1" in done.stderr and schema.PINNED_VERSION in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_shell_wrappers_and_diff_counts() -> None:
    assert unwrap_shell("/bin/bash -lc 'cat src/a.py'") == "cat src/a.py"
    assert unwrap_shell("bash -c 'rm -rf src'") == "rm -rf src"
    assert unwrap_shell("ls -la") == "ls -la"
    assert unwrap_shell("unbalanced 'quote") == "unbalanced 'quote"
    update = m.FileUpdateChange.model_validate({
        "path": "a", "kind": {"type": "update"},
        "diff": "--- a\n+++ a\n@@ -1 +1,2 @@\n-x\n+y\n+z\n",
    })  # fmt: skip
    assert line_counts(update) == (2, 1)
    added = m.FileUpdateChange.model_validate(
        {"path": "b", "kind": {"type": "add"}, "diff": "1\n2\n"}
    )
    assert line_counts(added) == (2, 0)


# ------------------------------------------------------------------ bad input (a stand-in App Server)


async def _driver_and_client(
    daemon: Daemon, binary: str, home: Path
) -> tuple[CodexAppServerDriver, AgentClient]:
    """The driver (CODEX_HOME = ``home``: the kit logs what it reads to
    home/received.jsonl and takes its mode from home/mode) and its client."""
    client = AgentClient(ws_url(daemon), AGENT)
    await client.connect()
    driver = CodexAppServerDriver(
        cli=binary, workspace=str(daemon.config.workspace), timeout_s=30, home=str(home)
    )
    driver.bind(client)
    return driver, client


def _ask(text: str) -> list[ModelMessage]:
    return [ModelMessage("system", "be brief"), ModelMessage("user", text)]


async def test_unknown_requests_unseen_items_and_garbage_do_not_stop_the_turn(
    tmp_path: Path,
) -> None:
    home = tmp_path / "codex-home"
    log = home / "received.jsonl"
    async with running_daemon(tmp_path) as daemon:
        workspace = daemon.config.workspace.resolve()
        driver, client = await _driver_and_client(daemon, fake_codex(tmp_path), home)
        try:
            turn = await asyncio.wait_for(driver.complete(_ask("hello"), []), 60)
        finally:
            await driver.aclose()
            await client.close()
    assert turn.text == "still here"
    received = [json.loads(line) for line in log.read_text().splitlines()]
    answers = {r["id"]: r for r in received if "method" not in r}
    assert answers[100]["error"]["code"] == -32601  # unknown method: an error, the turn goes on
    assert answers[101]["result"] == {"decision": "decline"}  # an item never announced
    # codex agents are routed to edit: workspace-write, the scope's paths writable.
    start = next(r for r in received if r.get("method") == "turn/start")["params"]
    assert start["approvalPolicy"] == "untrusted"
    roots = [str(workspace / p) for p in ("src", "docs", "scripts")]
    assert start["sandboxPolicy"] == {
        "type": "workspaceWrite", "writableRoots": roots, "networkAccess": False,
        "excludeSlashTmp": True, "excludeTmpdirEnvVar": True,
    }  # fmt: skip
    thread = next(r for r in received if r.get("method") == "thread/start")["params"]
    assert thread["cwd"] == str(workspace)


async def test_a_flood_of_garbage_or_a_dying_app_server_ends_the_turn_and_the_next_restarts_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "codex-home"
    home.mkdir()
    async with running_daemon(tmp_path) as daemon:
        driver, client = await _driver_and_client(daemon, fake_codex(tmp_path), home)
        try:
            (home / "mode").write_text("flood")
            with pytest.raises(DriverError, match="not JSON-RPC"):
                await asyncio.wait_for(driver.complete(_ask("one"), []), 60)
            (home / "mode").write_text("die")
            with pytest.raises(DriverError, match=r"stopped mid-turn.*exited \(3\)"):
                await asyncio.wait_for(driver.complete(_ask("two"), []), 60)
            (home / "mode").write_text("mixed")
            turn = await asyncio.wait_for(driver.complete(_ask("three"), []), 60)
        finally:
            await driver.aclose()
            await client.close()
    assert turn.text == "still here"
    starts = [
        json.loads(line)
        for line in (home / "received.jsonl").read_text().splitlines()
        if '"initialize"' in line
    ]
    assert len(starts) == 3  # a new process for each turn after a failure


async def test_futons_interrupt_sends_turn_interrupt_and_the_next_message_starts_afresh(
    tmp_path: Path,
) -> None:
    home = tmp_path / "codex-home"
    home.mkdir()
    log = home / "received.jsonl"
    log.touch()
    mode = home / "mode"  # read at each turn: the process lives on after an interrupt
    mode.write_text("hang")
    async with running_daemon(tmp_path) as daemon:
        driver, client = await _driver_and_client(daemon, fake_codex(tmp_path), home)
        try:
            turn = asyncio.ensure_future(driver.complete(_ask("take your time"), []))
            await until(lambda: "turn/start" in log.read_text(), timeout=30, what="the turn")
            runner = daemon.runner
            assert runner is not None
            session = runner.infos(AGENT, 1)[0].session_id
            async with aiohttp.ClientSession() as http:  # an admin's interrupt (issue 17)
                url = f"{base_url(daemon)}/api/alpha/sessions/{session}/interrupt"
                async with http.post(url) as stopped:
                    assert stopped.status == 200, await stopped.text()
            with pytest.raises(DriverError, match="interrupted the session"):
                await asyncio.wait_for(turn, 30)
            mode.write_text("mixed")
            again = await asyncio.wait_for(driver.complete(_ask("again"), []), 60)
            later = runner.infos(AGENT, 1)[0].session_id
        finally:
            await driver.aclose()
            await client.close()
    assert again.text == "still here"
    assert later != session  # a new session (and thread) after the interrupt
    received = [json.loads(line) for line in log.read_text().splitlines()]
    interrupts = [r["params"] for r in received if r.get("method") == "turn/interrupt"]
    assert interrupts == [{"threadId": "th-1", "turnId": "tu-1"}]
    assert [r.get("method") for r in received].count("thread/start") == 2


async def test_a_cancelled_turn_the_runtimes_budget_sends_turn_interrupt(
    tmp_path: Path,
) -> None:
    home = tmp_path / "codex-home"
    home.mkdir()
    log = home / "received.jsonl"
    (home / "mode").write_text("hang")
    async with running_daemon(tmp_path) as daemon:
        driver, client = await _driver_and_client(daemon, fake_codex(tmp_path), home)
        try:
            turn = asyncio.ensure_future(driver.complete(_ask("take your time"), []))
            # Once Codex has named the turn (the runtime's budget cancels like this):
            await until(lambda: driver._turn is not None and driver._turn.turn_id, timeout=30)
            turn.cancel()
            with pytest.raises(asyncio.CancelledError):
                await turn
            alive = driver.rpc is not None and driver.rpc.alive
        finally:
            await driver.aclose()
            await client.close()
    received = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["params"] for r in received if r.get("method") == "turn/interrupt"] == [
        {"threadId": "th-1", "turnId": "tu-1"}
    ]
    assert alive  # the App Server answered; it stays for the next message


async def test_a_hop_that_changes_the_view_restarts_the_app_server_and_carries_the_thread(
    tmp_path: Path,
) -> None:
    """A new view is a new process; the kit cannot ``thread/resume`` (it
    answers -32601), so the driver starts a new thread carrying the last
    answer. (The real Codex resumes: the story test below.)"""
    home = tmp_path / "codex-home"
    home.mkdir()
    log = home / "received.jsonl"
    async with running_daemon(tmp_path) as daemon:
        driver, client = await _driver_and_client(daemon, fake_codex(tmp_path), home)
        try:
            first = await asyncio.wait_for(driver.complete(_ask("one"), []), 60)
            edit_view = driver.view
            driver.hopped("explore", ["read", "glob", "grep", "bash-readonly"])  # as futon_hop does
            second = await asyncio.wait_for(driver.complete(_ask("two"), []), 60)
            explore_view = driver.view
        finally:
            await driver.aclose()
            await client.close()
    assert first.text == second.text == "still here"
    assert edit_view is not None and explore_view is not None
    workspace = tmp_path.resolve() / "ws"
    assert edit_view.writable == tuple(workspace / p for p in ("src", "docs", "scripts"))
    assert explore_view.writable == ()  # read-only: nothing of the workspace writable
    received = [json.loads(line) for line in log.read_text().splitlines()]
    methods = [r.get("method") for r in received]
    assert methods.count("initialize") == 2  # a new process in the new view
    resumed = next(r for r in received if r.get("method") == "thread/resume")["params"]
    assert resumed["threadId"] == "th-1"
    starts = [r["params"] for r in received if r.get("method") == "thread/start"]
    assert len(starts) == 2 and "still here" in starts[1]["developerInstructions"]
    turns = [r["params"] for r in received if r.get("method") == "turn/start"]
    assert turns[1]["sandboxPolicy"]["type"] == "readOnly"


# ------------------------------------------------------------------ the story, with the real Codex


def patch(path: str, old: str | None, new: str) -> str:
    """An ``apply_patch`` heredoc, as Codex's shell recognises it."""
    if old is None:
        body = f"*** Add File: {path}\n+{new}\n"
    else:
        body = f"*** Update File: {path}\n@@\n-{old}\n+{new}\n"
    return f"apply_patch <<'EOF'\n*** Begin Patch\n{body}*** End Patch\nEOF\n"


def story() -> list[Any]:
    test_line = f"{PYTEST} -q -p no:cacheprovider tests"
    return [
        # turn 1, explore
        Use("exec_command", {"cmd": "cat src/app.py"}, expect="return a - b"),
        Use("exec_command", {"cmd": patch("src/app.py", "    return a - b", "    return a + b")}),
        Use("futon_hop", {"to": "edit", "exit_condition": "found-target", "reason": "fix add"},
            expect="edit"),
        Answer("found it: src/app.py subtracts; moving to edit"),
        # turn 2, edit then test
        Use("exec_command", {"cmd": patch("src/app.py", "    return a - b", "    return a + b")}),
        Use("exec_command", {"cmd": patch("NOTES.md", None, "outside the scope")}),
        Use("futon_hop", {"to": "test", "exit_condition": "hop-test", "reason": "run the suite"},
            expect="test"),
        Use("exec_command", {"cmd": test_line}, expect="passed"),
        Use("exec_command", {"cmd": "rm -rf src"}),
        Answer("fixed src/app.py; tests pass"),
    ]  # fmt: skip


async def test_codex_works_with_its_own_tools_inside_the_envelope(
    tmp_path: Path, private_home: Path
) -> None:
    require_codex()
    async with running_daemon(
        tmp_path, irc__server__enabled=True, irc__server__port=0,
        tools__test_commands=[f"{PYTEST} -q -p no:cacheprovider {{paths}}"],
    ) as daemon:  # fmt: skip
        daemon.registry.routing["codex"] = "explore"
        runner = daemon.runner
        assert runner is not None
        test = runner.peripherals["test"]
        extras = SandboxSpec(read_only=sorted({sys.prefix, sys.base_prefix}))
        runner.peripherals["test"] = Peripheral(
            "test", test.spec.model_copy(update={"sandbox": extras})
        )
        workspace = daemon.config.workspace
        (workspace / "tests").mkdir(exist_ok=True)
        (workspace / "tests" / "test_app.py").write_text(
            "import pathlib, sys\nsys.path.insert(0, str(pathlib.Path(__file__).parent.parent / 'src'))\n"
            "from app import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"
        )
        model = await FakeResponses(story()).start()
        lines, log = await ask_twice(daemon, model, private_home, tmp_path / "cfg" / "futon.yaml")
        store = daemon.store
        assert store is not None
        mine = list(reversed(store.query(EvidenceQuery(author=AGENT, limit=500)).entries))
        app = (workspace / "src" / "app.py").read_text()
        notes = (workspace / "NOTES.md").exists()
        src_there = (workspace / "src").is_dir()

    assert model.problems == [], (model.results, log)
    assert lines == [
        "joe: found it: src/app.py subtracts; moving to edit",
        "joe: fixed src/app.py; tests pass",
    ], (model.results, log)
    # Codex was offered its own shell and only futon's three MCP tools.
    offered = set(model.offered[0])
    assert "exec_command" in offered, offered
    futon_tools = {name for name in offered if name.startswith("mcp__futon")}
    assert futon_tools == {"mcp__futon__futon_hop", "mcp__futon__futon_reply",
                           "mcp__futon__futon_evidence"}, offered  # fmt: skip
    # Each turn ran under its peripheral's policy: the hop to edit made the
    # second turn workspace-write (Codex tells its model in the request).
    assert sandbox_mode(model.main[0]) == "read-only"
    second = next(i for i, body in enumerate(model.main) if "now fix it" in json.dumps(body))
    assert sandbox_mode(model.main[second]) == "workspace-write"
    # The hop changed the OS view: a new App Server in it, the same thread
    # resumed (the second turn's request carries the first turn's answer).
    assert "resumed thread" in log, log
    assert "found it: src/app.py subtracts" in json.dumps(model.main[second])
    # The workspace: the edit inside src/ applied, nothing outside, src/ still there.
    assert app == "def add(a, b):\n    return a + b\n"
    assert not notes and src_there
    # One session chain holds the native steps, the refusals and the items.
    sessions = {e.get("evidence/session-id") for e in mine if e["evidence/body"].get("native")}
    sessions.discard(None)
    assert len(sessions) == 1, sessions
    chain = [e for e in mine if e.get("evidence/session-id") in sessions]
    assert all(e["evidence/author"] == AGENT for e in chain)
    bodies = [(e.get("evidence/claim-type"), e["evidence/body"]) for e in chain]
    steps = [b["tool"] for claim, b in bodies if claim == "step" and b.get("native") is True]
    assert steps == ["bash-readonly", "write", "bash-test"], steps
    tensions = [(b["tool"], b["code"]) for claim, b in bodies if claim == "tension"]
    assert tensions == [
        ("write", "tool-not-allowed"),  # the patch in explore
        ("write", "out-of-scope"),  # NOTES.md in edit
        ("bash-test", "out-of-scope"),  # rm -rf src in test
    ], tensions
    hops = [
        b["to"]
        for e in chain
        if e["evidence/type"] == "mode-transition"
        for b in [e["evidence/body"]]
    ]
    assert hops == ["edit", "test"], hops
    items = [e["evidence/body"] for e in chain if isinstance(e["evidence/body"].get("native"), str)]
    kinds = [body["native"] for body in items]
    assert kinds.count("agent_message") == 2, kinds
    commands = [b for b in items if b["native"] == "command"]
    assert [c["status"] for c in commands][:1] == ["completed"], commands
    assert "return a - b" in commands[0]["output"], commands
    assert any(c["command"] == "rm -rf src" and c["status"] == "declined" for c in commands)
    assert any(c["command"].startswith(PYTEST) and c["exit_code"] == 0 for c in commands)
    changes = [b for b in items if b["native"] == "file_change"]
    assert [c["status"] for c in changes] == ["declined", "completed", "declined"], changes
    assert changes[1]["changes"][0]["added"] == 1 and changes[1]["changes"][0]["removed"] == 1


async def ask_twice(
    daemon: Daemon, model: FakeModel, home: Path, config: Path
) -> tuple[list[str], str]:
    """joe asks codex-1 in #futon twice (one turn each), the agent run by
    ``futon agent run --driver codex-app-server``; the lines it answers with."""
    env = {
        **futon_env(),
        "HOME": str(home),
        "OPENAI_API_KEY": "sk-fake-for-tests",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    joe = await RawClient.connect(daemon.ports["irc"])
    joe.auto_pong = True
    await joe.register("joe")
    await joe.join("#futon")
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "futon", "agent", "run", AGENT, "--driver", "codex-app-server",
        "--cli", str(CODEX), "--base-url", model.root + "/v1", "--model", "fake-model",
        "--url", ws_url(daemon), "--max-seconds", "150", "--config", str(config),
        env=env, cwd=home, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    lines: list[str] = []
    err = b""
    try:
        await until(lambda: daemon.ws is not None and daemon.ws.count, timeout=30, what="connected")
        for text in ("src/app.py looks wrong, please look", "now fix it and run the tests"):
            await joe.send(f"PRIVMSG #futon :{AGENT}: {text}")
            answer = await joe.expect("PRIVMSG", timeout=170)
            lines.append(answer.params[1])
    finally:
        agent.terminate()
        _, err = await asyncio.wait_for(agent.communicate(), 30)
        await model.close()
        await joe.close()
    return lines, err.decode("utf-8", "replace")[-4000:]


def sandbox_mode(body: dict[str, Any]) -> str | None:
    """The sandbox mode Codex last told its model about in a request."""
    found = re.findall(r"`sandbox_mode` is `([a-z-]+)`", json.dumps(body))
    return found[-1] if found else None
