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

import asyncio
import hashlib
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from futon.config.models import SandboxSpec
from futon.config.sandbox import Sandbox
from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.protocol.errors import ToolError

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
    with pytest.raises(ToolError, match="no sandbox"):
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


async def test_bash_in_a_paths_scope_refuses_when_no_sandbox(call: Call, ws: Path) -> None:
    """Was: ran plain (unsandboxed) without bwrap — an escape. Now refused."""
    backend = RealBackend(sandbox=Sandbox(bwrap="/nonexistent/bwrap"))
    ctx = make_ctx(ws, writable=(ws / "src",))
    with pytest.raises(ToolError, match="no sandbox"):
        await call("bash", ["echo y > README.md && echo ok"], ctx, using=backend)
    assert (ws / "README.md").read_text() == "hello\nworld\n"


@pytest.mark.parametrize(
    ("tool", "command"),
    [
        ("bash", "touch planted"),
        ("bash-readonly", "touch planted"),
        ("bash-test", "touch planted"),
        ("bash-git", "touch planted"),
        ("bash-deploy", "touch planted"),
    ],
)
async def test_every_process_tool_refuses_without_a_sandbox(
    call: Call, ws: Path, tool: str, command: str
) -> None:
    backend = RealBackend(sandbox=Sandbox(bwrap="/nonexistent/bwrap"))
    with pytest.raises(ToolError, match="no sandbox"):
        await call(tool, [command], make_ctx(ws), using=backend)
    assert not (ws / "planted").exists()


# ------------------------------------------------------------------ what a process sees


async def test_hidden_paths_inside_the_workspace_are_covered(
    backend: RealBackend, call: Call, ws: Path
) -> None:
    """The data directory and a config file inside a writable workspace:
    not readable, not listable, not writable."""
    require_bwrap(backend)
    (ws / "var").mkdir()
    (ws / "var" / "evidence.log").write_text("private evidence\n")
    (ws / "futon.yaml").write_text("secret: config\n")
    ctx = replace(make_ctx(ws), hidden=(ws / "var", ws / "futon.yaml"))
    result = await call(
        "bash",
        [
            "cat futon.yaml var/evidence.log; ls -A var; echo x > futon.yaml; "
            "echo y > var/evidence.log; touch var/new; rm -rf var; echo done"
        ],
        ctx,
    )
    assert "done" in result["out"]
    assert "private evidence" not in result["out"] and "config" not in result["out"]
    assert (ws / "futon.yaml").read_text() == "secret: config\n"
    assert (ws / "var" / "evidence.log").read_text() == "private evidence\n"
    assert sorted(os.listdir(ws / "var")) == ["evidence.log"]


async def test_etc_secrets_are_masked_and_the_host_is_invisible(
    backend: RealBackend, call: Call, ws: Path
) -> None:
    require_bwrap(backend)
    assert Path("/etc/shadow").stat().st_size > 0
    result = await call(
        "bash-readonly",
        ["wc -c < /etc/shadow; test -e /root || echo no-root; test -e /home || echo no-home; "
         "test -e /var || echo no-var; test -e /run || echo no-run; id -u"],
        make_ctx(ws),
    )  # fmt: skip
    assert result["out"].split() == ["0", "no-root", "no-home", "no-var", "no-run", "1000"]


async def test_read_only_extras_are_visible_on_path_and_not_writable(
    backend: RealBackend, call: Call, ws: Path, tmp_path: Path
) -> None:
    require_bwrap(backend)
    tool = tmp_path / "toolchain"
    (tool / "bin").mkdir(parents=True)
    (tool / "bin" / "futon-hello").write_text("#!/bin/sh\necho hello from the toolchain\n")
    (tool / "bin" / "futon-hello").chmod(0o755)
    ctx = replace(make_ctx(ws), sandbox=SandboxSpec(read_only=[str(tool)]))
    result = await call("bash", [f"futon-hello; touch {tool}/planted; echo $?"], ctx)
    assert result["out"].splitlines() == ["hello from the toolchain", "1"]
    assert not (tool / "planted").exists()


async def test_git_trusts_the_workspace_inside_the_sandbox(
    backend: RealBackend, call: Call, ws: Path
) -> None:
    """The workspace's owner maps to the uid inside, so git's
    safe.directory check passes and bash-git can commit."""
    require_bwrap(backend)
    _git("init", "-q", cwd=ws)
    ctx = make_ctx(ws)
    done = await call(
        "bash-git", ["git -c user.name=t -c user.email=t@t commit -q --allow-empty -m inside"], ctx
    )
    assert done["exit"] == 0, done
    log = await call("bash-git", ["git log --format=%s"], ctx)
    assert log["out"] == "inside\n"


# ------------------------------------------------------------------ reading out, calling out

LEAKS = [
    "cat @OUT@/sentinel.txt",
    "cat @HOME@/sentinel.txt",
    "cat /proc/1/root@OUT@/sentinel.txt",
    "cat /proc/1/environ /proc/$PPID/environ /proc/self/environ | tr '\\0' '\\n'",
    "for p in /proc/[0-9]*; do cat $p/environ $p/cmdline; done 2>/dev/null | tr '\\0' '\\n'",
    "env; set",
    "cat /proc/*/task/*/environ 2>/dev/null",
    "ls -la /proc/1/fd/; for f in /proc/1/fd/*; do timeout 1 cat $f; done 2>/dev/null | head -c 9999",
    "nsenter -t 1 -a cat @OUT@/sentinel.txt",
    "cat /etc/shadow /etc/gshadow",
    "sudo -n cat @OUT@/sentinel.txt",
    "ls -la /root /home /var /run /srv /opt /mnt",
    "find / -xdev -name sentinel.txt 2>/dev/null | xargs cat",
    "timeout 10 grep -rs --exclude-dir=proc --exclude-dir=dev 'sentinel' / | head",
    "echo x > /dev/tcp/127.0.0.1/@PORT@",
    "exec 3<>/dev/tcp/127.0.0.1/@PORT@ && echo hit >&3",
    "python3 -c \"import socket; socket.create_connection(('127.0.0.1', @PORT@), 2)\"",
    "python3 -c \"import socket; socket.create_connection(('::ffff:127.0.0.1', @PORT@), 2)\"",
    _optional("curl", "curl -s -m 2 http://127.0.0.1:@PORT@/"),
    "ls /proc | grep -c '^[0-9]'",
    "python3 -c \"import os; print(os.getppid()); print(open('/proc/%d/environ' % os.getppid()).read())\"",
]


@pytest.fixture
async def listener() -> Any:
    """A TCP listener on 127.0.0.1 counting the connections it accepts."""
    hits = {"n": 0}

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits["n"] += 1
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, hits
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("command", LEAKS)
async def test_bash_readonly_cannot_read_out_or_call_out(
    backend: RealBackend,
    call: Call,
    world: World,
    listener: Any,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    """No host file outside the view, no byte of the daemon's environment,
    no host process and no connection to loopback reach the command."""
    require_bwrap(backend)
    secret = "s3cr3t-" + uuid.uuid4().hex
    monkeypatch.setenv("DATABASE_URL", f"postgres://u:{secret}@db/prod")
    port, hits = listener
    filled = world.fill(command).replace("@PORT@", str(port))
    result = await call(
        "bash-readonly", [filled + f"\necho {RAN}", {"timeout_ms": 15_000}], make_ctx(world.ws)
    )
    text = result["out"] + result["err"]
    assert RAN in result["out"], f"the command did not run in the sandbox: {result}"
    assert secret not in text
    assert "outside sentinel" not in text and "home sentinel" not in text
    assert not any(line.startswith("root:") for line in text.splitlines())
    await asyncio.sleep(0)  # let a pending accept run before counting
    assert hits["n"] == 0, f"{command!r} reached the loopback listener"
    if command.startswith("ls /proc | grep -c"):
        # Only the sandbox's own processes: bwrap's init, bash, ls, grep.
        assert int(result["out"].split()[0]) <= 6


def test_the_leak_corpus_is_large_enough() -> None:
    assert len(LEAKS) >= 20
