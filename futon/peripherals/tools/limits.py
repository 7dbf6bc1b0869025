"""Process limits for shell tools: a real bound on how many processes one
command may have, and a way to kill every one of them.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger("futon.tools")

Mechanism = Literal["cgroup-v1", "cgroup-v2", "rlimit", "none"]
DEFAULT_PIDS_MAX = 256

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
        if fstype == "cgroup" and "pids" in super_opts:
            v1.append(_CgroupMount(1, mount, _unescape_mount(fields[3])))
        elif fstype == "cgroup2":
            v2.append(_CgroupMount(2, mount, _unescape_mount(fields[3])))
    return v1 + v2


def _own_cgroup(version: int, proc_cgroup: str) -> str | None:
    for line in proc_cgroup.splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if version == 1 and hier != "0" and "pids" in controllers.split(","):
            return path
        if version == 2 and hier == "0" and controllers == "":
            return path
    return None


class Confinement:
    """The limit applied to one command. ``preexec`` runs in the child
    between fork and exec; ``kill_all`` kills every process the command
    started (that the mechanism can find); ``close`` releases the cgroup."""

    mechanism: Mechanism = "none"

    def __init__(self, preexec: Callable[[], None] | None = None) -> None:
        self.preexec = preexec

    def members(self) -> list[int]:
        return []

    async def kill_all(self) -> None:
        return None

    async def close(self) -> None:
        return None


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


class _CgroupConfinement(Confinement):
    def __init__(self, path: Path, mechanism: Mechanism) -> None:
        self.path = path
        self.mechanism = mechanism
        super().__init__(_joiner(path))

    def members(self) -> list[int]:
        try:
            text = (self.path / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    async def kill_all(self) -> None:
        # v2 has cgroup.kill (atomic); v1 needs sweeps: a member may fork
        # between our read and our kill, but pids.max bounds how often.
        kill_file = self.path / "cgroup.kill"
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
                log.warning("cgroup %s still has %d members after SIGKILL", self.path, len(members))
                return
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.kill_all()
        # Killed members leave the cgroup once the kernel has torn them down;
        # rmdir says EBUSY until then.
        for _ in range(200):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    log.warning("could not remove cgroup %s: %s", self.path, exc)
                    return
            await asyncio.sleep(0.01)
        log.warning("could not remove cgroup %s: still busy", self.path)


class ProcessLimiter:
    """Chooses a process-limit mechanism once and hands out one
    :class:`Confinement` per command.

    ``pids_max`` bounds the processes of one command. ``use_cgroups=False``
    skips cgroups (tests of the fallbacks; machines where cgroups are
    managed by someone else); ``use_rlimit=False`` skips the RLIMIT_NPROC
    fallback."""

    def __init__(
        self,
        pids_max: int = DEFAULT_PIDS_MAX,
        *,
        use_cgroups: bool = True,
        use_rlimit: bool = True,
    ) -> None:
        if pids_max < 2:
            raise ValueError("pids_max must allow at least the command and one child")
        self.pids_max = pids_max
        self._use_cgroups = use_cgroups
        self._use_rlimit = use_rlimit
        self._chosen: tuple[Mechanism, Path | None] | None = None
        self._warned = False

    @property
    def mechanism(self) -> Mechanism:
        """Which mechanism commands run under (probed on first use)."""
        return self._choose()[0]

    @property
    def cgroup_base(self) -> Path | None:
        """The directory per-command cgroups are created in (None without
        cgroups)."""
        return self._choose()[1]

    def _choose(self) -> tuple[Mechanism, Path | None]:
        if self._chosen is None:
            self._chosen = self._probe()
            log.debug("process limit: %s (%s)", *self._chosen)
        return self._chosen

    def _probe(self) -> tuple[Mechanism, Path | None]:
        if self._use_cgroups:
            for base in self._cgroup_bases():
                mechanism: Mechanism = "cgroup-v1" if base[1] == 1 else "cgroup-v2"
                if self._try_cgroup_base(base[0], base[1]):
                    return mechanism, base[0]
        if self._use_rlimit and os.geteuid() != 0:
            return "rlimit", None
        return "none", None

    @staticmethod
    def _cgroup_bases() -> list[tuple[Path, int]]:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
            own = Path("/proc/self/cgroup").read_text()
        except OSError:
            return []
        bases: list[tuple[Path, int]] = []
        for mount in _pids_mounts(mountinfo):
            if mount.version == 2:
                try:
                    controllers = (mount.mountpoint / "cgroup.controllers").read_text().split()
                except OSError:
                    continue
                if "pids" not in controllers:
                    continue
                # The root of a v2 hierarchy is the one cgroup that may hold
                # processes and still hand controllers to children.
                bases.append((mount.mountpoint / "futon", 2))
                continue
            # v1: nest under our own cgroup, so limits above us still apply.
            path = _own_cgroup(1, own) or "/"
            rel = path[len(mount.root) :] if path.startswith(mount.root) else ""
            parent = mount.mountpoint / rel.lstrip("/")
            if not parent.is_dir():
                parent = mount.mountpoint
            bases.append((parent / "futon", 1))
        return bases

    def _try_cgroup_base(self, base: Path, version: int) -> bool:
        try:
            if version == 2:
                _enable_pids(base.parent)
            base.mkdir(exist_ok=True)
            if version == 2:
                _enable_pids(base)
            probe = base / f"probe-{uuid.uuid4().hex}"
            probe.mkdir()
            try:
                (probe / "pids.max").write_text(str(self.pids_max))
                # A child must be able to join: some setups let us create
                # cgroups but not move processes into them, and then every
                # command would fail to start instead of falling back.
                true = shutil.which("true")
                if true is not None:
                    subprocess.run([true], preexec_fn=_joiner(probe), check=True, timeout=10)
            finally:
                _remove_when_empty(probe)
            return True
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("pids cgroup under %s unusable: %s", base, exc)
            return False

    def open(self) -> Confinement:
        """A fresh confinement for one command. Never fails: when the chosen
        mechanism cannot be set up this time, the command runs under the
        next one (and a warning says so)."""
        mechanism, base = self._choose()
        if base is not None:
            path = base / uuid.uuid4().hex
            try:
                path.mkdir()
                (path / "pids.max").write_text(str(self.pids_max))
                return _CgroupConfinement(path, mechanism)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    path.rmdir()
                log.warning("could not create pids cgroup %s: %s", path, exc)
        if mechanism == "rlimit" or (self._use_rlimit and os.geteuid() != 0):
            limit = _user_process_count() + self.pids_max
            return _rlimit_confinement(limit)
        if not self._warned:
            self._warned = True
            log.warning(
                "no process limit available (no writable pids cgroup; running as root ignores "
                "RLIMIT_NPROC): shell commands run with unbounded process counts"
            )
        return Confinement()


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


def _enable_pids(cgroup: Path) -> None:
    control = cgroup / "cgroup.subtree_control"
    if "pids" not in control.read_text().split():
        control.write_text("+pids")


def _rlimit_confinement(limit: int) -> Confinement:
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))

    confinement = Confinement(set_limit)
    confinement.mechanism = "rlimit"
    return confinement


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
