"""Process limits for shell tools: a real bound on how many processes one
command may have and how much memory they may use, and a way to kill every
one of them.

Mechanisms, best first (chosen once per :class:`ProcessLimiter`):

- ``cgroup-v1`` / ``cgroup-v2`` — a pids cgroup per command
  (``<pids hierarchy>/futon/<uuid>``) with ``pids.max``; the child joins it
  between fork and exec, so everything it ever spawns is counted and can be
  found again, even processes that left the process group with ``setsid``.
  After the command every member is killed and the cgroup removed.
- ``rlimit`` — ``RLIMIT_NPROC`` set in the child (not root only: root
  ignores it). It counts every process of the user, so the limit is the
  user's current count plus ``pids_max``; a softer bound, but a bound.
- ``none`` — the command still runs; a warning is logged once that its
  processes are unbounded. Killing falls back to the process group.

Memory is bounded the same way, chosen separately (:attr:`memory_mechanism`):
a memory cgroup per command (v2: ``memory.max`` on the same cgroup; v1:
``memory.limit_in_bytes`` in the memory hierarchy, joined beside the pids
one), so every process the command starts — and the tmpfs pages it writes —
count against one limit; else ``RLIMIT_AS`` in the child, a per-process
bound that even root obeys.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger("futon.tools")

Mechanism = Literal["cgroup-v1", "cgroup-v2", "rlimit", "none"]
DEFAULT_PIDS_MAX = 256
# tools.memory_max_bytes' default: plenty for a test suite, far from what
# takes a small host down.
DEFAULT_MEMORY_MAX = 2 * 1024**3

# How long kill_all keeps sweeping a cgroup whose members keep forking
# (bounded by pids.max, so a few sweeps converge).
_KILL_SWEEP_S = 3.0


def _unescape_mount(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class _CgroupMount:
    version: Literal[1, 2]
    mountpoint: Path
    root: str  # the cgroup path the mount shows at its mountpoint


def _pids_mounts(mountinfo: str) -> list[_CgroupMount]:
    """cgroup mounts that can carry the pids controller, v1 first."""
    return _controller_mounts(mountinfo, "pids")


def _controller_mounts(mountinfo: str, controller: str) -> list[_CgroupMount]:
    """cgroup mounts that can carry ``controller``, v1 first."""
    v1: list[_CgroupMount] = []
    v2: list[_CgroupMount] = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype, super_opts = tail[0], tail[2].split(",")
        mount = Path(_unescape_mount(fields[4]))
        if fstype == "cgroup" and controller in super_opts:
            v1.append(_CgroupMount(1, mount, _unescape_mount(fields[3])))
        elif fstype == "cgroup2":
            v2.append(_CgroupMount(2, mount, _unescape_mount(fields[3])))
    return v1 + v2


def _own_cgroup(version: int, proc_cgroup: str, controller: str = "pids") -> str | None:
    for line in proc_cgroup.splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if version == 1 and hier != "0" and controller in controllers.split(","):
            return path
        if version == 2 and hier == "0" and controllers == "":
            return path
    return None


class Confinement:
    """The limits applied to one command.

    ``cgroups`` are joined by the child between fork and exec (``preexec``),
    then ``steps`` run there (rlimits); the first cgroup is where the
    command's processes are found again. ``kill_all`` kills every process
    the command started (that the mechanism can find); ``close`` releases
    the cgroups. Without cgroups both are no-ops and killing falls back to
    the process group."""

    def __init__(
        self,
        *,
        cgroups: Sequence[Path] = (),
        steps: Sequence[Callable[[], None]] = (),
        mechanism: Mechanism = "none",
        memory_mechanism: Mechanism = "none",
    ) -> None:
        self.cgroups = list(cgroups)
        self.mechanism = mechanism
        self.memory_mechanism = memory_mechanism
        self.preexec = _chain([*(_joiner(c) for c in self.cgroups), *steps])

    def members(self) -> list[int]:
        if not self.cgroups:
            return []
        try:
            text = (self.cgroups[0] / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    async def kill_all(self) -> None:
        if not self.cgroups:
            return
        # v2 has cgroup.kill (atomic); v1 needs sweeps: a member may fork
        # between our read and our kill, but pids.max bounds how often.
        kill_file = self.cgroups[0] / "cgroup.kill"
        if self.mechanism == "cgroup-v2" and kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _KILL_SWEEP_S
        while True:
            members = self.members()
            if not members:
                return
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if loop.time() > deadline:
                log.warning(
                    "cgroup %s still has %d members after SIGKILL", self.cgroups[0], len(members)
                )
                return
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        if not self.cgroups:
            return
        await self.kill_all()
        for path in self.cgroups:
            await _rmdir_cgroup(path)


def _chain(steps: list[Callable[[], None]]) -> Callable[[], None] | None:
    """One preexec function running ``steps`` in order (None: nothing to do)."""
    if not steps:
        return None

    def run() -> None:
        for step in steps:
            step()

    return run


def _joiner(cgroup: Path) -> Callable[[], None]:
    """A preexec function moving the child into ``cgroup``."""
    procs = str(cgroup / "cgroup.procs")

    def join() -> None:
        # Runs in the child between fork and exec: plain syscalls only.
        fd = os.open(procs, os.O_WRONLY)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)

    return join


def _setrlimit(which: int, limit: int) -> Callable[[], None]:
    def set_limit() -> None:
        resource.setrlimit(which, (limit, limit))

    return set_limit


async def _rmdir_cgroup(path: Path) -> None:
    # Killed members leave the cgroup once the kernel has torn them down;
    # rmdir says EBUSY until then.
    for _ in range(200):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                log.warning("could not remove cgroup %s: %s", path, exc)
                return
        await asyncio.sleep(0.01)
    log.warning("could not remove cgroup %s: still busy", path)


class ProcessLimiter:
    """Chooses the process-limit and memory-limit mechanisms once and hands
    out one :class:`Confinement` per command.

    ``pids_max`` bounds the processes of one command; ``memory_max`` (bytes,
    None = unbounded) the memory of all of them together, unless
    :meth:`open` is given another. ``use_cgroups=False`` skips cgroups
    (tests of the fallbacks; machines where cgroups are managed by someone
    else); ``use_rlimit=False`` skips the rlimit fallbacks."""

    def __init__(
        self,
        pids_max: int = DEFAULT_PIDS_MAX,
        *,
        memory_max: int | None = DEFAULT_MEMORY_MAX,
        use_cgroups: bool = True,
        use_rlimit: bool = True,
    ) -> None:
        if pids_max < 2:
            raise ValueError("pids_max must allow at least the command and one child")
        if memory_max is not None and memory_max < MIN_MEMORY_MAX:
            raise ValueError(f"memory_max must be at least {MIN_MEMORY_MAX} bytes")
        self.pids_max = pids_max
        self.memory_max = memory_max
        self._use_cgroups = use_cgroups
        self._use_rlimit = use_rlimit
        self._chosen: tuple[Mechanism, Path | None] | None = None
        self._memory_chosen: tuple[Mechanism, Path | None] | None = None
        self._warned = False
        self._memory_warned = False

    @property
    def mechanism(self) -> Mechanism:
        """Which mechanism bounds the processes of a command (probed on
        first use)."""
        return self._choose()[0]

    @property
    def cgroup_base(self) -> Path | None:
        """The directory per-command pids cgroups are created in (None
        without cgroups)."""
        return self._choose()[1]

    @property
    def memory_mechanism(self) -> Mechanism:
        """Which mechanism bounds the memory of a command (probed on first
        use): a memory cgroup, ``rlimit`` (RLIMIT_AS per process) or
        ``none``."""
        return self._choose_memory()[0]

    @property
    def memory_cgroup_base(self) -> Path | None:
        return self._choose_memory()[1]

    def _choose(self) -> tuple[Mechanism, Path | None]:
        if self._chosen is None:
            self._chosen = self._probe()
            log.debug("process limit: %s (%s)", *self._chosen)
        return self._chosen

    def _choose_memory(self) -> tuple[Mechanism, Path | None]:
        if self._memory_chosen is None:
            self._memory_chosen = self._probe_memory()
            log.debug("memory limit: %s (%s)", *self._memory_chosen)
        return self._memory_chosen

    def _probe(self) -> tuple[Mechanism, Path | None]:
        if self._use_cgroups:
            for base in self._cgroup_bases():
                mechanism: Mechanism = "cgroup-v1" if base[1] == 1 else "cgroup-v2"
                if self._try_cgroup_base(base[0], base[1]):
                    return mechanism, base[0]
        if self._use_rlimit and os.geteuid() != 0:
            return "rlimit", None
        return "none", None

    def _probe_memory(self) -> tuple[Mechanism, Path | None]:
        if self._use_cgroups:
            mechanism, base = self._choose()
            # v2: one cgroup carries both controllers.
            if mechanism == "cgroup-v2" and base is not None and self._try_v2_memory(base):
                return "cgroup-v2", base
            for v1_base in self._cgroup_bases("memory"):
                if v1_base[1] == 1 and self._try_memory_base(v1_base[0]):
                    return "cgroup-v1", v1_base[0]
        if self._use_rlimit:
            # RLIMIT_AS binds root too.
            return "rlimit", None
        return "none", None

    @staticmethod
    def _cgroup_bases(controller: str = "pids") -> list[tuple[Path, int]]:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
            own = Path("/proc/self/cgroup").read_text()
        except OSError:
            return []
        bases: list[tuple[Path, int]] = []
        for mount in _controller_mounts(mountinfo, controller):
            if mount.version == 2:
                try:
                    controllers = (mount.mountpoint / "cgroup.controllers").read_text().split()
                except OSError:
                    continue
                if controller not in controllers:
                    continue
                # The root of a v2 hierarchy is the one cgroup that may hold
                # processes and still hand controllers to children.
                bases.append((mount.mountpoint / "futon", 2))
                continue
            # v1: nest under our own cgroup, so limits above us still apply.
            path = _own_cgroup(1, own, controller) or "/"
            rel = path[len(mount.root) :] if path.startswith(mount.root) else ""
            parent = mount.mountpoint / rel.lstrip("/")
            if not parent.is_dir():
                parent = mount.mountpoint
            bases.append((parent / "futon", 1))
        return bases

    def _try_cgroup_base(self, base: Path, version: int) -> bool:
        try:
            if version == 2:
                _enable(base.parent, "pids")
            base.mkdir(exist_ok=True)
            if version == 2:
                _enable(base, "pids")
            return _probe_join(base, {"pids.max": str(self.pids_max)})
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("pids cgroup under %s unusable: %s", base, exc)
            return False

    def _try_v2_memory(self, base: Path) -> bool:
        try:
            _enable(base.parent, "memory")
            _enable(base, "memory")
            return _probe_join(base, {"pids.max": str(self.pids_max), "memory.max": "max"})
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("memory cgroup under %s unusable: %s", base, exc)
            return False

    def _try_memory_base(self, base: Path) -> bool:
        try:
            base.mkdir(exist_ok=True)
            return _probe_join(base, {"memory.limit_in_bytes": str(MIN_MEMORY_MAX)})
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("memory cgroup under %s unusable: %s", base, exc)
            return False

    def open(self, memory_max: int | None = None) -> Confinement:
        """A fresh confinement for one command, its memory bounded by
        ``memory_max`` (default: the limiter's). Never fails: when a chosen
        mechanism cannot be set up this time, the command runs under the
        next one (and a warning says so)."""
        limit = self.memory_max if memory_max is None else memory_max
        name = uuid.uuid4().hex
        cgroups: list[Path] = []
        steps: list[Callable[[], None]] = []
        mechanism, base = self._choose()
        if base is not None:
            pids = _make_cgroup(base / name, {"pids.max": str(self.pids_max)})
            if pids is not None:
                cgroups.append(pids)
        if not cgroups:
            mechanism = self._pids_fallback(steps)
        memory = self._memory(name, limit, cgroups, steps)
        return Confinement(
            cgroups=cgroups, steps=steps, mechanism=mechanism, memory_mechanism=memory
        )

    def _pids_fallback(self, steps: list[Callable[[], None]]) -> Mechanism:
        if self._use_rlimit and os.geteuid() != 0:
            steps.append(_setrlimit(resource.RLIMIT_NPROC, _user_process_count() + self.pids_max))
            return "rlimit"
        if not self._warned:
            self._warned = True
            log.warning(
                "no process limit available (no writable pids cgroup; running as root ignores "
                "RLIMIT_NPROC): shell commands run with unbounded process counts"
            )
        return "none"

    def _memory(
        self,
        name: str,
        limit: int | None,
        cgroups: list[Path],
        steps: list[Callable[[], None]],
    ) -> Mechanism:
        """Bound the memory of the command being opened; which mechanism did."""
        if limit is None:
            return "none"
        mechanism, base = self._choose_memory()
        if mechanism == "cgroup-v2" and cgroups and cgroups[0].parent == base:
            if _write_limits(cgroups[0], {"memory.max": str(limit), "memory.swap.max": "0"}):
                return "cgroup-v2"
        elif mechanism == "cgroup-v1" and base is not None:
            files = {"memory.limit_in_bytes": str(limit), "memory.memsw.limit_in_bytes": str(limit)}
            made = _make_cgroup(base / name, files)
            if made is not None:
                cgroups.append(made)
                return "cgroup-v1"
        if self._use_rlimit:
            steps.append(_setrlimit(resource.RLIMIT_AS, limit))
            return "rlimit"
        if not self._memory_warned:
            self._memory_warned = True
            log.warning(
                "no memory limit available: shell commands may use all of the host's memory"
            )
        return "none"


# Below this a dynamic linker and bash barely start; a configured limit that
# low is a mistake, not a policy.
MIN_MEMORY_MAX = 64 * 1024 * 1024

# Files a cgroup may lack (no swap accounting): writing them is best effort.
_OPTIONAL_LIMITS = frozenset({"memory.swap.max", "memory.memsw.limit_in_bytes"})


def _write_limits(cgroup: Path, files: dict[str, str]) -> bool:
    """Write ``files`` into ``cgroup``; False when a required one fails."""
    for name, value in files.items():
        try:
            (cgroup / name).write_text(value)
        except OSError as exc:
            if name in _OPTIONAL_LIMITS:
                continue
            log.warning("could not set %s in %s: %s", name, cgroup, exc)
            return False
    return True


def _make_cgroup(path: Path, files: dict[str, str]) -> Path | None:
    """Create the cgroup ``path`` with ``files`` written; None (and nothing
    left behind) when that fails."""
    try:
        path.mkdir()
    except OSError as exc:
        log.warning("could not create cgroup %s: %s", path, exc)
        return None
    if _write_limits(path, files):
        return path
    with contextlib.suppress(OSError):
        path.rmdir()
    return None


def _probe_join(base: Path, files: dict[str, str]) -> bool:
    """Whether a child can join a fresh cgroup under ``base`` with
    ``files`` written: some setups let us create cgroups but not move
    processes into them, and then every command would fail to start
    instead of falling back."""
    probe = base / f"probe-{uuid.uuid4().hex}"
    probe.mkdir()
    try:
        for name, value in files.items():
            (probe / name).write_text(value)
        true = shutil.which("true")
        if true is not None:
            subprocess.run([true], preexec_fn=_joiner(probe), check=True, timeout=10)
    finally:
        _remove_when_empty(probe)
    return True


def _remove_when_empty(cgroup: Path) -> None:
    """rmdir a cgroup whose last member just exited (the kernel may need a
    moment to let go of it); a leftover empty probe is harmless."""
    for _ in range(50):
        try:
            cgroup.rmdir()
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                return
        time.sleep(0.01)


def _enable(cgroup: Path, controller: str) -> None:
    control = cgroup / "cgroup.subtree_control"
    if controller not in control.read_text().split():
        control.write_text(f"+{controller}")


def _user_process_count() -> int:
    """Processes (threads count too for RLIMIT_NPROC) of our real uid."""
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                status = Path(entry.path, "status").read_text()
                threads = next(
                    (ln.split()[1] for ln in status.splitlines() if ln.startswith("Threads:")), "1"
                )
                count += int(threads)
        except (OSError, ValueError):
            continue
    return count
