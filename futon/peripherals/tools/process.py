"""Running one child process under the limits every shell tool shares.

:func:`run_process` is the only place futon starts a tool's process; tools
reach it through :func:`futon.peripherals.tools.shell.run_sandboxed`, which
puts the command in the sandbox first. It guarantees, whatever the command
does:

- stdin is /dev/null; the environment is exactly the one given (default:
  :data:`MINIMAL_ENV`), never the daemon's own; no descriptor of ours but
  ``pass_fds`` is inherited;
- the child leads a new session and process group, and runs under a
  :class:`~futon.peripherals.tools.limits.Confinement` (pids and memory
  cgroups where available, else rlimits);
- each of stdout and stderr keeps at most ``cap`` bytes, followed by a
  truncation marker; the rest is read and thrown away so the child never
  blocks on a full pipe;
- at the deadline, when the calling task is cancelled, and when the command
  exits leaving background processes behind, the whole group and every
  cgroup member get SIGKILL, and the child is reaped before returning (or
  before the cancellation propagates).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from futon.peripherals.tools.limits import Confinement, ProcessLimiter
from futon.protocol.errors import ToolError

# After the command itself exits, how long its pipes may stay open (held
# by background children) before those children are killed. Long enough
# for the last output to arrive, short enough that `cmd &` costs nothing.
EXIT_GRACE_S = 0.5
# After SIGKILL, how long to wait for the pipes to close; only a process
# that escaped both the group and the cgroup can hold them longer.
KILL_DRAIN_S = 1.0
_READ_CHUNK = 1 << 20

# What a process gets when no environment is given: nothing of ours (the
# daemon's environment may hold credentials under any name).
MINIMAL_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
}


def truncation_marker(cap: int) -> str:
    return f"\n[futon: output truncated after {cap} bytes]"


@dataclass
class ShellResult:
    """What a shell tool returns (docs/tools.md: ``{exit, out, err,
    timed_out}``). ``exit`` is the exit status, or ``-N`` when the command
    died of signal N (SIGKILL at the deadline gives -9)."""

    exit: int
    out: str
    err: str
    timed_out: bool

    def to_dict(self) -> dict[str, Any]:
        return {"exit": self.exit, "out": self.out, "err": self.err, "timed_out": self.timed_out}


class _Capped:
    """Keeps the first ``cap`` bytes of a stream and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.kept = 0
        self.seen = 0

    def add(self, data: bytes) -> None:
        self.seen += len(data)
        room = self.cap - self.kept
        if room > 0:
            piece = data[:room]
            self.chunks.append(piece)
            self.kept += len(piece)

    def text(self) -> str:
        text = b"".join(self.chunks).decode("utf-8", errors="replace")
        if self.seen > self.kept:
            text += truncation_marker(self.cap)
        return text


async def _drain(pipe: IO[bytes], sink: _Capped) -> None:
    """Read ``pipe`` to EOF into ``sink``; the pipe is closed on the way out
    (also when cancelled)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_READ_CHUNK)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        while True:
            data = await reader.read(_READ_CHUNK)
            if not data:
                return
            sink.add(data)
    finally:
        transport.close()


class _Child:
    """A started child and a future that completes when it exits.

    The exit is watched with a pidfd (readable once the process has
    terminated), not through the pipes: a background grandchild may keep
    the pipes open long after the command itself is done. Where pidfds are
    missing, the child is polled."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = loop.create_future()
        self._pidfd: int | None = None
        self._poller: asyncio.Task[None] | None = None
        try:
            # Race-free: nobody but us reaps this pid, so it is still ours.
            self._pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self._poller = asyncio.ensure_future(self._poll())
        else:
            loop.add_reader(self._pidfd, self._on_exit)

    def _on_exit(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)
        self._close_pidfd()

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    async def _poll(self) -> None:
        delay = 0.001
        while self.proc.poll() is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        if not self.exited.done():
            self.exited.set_result(None)

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the command's process group, and the command itself in
        case it moved to another group."""
        # The group outlives its leader while any member is alive, and the
        # kernel does not hand out a pid that is still some group's id, so
        # this cannot hit an unrelated group while members remain.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def reap(self, timeout: float) -> None:
        """Wait (bounded) for the exit, then collect the status."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.exited), timeout)
        if self.exited.done():
            self.proc.wait()  # already exited: returns at once
        self.release()

    def release(self) -> None:
        self._close_pidfd()
        if self._poller is not None:
            self._poller.cancel()


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float,
    cap: int,
    limiter: ProcessLimiter,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    memory_max: int | None = None,
) -> ShellResult:
    """Run ``argv`` (no shell unless argv is one) in ``cwd`` under the
    guarantees of this module, its memory bounded by ``memory_max`` (bytes;
    default: the limiter's). A command that cannot be started raises
    ``ToolError``; anything the command itself does is data."""
    if not argv:
        raise ToolError("empty command")
    confinement = limiter.open(memory_max)
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=str(cwd),
            env=dict(MINIMAL_ENV if env is None else env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=confinement.preexec,
            close_fds=True,
            pass_fds=tuple(pass_fds),
        )
    except FileNotFoundError as exc:
        await confinement.close()
        if exc.filename == str(cwd) or not cwd.is_dir():
            raise ToolError(f"the workspace {str(cwd)!r} does not exist") from None
        raise ToolError(f"command not found: {argv[0]}") from None
    except (OSError, subprocess.SubprocessError) as exc:
        await confinement.close()
        raise ToolError(f"could not start {argv[0]}: {exc}") from None
    assert proc.stdout is not None and proc.stderr is not None
    child = _Child(proc)
    out, err = _Capped(cap), _Capped(cap)
    readers = [
        asyncio.ensure_future(_drain(proc.stdout, out)),
        asyncio.ensure_future(_drain(proc.stderr, err)),
    ]
    timed_out = False
    try:
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(child.exited)
                # The command is done; background children may still hold
                # the pipes. Give them a moment, then they are killed below.
                await asyncio.wait(readers, timeout=EXIT_GRACE_S)
        except TimeoutError:
            timed_out = True
        # Always: whatever the command left running goes with it.
        child.kill()
        await confinement.kill_all()
        await asyncio.wait(readers, timeout=KILL_DRAIN_S)
        await child.reap(KILL_DRAIN_S)
    except BaseException:
        # Cancelled (session stop) or failing: nothing we started may
        # outlive this call. Kill, reap, then let the exception go on.
        child.kill()
        cleanup = asyncio.ensure_future(_abort(child, confinement, readers))
        # Shielded, so a second cancellation cannot leave a zombie or a live
        # cgroup behind; bounded, because SIGKILL cannot be refused.
        with contextlib.suppress(BaseException):
            await asyncio.shield(cleanup)
        raise
    finally:
        for reader in readers:
            if not reader.done():
                reader.cancel()
    await confinement.close()
    code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    return ShellResult(exit=code, out=out.text(), err=err.text(), timed_out=timed_out)


async def _abort(
    child: _Child, confinement: Confinement, readers: Sequence[asyncio.Future[None]]
) -> None:
    for reader in readers:
        reader.cancel()
    await confinement.kill_all()
    await child.reap(5.0)
    await confinement.close()
