"""Scope checks: the half of the envelope that looks at arguments.

Two kinds of scope limit what a permitted tool may touch:

- paths — every path argument is resolved against the workspace (``..``
  and symlinks included, as the kernel would follow them) and must land
  inside the workspace and, for a ``paths`` scope, under one of the listed
  prefixes;
- commands — ``test-commands-only`` and ``git-push-only`` split a command
  with shell rules into argv and refuse any shell syntax, so the command can
  run without a shell and ``pytest; rm -rf src`` never passes. The argv
  must then match a test-command pattern whole, pass the git grammar
  (:mod:`futon.peripherals.git_options`) or equal a deploy command.

These argument checks are a first wall; the sandbox the command runs in is
the one that holds when a test suite or git itself is told to do harm.

Everything here raises ``PermissionDenied(code="out-of-scope")`` with a
sentence saying what was refused and why.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from futon.config.command_patterns import PATH_SLOT, PATHS_SLOT, parse_test_pattern
from futon.peripherals.git_options import check_git_argv
from futon.protocol.errors import PermissionDenied

# Characters that only mean something to a shell. Refused outright in the
# no-shell scopes, even inside quotes: a test command has no need of them and
# refusing them keeps the rule simple to state and to audit.
SHELL_SYNTAX = (";", "&", "|", "$(", "`", ">", "<", "\n", "\r", "$", "(", ")", "{", "}", "*", "?", "~", "!")


def out_of_scope(message: str, **context: object) -> PermissionDenied:
    return PermissionDenied(message, code="out-of-scope", context=dict(context) if context else None)


def resolve_in_workspace(workspace: Path, raw: str) -> Path:
    """The real path ``raw`` names, relative to ``workspace``; it must stay
    inside the workspace. ``workspace`` must itself be a real path."""
    # String operations on purpose: this runs for every path argument of
    # every action, and pathlib's parsing cost more than the check itself.
    base = str(workspace)
    resolved = _realpath(raw if os.path.isabs(raw) else os.path.join(base, raw), raw)
    if not _within(resolved, base):
        raise out_of_scope(f"path {raw!r} resolves outside the workspace", path=raw)
    return _path(resolved)


@functools.lru_cache(maxsize=4096)
def _path(real: str) -> Path:
    """``Path(real)``, the same object for the same string: the same files
    are named action after action, and pathlib's parsing (and the hash a
    session's set of named files takes of it) cost more than the check."""
    return Path(real)


def _realpath(path: str, raw: str) -> str:
    """realpath, which raises when a component changes kind under it (a
    symlink swapped for a directory between its lstat and readlink): try
    again, then refuse."""
    for _ in range(3):
        try:
            return _kernel_realpath(path) or os.path.realpath(path)
        except OSError:
            continue
    raise out_of_scope(f"path {raw!r} keeps changing while it is checked", path=raw)


_PROC_FD = "/proc/self/fd/"


def _kernel_realpath(path: str) -> str | None:
    """The real path of an existing ``path`` as the kernel resolved it (an
    ``O_PATH`` open — which neither reads nor acts on the object — then
    the name ``/proc`` gives the descriptor): the same answer as
    ``os.path.realpath``, which follows symlinks the same way, in three
    system calls instead of an lstat per component. None when the kernel
    cannot say: the path does not exist yet (a file about to be written),
    a symlink loop, no ``/proc``, or the object was unlinked meanwhile —
    then ``os.path.realpath`` answers."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        real = os.readlink(_PROC_FD + str(fd))
    except OSError:
        return None
    finally:
        os.close(fd)
    if not real.startswith("/") or real.endswith(" (deleted)"):
        return None
    return real


def resolve_in_scope(workspace: Path, raw: str, prefixes: Sequence[str] | None) -> Path:
    """Like :func:`resolve_in_workspace`, and under one of ``prefixes``
    (relative to the workspace) when given."""
    resolved = resolve_in_workspace(workspace, raw)
    if prefixes is None:
        return resolved
    base = str(workspace)
    for prefix in prefixes:
        root = _realpath(os.path.join(base, prefix), raw)
        if _within(str(resolved), root) and _within(root, base):
            return resolved
    allowed = ", ".join(prefixes)
    raise out_of_scope(f"path {raw!r} is outside this peripheral's paths ({allowed})", path=raw)


def is_within(path: Path | str, root: Path | str) -> bool:
    """``path`` is ``root`` or below it (real paths, as Path or str)."""
    return _within(str(path), str(root))


def _within(path: str, root: str) -> bool:
    """``path`` is ``root`` or below it (both normalised, real paths)."""
    return path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep)


def split_command(command: str) -> list[str]:
    """argv for a no-shell scope, or out-of-scope when the command carries
    shell syntax or does not split cleanly."""
    for token in SHELL_SYNTAX:
        if token in command:
            raise out_of_scope(f"shell syntax {token!r} is not allowed here; the command runs without a shell")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise out_of_scope(f"command does not split into arguments: {exc}") from None
    if not argv:
        raise out_of_scope("empty command")
    return argv


# A path argument: word characters and . / : [ ] , + - (pytest node ids such
# as tests/test_a.py::test_x[1] included), starting with a word character or
# '.'. This leaves out what a test runner would read as something else: a
# leading '-' (an option), '@' (pytest reads more arguments from that file),
# '+', and '=' (make reads VAR=value as a variable, which can run programs).
_PATH_ARG = re.compile(r"[\w.][\w./:\[\],+-]*")


def check_test_command(
    command: str, allowed: Sequence[str], workspace: Path | None = None
) -> list[str]:
    """argv of ``command`` when it matches one of the ``allowed`` patterns
    whole: literal tokens equal, ``{path}`` one path argument, ``{paths}``
    any number of them at the end. Never a prefix match: ``pytest
    --junitxml=/x`` does not match ``pytest {paths}``. Path arguments must be
    relative, stay inside ``workspace`` (symlinks followed, when given) and
    look like paths (see ``_PATH_ARG``)."""
    argv = split_command(command)
    refusals: list[str] = []
    for entry in allowed:
        reason = _match_test_pattern(parse_test_pattern(entry), argv, workspace)
        if reason is None:
            return argv
        refusals.append(reason)
    # A path that is refused says more than "no pattern matched".
    detail = next((r for r in refusals if r), "")
    configured = ", ".join(allowed) or "none"
    raise out_of_scope(
        f"{command!r} is not one of the configured test commands ({configured})"
        + (f": {detail}" if detail else ""),
    )


def _match_test_pattern(pattern: list[str], argv: list[str], workspace: Path | None) -> str | None:
    """None when ``argv`` matches; otherwise why not ("" for a plain miss)."""
    variadic = pattern[-1] == PATHS_SLOT
    fixed = pattern[:-1] if variadic else pattern
    if len(argv) < len(fixed) or (not variadic and len(argv) != len(fixed)):
        return ""
    paths: list[str] = []
    for token, arg in zip(fixed, argv, strict=False):
        if token == PATH_SLOT:
            paths.append(arg)
        elif token != arg:
            return ""
    paths.extend(argv[len(fixed) :])
    for arg in paths:
        reason = _test_path_problem(arg, workspace)
        if reason:
            return reason
    return None


def _test_path_problem(arg: str, workspace: Path | None) -> str:
    """Why ``arg`` may not stand for a path here ("" when it may)."""
    if os.path.isabs(arg):
        return f"{arg!r} is an absolute path; test paths must be relative"
    if not _PATH_ARG.fullmatch(arg):
        return (
            f"{arg!r} is not a plain relative path (options, '=', '@' and the like are"
            " not allowed)"
        )
    file_part = arg.split("::", 1)[0]  # pytest node id: path::test
    if ".." in file_part.split("/"):
        return f"{arg!r} climbs out with '..'"
    if workspace is not None:
        try:
            resolve_in_workspace(workspace, file_part)
        except PermissionDenied as exc:
            return exc.message
    return ""


def check_git_command(command: str, subcommands: Sequence[str]) -> list[str]:
    """argv of ``git <allowed subcommand> …`` whose every option and argument
    passes :mod:`futon.peripherals.git_options` (git's own parsing rules,
    prefixes of long options included)."""
    argv = split_command(command)
    check_git_argv(argv, subcommands)
    return argv


def check_deploy_command(command: str, allowed: Sequence[str]) -> list[str]:
    """argv of exactly one of the configured deploy commands."""
    argv = split_command(command)
    for entry in allowed:
        if argv == shlex.split(entry):
            return argv
    if not allowed:
        raise out_of_scope("no deploy commands are configured (tools.deploy_commands)")
    raise out_of_scope(f"{command!r} is not one of the configured deploy commands")
