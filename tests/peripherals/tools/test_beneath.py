"""Descriptor-relative opening (futon.peripherals.tools.beneath), in both
of its ways: the kernel's openat2(RESOLVE_BENEATH) and the portable walk
(forced with ``USE_OPENAT2 = False``)."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from futon.config.loader import load_config
from futon.config.models import ToolsSection
from futon.peripherals.dispatch import Dispatcher, Envelope
from futon.peripherals.spec import load_peripherals
from futon.peripherals.tools import ToolContext, beneath
from futon.peripherals.tools.beneath import Beneath
from futon.protocol.errors import PermissionDenied, ToolError
from tests.security.test_file_walls import exchange
from tests.support import SHIPPED

from .conftest import Call, make_ctx

MODES = ["kernel", "walk"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "kernel":
        probe = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        try:
            if not beneath.KERNEL.usable(probe):
                pytest.skip("this kernel has no openat2")
        finally:
            os.close(probe)
    else:
        monkeypatch.setattr(beneath, "USE_OPENAT2", False)
    yield request.param


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("outside secret\n")
    return folder


def read_via(root: Beneath, rel: str) -> bytes:
    parent, fd = root.open(rel, os.O_RDONLY | os.O_NONBLOCK)
    os.close(parent)
    try:
        return os.read(fd, 1000)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ opening


def test_a_plain_path_and_an_inside_symlinked_directory_open(mode: str, ws: Path) -> None:
    (ws / "alias").symlink_to("src")
    (ws / "src" / "pkg" / "back").symlink_to("../../docs")
    with Beneath(ws) as root:
        assert read_via(root, "src/app.py").startswith(b"def add")
        assert read_via(root, "alias/pkg/mod.py").startswith(b"import os")
        assert read_via(root, "src/pkg/back/guide.md").startswith(b"# Guide")


def test_dot_dot_above_the_root_is_refused(mode: str, ws: Path, outside: Path) -> None:
    (ws / "up").symlink_to("..")
    (ws / "src" / "up2").symlink_to("../..")
    with Beneath(ws) as root:
        for rel in ("../outside/secret.txt", "src/../../outside/secret.txt"):
            with pytest.raises(PermissionDenied):
                read_via(root, rel)
        for rel in ("up/outside/secret.txt", "src/up2/outside/secret.txt"):
            with pytest.raises(PermissionDenied):
                read_via(root, rel)


def test_absolute_symlinks_are_refused_even_pointing_inside(mode: str, ws: Path, outside: Path) -> None:
    (ws / "abs_out").symlink_to(outside)
    (ws / "abs_in").symlink_to(ws / "src")
    with Beneath(ws) as root:
        with pytest.raises(PermissionDenied):
            read_via(root, "abs_out/secret.txt")
        with pytest.raises(PermissionDenied):
            read_via(root, "abs_in/app.py")


def test_proc_magic_links_are_refused(mode: str, ws: Path) -> None:
    (ws / "procroot").symlink_to("/proc/self/root")
    depth = len(ws.parts) - 1
    (ws / "relproc").symlink_to("../" * depth + "proc/self/root")
    with Beneath(ws) as root:
        for rel in ("procroot/etc/hostname", "relproc/etc/hostname"):
            with pytest.raises(PermissionDenied):
                read_via(root, rel)


def test_a_symlink_loop_is_a_tool_error(mode: str, ws: Path) -> None:
    (ws / "loop").symlink_to("loop")
    (ws / "ping").symlink_to("pong")
    (ws / "pong").symlink_to("ping")
    with Beneath(ws) as root:
        for rel in ("loop/x", "ping/x"):
            with pytest.raises(ToolError, match="symbolic links"):
                read_via(root, rel)


def test_a_final_symlink_is_refused_not_followed(mode: str, ws: Path) -> None:
    (ws / "link.txt").symlink_to("README.md")
    with Beneath(ws) as root, pytest.raises(ToolError, match="symlink"):
        read_via(root, "link.txt")


def test_missing_and_not_a_directory(mode: str, ws: Path) -> None:
    with Beneath(ws) as root:
        with pytest.raises(ToolError, match="no such"):
            read_via(root, "nope/x")
        with pytest.raises(ToolError, match="not a directory"):
            read_via(root, "README.md/x")


def test_open_dir_creates_missing_parents_beneath(mode: str, ws: Path, outside: Path) -> None:
    (ws / "out").symlink_to(os.path.relpath(outside, ws))
    with Beneath(ws) as root:
        fd = root.open_dir("new/deep", create=True)
        os.close(fd)
        assert (ws / "new" / "deep").is_dir()
        with pytest.raises(PermissionDenied):
            root.open_dir("out/made", create=True)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


# ------------------------------------------------------------------ hidden


def test_hidden_files_dirs_and_hard_links_are_refused_by_inode(mode: str, ws: Path) -> None:
    data = ws / "var"
    (data / "evidence").mkdir(parents=True)
    (data / "evidence" / "shard.jsonl").write_text("{}\n")
    config = ws / "futon.yaml"
    config.write_text("http: {}\n")
    os.link(config, ws / "docs" / "innocent.txt")
    (ws / "src" / "peek").symlink_to("../var/evidence")
    with Beneath(ws, (data, config)) as root:
        for rel in ("futon.yaml", "docs/innocent.txt", "var/evidence/shard.jsonl", "src/peek/shard.jsonl"):
            with pytest.raises(PermissionDenied, match="futon's own"):
                read_via(root, rel)
        with pytest.raises(PermissionDenied, match="futon's own"):
            root.open_dir("var/evidence/new", create=True)
        assert read_via(root, "README.md") == b"hello\nworld\n"


def test_a_hidden_directory_holding_the_workspace_hides_nothing_in_it(mode: str, tmp_path: Path) -> None:
    data = tmp_path / "state"
    workspace = data / "workspace"
    workspace.mkdir(parents=True)
    (workspace / "f.txt").write_text("ok\n")
    with Beneath(workspace.resolve(), (data,)) as root:
        assert read_via(root, "f.txt") == b"ok\n"


# ------------------------------------------------------------------ through the tools


async def test_the_file_tools_work_in_both_ways(mode: str, call: Call, ws: Path) -> None:
    ctx = make_ctx(ws)
    assert await call("read", ["src/app.py"], ctx) == "def add(a, b):\n    return a - b\n"
    assert await call("write", ["made/new.txt", "x\n"], ctx) == {"file": "made/new.txt", "bytes": 2}
    assert await call("edit", ["made/new.txt", "x", "y"], ctx) == {"file": "made/new.txt", "replacements": 1}
    assert (ws / "made" / "new.txt").read_text() == "y\n"
    assert await call("glob", ["**/*.txt"], ctx) == ["made/new.txt"]
    assert await call("grep", ["VALUE"], ctx) == [{"file": "src/pkg/mod.py", "line": 2, "content": "VALUE = 1"}]


async def test_write_replaces_a_hard_link_instead_of_writing_through_it(
    mode: str, call: Call, ws: Path, outside: Path
) -> None:
    """Known limit: reading a hard link reads the linked file (it is that
    file). Writing and editing replace the name, so the other file keeps
    its content."""
    os.link(outside / "secret.txt", ws / "linked.txt")
    ctx = make_ctx(ws)
    await call("write", ["linked.txt", "mine\n"], ctx)
    await call("edit", ["linked.txt", "mine", "ours"], ctx)
    assert (outside / "secret.txt").read_text() == "outside secret\n"
    assert (ws / "linked.txt").read_text() == "ours\n"


async def test_write_keeps_the_mode_of_the_file_it_replaces(mode: str, call: Call, ws: Path) -> None:
    script = ws / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o750)
    await call("write", ["run.sh", "#!/bin/sh\ntrue\n"], make_ctx(ws))
    assert stat.S_IMODE(script.stat().st_mode) == 0o750
    assert [p.name for p in ws.iterdir() if p.name.startswith(".futon-write")] == []


async def test_fifos_and_devices_are_not_read(mode: str, call: Call, ws: Path) -> None:
    os.mkfifo(ws / "pipe")
    ctx = make_ctx(ws)
    with pytest.raises(ToolError, match="not a regular file"):
        await call("read", ["pipe"], ctx)
    try:
        os.mknod(ws / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        return  # not root here: no device to test with
    with pytest.raises(ToolError, match="not a regular file"):
        await call("read", ["null"], ctx)
    with pytest.raises(ToolError, match="not a regular file"):
        await call("edit", ["null", "a", "b"], ctx)
    with pytest.raises(ToolError, match="not a regular file"):
        await call("grep", ["x", "null"], ctx)
    (ws / "dev").mkdir()
    os.mknod(ws / "dev" / "zero", 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    os.mkfifo(ws / "dev" / "fifo")
    assert await call("grep", ["x", "dev"], ctx) == []  # walked past, never opened


async def test_hidden_paths_are_refused_and_never_listed(mode: str, call: Call, ws: Path) -> None:
    data = ws / "var"
    data.mkdir()
    (data / "replay.json").write_text('{"needle": 1}\n')
    (ws / "agents.yaml").write_text("needle: token\n")
    (ws / "README.md").write_text("needle\n")
    ctx = ToolContext(
        workspace=ws, settings=make_ctx(ws).settings, session_id="s", agent_id="a",
        hidden=(data, ws / "agents.yaml"),
    )
    for tool, args in (
        ("read", ["var/replay.json"]),
        ("read", ["agents.yaml"]),
        ("grep", ["needle", "var"]),
        ("glob", ["*", "var"]),
        ("write", ["var/planted.json", "x"]),
        ("edit", ["agents.yaml", "token", "x"]),
    ):
        with pytest.raises(PermissionDenied, match="futon's own"):
            await call(tool, args, ctx)
    assert await call("grep", ["needle"], ctx) == [{"file": "README.md", "line": 1, "content": "needle"}]
    listed = await call("glob", ["**"], ctx)
    assert not any(p.startswith("var") or p == "agents.yaml" for p in listed)
    assert not (data / "planted.json").exists()


# ------------------------------------------------------------------ the race, by hand


async def test_the_swap_race_never_escapes_with_the_portable_walk(
    call: Call, ws: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread swaps src/box between a directory and a symlink to a folder
    outside while the tools go through it (the walk forced; the kernel way
    is raced through the daemon in tests/security/test_file_walls.py)."""
    monkeypatch.setattr(beneath, "USE_OPENAT2", False)
    box, link = ws / "src" / "box", ws / "src" / "box.link"
    box.mkdir()
    (box / "secret.txt").write_text("decoy\n")
    link.symlink_to(os.path.relpath(outside, link.parent))
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            exchange(box, link)  # atomic: box is always there, dir or symlink
            swaps += 1

    ctx = make_ctx(ws)
    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    seen: set[str] = set()
    try:
        end = time.monotonic() + 3
        while time.monotonic() < end:
            for tool, args in (
                ("read", ["src/box/secret.txt"]),
                ("write", ["src/box/secret.txt", "decoy\n"]),
                ("write", ["src/box/new.txt", "planted\n"]),
                ("edit", ["src/box/secret.txt", "outside", "pwned"]),
                ("grep", ["secret", "src/box"]),
                ("glob", ["*", "src/box"]),
            ):
                with contextlib.suppress(ToolError, PermissionDenied):
                    seen.add(repr(await call(tool, args, ctx)))
    finally:
        stop.set()
        thread.join()
    assert swaps > 0
    assert not any("outside secret" in s for s in seen)
    assert (outside / "secret.txt").read_text() == "outside secret\n"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


# ------------------------------------------------------------------ the dispatcher's first wall


def test_the_dispatcher_refuses_hidden_paths_before_any_tool_runs(ws: Path, tmp_path: Path) -> None:
    explore = load_peripherals(load_config(SHIPPED / "futon.yaml").peripherals)["explore"]
    dispatcher = Dispatcher(ToolsSection())
    (ws / "var").mkdir()
    (ws / "src" / "peek").symlink_to("../var")
    envelope = Envelope(explore, ws, "s", hidden=(ws / "var", ws / "agents.yaml"))
    for tool, args in (
        ("read", ["var/replay.json"]),
        ("read", ["src/peek/x"]),
        ("read", ["agents.yaml"]),
        ("grep", ["x", "var"]),
        ("glob", ["*", "var"]),
    ):
        with pytest.raises(PermissionDenied, match="futon's own") as info:
            dispatcher.admit(envelope, tool, args)
        assert info.value.code == "out-of-scope"
    dispatcher.admit(envelope, "read", ["README.md"])
    # A hidden folder that holds the whole workspace (the systemd layout:
    # data_dir /var/lib/futon, workspace /var/lib/futon/workspace) hides
    # nothing inside it; a hidden folder that IS the workspace hides all.
    dispatcher.admit(Envelope(explore, ws, "s", hidden=(ws.parent,)), "read", ["README.md"])
    with pytest.raises(PermissionDenied):
        dispatcher.admit(Envelope(explore, ws, "s", hidden=(ws,)), "read", ["README.md"])
