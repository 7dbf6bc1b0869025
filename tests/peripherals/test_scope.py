"""Scope: paths resolve `..` and symlinks against the workspace before the
check; commands in the no-shell scopes are split into argv and any shell
syntax is refused. Nothing refused ever reaches the backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from futon.errors import FutonError, PermissionDenied, ProtocolError
from tests.peripherals.support import RecordingBackend, make_runner


async def refused(workspace: Path, peripheral: str, tool: str, args: Any, **settings: Any) -> FutonError:
    backend = RecordingBackend()
    runner = make_runner(workspace, backend, **settings)
    session = await runner.start("codex-1", peripheral)
    with pytest.raises(FutonError) as caught:
        await session.step(tool, args)
    assert backend.calls == [], "a refused action reached the backend"
    return caught.value


async def admitted(workspace: Path, peripheral: str, tool: str, args: Any, **settings: Any) -> RecordingBackend:
    backend = RecordingBackend()
    runner = make_runner(workspace, backend, **settings)
    session = await runner.start("codex-1", peripheral)
    assert (await session.step(tool, args)).ok
    assert backend.tools == [tool]
    return backend


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("read", ["../outside/secret.txt"]),
        ("read", ["src/../../outside/secret.txt"]),
        ("read", ["/etc/passwd"]),
        ("read", ["src/leak.txt"]),  # symlink to a file outside
        ("read", ["src/escape/secret.txt"]),  # through a symlinked directory
        ("grep", ["secret", "src/escape"]),
        ("glob", ["*", "/"]),
        ("glob", ["../*"]),
        ("glob", ["/etc/*"]),
        ("glob", ["src/../../*"]),
    ],
)
async def test_paths_that_resolve_outside_the_workspace_are_out_of_scope(workspace: Path, tool: str, args: list[Any]) -> None:
    error = await refused(workspace, "explore", tool, args)
    assert error.code == "out-of-scope"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["docs/guide.md", "Guide", "Manual"], None),  # docs/ is listed
        (["src/app.py", "a - b", "a + b"], None),
        (["README.md", "hello", "bye"], "out-of-scope"),  # workspace root is not listed
        (["tests/x.py", "a", "b"], "out-of-scope"),
        (["src-evil/x.py", "a", "b"], "out-of-scope"),  # a prefix of the name is not a prefix of the path
        (["src/escape/secret.txt", "secret", "x"], "out-of-scope"),
        (["src/../README.md", "hello", "x"], "out-of-scope"),
    ],
)
async def test_edit_reaches_only_its_listed_paths(workspace: Path, args: list[Any], code: str | None) -> None:
    if code is None:
        await admitted(workspace, "edit", "edit", args)
    else:
        assert (await refused(workspace, "edit", "edit", args)).code == code


async def test_a_symlink_inside_the_workspace_is_followed_to_its_target(workspace: Path) -> None:
    (workspace / "src" / "alias.md").symlink_to(workspace / "docs" / "guide.md")
    await admitted(workspace, "edit", "write", ["src/alias.md", "text"])  # lands in docs/: listed
    (workspace / "src" / "root-alias").symlink_to(workspace / "README.md")
    assert (await refused(workspace, "edit", "write", ["src/root-alias", "x"])).code == "out-of-scope"


@pytest.mark.parametrize(
    ("tool", "args", "fragment"),
    [
        ("read", "src/app.py", "must be a JSON array"),
        ("read", {"path": "x"}, "must be a JSON array"),
        ("read", [], "missing argument 'path'"),
        ("read", [42], "'path'"),
        ("read", ["a\x00b"], "NUL"),
        ("read", ["src/app.py", {"offset": -1}], "offset"),
        ("read", ["src/app.py", {"colour": 1}], "colour"),
        ("read", ["a", {}, "extra"], "at most 2"),
        ("read", ["x" * 5000], "'path'"),
        ("grep", ["x", "src", {"max_matches": "many"}], "max_matches"),
        ("web-fetch", ["ftp://example.org/"], "http"),
        ("web-fetch", ["file:///etc/passwd"], "http"),
        ("bash-readonly", [""], "'command'"),
        ("bash-readonly", ["ls", {"timeout_ms": 0}], "timeout_ms"),
        ("bash-readonly", ["x" * 70_000], "'command'"),
    ],
)
async def test_malformed_arguments_are_invalid_input(workspace: Path, tool: str, args: Any, fragment: str) -> None:
    error = await refused(workspace, "explore", tool, args)
    assert isinstance(error, ProtocolError) and error.code == "invalid-input"
    assert fragment in error.message


@pytest.mark.parametrize(
    "command",
    [
        "pytest; rm -rf src",
        "pytest && rm -rf src",
        "pytest || true",
        "pytest | tee out",
        "pytest > out",
        "pytest < in",
        "pytest &",
        "pytest $(rm -rf src)",
        "pytest `rm -rf src`",
        "pytest\nrm -rf src",
        "rm -rf src",
        "pythonx -m pytest",
        "python -c 'import os'",
        "make clean",
        "pytest 'unclosed",
        "   ",
    ],
)
async def test_test_scope_refuses_anything_but_a_plain_test_command(workspace: Path, command: str) -> None:
    error = await refused(workspace, "test", "bash-test", [command])
    assert error.code in ("out-of-scope", "invalid-input")


@pytest.mark.parametrize("command", ["pytest -q", "python -m pytest tests/ -x", "python3 -m pytest", "make test", "cargo test"])
async def test_test_scope_admits_configured_test_commands(workspace: Path, command: str) -> None:
    await admitted(workspace, "test", "bash-test", [command])


@pytest.mark.parametrize(
    "command",
    [
        "git reset --hard",
        "git -c core.pager=sh log",
        "git diff --output=/tmp/x",
        "git push --receive-pack=evil",
        "git",
        "gitx status",
        "git status; rm -rf .",
        "rm -rf .git",
    ],
)
async def test_git_scope_refuses_other_subcommands_and_dangerous_options(workspace: Path, command: str) -> None:
    assert (await refused(workspace, "deploy", "bash-git", [command])).code == "out-of-scope"


@pytest.mark.parametrize("command", ["git status", "git commit -m 'fix: add'", "git push origin main", "git log -1"])
async def test_git_scope_admits_the_allowlist(workspace: Path, command: str) -> None:
    await admitted(workspace, "deploy", "bash-git", [command])


async def test_deploy_commands_are_refused_until_configured(workspace: Path) -> None:
    error = await refused(workspace, "deploy", "bash-deploy", ["./deploy.sh"])
    assert "no deploy commands are configured" in error.message
    await admitted(workspace, "deploy", "bash-deploy", ["./deploy.sh"], deploy_commands=["./deploy.sh"])
    error = await refused(workspace, "deploy", "bash-deploy", ["./deploy.sh --force"], deploy_commands=["./deploy.sh"])
    assert error.code == "out-of-scope"


async def test_bash_in_a_paths_scope_is_told_where_it_may_write(workspace: Path) -> None:
    backend = await admitted(workspace, "edit", "bash", ["echo hi"])
    ctx = backend.calls[0][2]
    assert ctx.writable == tuple((workspace / p).resolve() for p in ("src", "docs", "scripts"))
    assert ctx.workspace == workspace.resolve()


async def test_reflect_reads_only_files_its_session_named(workspace: Path) -> None:
    backend = RecordingBackend()
    runner = make_runner(workspace, backend)
    session = await runner.start("claude-1", "explore")
    await session.step("read", ["src/app.py"])
    await session.hop("reflect", "hop-reflect", "review")
    assert (await session.step("read", ["src/app.py"])).ok
    with pytest.raises(PermissionDenied) as caught:
        await session.step("read", ["docs/guide.md"])
    assert caught.value.code == "out-of-scope"
    with pytest.raises(PermissionDenied):
        await session.step("musn-log", ["sess-someone-else"])
    assert (await session.step("musn-log", [session.id])).ok
