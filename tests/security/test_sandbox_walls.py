"""Issue 13: every process a tool starts runs in a sandbox whose view of the
filesystem is the scope.

Each attack is an agent on the WS surface of a real daemon, running a
process tool in a peripheral that has it (proof/mission/edit ``bash``,
explore ``bash-readonly``, test ``bash-test`` with a planted conftest.py,
deploy ``bash-git`` with a planted hook). The payload tries every way out
at once: read and overwrite the sentinel outside the workspace, create a
file beside it, read the daemon's environment (``env``, ``/proc/1`` and
``/proc/<ppid>/environ``, every ``/proc/*/environ``), read ``/etc/shadow``,
list ``/root`` and ``/home``, connect to the loopback listener (bash's
``/dev/tcp``, a python socket). Afterwards the arena's walls must hold and
no reply may carry the secret or the sentinel's text. Before the sandbox,
``bash`` in a full-codebase scope ran as plain ``bash -c`` with the
daemon's rights and every one of these succeeded.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from futon.config.loader import load_config
from futon.daemon.app import Daemon
from tests.security.conftest import SENTINEL_TEXT, Arena
from tests.support import make_config
from tests.transports.kit import AgentClient

MARK = "__ran__"


def attack(arena: Arena) -> str:
    """A bash script trying every way out; prints what it got."""
    port = arena.listener_port
    return f"""
cat {arena.sentinel}
echo pwned > {arena.sentinel}
touch {arena.outside}/planted
cat /proc/1/environ /proc/$PPID/environ /proc/self/environ | tr '\\0' '\\n'
for p in /proc/[0-9]*; do cat $p/environ; done 2>/dev/null | tr '\\0' '\\n'
env
cat /etc/shadow
ls /root /home
echo x > /dev/tcp/127.0.0.1/{port}
python3 -c "import socket; socket.create_connection(('127.0.0.1', {port}), 2)"
echo {MARK}
"""


def python_attack(arena: Arena) -> str:
    """The same from Python (a planted conftest.py); what it got goes to
    ``attack.out`` in the workspace (pytest captures its stdout)."""
    return f"""
import glob, os, socket

REPORT = open("attack.out", "w")

def attempt(what, fn):
    try:
        print(what, "->", fn(), file=REPORT, flush=True)
    except Exception as exc:
        print(what, "failed:", type(exc).__name__, file=REPORT, flush=True)

attempt("sentinel", lambda: open({str(arena.sentinel)!r}).read())
attempt("overwrite", lambda: open({str(arena.sentinel)!r}, "w").write("pwned"))
attempt("plant", lambda: open({str(arena.outside / "planted")!r}, "w").write("x"))
attempt("environ", lambda: [open(p, "rb").read() for p in glob.glob("/proc/*/environ")])
attempt("ppid", lambda: open("/proc/%d/environ" % os.getppid(), "rb").read())
attempt("env", lambda: dict(os.environ))
attempt("shadow", lambda: open("/etc/shadow").read())
attempt("root", lambda: os.listdir("/root"))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", {arena.listener_port}), 2))
print({MARK!r}, file=REPORT, flush=True)
"""


def _test_sandbox_extras() -> list[str]:
    """What the arena gave the test peripheral's sandbox read-only."""
    return sorted({sys.prefix, sys.base_prefix})


async def _settle(arena: Arena) -> None:
    # A connection the payload made is accepted on this loop: let it run
    # before the listener's count is read. A few loop turns, not a wait for an
    # event: what is asserted next is an absence (no hit), which nothing announces.
    for _ in range(5):
        await asyncio.sleep(0.02)


def assert_contained(arena: Arena, reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["type"] == "tool_result" and reply["ok"], reply
    result = reply["result"]
    assert MARK in result["out"], f"the payload did not run to its end: {result}"
    arena.assert_no_secret(result["out"], result["err"])
    text = result["out"] + result["err"]
    assert not any(line.startswith("root:") for line in text.splitlines()), "/etc/shadow was read"
    return result


# The cycle peripherals allow bash in their execute phase only: the way
# there (item upsert, cycle-begin, two advances).
_TO_EXECUTE = {
    "proof": ("ledger-upsert", "P1", "L1"),
    "mission": ("obligation-upsert", "M1", "O1"),
}


async def start_bash(arena: Arena, agent: AgentClient, peripheral: str) -> None:
    """Start ``peripheral`` and bring it to where ``bash`` is allowed."""
    await arena.start(agent, peripheral)
    if peripheral not in _TO_EXECUTE:
        return
    upsert, owner, item = _TO_EXECUTE[peripheral]
    steps: list[tuple[str, list[Any]]] = [
        (upsert, [owner, item, {"status": "open"}]),
        ("cycle-begin", [owner, item]),
        ("cycle-advance", [owner, "c-1", {"observations": ["x"]}]),
        ("cycle-advance", [owner, "c-1", {"proposal": {"approach": "y"}}]),
    ]
    for tool, args in steps:
        reply = await arena.tool(agent, tool, *args)
        assert reply["type"] == "tool_result" and reply["ok"], (tool, reply)


@pytest.mark.parametrize("peripheral", ["proof", "mission", "edit"])
async def test_bash_sees_only_its_scope(arena: Arena, peripheral: str) -> None:
    async with arena.agent() as agent:
        await start_bash(arena, agent, peripheral)
        reply = await arena.tool(agent, "bash", attack(arena))
        result = assert_contained(arena, reply)
    assert "No such file or directory" in result["err"]  # /root, /home, the sentinel
    await _settle(arena)
    arena.assert_walls_held()


async def test_explore_bash_readonly_sees_only_its_scope(arena: Arena) -> None:
    async with arena.agent() as agent:
        await arena.start(agent, "explore")
        reply = await arena.tool(agent, "bash-readonly", attack(arena))
        assert_contained(arena, reply)
    await _settle(arena)
    arena.assert_walls_held()


async def test_edit_bash_writes_only_its_paths(arena: Arena) -> None:
    ws = arena.workspace
    async with arena.agent() as agent:
        await arena.start(agent, "edit")
        reply = await arena.tool(
            agent,
            "bash",
            "echo new > src/new.py; echo x > README.md; echo y > tests/test_app.py; "
            f"mkdir -p .git/hooks; echo z > ../planted; echo {MARK}",
        )
        assert_contained(arena, reply)
    assert (ws / "src" / "new.py").read_text() == "new\n"
    assert (ws / "README.md").read_text() == "hello\n"
    assert "def test_add" in (ws / "tests" / "test_app.py").read_text()
    assert not (ws / ".git").exists() and not (ws.parent / "planted").exists()
    arena.assert_walls_held()


async def test_a_planted_conftest_runs_inside_the_sandbox(arena: Arena) -> None:
    """The test peripheral runs the project's own code: a conftest.py an
    earlier step planted runs, but inside the same walls."""
    (arena.workspace / "tests" / "conftest.py").write_text(python_attack(arena))
    async with arena.agent() as agent:
        await arena.start(agent, "test")
        reply = await arena.tool(agent, "bash-test", "python3 -m pytest tests/test_app.py")
        assert reply["type"] == "tool_result" and reply["ok"], reply
        result = reply["result"]
    assert "1 passed" in result["out"], result  # pytest itself ran, in the sandbox
    report = (arena.workspace / "attack.out").read_text()
    assert MARK in report, report
    assert "sentinel failed" in report and "connect failed" in report, report
    lines = report.splitlines()
    # /etc/shadow is an empty mask; /root shows at most the path down to
    # the interpreter this arena's test sandbox was given read-only.
    assert "shadow -> " in lines or "shadow failed: PermissionError" in lines, report
    widened = sorted({Path(p).parts[2] for p in _test_sandbox_extras() if p.startswith("/root/")})
    assert "root failed: FileNotFoundError" in lines or f"root -> {widened}" in lines, report
    arena.assert_no_secret(result["out"], result["err"], report)
    await _settle(arena)
    arena.assert_walls_held()


@pytest.mark.parametrize(
    "command",
    [
        "python3 -m pytest tests/test_app.py --junitxml={outside}/report.xml",
        "pytest tests/test_app.py --junitxml={outside}/report.xml",
        "python3 -m pytest tests/test_app.py --junitxml=/tmp/report.xml",
        "python3 -m pytest tests/test_app.py --basetemp={outside}/tmp",
        "python3 -m pytest tests/test_app.py {outside}",
    ],
)
async def test_pytest_options_cannot_write_outside(arena: Arena, command: str) -> None:
    """Refused by the allowlist or not: nothing lands outside the scope."""
    async with arena.agent() as agent:
        await arena.start(agent, "test")
        reply = await arena.tool(agent, "bash-test", command.format(outside=arena.outside))
        arena.assert_no_secret(reply)
    arena.assert_walls_held()


async def test_a_planted_git_hook_runs_inside_the_deploy_sandbox(arena: Arena) -> None:
    """proof's bash (full-codebase) plants a pre-commit hook; deploy's
    bash-git runs it — inside the sandbox: no host file, no secret.

    Deploy's sandbox shares the network on purpose (push), so this test
    does not count the listener; every other wall holds."""
    ws = arena.workspace
    hook = ws / ".git" / "hooks" / "pre-commit"
    script = attack(arena).replace(f"echo {MARK}", "").strip()
    async with arena.agent() as agent:
        await start_bash(arena, agent, "proof")
        setup = (
            "git init -q -b main . && git config user.email a@example.org && "
            "git config user.name agent && git add -A && git commit -qm init && "
            f"cat > {hook} <<'EOF'\n#!/bin/sh\n{script}\nexit 0\nEOF\n"
            f"chmod +x {hook} && echo change >> README.md && echo {MARK}"
        )
        assert_contained(arena, await arena.tool(agent, "bash", setup))
    async with arena.agent() as agent:
        await arena.start(agent, "deploy")
        add = await arena.tool(agent, "bash-git", "git add README.md")
        assert add["type"] == "tool_result" and add["result"]["exit"] == 0, add
        commit = await arena.tool(agent, "bash-git", "git commit -m change")
        assert commit["type"] == "tool_result", commit
        result = commit["result"]
        assert result["exit"] == 0, result  # the hook ran (and exited 0) in the sandbox
        arena.assert_no_secret(result["out"], result["err"])
    assert arena.sentinel.read_text() == SENTINEL_TEXT
    assert arena.outside_listing() == ["sentinel.txt"]


# ------------------------------------------------------------------ the daemon's own files


@asynccontextmanager
async def daemon_inside(tmp_path: Path) -> AsyncIterator[tuple[Arena, Path]]:
    """A daemon whose config folder and data directory lie INSIDE its
    workspace (``<ws>/cfg``, ``<ws>/cfg/var``)."""
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "sentinel.txt").write_text(SENTINEL_TEXT)
    config_path = make_config(ws / "cfg", workspace=str(ws), evidence__fsync="never")
    async with AsyncExitStack() as stack:
        daemon = Daemon(load_config(config_path))
        await daemon.start()
        stack.push_async_callback(daemon.stop)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        yield Arena(tmp_path, daemon, http), ws / "cfg"


async def _bash(arena: Arena, agent: AgentClient, peripheral: str, command: str) -> dict[str, Any]:
    await start_bash(arena, agent, peripheral)
    reply = await arena.tool(agent, "bash" if peripheral != "explore" else "bash-readonly", command)
    assert reply["type"] == "tool_result" and reply["ok"], reply
    return reply["result"]


@pytest.mark.parametrize("peripheral", ["proof", "explore"])
async def test_the_data_directory_and_config_are_invisible_inside_the_workspace(
    tmp_path: Path, peripheral: str
) -> None:
    async with daemon_inside(tmp_path) as (arena, cfg):
        before = {p: p.read_bytes() for p in cfg.glob("*.yaml")}
        data = cfg / "var"
        assert any(data.iterdir()), "the daemon wrote nothing into its data directory"
        listing = sorted(p.name for p in data.iterdir())
        async with arena.agent() as agent:
            result = await _bash(
                arena,
                agent,
                peripheral,
                "cat cfg/futon.yaml cfg/peripherals.yaml cfg/agents.yaml; ls -A cfg/var; "
                "cat cfg/var/* 2>/dev/null | head -c 2000; echo x > cfg/futon.yaml; "
                "rm -rf cfg/var/*; touch cfg/var/planted; echo done",
            )
        assert "done" in result["out"]
        text = result["out"]
        for name in listing:
            assert name not in text, f"the data directory's {name} was listed"
        assert "peripherals:" not in text and "data_dir" not in text, "a config file was read"
        assert {p: p.read_bytes() for p in cfg.glob("*.yaml")} == before
        # The daemon itself may have added state (the proof folder); the
        # tool removed nothing and planted nothing.
        after = sorted(p.name for p in data.iterdir())
        assert set(listing) <= set(after) and "planted" not in after
