"""Issue 13, first wall: the argument allowlists of bash-git and bash-test.

Each attack is an agent on the WS surface of a real daemon sending a
``tool_action`` that used to pass: git options abbreviated so the check did
not see them (git expands unique prefixes: ``--receive-pac=…`` is
``--receive-pack=…``), git reading files outside the workspace, and test
commands that only had to START with an allowed command (``make test -f
<makefile the agent wrote>``, ``pytest -p <plugin the agent wrote>``,
``pytest --junitxml=<outside>``). Each must be refused ``out-of-scope``
and nothing may have run: the marker the payload would create does not
exist, and the arena's walls held. Where a payload is cheap to prove, a
control runs it directly (no futon) and shows it works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import Arena
from tests.transports.kit import AgentClient

_GIT_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent"}


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, env=_GIT_ENV, capture_output=True, text=True, timeout=30, check=False)


def _make_repo(arena: Arena) -> Path:
    """The workspace becomes a repository with one commit and a remote
    ``origin``: a bare repository inside the workspace (untracked), because
    the deploy peripheral's sandbox would not let git reach one outside."""
    ws = arena.workspace
    remote = ws / "remote.git"
    for args in (
        ("init", "-q", "-b", "main", "."),
        ("config", "user.email", "agent@example.org"),
        ("config", "user.name", "agent"),
        ("add", "-A"),
        ("commit", "-q", "-m", "init"),
        ("init", "-q", "--bare", str(remote)),
        ("remote", "add", "origin", str(remote)),
    ):
        done = _git(ws, *args)
        assert done.returncode == 0, done.stderr
    return remote


def _assert_refused(reply: dict[str, Any], fragment: str = "") -> None:
    assert reply["type"] == "error", f"the action was not refused: {reply}"
    assert reply["code"] == "out-of-scope", reply
    assert fragment in reply["message"], reply["message"]


# ------------------------------------------------------------------- git


@pytest.mark.parametrize("option", ["--receive-pac", "--exe"])
async def test_an_abbreviated_push_option_cannot_run_a_program(arena: Arena, option: str) -> None:
    _make_repo(arena)
    marker = arena.outside / "pushed-payload"
    command = f"git push '{option}=touch {marker}' origin main"

    # Control: git itself expands the prefix and runs the program.
    control = arena.folder / "control-marker"
    _git(arena.workspace, "push", f"{option}=touch {control}", "origin", "main")
    assert control.exists(), "the payload does not work: this test would prove nothing"

    async with arena.agent() as agent:
        await arena.start(agent, "deploy")
        _assert_refused(await arena.tool(agent, "bash-git", command), "--receive-pack" if "rec" in option else "--exec")
        # Written out in full it is refused too, and the push did not happen.
        _assert_refused(await arena.tool(agent, "bash-git", f"git push '--receive-pack=touch {marker}' origin main"))
    assert not marker.exists()
    arena.assert_walls_held()


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("git diff --no-index {sentinel} README.md", "--no-index"),
        ("git diff --no-ind {sentinel} README.md", "--no-index"),
        ("git diff {sentinel} README.md", "absolute"),  # an implicit --no-index
        ("git diff -- ../outside/sentinel.txt", "'..'"),
        ("git show HEAD:../outside/sentinel.txt", "'..'"),
        ("git tag -F {sentinel} leaked", "-F"),
        ("git tag -aF {sentinel} leaked", "-F"),
        ("git commit --allow-empty --fi={sentinel}", "--file"),
        ("git commit --allow-empty -t {sentinel}", "-t"),
        ("git diff -O{sentinel}", "-O"),
    ],
)
async def test_git_cannot_read_a_file_outside_the_workspace(arena: Arena, template: str, fragment: str) -> None:
    _make_repo(arena)
    async with arena.agent() as agent:
        await arena.start(agent, "deploy")
        reply = await arena.tool(agent, "bash-git", template.format(sentinel=arena.sentinel))
        _assert_refused(reply, fragment)
        arena.assert_no_secret(reply)
    assert _git(arena.workspace, "tag", "-l").stdout == "", "a tag was created"
    assert _git(arena.workspace, "rev-list", "--count", "HEAD").stdout.strip() == "1", "a commit was made"
    arena.assert_walls_held()


@pytest.mark.parametrize(
    "template",
    [
        "git diff --outp={outside}/diff.txt HEAD",
        "git log -p --output={outside}/log.txt",
        "git show --output={outside}/show.txt",
        "git -c core.pager='touch {outside}/paged' log",
        "git log -c core.pager='touch {outside}/paged'",
        "git --exec-path={outside} status",
        "git -C {outside} status",
        "git --git-dir={outside} status",
        "git push --repo={outside}/elsewhere.git main",
        "git push {outside}/elsewhere.git main",
        "git push ext::touch main",
    ],
)
async def test_git_cannot_write_or_run_anything_outside(arena: Arena, template: str) -> None:
    _make_repo(arena)
    async with arena.agent() as agent:
        await arena.start(agent, "deploy")
        _assert_refused(await arena.tool(agent, "bash-git", template.format(outside=arena.outside)))
    arena.assert_walls_held()


async def test_ordinary_deploy_git_still_runs(arena: Arena) -> None:
    remote = _make_repo(arena)
    (arena.workspace / "src" / "app.py").write_text("def add(a, b):\n    return b + a\n")
    async with arena.agent() as agent:
        await arena.start(agent, "deploy")
        for command in ("git status --short", "git add src/app.py", "git commit -m 'swap'", "git tag -a v1 -m v1", "git push --follow-tags origin main"):
            reply = await arena.tool(agent, "bash-git", command)
            assert reply["type"] == "tool_result" and reply["ok"], reply
            assert reply["result"]["exit"] == 0, (command, reply["result"])
    assert _git(remote, "tag", "-l").stdout.split() == ["v1"]
    arena.assert_walls_held()


# ------------------------------------------------------------------- tests


async def _write_then_test(agent: AgentClient, arena: Arena, files: dict[str, str]) -> None:
    """Write ``files`` as the edit peripheral may, then hop to test."""
    await arena.start(agent, "edit")
    for path, text in files.items():
        wrote = await arena.tool(agent, "write", path, text)
        assert wrote["type"] == "tool_result" and wrote["ok"], wrote
    hopped = await agent.ask({"type": "hop", "to": "test", "exit_condition": "hop-test", "reason": "run the suite"})
    assert hopped["type"] == "hopped", hopped


async def test_make_runs_only_the_projects_own_test_target(arena: Arena) -> None:
    marker = arena.outside / "made"
    makefile = f"test:\n\ttouch {marker}\n"
    if shutil.which("make"):
        # Control: make runs a makefile named with -f, wherever it stands.
        (arena.folder / "control.mk").write_text(f"test:\n\ttouch {arena.folder / 'control-made'}\n")
        subprocess.run(["make", "-f", str(arena.folder / "control.mk"), "test"], cwd=arena.folder, capture_output=True, check=False, timeout=30)
        assert (arena.folder / "control-made").exists()
    async with arena.agent() as agent:
        await _write_then_test(agent, arena, {"scripts/x.mk": makefile})
        for command in ("make test -f scripts/x.mk", "make -f scripts/x.mk test", "make test --file=scripts/x.mk", f"make test MAKEFILES={marker}"):
            _assert_refused(await arena.tool(agent, "bash-test", command), "not one of the configured test commands")
    assert not marker.exists()
    arena.assert_walls_held()


async def test_pytest_cannot_load_a_plugin_the_agent_wrote(arena: Arena) -> None:
    marker = arena.outside / "plugin-ran"
    plugin = f"open({str(marker)!r}, 'w').close()\n"
    (arena.folder / "control").mkdir()
    (arena.folder / "control" / "evil_control.py").write_text(f"open({str(arena.folder / 'control-plugin')!r}, 'w').close()\n")
    # Control: -p imports the module, which runs its code.
    subprocess.run([sys.executable, "-m", "pytest", "-p", "evil_control", "--co", "-q"], cwd=arena.folder / "control", capture_output=True, check=False, timeout=120)
    assert (arena.folder / "control-plugin").exists()
    async with arena.agent() as agent:
        await _write_then_test(agent, arena, {"scripts/evil.py": plugin, "scripts/args.txt": "-p scripts.evil\n"})
        for command in (
            "python3 -m pytest -p scripts.evil tests",
            "python3 -m pytest tests -p scripts.evil",
            "python3 -m pytest -pscripts.evil tests",
            "python3 -m pytest @scripts/args.txt",
        ):
            _assert_refused(await arena.tool(agent, "bash-test", command))
    assert not marker.exists()
    arena.assert_walls_held()


@pytest.mark.parametrize(
    "template",
    [
        "pytest --junitxml={outside}/report.xml tests",
        "python3 -m pytest -q tests --junitxml={outside}/report.xml",
        "pytest tests --rootdir=/",
        "pytest -c {outside}/sentinel.txt tests",
        "pytest --confcutdir={outside} tests",
        "pytest --basetemp={outside}/tmp tests",
        "pytest ../outside/sentinel.txt",
        "pytest {outside}/sentinel.txt",
        "pytest tests/../../outside",
        "pytestx tests",
    ],
)
async def test_test_commands_take_only_paths_inside_the_workspace(arena: Arena, template: str) -> None:
    async with arena.agent() as agent:
        await arena.start(agent, "test")
        reply = await arena.tool(agent, "bash-test", template.format(outside=arena.outside))
        _assert_refused(reply)
        arena.assert_no_secret(reply)
    arena.assert_walls_held()


async def test_a_plain_test_run_is_still_admitted(arena: Arena) -> None:
    async with arena.agent() as agent:
        await arena.start(agent, "test")
        reply = await arena.tool(agent, "bash-test", "python3 -m pytest -q tests/test_app.py")
        assert reply["type"] == "tool_result", reply  # admitted; its exit code is the project's business
    arena.assert_walls_held()


async def test_deploy_commands_match_exactly(arena: Arena) -> None:
    async with arena.agent() as agent:
        await arena.start(agent, "deploy")
        _assert_refused(await arena.tool(agent, "bash-deploy", f"touch {arena.outside}/deployed"), "no deploy commands")
    arena.assert_walls_held()
