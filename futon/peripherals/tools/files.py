"""The file tools: read, glob, grep, edit, write.

Every path argument is a real path inside the workspace: the one the
dispatcher resolved it to (``ctx.resolved``; resolving it again would cost
a second realpath per action), or, for a caller that did not go through
the dispatcher, resolved here with
:func:`~futon.peripherals.scope.resolve_in_workspace`. That string check is
only the first wall: the path is then opened
beneath a descriptor of the workspace (:mod:`.beneath`), so a directory
swapped for a symlink after the check cannot send the open outside, and
futon's own data directory and config files (``ctx.hidden``) are refused by
inode. Walks (glob, grep) go from directory descriptor to directory
descriptor, never into a directory symlink, never into a hidden directory,
and never return a hidden path or a symlink whose target is outside.
Writes replace the file (a temp file renamed over it in the held parent
directory), so a hard link is never written through. Blocking I/O runs in
a worker thread.

grep uses RE2 (linear time whatever the pattern), reads lines with a cap,
and stops at a deadline or a byte budget, saying so in its last element.

Paths in results are relative to the workspace, with ``/`` separators.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import io
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import re2

from futon.peripherals.args import EditArgs, GlobArgs, GrepArgs, ReadArgs, WriteArgs
from futon.peripherals.scope import is_within, out_of_scope, resolve_in_workspace
from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.beneath import Beneath
from futon.protocol.errors import PermissionDenied, ToolError

GLOB_CAP = 1000
GREP_LINE_CAP = 500
# Bytes of one line that grep looks at; the rest of a longer line is read
# past in pieces of this size, never held whole (a 200 MB one-line file
# costs this much memory, not 200 MB).
GREP_LINE_BYTES = 64 * 1024
# Bytes one grep reads in all before it stops and says so.
GREP_MAX_BYTES = 512 * 1024 * 1024
# Directory depth a walk descends to: each level holds one descriptor.
WALK_MAX_DEPTH = 256
# Bytes looked at to decide that a file is binary (a NUL byte in them).
_SNIFF = 8192
# Version-control internals: compressed objects and indexes, never what a
# grep of a project means.
_GREP_SKIP_DIRS = frozenset({".git", ".hg", ".svn"})
_READ_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _rel(ctx: ToolContext, path: Path) -> str:
    # String slicing, not Path.relative_to: this runs on every file action.
    text, base = str(path), str(ctx.workspace)
    if text == base:
        return "."
    prefix = base if base.endswith("/") else base + "/"
    if text.startswith(prefix):
        return text[len(prefix) :]
    return path.relative_to(ctx.workspace).as_posix()  # raises ValueError, as before


def _resolve(ctx: ToolContext, raw: str) -> str:
    """The workspace-relative real path of ``raw`` (first wall: a string
    check that it stays inside the workspace). The dispatcher's resolution
    (``ctx.resolved``) when it made one, else a fresh one."""
    real = ctx.resolved.get(raw)
    if real is None:
        real = resolve_in_workspace(ctx.workspace, raw)
    elif not is_within(real, ctx.workspace):
        raise out_of_scope(f"path {raw!r} resolves outside the workspace", path=raw)
    return _rel(ctx, real)


def _beneath(ctx: ToolContext) -> Beneath:
    return Beneath(ctx.workspace, ctx.hidden)


# ------------------------------------------------------------------ read


def _regular(fd: int, raw: str) -> os.stat_result:
    """fstat of ``fd``, which must be a regular file (closed otherwise)."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        what = "is a directory, not a file" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ToolError(f"{raw}: {what}", context={"path": raw})
    return info


def _open_file(ctx: ToolContext, raw: str) -> tuple[int, int, str, os.stat_result]:
    """``(parent_fd, fd, name, stat)`` of the regular file ``raw`` names,
    opened beneath the workspace (no FIFO, device or hidden file)."""
    rel = _resolve(ctx, raw)
    with _beneath(ctx) as root:
        parent, fd = root.open(rel, _READ_FILE, raw=raw)
    try:
        info = _regular(fd, raw)
    except ToolError:
        os.close(parent)
        raise
    return parent, fd, rel.rsplit("/", 1)[-1], info


def _text_of(fd: int, raw: str, max_bytes: int, size: int | None = None) -> str:
    """The whole text of the regular UTF-8 file ``fd`` (closed here);
    ``size``: its size when the caller has just stat'ed it."""
    try:
        if size is None:
            size = os.fstat(fd).st_size
        if size > max_bytes:
            raise ToolError(
                f"{raw}: {size} bytes is over the read limit of {max_bytes} bytes; read it in parts with grep or bash",
                context={"path": raw, "size": size, "limit": max_bytes},
            )
        # One byte more than allowed: a file growing while we read is
        # still caught by the cap.
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ToolError(f"{raw}: over the read limit of {max_bytes} bytes", context={"path": raw})
    if b"\x00" in data:
        raise ToolError(f"{raw}: binary file (contains NUL bytes)", context={"path": raw})
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"{raw}: binary file (not UTF-8 text)", context={"path": raw}) from None


def _lines_of(text: str, args: ReadArgs) -> str:
    offset, limit = args.options.offset, args.options.limit
    if offset == 0 and limit is None:
        return text
    lines = text.splitlines(keepends=True)
    end = None if limit is None else offset + limit
    return "".join(lines[offset:end])


INLINE_READ_BYTES = 64 * 1024


async def read(args: ReadArgs, ctx: ToolContext) -> str:
    """The text of a file, or lines ``[offset, offset+limit)`` of it.

    The file is opened on the loop (a few non-blocking syscalls beneath the
    workspace descriptor; ``O_NONBLOCK``, so a FIFO never waits). A small
    regular file is then read on the loop too: that costs less than the hop
    to a worker thread and back (measured: bench/tool_dispatch.py). Larger
    files are read in a thread so the loop never waits on a slow disk."""
    parent, fd, _, info = _open_file(ctx, args.path)
    os.close(parent)
    if info.st_size <= INLINE_READ_BYTES:
        return _lines_of(_text_of(fd, args.path, ctx.settings.read_max_bytes, info.st_size), args)
    text = await asyncio.to_thread(_text_of, fd, args.path, ctx.settings.read_max_bytes)
    return _lines_of(text, args)


# ------------------------------------------------------------------ walks


@dataclass
class _Walk:
    """A descent from one held directory: the workspace root (for hidden
    checks and symlink targets) and where the descent started."""

    root: Beneath
    ctx: ToolContext
    hidden_inodes: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        self.hidden_inodes = frozenset(ino for _, ino in self.root.hidden_ids)

    def hidden(self, dir_fd: int, entry: os.DirEntry[str]) -> bool:
        """The entry is a hidden object (cheap inode test first)."""
        try:
            if entry.inode() not in self.hidden_inodes:
                return False
            return self.root.is_hidden(os.stat(entry.name, dir_fd=dir_fd, follow_symlinks=False))
        except OSError:
            return True  # vanished or unreadable: not shown

    def child_dir(self, dir_fd: int, entry: os.DirEntry[str], depth: int) -> int | None:
        """A readable fd of the subdirectory ``entry`` (never through a
        symlink; never a hidden one), or None to skip it."""
        if depth >= WALK_MAX_DEPTH or not entry.is_dir(follow_symlinks=False):
            return None
        if self.hidden(dir_fd, entry):
            return None
        try:
            return os.open(entry.name, _READ_DIR, dir_fd=dir_fd)
        except OSError:
            return None  # swapped for a symlink, vanished, unreadable

    def link_target(self, rel: str) -> str | None:
        """For a symlink at workspace-relative ``rel``: its target's
        workspace-relative real path, or None when it leaves the workspace
        or lands in a hidden place."""
        real = Path(os.path.realpath(self.ctx.workspace / rel))
        if not is_within(real, self.ctx.workspace):
            return None
        if any(is_within(real, hidden) for hidden in self.ctx.hidden):
            return None
        return _rel(self.ctx, real)


def _entries(dir_fd: int) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(dir_fd) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def _join(rel: str, name: str) -> str:
    return name if rel in ("", ".") else f"{rel}/{name}"


def _open_readable_dir(root: Beneath, rel: str, raw: str) -> int:
    held = root.open_dir(rel, raw=raw)
    try:
        return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=held)
    finally:
        os.close(held)


# ------------------------------------------------------------------ glob


def _segments(pattern: str) -> list[str]:
    if pattern.startswith("/") or os.path.isabs(pattern):
        raise ToolError(f"glob pattern {pattern!r} must be relative (give a base instead)")
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ToolError(f"glob pattern {pattern!r} may not contain '..'")
    if not parts:
        raise ToolError(f"glob pattern {pattern!r} matches nothing")
    # Consecutive ** are one **.
    out: list[str] = []
    for part in parts:
        if part == "**" and out and out[-1] == "**":
            continue
        out.append(part)
    return out


@dataclass(frozen=True)
class _Segment:
    literal: bool
    text: str
    regex: re.Pattern[str] | None

    @classmethod
    def of(cls, text: str) -> _Segment:
        if text == "**" or not any(c in text for c in "*?["):
            return cls(True, text, None)
        # fnmatch's * also matches a leading dot: hidden files are included.
        # (Python's fnmatch.translate avoids catastrophic backtracking, and
        # names are at most 255 bytes.)
        return cls(False, text, re.compile(fnmatch.translate(text)))

    def matches(self, name: str) -> bool:
        return self.text == name if self.regex is None else bool(self.regex.match(name))


class _Globber:
    def __init__(self, walk: _Walk, segments: list[_Segment]) -> None:
        self.walk = walk
        self.segments = segments
        self.found: set[str] = set()
        self.seen: set[tuple[str, int]] = set()

    def keep(self, dir_fd: int, rel: str, entry: os.DirEntry[str]) -> None:
        if self.walk.hidden(dir_fd, entry):
            return
        # A symlink entry is returned only when its target is inside (and
        # not hidden).
        if entry.is_symlink() and self.walk.link_target(rel) is None:
            return
        self.found.add(rel)

    def visit(self, dir_fd: int, rel: str, index: int, depth: int) -> None:
        """Match segment ``index`` in the held directory ``dir_fd``."""
        if (rel, index) in self.seen:
            return
        self.seen.add((rel, index))
        segment = self.segments[index]
        last = index == len(self.segments) - 1
        entries = _entries(dir_fd)
        if segment.text == "**":
            if last:
                for entry in entries:  # trailing **: everything below
                    self.keep(dir_fd, _join(rel, entry.name), entry)
                    self.descend(dir_fd, rel, entry, index, depth)
                return
            # ** as zero directories: the next segment here; as more: the
            # same ** one level down.
            self.visit(dir_fd, rel, index + 1, depth)
            for entry in entries:
                self.descend(dir_fd, rel, entry, index, depth)
            return
        for entry in entries:
            if not segment.matches(entry.name):
                continue
            if last:
                self.keep(dir_fd, _join(rel, entry.name), entry)
            else:
                self.descend(dir_fd, rel, entry, index + 1, depth)

    def descend(self, dir_fd: int, rel: str, entry: os.DirEntry[str], index: int, depth: int) -> None:
        child = self.walk.child_dir(dir_fd, entry, depth)
        if child is None:
            return
        try:
            self.visit(child, _join(rel, entry.name), index, depth + 1)
        finally:
            os.close(child)


def _glob(args: GlobArgs, ctx: ToolContext) -> list[str]:
    segments = [_Segment.of(s) for s in _segments(args.pattern)]
    base = _resolve(ctx, args.base) if args.base else "."
    with _beneath(ctx) as root:
        try:
            base_fd = _open_readable_dir(root, base, args.base or ".")
        except ToolError:
            raise ToolError(f"glob base {args.base!r} is not a directory", context={"path": args.base}) from None
        globber = _Globber(_Walk(root, ctx), segments)
        try:
            globber.visit(base_fd, "" if base == "." else base, 0, 0)
        finally:
            os.close(base_fd)
    return sorted(globber.found)[:GLOB_CAP]


async def glob(args: GlobArgs, ctx: ToolContext) -> list[str]:
    """Sorted workspace-relative paths (files and directories) matching the
    pattern under ``base`` (default: the workspace); at most 1000."""
    return await asyncio.to_thread(_glob, args, ctx)


# ------------------------------------------------------------------ grep


def _compile(pattern: str, case_insensitive: bool) -> Any:
    options = re2.Options()
    options.log_errors = False  # a bad pattern is the agent's data, not a log line
    options.case_sensitive = not case_insensitive
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ToolError(
            f"bad regular expression {pattern!r}: {reason} (grep uses RE2, which runs in linear "
            "time and so has no backreferences or lookaround)",
            context={"regex": pattern},
        ) from None


@dataclass
class _Grep:
    """One grep's state and bounds."""

    regex: Any
    limit: int
    deadline: float
    matches: list[dict[str, Any]] = field(default_factory=list)
    scanned: int = 0
    stopped: str | None = None  # why the search ended early

    def full(self) -> bool:
        return len(self.matches) >= self.limit or self.stopped is not None

    def search_fd(self, fd: int, rel: str) -> None:
        """Search the regular file ``fd`` (closed here)."""
        # A positive buffer size gives a BufferedReader (it has peek); the
        # stubs only know that for buffering=-1 or 1, hence the cast.
        raw = os.fdopen(fd, "rb", buffering=GREP_LINE_BYTES)
        with cast(io.BufferedReader, raw) as handle:
            if b"\x00" in handle.peek(_SNIFF)[:_SNIFF]:
                return  # binary
            for number, head in _capped_lines(handle, self):
                if self.stopped is not None:
                    return
                line = head.decode("utf-8", errors="replace").rstrip("\r\n")
                if self.regex.search(line):
                    self.matches.append({"file": rel, "line": number, "content": line[:GREP_LINE_CAP]})
                    if len(self.matches) >= self.limit:
                        return

    def account(self, size: int) -> None:
        self.scanned += size
        if self.scanned > GREP_MAX_BYTES:
            self.stopped = f"stopped after reading {GREP_MAX_BYTES} bytes"
        elif time.monotonic() > self.deadline:
            self.stopped = "stopped at the time limit (tools.timeout_s)"


def _capped_lines(handle: Any, grep: _Grep) -> Iterator[tuple[int, bytes]]:
    """``(number, first GREP_LINE_BYTES of the line)``; the rest of a longer
    line is read past in pieces, never held."""
    number = 0
    while True:
        head = handle.readline(GREP_LINE_BYTES)
        if not head:
            return
        number += 1
        grep.account(len(head))
        if not head.endswith(b"\n"):
            while grep.stopped is None:
                rest = handle.readline(GREP_LINE_BYTES)
                grep.account(len(rest))
                if not rest or rest.endswith(b"\n"):
                    break
        yield number, head
        if grep.stopped is not None:
            return


def _grep_tree(walk: _Walk, grep: _Grep, dir_fd: int, rel: str, depth: int) -> None:
    entries = _entries(dir_fd)
    subdirs = []
    for entry in entries:
        if grep.full():
            return
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in _GREP_SKIP_DIRS:
                subdirs.append(entry)
            continue
        _grep_entry(walk, grep, dir_fd, _join(rel, entry.name), entry)
    for entry in subdirs:
        if grep.full():
            return
        child = walk.child_dir(dir_fd, entry, depth)
        if child is None:
            continue
        try:
            _grep_tree(walk, grep, child, _join(rel, entry.name), depth + 1)
        finally:
            os.close(child)


def _grep_entry(walk: _Walk, grep: _Grep, dir_fd: int, rel: str, entry: os.DirEntry[str]) -> None:
    if walk.hidden(dir_fd, entry):
        return
    if entry.is_symlink():
        # A symlink to a file inside is searched under its own name: open
        # its target's real path beneath the root (nothing followed).
        target = walk.link_target(rel)
        if target is None:
            return
        try:
            parent, fd = walk.root.open(target, _READ_FILE, raw=rel)
        except (ToolError, PermissionDenied, OSError):  # outside, gone, hidden: skipped alike
            return
        os.close(parent)
    else:
        if not entry.is_file(follow_symlinks=False):
            return  # FIFO, socket, device: never opened
        try:
            fd = os.open(entry.name, _READ_FILE, dir_fd=dir_fd)
        except OSError:
            return
    try:
        info = _regular(fd, rel)
    except ToolError:
        return
    if walk.root.is_hidden(info):
        os.close(fd)
        return
    grep.search_fd(fd, rel)


def _grep(args: GrepArgs, ctx: ToolContext) -> list[dict[str, Any]]:
    grep = _Grep(
        _compile(args.pattern, args.options.case_insensitive),
        args.options.max_matches,
        time.monotonic() + ctx.settings.timeout_s,
    )
    rel = _resolve(ctx, args.path) if args.path else "."
    raw = args.path or "."
    with _beneath(ctx) as root:
        parent, fd = root.open(rel, _READ_FILE, raw=raw)
        os.close(parent)
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            os.close(fd)
            dir_fd = _open_readable_dir(root, rel, raw)
            try:
                _grep_tree(_Walk(root, ctx), grep, dir_fd, "" if rel == "." else rel, 0)
            finally:
                os.close(dir_fd)
        elif stat.S_ISREG(info.st_mode):
            grep.search_fd(fd, rel)
        else:
            os.close(fd)
    if grep.stopped is not None:
        # The result stays a list of matches; the last element says the
        # search is partial. It has no "file" key, so consumers of
        # {file, line, content} skip it.
        return [*grep.matches, {"truncated": f"partial results: {grep.stopped}"}]
    return grep.matches


async def grep(args: GrepArgs, ctx: ToolContext) -> list[dict[str, Any]]:
    """``[{file, line, content}]`` for lines matching the RE2 regex in
    ``path`` (a file or directory; default the workspace), in path order;
    binary files and VCS directories skipped; lines capped at 500
    characters (only the first 64 KiB of a line is searched); at most
    ``max_matches``. A search stopped by the time limit (tools.timeout_s)
    or the byte budget ends with ``{"truncated": "<why>"}``. A pattern RE2
    cannot run (backreferences, lookaround) is a ``ToolError``."""
    return await asyncio.to_thread(_grep, args, ctx)


# ------------------------------------------------------------------ edit/write


def _replace(root: Beneath, parent: int, name: str, raw: str, data: bytes) -> None:
    """Make ``name`` in the held directory ``parent`` hold ``data``: a new
    file written beside it and renamed over it, so a hard link or a symlink
    at ``name`` is replaced, never written through. The mode of a replaced
    regular file is kept."""
    mode: int | None = None
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise ToolError(f"{raw}: cannot write: {exc.strerror}", context={"path": raw}) from None
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise ToolError(f"{raw}: is a directory", context={"path": raw})
        root.check_object(info, raw)
        if stat.S_ISREG(info.st_mode):
            mode = stat.S_IMODE(info.st_mode)
    temp = f".futon-write-{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o666, dir_fd=parent)
    except OSError as exc:
        raise ToolError(f"{raw}: cannot write: {exc.strerror}", context={"path": raw}) from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if mode is not None:
                os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except OSError as exc:
        _unlink_quietly(temp, parent)
        message = "is a directory" if isinstance(exc, IsADirectoryError) else f"cannot write: {exc.strerror}"
        raise ToolError(f"{raw}: {message}", context={"path": raw}) from None
    except BaseException:
        _unlink_quietly(temp, parent)
        raise


def _unlink_quietly(name: str, dir_fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)


def _edit(args: EditArgs, ctx: ToolContext) -> dict[str, Any]:
    rel = _resolve(ctx, args.path)
    with _beneath(ctx) as root:
        parent, fd = root.open(rel, _READ_FILE, raw=args.path)
        try:
            _regular(fd, args.path)  # closes fd when it is not a regular file
            # The same checks as read: a file that cannot be read whole as
            # text cannot be edited as text either.
            text = _text_of(fd, args.path, ctx.settings.read_max_bytes)
            count = text.count(args.old)
            if count == 0:
                raise ToolError(
                    f"{args.path}: the text to replace was not found",
                    context={"path": args.path, "occurrences": 0},
                )
            if count > 1:
                raise ToolError(
                    f"{args.path}: the text to replace occurs {count} times; give more context so it occurs once",
                    context={"path": args.path, "occurrences": count},
                )
            new = text.replace(args.old, args.new, 1).encode("utf-8")
            _replace(root, parent, rel.rsplit("/", 1)[-1], args.path, new)
        finally:
            os.close(parent)
    return {"file": rel, "replacements": 1}


async def edit(args: EditArgs, ctx: ToolContext) -> dict[str, Any]:
    """Replace the single occurrence of ``old``; ``{file, replacements: 1}``.
    No occurrence, or more than one, is a ``ToolError`` saying which."""
    return await asyncio.to_thread(_edit, args, ctx)


def _write(args: WriteArgs, ctx: ToolContext) -> dict[str, Any]:
    rel = _resolve(ctx, args.path)
    if rel == ".":
        raise ToolError(f"{args.path}: is the workspace directory", context={"path": args.path})
    directory, _, name = rel.rpartition("/")
    data = args.content.encode("utf-8")
    with _beneath(ctx) as root:
        parent = root.open_dir(directory or ".", raw=args.path, create=True)
        try:
            _replace(root, parent, name, args.path, data)
        finally:
            os.close(parent)
    return {"file": rel, "bytes": len(data)}


async def write(args: WriteArgs, ctx: ToolContext) -> dict[str, Any]:
    """Write ``content`` (creating parent directories); ``{file, bytes}``
    with the UTF-8 byte count. The file is replaced, not written in place."""
    return await asyncio.to_thread(_write, args, ctx)
