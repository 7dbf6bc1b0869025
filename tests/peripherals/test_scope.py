"""Scope: paths resolve `..` and symlinks against the workspace before the
check; commands in the no-shell scopes are split into argv and any shell
syntax is refused. Nothing refused ever reaches the backend."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from futon.config.git_grammars import GRAMMARS as GIT_GRAMMARS
from futon.config.models import DEFAULT_GIT_SUBCOMMANDS, DEFAULT_TEST_COMMANDS, ToolsSection
from futon.peripherals.scope import check_git_command, check_test_command
from futon.protocol.errors import FutonError, PermissionDenied, ProtocolError
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
        # An object is the named form now: its names are checked instead.
        ("read", {"path": "x", "colour": 1}, "unknown parameter 'colour'"),
        ("read", {"offset": 1}, "missing parameter 'path'"),
        ("read", {"path": "x", "offset": -1}, "argument 'offset'"),
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


@pytest.mark.parametrize(
    ("command", "configured"),
    [
        ("pytest -q", None),
        # Test commands match whole (issue 13): an option needs a pattern.
        ("python -m pytest tests/ -x", ["python -m pytest {path} -x"]),
        ("python3 -m pytest", None),
        ("make test", None),
        ("cargo test", None),
    ],
)
async def test_test_scope_admits_configured_test_commands(workspace: Path, command: str, configured: list[str] | None) -> None:
    settings = {} if configured is None else {"test_commands": configured}
    await admitted(workspace, "test", "bash-test", [command], **settings)


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


# ------------------------------------------------- exact allowlists (issue 13)
#
# git options are parsed the way git parses them (unique prefixes of long
# options included), test commands match a pattern whole. Each refused
# command below was an escape when the check looked at option names whole
# or at the start of argv only.

GIT = list(DEFAULT_GIT_SUBCOMMANDS)

GIT_ADMITTED = [
    "git status",
    "git status -sb",
    "git status --porcelain=v2 -uno",
    "git diff",
    "git diff --cached --stat",
    "git diff --stat=80 -U5 HEAD^",
    "git diff HEAD^ -- src/app.py",
    "git log -1",
    "git log -n 3 --oneline",
    "git log --author bob --grep=fix --format=%H",
    "git show HEAD",
    "git show HEAD:src/app.py",
    "git add src/app.py docs",
    "git add -A",
    "git add -- src",
    "git commit -m 'fix: add'",
    "git commit -am msg",
    "git commit -mmsg",
    "git commit --amend --no-edit",
    "git commit --amen -m x",  # a unique prefix of an allowed option, as git reads it
    "git commit -a -m x --no-verify",
    "git push",
    "git push origin main",
    "git push --tags",
    "git push -u origin HEAD:main",
    "git push --dry-r origin main",
    "git tag -a v1 -m 'release 1'",
    "git tag v1.0",
    "git tag -am msg v2",
]

GIT_REFUSED = [
    # global options, before the subcommand
    ("git -c core.pager=sh log", "before the subcommand"),
    ("git -C /tmp status", "before the subcommand"),
    ("git --git-dir=/x status", "before the subcommand"),
    ("git --exec-path=/x status", "before the subcommand"),
    ("git --namespace=x status", "before the subcommand"),
    ("git -P status", "before the subcommand"),
    # prefixes git would expand to a dangerous option
    ("git push --receive-pac=x origin", "--receive-pack"),
    ("git push --exe=x origin", "--exec"),
    ("git push --upload-p=x origin", "--upload-pack"),
    ("git push --fo origin main", "--force"),
    ("git diff --no-ind /etc/passwd x", "--no-index"),
    ("git diff --outp=f", "--output"),
    ("git commit --conf x", "--config"),
    ("git commit --fi=/etc/passwd", "--file"),
    ("git commit --t=/etc/passwd", "--template"),
    ("git commit --he", "--help"),
    # -c anywhere
    ("git log -c core.pager=x", "-c"),
    ("git commit -ccore.x=y", "-c"),
    ("git commit -ac x", "-c"),
    # short clusters hiding a refused option
    ("git diff -po x", "-o"),
    ("git commit -aF /etc/passwd", "-F"),
    # files outside, programs, remote history
    ("git tag -F /etc/passwd v1", "-F"),
    ("git commit --file=/etc/passwd", "--file"),
    ("git diff --no-index /etc/passwd x", "--no-index"),
    ("git diff --output=/tmp/x", "--output"),
    ("git show --output=x", "--output"),
    ("git diff -O/etc/passwd", "-O"),
    ("git diff --ext-diff", "--ext-diff"),
    ("git log --textconv", "--textconv"),
    ("git log --stdin", "--stdin"),
    ("git add -p", "-p"),
    ("git commit -e", "-e"),
    ("git tag -s v1 -m x", "-s"),
    ("git push --force", "--force"),
    ("git push -f", "-f"),
    ("git push --mirror", "--mirror"),
    ("git push --repo=x", "--repo"),
    ("git push origin +main", "'+main'"),
    ("git push origin :main", "':main'"),
    ("git push ext::sh main", "remote's name"),
    ("git diff --end-of-options x", "--end-of-options"),
    # pathspecs
    ("git diff -- ../x", "'..'"),
    ("git diff -- /etc/passwd", "absolute"),
    ("git diff /etc/passwd x", "absolute"),  # would be an implicit --no-index
    ("git add /etc/passwd", "absolute"),
    ("git show HEAD:../x", "'..'"),
    ("git show :/x", "pathspec magic"),
    ("git push /tmp/x main", "absolute"),
    # values
    ("git commit -m", "needs a value"),
    ("git commit -m --amend", "may not start with '-'"),
    ("git status --short=x", "takes no value"),
    # unknown options and subcommands
    ("git commit --frobnicate", "not on the allowlist"),
    ("git diff -X", "not on the allowlist"),
    ("git reset --hard", "not allowed"),
    ("git", "needs a subcommand"),
]


@pytest.mark.parametrize("command", GIT_ADMITTED)
def test_git_grammar_admits_ordinary_deploy_commands(command: str) -> None:
    assert check_git_command(command, GIT) == shlex.split(command)


@pytest.mark.parametrize(("command", "fragment"), GIT_REFUSED)
def test_git_grammar_refuses_options_as_git_would_read_them(command: str, fragment: str) -> None:
    with pytest.raises(PermissionDenied) as caught:
        check_git_command(command, GIT)
    assert caught.value.code == "out-of-scope"
    assert fragment in caught.value.message


@pytest.mark.parametrize("command", ["git push --receive-pac=x origin", "git diff --no-ind /etc/passwd x", "git commit -ccore.x=y"])
async def test_git_tricks_never_reach_the_backend(workspace: Path, command: str) -> None:
    assert (await refused(workspace, "deploy", "bash-git", [command])).code == "out-of-scope"


def _dangerous_prefixes() -> list[tuple[str, str]]:
    """(subcommand, long option) for every prefix of every refused option."""
    out = []
    for sub, grammar in GIT_GRAMMARS.items():
        for name in (*grammar.refused, "config", "help", "exec-path", "git-dir"):
            for end in range(1, len(name) + 1):
                prefix = name[:end]
                if prefix not in grammar.long:  # the full name of an allowed option is itself
                    out.append((sub, prefix))
    return out


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_dangerous_prefixes()), st.sampled_from(["", "=x", "=/etc/passwd"]))
def test_any_prefix_of_a_refused_git_option_is_refused(case: tuple[str, str], value: str) -> None:
    sub, prefix = case
    with pytest.raises(PermissionDenied) as caught:
        check_git_command(f"git {sub} --{prefix}{value}", GIT)
    assert caught.value.code == "out-of-scope"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(GIT_GRAMMARS)), st.text(alphabet="abcdefghijklmnopqrstuvwxyz-=", min_size=1, max_size=12))
def test_an_accepted_long_option_is_allowed_under_every_name_it_could_mean(sub: str, body: str) -> None:
    """Whatever random --option is accepted, every option git could read it
    as (exact, or a prefix of) is on the subcommand's allowlist."""
    grammar = GIT_GRAMMARS[sub]
    try:
        check_git_command(f"git {sub} --{body}", GIT)
    except PermissionDenied:
        return
    name = body.partition("=")[0]
    could_mean = {s for s in grammar.spellings() if s == name or (grammar.abbreviations and s.startswith(name))}
    assert could_mean and could_mean <= set(grammar.long)


TEST_REFUSED = [
    ("make test -f x.mk", "not one of the configured test commands"),
    ("make -f x.mk test", "not one of the configured test commands"),
    ("make test CC=x", "not one of the configured test commands"),
    ("pytest --junitxml=/tmp/x", "not a plain relative path"),
    ("pytest -p x", "not a plain relative path"),
    ("pytest tests --rootdir=/", "not a plain relative path"),
    ("pytest -c x.ini", "not a plain relative path"),
    ("pytest --confcutdir=/", "not a plain relative path"),
    ("pytest @args.txt", "not a plain relative path"),  # pytest reads arguments from the file
    ("pytest ../outside", "'..'"),
    ("pytest tests/../../x", "'..'"),
    ("pytest /abs", "absolute"),
    ("pytest src/escape/secret.txt", "outside the workspace"),  # through a symlink
    ("go test -exec x ./...", "not one of the configured test commands"),
    ("cargo test --config x", "not one of the configured test commands"),
]


@pytest.mark.parametrize(("command", "fragment"), TEST_REFUSED)
async def test_test_commands_match_whole_never_by_prefix(workspace: Path, command: str, fragment: str) -> None:
    error = await refused(workspace, "test", "bash-test", [command])
    assert error.code == "out-of-scope"
    assert fragment in error.message


@pytest.mark.parametrize(
    "command",
    ["pytest", "pytest tests", "pytest -q tests/test_a.py::test_x[1]", "python3 -m pytest -q tests src", "go test ./..."],
)
def test_default_test_patterns_admit_paths_in_the_workspace(workspace: Path, command: str) -> None:
    assert check_test_command(command, DEFAULT_TEST_COMMANDS, workspace) == shlex.split(command)


def test_a_path_slot_takes_exactly_one_path() -> None:
    pattern = ["npm test -- {path}"]
    assert check_test_command("npm test -- src/a.test.js", pattern) == ["npm", "test", "--", "src/a.test.js"]
    for command in ("npm test --", "npm test -- a b", "npm test -- --watch"):
        with pytest.raises(PermissionDenied):
            check_test_command(command, pattern)


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("pytest {paths} -x", "last token"),
        ("{path} run", "must start with a program"),
        ("pytest --junitxml={path}", "whole token"),
        ("pytest {file}", "not a placeholder"),
        ("", "empty"),
    ],
)
def test_a_malformed_test_pattern_fails_at_load(entry: str, fragment: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(fragment)):
        ToolsSection(test_commands=[entry])


def test_git_subcommands_need_an_option_table() -> None:
    with pytest.raises(ValidationError, match="no option table for git reset"):
        ToolsSection(git_subcommands=["status", "reset"])
