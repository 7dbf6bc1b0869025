"""The shell tools with real processes: results, timeouts, caps, process
groups, cancellation, the pids limit and the environment."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from futon.config.models import SandboxSpec
from futon.peripherals.args import parse_args
from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.peripherals.tools.limits import ProcessLimiter
from futon.peripherals.tools.process import truncation_marker
from futon.peripherals.tools.shell import timeout_for
from futon.protocol.errors import PermissionDenied, ToolError

from .conftest import Call, make_ctx


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_gone(pids: list[int], within: float = 3.0) -> list[int]:
    """The pids still alive after ``within`` seconds of polling."""
    deadline = time.monotonic() + within
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.02)


def processes_matching(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


# ------------------------------------------------------------------ results


async def test_bash_returns_exit_out_err_and_runs_in_the_workspace(
    call: Call, ws: Path, ctx: ToolContext
) -> None:
    result = await call("bash", ["pwd; echo oops >&2; exit 3"], ctx)
    assert result == {"exit": 3, "out": f"{ws}\n", "err": "oops\n", "timed_out": False}


async def test_stdin_is_dev_null(call: Call, ctx: ToolContext) -> None:
    started = time.monotonic()
    result = await call("bash", ["cat; echo done", {"timeout_ms": 5000}], ctx)
    assert result["out"] == "done\n"
    assert time.monotonic() - started < 3


async def test_exec_tools_split_argv_and_use_no_shell(call: Call, ctx: ToolContext) -> None:
    result = await call("bash-test", ["printf '[%s]' 'a b' c"], ctx)
    assert result == {"exit": 0, "out": "[a b][c]", "err": "", "timed_out": False}
    git = await call("bash-git", ["git status"], ctx)
    assert git["exit"] != 0 and "not a git repository" in git["err"].lower()


async def test_exec_tools_refuse_shell_syntax_again(call: Call, ctx: ToolContext) -> None:
    with pytest.raises(PermissionDenied):
        await call("bash-test", ["pytest; rm -rf src"], ctx)


async def test_a_command_that_does_not_exist_is_a_tool_error(call: Call, ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="not found"):
        await call("bash-deploy", ["definitely-not-a-command-futon"], ctx)


def test_timeout_is_the_agents_clamped_to_the_maximum(ws: Path) -> None:
    ctx = make_ctx(ws, timeout_s=5, max_timeout_s=20)
    assert timeout_for(parse_args("bash", ["x"]), ctx) == 5
    assert timeout_for(parse_args("bash", ["x", {"timeout_ms": 500}]), ctx) == 0.5
    assert timeout_for(parse_args("bash", ["x", {"timeout_ms": 60_000}]), ctx) == 20


# ------------------------------------------------------------------ killing


def unique_sleep() -> str:
    """A ``sleep`` argument no other process on the host has: commands run
    in their own PID namespace, so the pid a command prints is not the
    host's; the test finds its processes by this argument instead."""
    return f"30.{uuid.uuid4().int % 10**12:012d}"


def sleepers(seconds: str) -> list[int]:
    """Host pids of the live ``sleep <seconds>`` processes."""
    want = b"sleep\0" + seconds.encode() + b"\0"
    found = []
    for pid in processes_matching(seconds):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().endswith(want):
                found.append(pid)
        except OSError:
            continue
    return found


async def wait_for_sleeper(seconds: str, within: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within
    while not (found := sleepers(seconds)):
        assert time.monotonic() < deadline, "the command's sleep never started"
        await asyncio.sleep(0.01)
    return found


async def test_timeout_kills_the_whole_process_group(
    call: Call, ws: Path, ctx: ToolContext
) -> None:
    """SIGKILL to the group at the deadline: a background child of the
    command dies with it."""
    started = time.monotonic()
    bg = unique_sleep()
    task = asyncio.ensure_future(
        call("bash", [f"sleep {bg} & sleep 30", {"timeout_ms": 1500}], ctx)
    )
    pids = await wait_for_sleeper(bg)
    result = await task
    assert result["timed_out"] is True and result["exit"] == -9
    assert time.monotonic() - started < 4
    assert await wait_gone(pids) == []


async def test_background_children_are_killed_when_the_command_exits(
    call: Call, ws: Path, ctx: ToolContext
) -> None:
    started = time.monotonic()
    bg = unique_sleep()
    # The command waits for the test to have seen its child, then exits.
    command = f"sleep {bg} & while [ ! -e go ]; do sleep 0.01; done; echo $!"
    task = asyncio.ensure_future(call("bash", [command, {"timeout_ms": 10_000}], ctx))
    pids = await wait_for_sleeper(bg)
    (ws / "go").touch()
    result = await task
    assert result["timed_out"] is False and result["exit"] == 0
    assert time.monotonic() - started < 3
    assert await wait_gone(pids) == []


async def test_a_child_that_left_the_group_is_killed_through_the_cgroup(
    backend: RealBackend, call: Call, ws: Path, ctx: ToolContext
) -> None:
    """setsid escapes the process group but not the pids cgroup."""
    if not backend.limiter.mechanism.startswith("cgroup"):
        pytest.skip(f"no pids cgroup on this machine (process limit: {backend.limiter.mechanism})")
    bg = unique_sleep()
    command = (
        f"setsid sleep {bg} > /dev/null 2>&1 < /dev/null & "
        "while [ ! -e go ]; do sleep 0.01; done; echo $!"
    )
    task = asyncio.ensure_future(call("bash", [command, {"timeout_ms": 10_000}], ctx))
    pids = await wait_for_sleeper(bg)
    (ws / "go").touch()
    await task
    assert await wait_gone(pids) == []


async def test_cancelling_the_task_kills_the_group(call: Call, ws: Path, ctx: ToolContext) -> None:
    """A session stop cancels the step: the command and its children die
    before the cancellation reaches the caller."""
    bg = unique_sleep()
    task = asyncio.ensure_future(call("bash", [f"sleep {bg} & wait", {"timeout_ms": 30_000}], ctx))
    await wait_for_sleeper(bg)
    # The sandbox, the shell and its child: every process naming the sleep.
    pids = processes_matching(bg)
    assert len(pids) >= 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_gone(pids, within=2) == []


# ------------------------------------------------------------------ output caps


async def test_endless_output_is_capped_and_bounded_by_the_timeout(call: Call, ws: Path) -> None:
    ctx = make_ctx(ws, output_cap_bytes=64 * 1024)
    started = time.monotonic()
    result = await call("bash", ["yes", {"timeout_ms": 1200}], ctx)
    assert time.monotonic() - started < 5
    assert result["timed_out"] is True
    marker = truncation_marker(64 * 1024)
    assert result["out"].endswith(marker)
    assert len(result["out"]) == 64 * 1024 + len(marker)


async def test_gigabytes_of_output_are_capped(call: Call, ws: Path) -> None:
    ctx = make_ctx(ws, output_cap_bytes=4096)
    started = time.monotonic()
    result = await call(
        "bash", ["yes | head -c 3G; yes 2>/dev/null | head -c 3G >&2", {"timeout_ms": 2000}], ctx
    )
    assert time.monotonic() - started < 6
    assert len(result["out"]) <= 4096 + len(truncation_marker(4096))
    assert len(result["err"]) <= 4096 + len(truncation_marker(4096))


async def test_output_that_finishes_is_capped_per_stream_with_a_marker(
    call: Call, ws: Path
) -> None:
    ctx = make_ctx(ws, output_cap_bytes=2048)
    result = await call("bash", ["head -c 100000 /dev/zero | tr '\\0' o; echo small >&2"], ctx)
    assert result["timed_out"] is False and result["exit"] == 0
    assert result["out"] == "o" * 2048 + truncation_marker(2048)
    assert result["err"] == "small\n"


# ------------------------------------------------------------------ limits, env


async def test_a_fork_bomb_is_bounded_and_leaves_nothing_behind(
    call: Call, ctx: ToolContext
) -> None:
    """The pids cgroup (pids.max 64 here) caps the bomb; at the end every
    member is killed."""
    limiter = ProcessLimiter(pids_max=64)
    if limiter.mechanism == "none":
        pytest.skip("no process limit on this machine; a fork bomb would be unbounded")
    backend = RealBackend(limiter=limiter)
    name = f"bomb_{uuid.uuid4().hex[:12]}"
    bomb = f"{name}(){{ {name}|{name}& }};{name}; sleep 3"
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, len(processes_matching(name)))
            await asyncio.sleep(0.05)

    sampler = asyncio.ensure_future(sample())
    started = time.monotonic()
    try:
        result = await call("bash", [bomb, {"timeout_ms": 1500}], ctx, using=backend)
    finally:
        sampler.cancel()
    assert result["timed_out"] is True
    assert time.monotonic() - started < 8
    if limiter.mechanism.startswith("cgroup"):
        assert 0 < peak <= 64
    assert await wait_gone(processes_matching(name), within=5) == []


async def test_secrets_are_not_in_the_environment(
    call: Call, ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing of the daemon's environment reaches a command, whatever its
    name (a secret may hide under any); what the peripheral's
    ``sandbox.env`` declares does."""
    monkeypatch.setenv("FUTON_TEST_API_KEY", "k1")
    monkeypatch.setenv("GITHUB_TOKEN", "k2")
    monkeypatch.setenv("db_password", "k3")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "k4")
    monkeypatch.setenv("FUTON_TEST_PLAIN", "daemon-only")
    ctx = replace(make_ctx(ws), sandbox=SandboxSpec(env={"FUTON_TEST_PLAIN": "visible"}))
    out = (await call("bash", ["env"], ctx))["out"]
    assert "FUTON_TEST_PLAIN=visible" in out
    for value in ("=k1", "=k2", "=k3", "=k4", "daemon-only"):
        assert value not in out
    names = {line.split("=", 1)[0] for line in out.splitlines()}
    assert names <= {"PATH", "HOME", "LANG", "FUTON_TEST_PLAIN", "PWD", "SHLVL", "_"}


async def test_without_any_process_limit_commands_still_run_and_say_so_once(
    ws: Path, ctx: ToolContext, call: Call, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = ProcessLimiter(use_cgroups=False, use_rlimit=False)
    backend = RealBackend(limiter=limiter)
    assert limiter.mechanism == "none"
    with caplog.at_level(logging.WARNING, logger="futon.tools"):
        for _ in range(2):
            assert (await call("bash", ["echo ok"], ctx, using=backend))["out"] == "ok\n"
    assert sum("unbounded" in r.message for r in caplog.records) == 1


async def test_a_missing_workspace_is_a_tool_error_naming_it(call: Call, tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="workspace"):
        await call("bash", ["true"], make_ctx(tmp_path / "gone"))
