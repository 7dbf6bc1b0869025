"""The one sandbox every tool process runs in — bubblewrap (``bwrap``).

Whatever tool starts it (bash, bash-readonly, bash-test, bash-git,
bash-deploy, a domain tool), a process sees only its scope:

- the system directories read-only (/usr, /bin, /sbin, /lib, /lib32,
  /lib64, /libx32 where they exist; symlinks stay symlinks), /etc
  read-only with its secrets masked (every entry not readable by everyone:
  shadow, gshadow, sudoers, ssh host keys, ssl/private…, plus a fixed list
  whatever their mode) — the process's uid maps to the daemon's, so a file
  only its owner may read would otherwise be readable;
- nothing of /root, /home, /var, /srv, /opt, /mnt, /run or anything else
  of the host;
- the workspace at its own path: read-only, or with exactly the writable
  set writable (:class:`View`), and the hidden paths (the data directory,
  the config files) covered by an empty read-only tmpfs or file even when
  they lie inside it;
- extra read-only folders from the peripheral's ``sandbox.read_only``;
- a private /tmp (a tmpfs of bounded size), a minimal /dev, a fresh /proc
  in a new PID namespace (no process of the host, the daemon included, is
  visible);
- an environment of PATH, HOME=/tmp, LANG=C.UTF-8 and the peripheral's
  ``sandbox.env`` only (:meth:`Sandbox.env`);
- no network (a new, empty network namespace) unless the peripheral's
  ``sandbox.network`` says so; new user (uid/gid 1000 inside, the
  workspace's owner maps to it so git trusts the repository; no further
  user namespaces), IPC and UTS namespaces; no capabilities; a new session;
  it dies with its parent.

The same sandbox holds the Codex App Server the ``codex-app-server``
driver runs (futon/agents/drivers/codex_app/walls.py): it lives here, with
the settings it is built from, so the client side can use it too. Its view
adds what only that process needs (:class:`View`: ``bound`` for
CODEX_HOME, ``nested_userns`` for Codex's own sandbox inside,
``read_only_root``, ``files`` for its /etc/hosts).

Whether bwrap works here is probed once per :class:`Sandbox` (running a
command in exactly such a sandbox). When it does not, every process tool
refuses with ``ToolError`` saying why — never a fallback to running
unsandboxed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from futon.config.models import SandboxSpec
from futon.protocol.errors import ToolError

log = logging.getLogger("futon.tools")

_PROBE_TIMEOUT_S = 10.0

# Bound read-only when they exist (symlinks, as on merged-/usr systems, are
# recreated as symlinks).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Masked whatever their mode says (a host may loosen a mode by mistake).
ETC_SECRETS = (
    "shadow",
    "shadow-",
    "gshadow",
    "gshadow-",
    "sudoers",
    "sudoers.d",
    "ssl/private",
    "security/opasswd",
    "ssh/ssh_host_rsa_key",
    "ssh/ssh_host_ecdsa_key",
    "ssh/ssh_host_ed25519_key",
    "ssh/ssh_host_dsa_key",
)
# The unprivileged identity inside; the daemon's uid/gid map to it.
INSIDE_UID = 1000
INSIDE_GID = 1000


@dataclass(frozen=True)
class View:
    """What one process may see of the workspace.

    ``workspace``: a real path. ``writable``: None = the whole workspace
    writable; () = nothing; else only those directories (existing ones
    under the workspace). ``hidden``: paths no process may see, covered
    wherever they fall inside what is visible. ``spec``: the peripheral's
    widening. ``tmp_bytes``: the size of the private /tmp (None: the
    tmpfs default). ``replaced``: ``(source, target)`` pairs, each file
    ``source`` bound read-only over the workspace file ``target``."""

    workspace: Path
    writable: tuple[Path, ...] | None = ()
    hidden: tuple[Path, ...] = ()
    spec: SandboxSpec = field(default_factory=SandboxSpec)
    tmp_bytes: int | None = None
    # (source, target): a file of the daemon's shown read-only in place of
    # a file inside the workspace (a vetted copy of .git/config for push).
    replaced: tuple[tuple[Path, Path], ...] = ()
    # Folders outside the workspace bound writable at their own path: a
    # native agent's own state (the codex-app-server driver's CODEX_HOME).
    # Tool processes have none.
    bound: tuple[Path, ...] = ()
    # Whether a process inside may create user namespaces: Codex's own
    # sandbox (bwrap again) nests inside futon's. Mounts a nested namespace
    # inherits stay locked (read-only stays read-only, a mask stays), so
    # this widens the kernel surface, not the view. Tool processes: False.
    nested_userns: bool = False
    # Whether the sandbox's root (bwrap's own tmpfs, holding the mount
    # points) is made read-only once built: then nothing outside /tmp and
    # the writable binds takes a write, not even an ephemeral one.
    read_only_root: bool = False
    # (source, target): a file of the daemon's bound read-only over the
    # absolute path ``target`` outside the workspace (the App Server's
    # /etc/hosts, mapping the model's host name to its egress). Tools: none.
    files: tuple[tuple[Path, str], ...] = ()


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _etc_masks(etc: Path = Path("/etc")) -> tuple[list[str], list[str]]:
    """(directories, files) under /etc to mask: the fixed secrets, and every
    entry other users may not read (directories: not searchable), which
    the sandbox would otherwise reach as their owner."""
    dirs: list[str] = []
    files: list[str] = []

    def add(path: str, mode: int) -> None:
        if stat.S_ISDIR(mode):
            dirs.append(path)
        elif stat.S_ISREG(mode):
            files.append(path)

    for name in ETC_SECRETS:
        secret = etc / name
        try:
            add(str(secret), secret.lstat().st_mode)
        except OSError:
            continue
    for directory, dirnames, filenames in os.walk(etc):
        for name in [*dirnames, *filenames]:
            path = os.path.join(directory, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISLNK(mode):
                continue
            closed = not mode & stat.S_IROTH or (stat.S_ISDIR(mode) and not mode & stat.S_IXOTH)
            if closed and path not in dirs and path not in files:
                add(path, mode)
        # A masked directory's contents are gone anyway.
        dirnames[:] = [d for d in dirnames if os.path.join(directory, d) not in dirs]
    # Masks inside a masked directory would fail (the tmpfs hides their
    # mount points).
    dirs = [d for d in dirs if not any(_within(d, o) and d != o for o in dirs)]
    files = [f for f in files if not any(_within(f, d) for d in dirs)]
    return dirs, files


class Sandbox:
    """bubblewrap, found at ``bwrap`` (a path or a name looked up on PATH;
    default ``"bwrap"``).

    :meth:`argv` builds the command line for one process; :meth:`env` its
    environment. ``available()`` / ``probe()`` say whether the sandbox
    works on this machine (cached after the first probe); ``reason`` says
    why not."""

    def __init__(self, bwrap: str | os.PathLike[str] = "bwrap") -> None:
        found = shutil.which(os.fspath(bwrap))
        self.bwrap: str | None = found
        self._requested = os.fspath(bwrap)
        self._works: bool | None = None
        self.reason: str = ""
        self._masks: tuple[list[str], list[str]] | None = None
        self._empty: Path | None = None

    # ------------------------------------------------------------ argv

    def _empty_file(self) -> str:
        """An empty read-only file to bind over a masked file (made once,
        removed with this object)."""
        if self._empty is None:
            folder = tempfile.mkdtemp(prefix="futon-sandbox-")
            empty = Path(folder, "empty")
            empty.touch(mode=0o444)
            weakref.finalize(self, shutil.rmtree, folder, True)
            self._empty = empty
        return str(self._empty)

    def _etc(self) -> tuple[list[str], list[str]]:
        if self._masks is None:
            self._masks = _etc_masks()
        return self._masks

    def _system(self) -> list[str]:
        argv: list[str] = []
        for path in SYSTEM_DIRS:
            if os.path.islink(path):
                argv += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                argv += ["--ro-bind", path, path]
        argv += ["--ro-bind", "/etc", "/etc"]
        dirs, files = self._etc()
        for directory in dirs:
            argv += ["--tmpfs", directory, "--remount-ro", directory]
        for file in files:
            argv += ["--ro-bind", self._empty_file(), file]
        return argv

    def _cover(self, hidden: Iterable[Path], visible: Sequence[str]) -> list[str]:
        """Cover every hidden path that falls inside something visible."""
        argv: list[str] = []
        for path in hidden:
            real = os.path.realpath(path)
            if not any(_within(real, root) for root in visible):
                continue
            if os.path.isdir(real):
                argv += ["--tmpfs", real, "--remount-ro", real]
            elif os.path.exists(real):
                argv += ["--ro-bind", self._empty_file(), real]
        return argv

    def options(self, view: View) -> list[str]:
        """bwrap's options (no program name, no command) for the sandbox of
        ``view`` (see the module doc), cwd the workspace."""
        ws = os.fspath(view.workspace)
        argv = [*self._system(), "--dev", "/dev", "--proc", "/proc"]
        size = ["--size", str(view.tmp_bytes)] if view.tmp_bytes else []
        argv += [*size, "--tmpfs", "/tmp", *size, "--tmpfs", "/dev/shm"]
        # Everything below comes after the /tmp tmpfs: a workspace or a
        # toolchain under /tmp must stay visible.
        visible = [ws, "/etc", *SYSTEM_DIRS]
        for extra in view.spec.read_only:
            real = os.path.realpath(extra)
            argv += ["--ro-bind-try", real, real]
            visible.append(real)
        if view.spec.network:
            argv += self._resolver()
        argv += ["--bind" if view.writable is None else "--ro-bind", ws, ws]
        for path in view.writable or ():
            real = os.path.realpath(path)
            if _within(real, ws) and os.path.isdir(real):
                argv += ["--bind", real, real]
        for path in view.bound:
            real = os.path.realpath(path)
            if os.path.isdir(real) and not _within(real, ws):
                argv += ["--bind", real, real]
                visible.append(real)
        argv += self._cover(view.hidden, visible)
        for source, target in view.replaced:
            real = os.path.realpath(target)
            if _within(real, ws) and os.path.isfile(real):
                argv += ["--ro-bind", os.fspath(source), real]
        for file, at in view.files:
            argv += ["--ro-bind", os.fspath(file), at]
        if view.read_only_root:
            argv += ["--remount-ro", "/"]
        argv += [
            "--unshare-user", "--uid", str(INSIDE_UID), "--gid", str(INSIDE_GID),
            *([] if view.nested_userns else ["--disable-userns"]),
            "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        ]  # fmt: skip
        if not view.spec.network:
            argv.append("--unshare-net")
        argv += [
            "--die-with-parent",
            "--new-session",
            "--cap-drop", "ALL",
            "--clearenv", *self._setenv(view.spec),
            "--chdir", ws,
        ]  # fmt: skip
        return argv

    def argv(self, view: View, command: Sequence[str]) -> list[str]:
        """The whole argv running ``command`` (exec'd, no shell added) in
        the sandbox of ``view``. Tools use :meth:`launch` instead, which
        keeps the options off the command line."""
        if self.bwrap is None:
            raise ToolError(self._missing())
        if not command:
            raise ToolError("empty command")
        return [self.bwrap, *self.options(view), "--", *command]

    def launch(self, view: View, command: Sequence[str]) -> tuple[list[str], int]:
        """``(argv, fd)`` running ``command`` in the sandbox of ``view``:
        the options travel in ``fd`` (a memfd bwrap reads with ``--args``
        and closes), so the process inside sees only ``bwrap --args N --
        command`` as its pid 1's command line, not which paths are masked
        or hidden. The caller passes ``fd`` to the child and closes it."""
        if self.bwrap is None:
            raise ToolError(self._missing())
        if not command:
            raise ToolError("empty command")
        data = b"".join(os.fsencode(arg) + b"\0" for arg in self.options(view))
        fd = os.memfd_create("futon-bwrap-args", os.MFD_CLOEXEC)
        try:
            view_of_data = memoryview(data)
            while view_of_data:
                written = os.write(fd, view_of_data)
                view_of_data = view_of_data[written:]
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError:
            os.close(fd)
            raise
        return [self.bwrap, "--args", str(fd), "--", *command], fd

    @staticmethod
    def _resolver() -> list[str]:
        """With the network shared, name resolution must work: bind the
        target of /etc/resolv.conf when it points outside /etc (often /run)."""
        real = os.path.realpath("/etc/resolv.conf")
        if _within(real, "/etc") or not os.path.isfile(real):
            return []
        return ["--ro-bind", real, real]

    def env(self, spec: SandboxSpec) -> dict[str, str]:
        """The whole environment of a sandboxed process: PATH (the bin/
        folders of the extra read-only folders first, then the system's),
        HOME=/tmp, LANG=C.UTF-8, and ``spec.env`` over them. Nothing of the
        daemon's own environment."""
        bins = [
            os.path.join(os.path.realpath(p), "bin")
            for p in spec.read_only
            if os.path.isdir(os.path.join(p, "bin"))
        ]
        env = {
            "PATH": ":".join([*bins, SYSTEM_PATH]),
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
        }
        env.update(spec.env)
        return env

    def _setenv(self, spec: SandboxSpec) -> list[str]:
        argv: list[str] = []
        for name, value in self.env(spec).items():
            argv += ["--setenv", name, value]
        return argv

    # ------------------------------------------------------------ probe

    def _missing(self) -> str:
        return (
            f"no sandbox is available: bubblewrap ({self._requested!r}) was not found; "
            "install bubblewrap (apt-get install bubblewrap) to enable the process tools"
        )

    def probe(self) -> bool:
        """Whether the sandbox works here (runs bwrap once, then cached).
        Blocking; use :meth:`available` from async code."""
        if self._works is not None:
            return self._works
        if self.bwrap is None:
            self.reason = self._missing()
            self._works = False
            return False
        # Exactly the sandbox the tools use; the command must run and must
        # find the workspace read-only and the host's root invisible, or the
        # sandbox is not what we promise.
        with tempfile.TemporaryDirectory(prefix="futon-probe-") as folder:
            ws = Path(folder).resolve()
            check = f"test ! -w {ws} && test ! -e /root && test -w /tmp"
            argv = self.argv(View(ws, writable=()), ["/bin/sh", "-c", check])
            self._works = self._run_probe(argv, self.env(SandboxSpec()))
        return self._works

    def _run_probe(self, argv: list[str], env: Mapping[str, str]) -> bool:
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_PROBE_TIMEOUT_S,
                check=False,
                env=dict(env),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            self.reason = f"no sandbox is available: bwrap could not run: {exc}"
            return False
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip()[:300]
            self.reason = (
                f"no sandbox is available: bwrap failed on this machine "
                f"(exit {done.returncode}: {detail or 'no message'})"
            )
            log.warning("%s", self.reason)
            return False
        return True

    async def available(self) -> bool:
        """:meth:`probe` without blocking the event loop."""
        if self._works is not None:
            return self._works
        return await asyncio.to_thread(self.probe)

    async def require(self) -> None:
        """Raise ``ToolError`` (saying why) unless the sandbox works."""
        if not await self.available():
            raise ToolError(self.reason, context={"sandbox": "bwrap", "available": False})
