"""Attacks on the file tools (issue 13), as an agent over the WebSocket.

- The swap race: a directory inside the workspace is exchanged, atomically
  and in a tight loop, with a symlink to a folder outside, while agents
  read, write, edit, grep and glob through it. What was checked must be
  what is opened: the sentinel outside is never read, never changed, and
  nothing appears beside it.
- futon's own data directory and config files are refused by every file
  tool, even when they lie inside the workspace (also through a symlink
  and a hard link), and never listed by glob or grep.
- grep with a backtracking pattern, and over a 200 MB one-line file,
  returns promptly with bounded memory while /health keeps answering.
- The shipped data_dir is outside the workspace.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from futon.config.loader import default_data_dir, load_config
from futon.daemon.app import Daemon
from futon.peripherals.tools import beneath
from tests.security.conftest import SENTINEL_TEXT, Arena
from tests.support import make_config
from tests.transports.kit import AgentClient, connected

RACE_SECONDS = 10
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_LIBC = ctypes.CDLL(None, use_errno=True)


def exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE): at every
    instant each name exists, as a directory or as the symlink."""
    if _LIBC.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a))


async def tool(agent: AgentClient, name: str, *args: Any) -> dict[str, Any]:
    return await agent.ask({"type": "tool_action", "tool": name, "args": list(args)}, timeout=60)


async def start(agent: AgentClient, peripheral: str) -> None:
    started = await agent.ask({"type": "peripheral_start", "peripheral_id": peripheral})
    assert started["type"] == "peripheral_started", started


# ------------------------------------------------------------------ the swap race


@pytest.mark.parametrize("way", ["kernel", "walk"])
async def test_swapping_a_directory_for_a_symlink_never_leaves_the_workspace(
    arena: Arena, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if way == "walk":
        monkeypatch.setattr(beneath, "USE_OPENAT2", False)
    box = arena.workspace / "src" / "box"
    link = arena.workspace / "src" / "box.link"
    box.mkdir()
    (box / "sentinel.txt").write_text("decoy\n")
    link.symlink_to(arena.outside)  # an absolute link, as an attacker would plant it
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            exchange(box, link)
            swaps += 1

    replies: list[dict[str, Any]] = []

    async def attack(agent: AgentClient, actions: list[tuple[str, list[Any]]], end: float) -> None:
        while time.monotonic() < end:
            for name, args in actions:
                replies.append(await tool(agent, name, *args))

    thread = threading.Thread(target=swapper, name="swapper", daemon=True)
    async with arena.agent("claude-1") as writer, arena.agent("codex-1") as searcher:
        await start(writer, "edit")
        await start(searcher, "explore")
        thread.start()
        try:
            end = time.monotonic() + RACE_SECONDS
            await asyncio.gather(
                attack(writer, [
                    ("read", ["src/box/sentinel.txt"]),
                    ("write", ["src/box/sentinel.txt", "pwned\n"]),
                    ("write", ["src/box/planted.txt", "planted\n"]),
                    ("edit", ["src/box/sentinel.txt", "walls held", "walls fell"]),
                    ("write", ["src/box/sentinel.txt", "decoy\n"]),
                ], end),
                attack(searcher, [
                    ("read", ["src/box/sentinel.txt"]),
                    ("grep", ["held", "src/box"]),
                    ("glob", ["*", "src/box"]),
                    ("glob", ["src/box/*"]),
                ], end),
            )
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, 10)
    assert swaps > 100, f"the swapper ran only {swaps} times"
    arena.assert_no_secret(*replies)
    arena.assert_walls_held()
    assert (arena.outside / "sentinel.txt").read_text() == SENTINEL_TEXT
    # The race was fought at the tools, not only at the dispatcher: some
    # actions got through the path check and ran.
    ran = [r for r in replies if r["type"] == "tool_result"]
    assert any(r["ok"] and r["result"] == "decoy\n" for r in ran), "no read ever ran inside the box"
    assert len(replies) > 50
    # Every loss of the race is a clear refusal or tool error, never a crash.
    crashed = [r for r in replies if "internal" in str(r.get("code")) or "internal" in str(r.get("result"))]
    assert not crashed, crashed[:3]


# ------------------------------------------------------------------ hidden data and config


@pytest.fixture
async def inside_daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, Path]]:
    """A daemon whose config folder and data_dir are both inside its
    workspace (as the old shipped layout had them: config/var in the repo)."""
    workspace = (tmp_path / "ws").resolve()
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "app.py").write_text("def add(a, b):\n    return a + b\n")
    config = make_config(
        workspace / "config", workspace=str(workspace), data_dir=str(workspace / "config" / "var"),
        evidence__fsync="never",
    )
    daemon = Daemon(load_config(config))
    await daemon.start()
    try:
        yield daemon, workspace
    finally:
        await daemon.stop()


async def test_the_data_dir_and_config_files_are_refused_inside_the_workspace(
    inside_daemon: tuple[Daemon, Path],
) -> None:
    daemon, workspace = inside_daemon
    (workspace / "src" / "peek").symlink_to("../config/var")
    os.link(workspace / "config" / "agents.yaml", workspace / "src" / "notes.txt")
    async with aiohttp.ClientSession() as http, connected(http, daemon, "claude-1") as agent:
        await start(agent, "explore")
        await tool(agent, "read", "src/app.py")  # evidence now has shards under config/var
        shards = sorted((workspace / "config" / "var" / "evidence").glob("*.jsonl"))
        assert shards, "the daemon wrote no evidence where expected"
        for path in (
            "config/futon.yaml",
            "config/agents.yaml",
            "config/peripherals.yaml",
            f"config/var/evidence/{shards[0].name}",
            "config/var",
            "src/peek/evidence",
        ):
            for name, args in (("read", [path]), ("grep", ["a", path]), ("glob", ["*", path])):
                reply = await tool(agent, name, *args)
                assert (reply["type"], reply.get("code")) == ("error", "out-of-scope"), (name, path, reply)
        # A hard link is the same inode: refused by the tool itself.
        linked = await tool(agent, "read", "src/notes.txt")
        assert linked["ok"] is False and "futon's own" in linked["result"]["error"]
        everything = await tool(agent, "glob", "**")
        assert everything["ok"]
        listed = everything["result"]
        assert "config" in listed and "src/app.py" in listed
        assert not [p for p in listed if p.startswith("config/") or p == "src/notes.txt"], listed
        hits = await tool(agent, "grep", "peripheral|agent|evidence")
        assert hits["ok"]
        assert not [h for h in hits["result"] if h.get("file", "").startswith("config/")], hits


# ------------------------------------------------------------------ grep cannot stall the daemon


def _one_line_file(path: Path, size: int) -> None:
    block = b"a" * (1 << 20)
    with path.open("wb") as handle:
        for _ in range(size // len(block)):
            handle.write(block)
        handle.write(b"b\n")


async def test_hostile_grep_patterns_and_huge_lines_keep_the_daemon_responsive(arena: Arena) -> None:
    (arena.workspace / "docs" / "aaaa.txt").write_text("a" * 100_000 + "\n")
    _one_line_file(arena.workspace / "docs" / "huge.txt", 200 * (1 << 20))
    async with arena.agent("claude-1") as agent:
        await start(agent, "explore")
        before = arena.rss()
        async with arena.responsive():
            for pattern in ("(a*)*b", "(a|aa)+$", "(a|aa)+c", "^(a+)+$"):
                began = time.monotonic()
                reply = await tool(agent, "grep", pattern, "docs")
                assert reply["type"] == "tool_result" and reply["ok"], reply
                assert time.monotonic() - began < 30, pattern
            backref = await tool(agent, "grep", r"(a)\1", "docs")
            assert backref["ok"] is False and "RE2" in backref["result"]["error"]
            lookahead = await tool(agent, "grep", "a(?=b)", "docs")
            assert lookahead["ok"] is False and "lookaround" in lookahead["result"]["error"]
        grown = arena.rss() - before
    assert grown < 64 * (1 << 20), f"RSS grew by {grown >> 20} MiB during the grep"
    arena.assert_walls_held()


# ------------------------------------------------------------------ the default data_dir


def test_the_default_data_dir_is_the_users_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path / "cfg", data_dir=None)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert load_config(config).data_dir == tmp_path / "state" / "futon"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_config(config).data_dir == tmp_path / "home" / ".local" / "state" / "futon"
    assert default_data_dir() == tmp_path / "home" / ".local" / "state" / "futon"
    # A relative data_dir stays relative to the config folder.
    assert load_config(make_config(tmp_path / "cfg2", data_dir="var")).data_dir == tmp_path / "cfg2" / "var"
