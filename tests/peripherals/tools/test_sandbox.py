"""bash-readonly: the read-only sandbox holds against a corpus of writing
commands, and refuses when no sandbox is available.

The corpus is the key test of the read-only guarantee: each command tries
to write, by a different route, into the workspace (under /tmp, the hard
case: bound back read-only over a private tmpfs) or into sentinels outside
it (another tmp dir, a directory in $HOME). After each one, a snapshot of
every path below those roots — type, mode, owner, size, link count,
mtime, ctime, content hash, link target — must equal the snapshot taken
before any command ran.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from futon.errors import ToolError
from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.peripherals.tools.sandbox import Sandbox

from .conftest import Call, make_ctx

RAN = "__futon_ran__"


def require_bwrap(backend: RealBackend) -> None:
    """These tests need bubblewrap: fail (not skip) when it is missing."""
    assert backend.sandbox.probe(), (
        "bubblewrap is required for the bash-readonly tests and is not usable here: "
        f"{backend.sandbox.reason} — run `make sandbox` (as root) or `apt-get install bubblewrap`"
    )


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything about every path under ``root`` that a write could change."""
    out: dict[str, tuple[Any, ...]] = {}
    if not root.exists():
        return {"<missing>": ()}
    paths = [root]
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        paths += [Path(directory, name) for name in dirnames + filenames]
    for path in paths:
        info = path.lstat()
        if stat.S_ISREG(info.st_mode):
            extra: Any = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(info.st_mode):
            extra = os.readlink(path)
        else:
            extra = None
        out[str(path.relative_to(root))] = (
            info.st_mode, info.st_uid, info.st_gid, info.st_size, info.st_nlink,
            info.st_mtime_ns, info.st_ctime_ns, extra,
        )  # fmt: skip
    return out


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


class World:
    """A workspace under /tmp and two sentinel trees outside it."""

    def __init__(self, ws: Path, outside: Path, home: Path) -> None:
        self.ws, self.outside, self.home = ws, outside, home
        self.pristine = self.snapshot()

    def snapshot(self) -> dict[str, dict[str, tuple[Any, ...]]]:
        return {
            "ws": snapshot(self.ws),
            "outside": snapshot(self.outside),
            "home": snapshot(self.home),
        }

    def fill(self, command: str) -> str:
        return (
            command.replace("@WS@", str(self.ws))
            .replace("@OUT@", str(self.outside))
            .replace("@HOME@", str(self.home))
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ws = (tmp_path_factory.mktemp("ro") / "ws").resolve()
    (ws / "sub" / "deep").mkdir(parents=True)
    (ws / "emptydir").mkdir()
    (ws / "a.txt").write_text("hello\n")
    (ws / "sub" / "b.txt").write_text("bee\n")
    (ws / "sub" / "deep" / "c.txt").write_text("sea\n")
    (ws / "script.sh").write_text("#!/bin/sh\necho script\n")
    (ws / "script.sh").chmod(0o755)
    (ws / "private.txt").write_text("mode 600\n")
    (ws / "private.txt").chmod(0o600)
    (ws / "link").symlink_to("a.txt")
    repo = ws / "repo"
    repo.mkdir()
    (repo / "f.txt").write_text("tracked\n")
    _git("init", "-q", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-qm", "first", cwd=repo)
    outside = tmp_path_factory.mktemp("outside").resolve()
    (outside / "sentinel.txt").write_text("outside sentinel\n")
    home = Path.home().resolve() / f".futon-sandbox-test-{uuid.uuid4().hex[:8]}"
    home.mkdir()
    (home / "sentinel.txt").write_text("home sentinel\n")
    try:
        yield World(ws, outside, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _optional(tool: str, command: str) -> Any:
    return pytest.param(
        command,
        marks=pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} not installed"),
    )


CORPUS = [
    # redirections
    "echo x > a.txt",
    "echo x >> a.txt",
    "echo x > new.txt",
    "echo x > @WS@/a.txt",
    "printf x > a.txt",
    "cat > a.txt <<EOF\nx\nEOF",
    "exec 3>a.txt; echo x >&3",
    "exec 3<>sub/b.txt; echo x >&3",
    "echo x | tee a.txt",
    "echo x | tee -a sub/b.txt",
    # shells inside the shell
    "(echo x > a.txt)",
    "echo $(echo x > a.txt)",
    "echo `echo x > a.txt`",
    "bash -c 'echo x > a.txt'",
    "sh -c 'echo x > a.txt'",
    "env X=1 sh -c 'echo x > a.txt'",
    "nohup sh -c 'echo x > a.txt' > nohup.out 2>&1",
    "setsid sh -c 'echo x > a.txt'",
    "sh -c 'echo x > a.txt' & wait",
    "su -c 'echo x > a.txt' root < /dev/null",
    # editors and interpreters
    "sed -i s/hello/bye/ a.txt",
    "perl -pi -e s/hello/bye/ a.txt",
    'awk \'BEGIN { print "x" > "a.txt" }\'',
    "python3 -c \"open('a.txt', 'w').write('x')\"",
    "python3 -c \"import os; fd = os.open('a.txt', os.O_RDWR); os.write(fd, b'x')\"",
    "python3 -c \"import os; os.remove('a.txt')\"",
    "python3 -c \"import shutil; shutil.rmtree('sub')\"",
    "python3 -c \"import os; os.rename('a.txt', 'b2.txt')\"",
    "python3 -c \"import os; os.chmod('a.txt', 0o777)\"",
    "python3 -c \"import os; os.utime('a.txt', (0, 0))\"",
    "printf '1,$s/hello/bye/\\nw\\nq\\n' | ed -s a.txt",
    # coreutils
    "touch a.txt",
    "touch -d 2000-01-01 a.txt",
    "touch newfile",
    "cp a.txt c.txt",
    "cp -r sub sub2",
    "mv a.txt moved.txt",
    "rm a.txt",
    "rm -rf sub",
    "rm -rf -- * .[!.]*",
    "rm -rf @WS@",
    "mkdir d",
    "rmdir emptydir",
    "dd if=/dev/zero of=a.txt bs=1 count=1",
    "ln -s a.txt link2",
    "ln -sf /etc/passwd a.txt",
    "ln a.txt hard",
    "chmod 777 a.txt",
    "chmod -R 000 sub",
    "chown nobody a.txt",
    "truncate -s 0 a.txt",
    "install -m 644 a.txt inst.txt",
    "mkfifo fifo",
    "mknod node c 1 3",
    "find . -name a.txt -delete",
    "find . -name '*.txt' -exec rm {} +",
    "ls | xargs rm -rf",
    # archives
    "tar -cf out.tar a.txt",
    "tar -cf /tmp/x.tar a.txt sub && tar -xf /tmp/x.tar --overwrite -C sub",
    _optional("zip", "zip -q z.zip a.txt"),
    _optional(
        "unzip", "cd /tmp && echo y > y.txt && zip -q y.zip y.txt && unzip -o -q /tmp/y.zip -d @WS@"
    ),
    # git in a repository inside the workspace
    "git -C repo init",
    "git init newrepo",
    "cd repo && echo z > f2.txt; git add -A; git -c user.name=t -c user.email=t@t commit -qm y",
    "cd repo && git -c user.name=t -c user.email=t@t commit --allow-empty -qm empty",
    "git -C repo config user.name z",
    "git -C repo gc -q",
    "git -C repo checkout -q -b other",
    # around the mount
    "mount -o remount,rw @WS@",
    "mount -o remount,rw /",
    "mount -t tmpfs none @WS@ && echo x > @WS@/a.txt",
    "unshare -rm sh -c 'mount -o remount,rw @WS@; echo x > @WS@/a.txt'",
    "bwrap --bind / / sh -c 'echo x > @WS@/a.txt'",
    "echo x > /proc/self/root@WS@/a.txt",
    "echo x > /proc/self/cwd/a.txt",
    "echo x > /proc/1/cwd/a.txt",
    "echo x > /dev/shm/f && mv /dev/shm/f a.txt",
    "echo x > /tmp/f && mv /tmp/f a.txt",
    "echo x > /tmp/f && cp /tmp/f @WS@/sub/",
    _optional("curl", "curl -s -m 3 -o a.txt file:///etc/hostname"),
    _optional("wget", "wget -q -T 3 -O a.txt http://example.com/"),
    # outside the workspace
    "echo x > @OUT@/sentinel.txt",
    "rm -rf @OUT@",
    "touch @OUT@/new",
    "echo x > @HOME@/sentinel.txt",
    "rm -rf @HOME@",
    "mkdir @HOME@/d",
    "cd @HOME@ && echo x > new.txt",
    "cd ~ && echo x > @HOME@/sentinel.txt",
]


@pytest.mark.parametrize("command", CORPUS)
async def test_bash_readonly_cannot_write(
    backend: RealBackend, call: Call, world: World, command: str
) -> None:
    """The sandbox, not a filter, stops every write: the command runs (the
    marker after it prints) and nothing on the host changes."""
    require_bwrap(backend)
    ctx = make_ctx(world.ws)
    result = await call(
        "bash-readonly", [world.fill(command) + f"\necho {RAN}", {"timeout_ms": 15_000}], ctx
    )
    assert RAN in result["out"], f"the command did not run in the sandbox: {result}"
    assert not result["timed_out"]
    assert world.snapshot() == world.pristine, f"{command!r} changed the host: {result}"


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 45


async def test_bash_readonly_reads_the_workspace(
    backend: RealBackend, call: Call, world: World
) -> None:
    require_bwrap(backend)
    ctx = make_ctx(world.ws)
    result = await call("bash-readonly", ["cat a.txt; pwd; git -C repo log --format=%s"], ctx)
    assert result == {
        "exit": 0,
        "out": f"hello\n{world.ws}\nfirst\n",
        "err": "",
        "timed_out": False,
    }


async def test_bash_readonly_has_a_private_writable_tmp(
    backend: RealBackend, call: Call, world: World
) -> None:
    """/tmp inside is a fresh tmpfs: writable, empty of the host's files,
    and gone afterwards."""
    require_bwrap(backend)
    ctx = make_ctx(world.ws)
    name = f"/tmp/futon-sandbox-{uuid.uuid4().hex}"
    result = await call(
        "bash-readonly",
        [f"echo hi > {name} && cat {name}; test -e {world.outside}/sentinel.txt || echo hidden"],
        ctx,
    )
    assert result["exit"] == 0 and result["out"] == "hi\nhidden\n"
    assert not Path(name).exists()


async def test_bash_readonly_has_no_network(backend: RealBackend, call: Call, world: World) -> None:
    require_bwrap(backend)
    ctx = make_ctx(world.ws)
    result = await call(
        "bash-readonly", ["tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"], ctx
    )
    assert result["out"].split() == ["lo"]


async def test_bash_readonly_refuses_without_bwrap(call: Call, ctx: ToolContext) -> None:
    backend = RealBackend(sandbox=Sandbox(bwrap="/nonexistent/bwrap"))
    with pytest.raises(ToolError, match="no read-only sandbox"):
        await call("bash-readonly", ["echo never"], ctx, using=backend)


async def test_bash_readonly_refuses_when_bwrap_does_not_work(
    call: Call, tmp_path: Path, ctx: ToolContext
) -> None:
    broken = tmp_path / "bin" / "bwrap"
    broken.parent.mkdir()
    broken.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    backend = RealBackend(sandbox=Sandbox(bwrap=broken))
    with pytest.raises(ToolError, match="bwrap failed") as info:
        await call("bash-readonly", ["touch should-not-exist"], ctx, using=backend)
    assert "No permissions" in info.value.message
    assert not (ctx.workspace / "should-not-exist").exists()


# ------------------------------------------------------------------ bash in a paths scope


async def test_bash_in_a_paths_scope_writes_only_the_listed_paths(
    backend: RealBackend, call: Call, ws: Path
) -> None:
    require_bwrap(backend)
    ctx = make_ctx(ws, writable=(ws / "src", ws / "absent"))
    result = await call(
        "bash",
        [
            "echo new > src/new.py && echo ok; echo x > docs/new.md; echo y > README.md; echo t > /tmp/t && cat /tmp/t"
        ],
        ctx,
    )
    assert result["out"] == "ok\nt\n"
    assert "Read-only file system" in result["err"]
    assert (ws / "src" / "new.py").read_text() == "new\n"
    assert not (ws / "docs" / "new.md").exists()
    assert (ws / "README.md").read_text() == "hello\nworld\n"


async def test_bash_in_a_paths_scope_runs_plain_when_no_sandbox(call: Call, ws: Path) -> None:
    backend = RealBackend(sandbox=Sandbox(bwrap="/nonexistent/bwrap"))
    ctx = make_ctx(ws, writable=(ws / "src",))
    result = await call("bash", ["echo y > README.md && echo ok"], ctx, using=backend)
    assert result["out"] == "ok\n"
