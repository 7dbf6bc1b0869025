"""The file tools: read, glob, grep, edit, write.

Every path argument is resolved again here with
:func:`~futon.peripherals.scope.resolve_in_workspace` (the dispatcher did
it already; a second check costs nothing and keeps this module safe on its
own). Final components are opened with ``O_NOFOLLOW``, so a symlink swapped
in after the check is refused rather than followed. Walks (glob, grep)
never descend into directory symlinks and never return a path whose real
path lies outside the workspace. Blocking I/O runs in a worker thread.

Paths in results are relative to the workspace, with ``/`` separators.
"""

from __future__ import annotations

import asyncio
import errno
import fnmatch
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from futon.errors import ToolError
from futon.peripherals.args import EditArgs, GlobArgs, GrepArgs, ReadArgs, WriteArgs
from futon.peripherals.scope import is_within, resolve_in_workspace
from futon.peripherals.tools import ToolContext

GLOB_CAP = 1000
GREP_LINE_CAP = 500
# Bytes looked at to decide that a file is binary (a NUL byte in them).
_SNIFF = 8192
# Version-control internals: compressed objects and indexes, never what a
# grep of a project means.
_GREP_SKIP_DIRS = frozenset({".git", ".hg", ".svn"})


def _rel(ctx: ToolContext, path: Path) -> str:
    return path.relative_to(ctx.workspace).as_posix() if path != ctx.workspace else "."


# ------------------------------------------------------------------ read


def _open_regular(path: Path, raw: str, flags: int = os.O_RDONLY) -> int:
    """fd of the regular file at ``path`` (no symlink, no FIFO, no device)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ToolError(f"{raw}: no such file", context={"path": raw}) from None
    except IsADirectoryError:
        raise ToolError(f"{raw}: is a directory, not a file", context={"path": raw}) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ToolError(f"{raw}: is a symlink", context={"path": raw}) from None
        raise ToolError(f"{raw}: cannot open: {exc.strerror}", context={"path": raw}) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        what = "is a directory, not a file" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise ToolError(f"{raw}: {what}", context={"path": raw})
    return fd


def _read_text(path: Path, raw: str, max_bytes: int) -> str:
    """The whole text of a regular UTF-8 file of at most ``max_bytes``."""
    fd = _open_regular(path, raw)
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise ToolError(
                f"{raw}: {size} bytes is over the read limit of {max_bytes} bytes; read it in parts with grep or bash",
                context={"path": raw, "size": size, "limit": max_bytes},
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            # One byte more than allowed: a file growing while we read is
            # still caught by the cap.
            data = handle.read(max_bytes + 1)
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


def _read(args: ReadArgs, ctx: ToolContext) -> str:
    path = resolve_in_workspace(ctx.workspace, args.path)
    text = _read_text(path, args.path, ctx.settings.read_max_bytes)
    offset, limit = args.options.offset, args.options.limit
    if offset == 0 and limit is None:
        return text
    lines = text.splitlines(keepends=True)
    end = None if limit is None else offset + limit
    return "".join(lines[offset:end])


INLINE_READ_BYTES = 64 * 1024


async def read(args: ReadArgs, ctx: ToolContext) -> str:
    """The text of a file, or lines ``[offset, offset+limit)`` of it.

    A small regular file is read on the loop: that costs less than the hop
    to a worker thread and back (measured: bench/tool_dispatch.py). Larger
    files, and anything that is not plainly a small regular file, go to a
    thread so the loop never waits on a slow disk."""
    try:
        st = os.stat(ctx.workspace / args.path)
        small = st.st_size <= INLINE_READ_BYTES and stat.S_ISREG(st.st_mode)
    except (OSError, ValueError):
        small = False
    if small:
        return _read(args, ctx)
    return await asyncio.to_thread(_read, args, ctx)


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
        return cls(False, text, re.compile(fnmatch.translate(text)))

    def matches(self, name: str) -> bool:
        return self.text == name if self.regex is None else bool(self.regex.match(name))


def _glob(args: GlobArgs, ctx: ToolContext) -> list[str]:
    base = resolve_in_workspace(ctx.workspace, args.base) if args.base else ctx.workspace
    if not base.is_dir():
        raise ToolError(f"glob base {args.base!r} is not a directory", context={"path": args.base})
    segments = [_Segment.of(s) for s in _segments(args.pattern)]
    found: set[str] = set()
    workspace = ctx.workspace

    def keep(path: str) -> None:
        # A symlink entry is returned only when its target is inside.
        if is_within(Path(os.path.realpath(path)), workspace):
            found.add(Path(path).relative_to(workspace).as_posix())

    # Explicit stack of (directory, index of the segment to match there);
    # directory symlinks are never entered.
    stack: list[tuple[str, int]] = [(os.fspath(base), 0)]
    seen: set[tuple[str, int]] = set()
    while stack:
        directory, index = stack.pop()
        if (directory, index) in seen:
            continue
        seen.add((directory, index))
        segment = segments[index]
        last = index == len(segments) - 1
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        if segment.text == "**":
            if last:
                # Trailing **: everything below.
                for entry in entries:
                    keep(entry.path)
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, index))
                continue
            # ** as zero directories: the next segment here; as more: the
            # same ** one level down.
            stack.append((directory, index + 1))
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, index))
            continue
        for entry in entries:
            if not segment.matches(entry.name):
                continue
            if last:
                keep(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, index + 1))
    return sorted(found)[:GLOB_CAP]


async def glob(args: GlobArgs, ctx: ToolContext) -> list[str]:
    """Sorted workspace-relative paths (files and directories) matching the
    pattern under ``base`` (default: the workspace); at most 1000."""
    return await asyncio.to_thread(_glob, args, ctx)


# ------------------------------------------------------------------ grep


def _grep_files(root: Path, workspace: Path) -> list[Path]:
    if not root.is_dir():
        return [root]
    files: list[Path] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in _GREP_SKIP_DIRS)
        for name in sorted(filenames):
            path = Path(directory, name)
            if path.is_symlink():
                real = Path(os.path.realpath(path))
                if not is_within(real, workspace) or not real.is_file():
                    continue
            files.append(path)
    return files


def _grep(args: GrepArgs, ctx: ToolContext) -> list[dict[str, Any]]:
    flags = re.IGNORECASE if args.options.case_insensitive else 0
    try:
        regex = re.compile(args.regex, flags)
    except re.error as exc:
        raise ToolError(f"bad regular expression {args.regex!r}: {exc}") from None
    root = resolve_in_workspace(ctx.workspace, args.path) if args.path else ctx.workspace
    if not root.exists():
        raise ToolError(f"{args.path}: no such file or directory", context={"path": args.path})
    limit = args.options.max_matches
    matches: list[dict[str, Any]] = []
    for path in _grep_files(root, ctx.workspace):
        real = Path(os.path.realpath(path))
        if not is_within(real, ctx.workspace):
            continue
        try:
            fd = _open_regular(real, str(path))
        except ToolError:
            continue
        with os.fdopen(fd, "rb") as handle:
            if b"\x00" in handle.read(_SNIFF):
                continue  # binary
            handle.seek(0)
            rel = path.relative_to(ctx.workspace).as_posix()
            for number, raw_line in enumerate(handle, start=1):
                line = raw_line.decode("utf-8", errors="replace").rstrip("\r\n")
                if regex.search(line):
                    matches.append({"file": rel, "line": number, "content": line[:GREP_LINE_CAP]})
                    if len(matches) >= limit:
                        return matches
    return matches


async def grep(args: GrepArgs, ctx: ToolContext) -> list[dict[str, Any]]:
    """``[{file, line, content}]`` for lines matching the regex in ``path``
    (a file or directory; default the workspace), in path order; binary
    files and VCS directories skipped; lines capped at 500 characters;
    at most ``max_matches``."""
    return await asyncio.to_thread(_grep, args, ctx)


# ------------------------------------------------------------------ edit/write


def _write_bytes(path: Path, raw: str, data: bytes, *, create: bool) -> None:
    flags = os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    if create:
        flags |= os.O_CREAT
    try:
        fd = os.open(path, flags, 0o666)
    except IsADirectoryError:
        raise ToolError(f"{raw}: is a directory", context={"path": raw}) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ToolError(f"{raw}: is a symlink", context={"path": raw}) from None
        raise ToolError(f"{raw}: cannot write: {exc.strerror}", context={"path": raw}) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ToolError(f"{raw}: not a regular file", context={"path": raw})
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _edit(args: EditArgs, ctx: ToolContext) -> dict[str, Any]:
    path = resolve_in_workspace(ctx.workspace, args.path)
    # The same checks as read: a file that cannot be read whole as text
    # cannot be edited as text either.
    text = _read_text(path, args.path, ctx.settings.read_max_bytes)
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
    _write_bytes(path, args.path, text.replace(args.old, args.new, 1).encode("utf-8"), create=False)
    return {"file": _rel(ctx, path), "replacements": 1}


async def edit(args: EditArgs, ctx: ToolContext) -> dict[str, Any]:
    """Replace the single occurrence of ``old``; ``{file, replacements: 1}``.
    No occurrence, or more than one, is a ``ToolError`` saying which."""
    return await asyncio.to_thread(_edit, args, ctx)


def _write(args: WriteArgs, ctx: ToolContext) -> dict[str, Any]:
    path = resolve_in_workspace(ctx.workspace, args.path)
    if path == ctx.workspace:
        raise ToolError(f"{args.path}: is the workspace directory", context={"path": args.path})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToolError(
            f"{args.path}: cannot create its directory: {exc.strerror}", context={"path": args.path}
        ) from None
    # mkdir followed no symlink the realpath did not already resolve; check
    # again in case one was swapped in meanwhile.
    if not is_within(Path(os.path.realpath(path.parent)), ctx.workspace):
        raise ToolError(
            f"{args.path}: its directory moved outside the workspace", context={"path": args.path}
        )
    data = args.content.encode("utf-8")
    _write_bytes(path, args.path, data, create=True)
    return {"file": _rel(ctx, path), "bytes": len(data)}


async def write(args: WriteArgs, ctx: ToolContext) -> dict[str, Any]:
    """Write ``content`` (creating parent directories); ``{file, bytes}``
    with the UTF-8 byte count."""
    return await asyncio.to_thread(_write, args, ctx)
