"""Scope checks: the half of the envelope that looks at arguments.

Two kinds of scope limit what a permitted tool may touch:

- paths — every path argument is resolved against the workspace (``..``
  and symlinks included, as the kernel would follow them) and must land
  inside the workspace and, for a ``paths`` scope, under one of the listed
  prefixes;
- commands — ``test-commands-only`` and ``git-push-only`` split a command
  with shell rules into argv and refuse any shell syntax, so the command can
  run without a shell and ``pytest; rm -rf src`` never passes.

Everything here raises ``PermissionDenied(code="out-of-scope")`` with a
sentence saying what was refused and why.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from futon.errors import PermissionDenied

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
    resolved = os.path.realpath(raw if os.path.isabs(raw) else os.path.join(base, raw))
    if not _within(resolved, base):
        raise out_of_scope(f"path {raw!r} resolves outside the workspace", path=raw)
    return Path(resolved)


def resolve_in_scope(workspace: Path, raw: str, prefixes: Sequence[str] | None) -> Path:
    """Like :func:`resolve_in_workspace`, and under one of ``prefixes``
    (relative to the workspace) when given."""
    resolved = resolve_in_workspace(workspace, raw)
    if prefixes is None:
        return resolved
    base = str(workspace)
    for prefix in prefixes:
        root = os.path.realpath(os.path.join(base, prefix))
        if _within(str(resolved), root) and _within(root, base):
            return resolved
    allowed = ", ".join(prefixes)
    raise out_of_scope(f"path {raw!r} is outside this peripheral's paths ({allowed})", path=raw)


def is_within(path: Path, root: Path) -> bool:
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


def check_test_command(command: str, allowed: Sequence[str]) -> list[str]:
    """argv of an allowed test command (argv starts with one of ``allowed``)."""
    argv = split_command(command)
    for entry in allowed:
        prefix = shlex.split(entry)
        if argv[: len(prefix)] == prefix:
            return argv
    raise out_of_scope(f"{argv[0]!r} is not one of the configured test commands ({', '.join(allowed)})")


# git options that run programs or write outside the repository.
_GIT_DANGEROUS = ("--output", "--exec", "--upload-pack", "--receive-pack", "--ext-diff", "-c", "--config", "--git-dir", "--work-tree", "-C", "--exec-path")


def check_git_command(command: str, subcommands: Sequence[str]) -> list[str]:
    """argv of ``git <allowed subcommand> …``; options that would run other
    programs or write elsewhere are refused too."""
    argv = split_command(command)
    if argv[0] != "git":
        raise out_of_scope(f"only git may run here, not {argv[0]!r}")
    if len(argv) < 2 or argv[1] not in subcommands:
        sub = argv[1] if len(argv) > 1 else "(none)"
        raise out_of_scope(f"git subcommand {sub!r} is not allowed; allowed: {', '.join(subcommands)}")
    for arg in argv[2:]:
        for option in _GIT_DANGEROUS:
            if arg == option or arg.startswith(option + "="):
                raise out_of_scope(f"git option {option!r} is not allowed here")
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
