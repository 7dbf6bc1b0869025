"""Opening files beneath a directory descriptor: what was checked is what is opened.

The file tools used to check a resolved path string and then open the path
again; swapping a directory for a symlink in between sent the open outside
the workspace. Here every open starts from a descriptor of the workspace
(:class:`Beneath`) and never leaves it:

- where the kernel has ``openat2(2)`` (Linux 5.6+), the directory part of a
  path is resolved by the kernel with ``RESOLVE_BENEATH`` (no absolute
  paths, no ``..`` above the root, symlinks followed only while they stay
  beneath it) and ``RESOLVE_NO_MAGICLINKS`` (no ``/proc/self/fd/N`` jumps);
- elsewhere (or when a seccomp filter refuses the call) :func:`_walk`
  resolves it component by component with ``O_NOFOLLOW|O_DIRECTORY``
  relative to the directory it holds, following symlinks itself: relative
  targets only, at most :data:`MAX_HOPS`, ``..`` never above the root.

The last component is always opened with ``O_NOFOLLOW`` in the directory
descriptor so found: the tools open real paths (the dispatcher resolved
them), so a symlink there appeared after the check and is refused.

Hidden objects (futon's data directory and config files) are refused by
identity, ``(st_dev, st_ino)``, not by name: the opened object itself (a
hard link to a config file is the same inode) and, when a hidden directory
lies inside the workspace, every directory between the object and the
root (walked upwards through ``..`` from the descriptor actually held).

Known limit: a hard link inside the workspace to a file outside it is that
file; path walls cannot tell. Writes replace the file (temp + rename) and so
never modify a linked inode, but reads see its content; making such a link
needs write access to the outside file's filesystem (bash runs sandboxed,
and the kernel's protected_hardlinks limits links to files one owns).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import posixpath
import stat
from collections.abc import Iterable
from pathlib import Path

from futon.peripherals.scope import out_of_scope
from futon.protocol.errors import PermissionDenied, ToolError

# Symlinks followed while resolving one path (the kernel's own limit).
MAX_HOPS = 40
# Directories walked upwards when checking for a hidden ancestor; a
# workspace deeper than this is not a thing.
_MAX_DEPTH = 4096

_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437}.get(platform.machine())
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC

Ident = tuple[int, int]


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _Kernel:
    """openat2 through libc's syscall(2); ``available`` turns False for good
    when the kernel or a seccomp filter does not have it."""

    def __init__(self) -> None:
        self.available: bool | None = None if _SYS_OPENAT2 is not None else False
        self._syscall = None
        if self.available is None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                self._syscall = libc.syscall
                self._syscall.restype = ctypes.c_long
            except (OSError, AttributeError):
                self.available = False

    def openat2(self, dir_fd: int, path: str, flags: int) -> int:
        """fd, or raises OSError with the kernel's errno."""
        how = _OpenHow(flags | os.O_CLOEXEC, 0, _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS)
        assert self._syscall is not None and _SYS_OPENAT2 is not None
        fd = self._syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(dir_fd),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
        return int(fd)

    def usable(self, root_fd: int) -> bool:
        """Probe once: ENOSYS (old kernel) or EPERM (seccomp) on opening
        ``.`` means the fallback walk from then on."""
        if self.available is None:
            try:
                os.close(self.openat2(root_fd, ".", _DIR_FLAGS))
                self.available = True
            except OSError:
                self.available = False
        return self.available


KERNEL = _Kernel()
# Tests set this to False to exercise the portable walk on any kernel.
USE_OPENAT2 = True


def ident(info: os.stat_result) -> Ident:
    return (info.st_dev, info.st_ino)


def split(rel: str) -> list[str]:
    """Components of a workspace-relative path; ``..`` that would climb
    above the root is refused here already (lexically)."""
    parts = [p for p in posixpath.normpath(rel.replace(os.sep, "/")).split("/") if p not in ("", ".")]
    if rel.startswith("/") or (parts and parts[0] == ".."):
        raise out_of_scope(f"path {rel!r} leaves the workspace", path=rel)
    return parts


class Beneath:
    """The workspace, held open as a directory descriptor, and the hidden
    objects. A context manager: the descriptor is closed on exit."""

    def __init__(self, root: Path, hidden: Iterable[Path] = ()) -> None:
        self.root = root
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self.root_id = ident(os.fstat(self.fd))
            self.hidden_ids: set[Ident] = set()
            # Hidden directories an upward walk from an opened object looks
            # for. Every hidden directory is listed, wherever it is: one that
            # holds the root (systemd: data_dir above the workspace) is never
            # met (the walk stops at the root), nor is one elsewhere (not
            # reachable from beneath the root), so listing them costs only
            # the walk itself, while deciding which lie beneath the root
            # would cost a realpath per hidden directory per open — and
            # would trust a path string where the walk trusts identities.
            self.hidden_dirs: set[Ident] = set()
            for path in hidden:
                try:
                    info = os.stat(path)
                except OSError:
                    continue  # not there: nothing to hide
                self.hidden_ids.add(ident(info))
                if stat.S_ISDIR(info.st_mode):
                    self.hidden_dirs.add(ident(info))
        except BaseException:
            os.close(self.fd)
            raise

    def __enter__(self) -> Beneath:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # ---------------------------------------------------------------- opens

    def open_dir(self, rel: str, *, raw: str | None = None, create: bool = False) -> int:
        """An ``O_PATH`` descriptor of the directory ``rel`` beneath the root
        (created with its parents when ``create``); hidden ones refused."""
        raw = rel if raw is None else raw
        parts = split(rel)
        fd = self._dir(parts, raw, create)
        try:
            self.check_dir(fd, raw)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open(
        self, rel: str, flags: int, mode: int = 0o666, *, raw: str | None = None, plain: bool = True
    ) -> tuple[int, int]:
        """``(parent_fd, fd)``: the object ``rel`` opened with ``flags``
        (``O_NOFOLLOW`` added) in its parent directory, both beneath the
        root and neither hidden. The root itself is ``(dup(root), root)``.
        ``plain``: refuse anything but a regular file or a directory before
        opening it (opening a device can act on it)."""
        raw = rel if raw is None else raw
        parts = split(rel)
        if not parts:
            parent = os.dup(self.fd)
            try:
                fd = os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=parent)
            except OSError as exc:
                os.close(parent)
                raise _tool_error(exc, raw) from None
            return self._checked(parent, fd, raw)
        parent = self._dir(parts[:-1], raw, create=False)
        try:
            if plain:
                _refuse_special(parent, parts[-1], raw)
            fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
        except ToolError:
            os.close(parent)
            raise
        except OSError as exc:
            last = _is_symlink(parent, parts[-1])
            os.close(parent)
            if last:
                raise ToolError(f"{raw}: is a symlink (it changed after the check)", context={"path": raw}) from None
            raise _tool_error(exc, raw) from None
        return self._checked(parent, fd, raw)

    def read_bytes(self, rel: str, limit: int, *, raw: str | None = None) -> bytes:
        """At most ``limit`` bytes of the regular file ``rel`` beneath the
        root (``rel`` a real path: a symlink met on the way is refused).
        For the daemon's own readers of workspace files (domain tools): the
        same wall as the file tools. Raises ``ToolError`` or
        ``PermissionDenied``."""
        raw = rel if raw is None else raw
        parent, fd = self.open(rel, os.O_RDONLY | os.O_NONBLOCK, raw=raw)
        try:
            os.close(parent)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ToolError(f"{raw}: not a regular file", context={"path": raw})
            chunks: list[bytes] = []
            left = limit
            while left > 0:
                data = os.read(fd, min(left, 1 << 20))
                if not data:
                    break
                chunks.append(data)
                left -= len(data)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _checked(self, parent: int, fd: int, raw: str) -> tuple[int, int]:
        try:
            self.check_object(os.fstat(fd), raw)
            self.check_dir(parent, raw)
        except BaseException:
            os.close(fd)
            os.close(parent)
            raise
        return parent, fd

    # ---------------------------------------------------------------- hidden

    def is_hidden(self, info: os.stat_result) -> bool:
        return ident(info) in self.hidden_ids

    def check_object(self, info: os.stat_result, raw: str) -> None:
        if ident(info) in self.hidden_ids:
            raise _hidden(raw)

    def check_dir(self, fd: int, raw: str) -> None:
        """Refuse when the directory ``fd`` is, or lies under, a hidden
        directory; walks up through ``..`` from what is held, to the root."""
        info = os.fstat(fd)
        if ident(info) in self.hidden_ids:
            raise _hidden(raw)
        if not self.hidden_dirs:
            return
        current = os.open("..", _DIR_FLAGS, dir_fd=fd) if ident(info) != self.root_id else -1
        try:
            for _ in range(_MAX_DEPTH):
                if current < 0:
                    return
                here = ident(os.fstat(current))
                if here in self.hidden_dirs:
                    raise _hidden(raw)
                if here == self.root_id:
                    return
                parent = os.open("..", _DIR_FLAGS, dir_fd=current)
                if ident(os.fstat(parent)) == here:  # "/" without meeting the root
                    os.close(parent)
                    raise out_of_scope(f"path {raw!r} moved outside the workspace", path=raw)
                os.close(current)
                current = parent
            raise out_of_scope(f"path {raw!r} is too deep to check", path=raw)
        finally:
            if current >= 0:
                os.close(current)

    # ---------------------------------------------------------------- walks

    def _dir(self, parts: list[str], raw: str, create: bool) -> int:
        if not parts:
            return os.open(".", _DIR_FLAGS, dir_fd=self.fd)
        if USE_OPENAT2 and KERNEL.usable(self.fd):
            for _ in range(8):
                try:
                    return KERNEL.openat2(self.fd, "/".join(parts), _DIR_FLAGS)
                except OSError as exc:
                    if exc.errno == errno.EAGAIN:
                        continue  # a rename raced the lookup: the kernel asks to retry
                    if exc.errno == errno.EXDEV:
                        raise out_of_scope(f"path {raw!r} leaves the workspace", path=raw) from None
                    if exc.errno == errno.ENOENT and create:
                        break  # the walk creates what is missing
                    raise _tool_error(exc, raw) from None
        return _walk(self.fd, parts, raw, create)


def _walk(root_fd: int, parts: list[str], raw: str, create: bool) -> int:
    """The portable resolution: an ``O_PATH`` fd of the directory ``parts``
    names beneath ``root_fd``, following symlinks by hand and never above
    the root. ``create``: make missing directories (mode 0777 & umask)."""
    stack = [os.open(".", _DIR_FLAGS, dir_fd=root_fd)]  # the directories walked through
    todo = list(reversed(parts))
    hops = 0
    try:
        while todo:
            name = todo.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if len(stack) == 1:
                    raise out_of_scope(f"path {raw!r} leaves the workspace", path=raw)
                os.close(stack.pop())
                continue
            here = stack[-1]
            try:
                stack.append(os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=here))
                continue
            except FileNotFoundError:
                if not create:
                    raise ToolError(f"{raw}: no such file or directory", context={"path": raw}) from None
                try:
                    os.mkdir(name, 0o777, dir_fd=here)
                except FileExistsError:
                    pass  # made meanwhile: open it on the next turn
                except OSError as exc:
                    raise ToolError(
                        f"{raw}: cannot create its directory: {exc.strerror}", context={"path": raw}
                    ) from None
                todo.append(name)
                continue
            except NotADirectoryError:
                if not _is_symlink(here, name):
                    raise ToolError(f"{raw}: {name} is not a directory", context={"path": raw}) from None
            except OSError as exc:
                raise _tool_error(exc, raw) from None
            hops += 1
            if hops > MAX_HOPS:
                raise ToolError(f"{raw}: too many levels of symbolic links", context={"path": raw})
            try:
                target = os.readlink(name, dir_fd=here)
            except OSError:
                todo.append(name)  # no longer a symlink (swapped meanwhile): look again
                continue
            if target.startswith("/"):
                # RESOLVE_BENEATH refuses absolute symlinks too (one to
                # /proc/self/root included); a workspace has no need of them.
                raise out_of_scope(f"path {raw!r} goes through an absolute symlink", path=raw)
            todo.extend(reversed(target.split("/")))
        result = stack.pop()
        return result
    finally:
        for fd in stack:
            os.close(fd)


def _refuse_special(dir_fd: int, name: str, raw: str) -> None:
    """ToolError for a FIFO, socket or device at ``name`` (not opened)."""
    try:
        kind = stat.S_IFMT(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return  # the open that follows says what is wrong
    if kind not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
        raise ToolError(f"{raw}: not a regular file", context={"path": raw})


def _is_symlink(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _hidden(raw: str) -> PermissionDenied:
    return out_of_scope(f"path {raw!r} is futon's own data or configuration, which no tool may touch", path=raw)


def _tool_error(exc: OSError, raw: str) -> ToolError:
    context = {"path": raw}
    if exc.errno == errno.ENOENT:
        return ToolError(f"{raw}: no such file or directory", context=context)
    if exc.errno == errno.ENOTDIR:
        return ToolError(f"{raw}: a part of the path is not a directory", context=context)
    if exc.errno == errno.EISDIR:
        return ToolError(f"{raw}: is a directory, not a file", context=context)
    if exc.errno == errno.ELOOP:
        return ToolError(f"{raw}: too many levels of symbolic links", context=context)
    return ToolError(f"{raw}: cannot open: {exc.strerror}", context=context)
