"""The dispatcher: the one place that decides whether an action may run.

Checks run in the order of docs/peripherals.md, all before any backend code:

1. the tool set              → ``tool-not-allowed``
2. a cycle peripheral's phase → ``phase-tool-not-allowed`` (a pluggable gate)
3. the arguments' shape      → ``invalid-input``
4. the scope                 → ``out-of-scope``

:meth:`Dispatcher.admit` has no side effects, so a caller can check a whole
chain of actions before running any (``/dispatch`` promises "nothing
executed" when one is refused). The session records refusals as evidence.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from futon.config.models import ToolsSection
from futon.peripherals.args import GlobArgs, MusnLogArgs, ShellArgs, ToolArgs, parse_args
from futon.peripherals.scope import (
    check_deploy_command,
    check_git_command,
    check_test_command,
    is_within,
    out_of_scope,
    resolve_in_scope,
)
from futon.peripherals.spec import FILE_TOOLS, WRITE_TOOLS, Peripheral
from futon.protocol.errors import PermissionDenied


class PhaseGate(Protocol):
    """Cycle peripherals (proof, mission) allow tools per phase."""

    def check(self, envelope: Envelope, tool: str) -> None:
        """Raise ``PermissionDenied(code="phase-tool-not-allowed")`` to refuse.
        ``envelope.context`` is the session's live context."""


@dataclass(frozen=True)
class Admitted:
    """An action the envelope lets through: typed args, and for shell
    commands in a ``paths`` scope the directories it may write."""

    tool: str
    args: ToolArgs
    writable: tuple[Path, ...] | None = None
    resolved: tuple[Path, ...] = ()  # the real paths of args.paths(), in order


@dataclass(frozen=True)
class Envelope:
    """What the dispatcher needs to know about the session asking."""

    peripheral: Peripheral
    workspace: Path  # real path
    session_id: str
    named_files: Collection[Path] = ()  # session-log-only: files its evidence names
    context: Mapping[str, Any] = field(default_factory=dict)  # the session's live context
    # Real paths no file tool may name: futon's data directory and config
    # files. The tools refuse them again by inode; this is the first wall.
    hidden: tuple[Path, ...] = ()


class Dispatcher:
    def __init__(self, settings: ToolsSection, phase_gate: PhaseGate | None = None) -> None:
        self.settings = settings
        self.phase_gate = phase_gate

    def admit(self, envelope: Envelope, tool: str, raw_args: object, *, check_phase: bool = True) -> Admitted:
        """``check_phase=False`` is for prechecking a chain, whose phases
        move as it runs; each step is checked again, phase included."""
        peripheral = envelope.peripheral
        if tool not in peripheral.tools:
            allowed = ", ".join(peripheral.spec.tools) or "none: this peripheral only talks"
            raise PermissionDenied(
                f"tool {tool!r} is not in {peripheral.id}'s envelope (allowed: {allowed})",
                code="tool-not-allowed",
                context={"tool": tool, "peripheral": peripheral.id},
            )
        if self.phase_gate is not None and check_phase:
            self.phase_gate.check(envelope, tool)
        args = parse_args(tool, raw_args)
        return self._scope(envelope, tool, args)

    # ----------------------------------------------------------------- scope

    def _scope(self, envelope: Envelope, tool: str, args: ToolArgs) -> Admitted:
        peripheral = envelope.peripheral
        workspace = envelope.workspace
        if tool in WRITE_TOOLS and peripheral.read_only:
            raise out_of_scope(f"{peripheral.id} is read-only: {tool} may not write here", path=_first_path(args))
        if tool in FILE_TOOLS:
            if isinstance(args, GlobArgs):
                _check_glob_pattern(args.pattern)
            if peripheral.path_prefixes is not None and not args.paths():
                # Without a path these tools search the whole workspace.
                raise out_of_scope(f"{tool} needs a path under {', '.join(peripheral.path_prefixes)} here")
            resolved = []
            for raw in args.paths():
                path = resolve_in_scope(workspace, raw, peripheral.path_prefixes)
                _check_not_hidden(path, raw, workspace, envelope.hidden)
                if peripheral.scope_name == "session-log-only" and path not in envelope.named_files:
                    raise out_of_scope(f"{raw!r} is not named in this session's evidence", path=raw)
                resolved.append(path)
            return Admitted(tool, args, resolved=tuple(resolved))
        if tool == "bash-test":
            check_test_command(_command(args), self.settings.test_commands, workspace)
        elif tool == "bash-git":
            check_git_command(_command(args), self.settings.git_subcommands)
        elif tool == "bash-deploy":
            check_deploy_command(_command(args), self.settings.deploy_commands)
        elif tool == "bash":
            return Admitted(tool, args, writable=self._writable(peripheral, workspace))
        elif tool == "musn-log" and peripheral.scope_name == "session-log-only":
            assert isinstance(args, MusnLogArgs)
            if args.session_id not in (None, envelope.session_id):
                raise out_of_scope("this peripheral reads only its own session's log")
        return Admitted(tool, args)

    @staticmethod
    def _writable(peripheral: Peripheral, workspace: Path) -> tuple[Path, ...] | None:
        """bash in a ``paths`` scope may write only under the prefixes; in a
        read-only peripheral, nowhere. None: the whole workspace."""
        if peripheral.read_only:
            return ()
        prefixes = peripheral.path_prefixes
        if prefixes is None:
            return None
        return tuple(Path(os.path.realpath(workspace / p)) for p in prefixes)


def _command(args: ToolArgs) -> str:
    assert isinstance(args, ShellArgs)
    return args.command


def _check_not_hidden(path: Path, raw: str, workspace: Path, hidden: tuple[Path, ...]) -> None:
    """out-of-scope when ``path`` is a hidden path or lies under one. A
    hidden directory that holds the whole workspace (systemd: data_dir
    /var/lib/futon, workspace /var/lib/futon/workspace) hides nothing
    inside it: its own files are outside the workspace anyway."""
    if not hidden:
        return
    text = str(path)
    for root in _hiding(str(workspace), hidden):
        if is_within(text, root):
            raise out_of_scope(
                f"path {raw!r} is futon's own data or configuration, which no tool may touch", path=raw
            )


@functools.lru_cache(maxsize=256)
def _hiding(base: str, hidden: tuple[Path, ...]) -> tuple[str, ...]:
    """The hidden paths that hide something in the workspace ``base``: all
    but a directory holding the whole workspace. A pure function of the
    session's workspace and the daemon's hidden paths, so worked out once
    per pair rather than on every action."""
    roots = (str(secret) for secret in hidden)
    return tuple(root for root in roots if root == base or not is_within(base, root))


def _check_glob_pattern(pattern: str) -> None:
    if pattern.startswith("/") or ".." in pattern.replace("\\", "/").split("/"):
        raise out_of_scope(f"glob pattern {pattern!r} must be relative and may not climb with '..'")


def _first_path(args: ToolArgs) -> str | None:
    paths = args.paths()
    return paths[0] if paths else None
