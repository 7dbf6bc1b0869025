"""What a git process may bring onto the host network (deploy's push).

A peripheral whose sandbox shares the host network (``sandbox.network``)
shares it only with the processes that need it: of the git subcommands,
``push`` (:data:`REMOTE_SUBCOMMANDS`), and only when the repository has a
remote that is reached over the network. Every other git process runs with
no network at all, so a hook, an fsmonitor or a diff driver that another
peripheral planted in the workspace's ``.git`` runs — sandboxed — with
nothing to connect to.

The push itself must not run what the workspace configured either: the
repository's ``.git`` is writable to peripherals that run arbitrary code
(proof, mission: ``bash`` in a full-codebase scope). So a networked push
sees

- ``.git/config`` replaced by a vetted copy (:func:`vetted_config`): only
  the keys in :data:`_KEPT` (remotes' URLs and refspecs, branch tracking,
  push defaults, the repository format, the author) — nothing that names a
  program (``core.fsmonitor``, ``core.sshCommand``, ``credential.helper``,
  ``remote.*.receivepack``, ``url.*.insteadOf``, ``include.path`` …);
- ``.git/hooks`` covered by an empty folder;
- only the http, https, ssh and git transports (``GIT_ALLOW_PROTOCOL``):
  no ``ext::``, no local path whose own hooks would run with the network.

A repository whose ``.git`` is not a plain folder (a ``gitdir:`` file, a
symlink, a linked worktree's ``commondir``) is refused for a networked
push: git would read configuration from somewhere else.

Known limit: the remote's URL is part of the workspace's configuration, so
an agent that can write ``.git/config`` chooses where deploy pushes to —
loopback included. Pin the remote outside the agents' reach if that
matters (a push over ssh with a host key only the real remote has).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from futon.protocol.errors import ToolError

# git subcommands that talk to a remote: the only ones given the network.
REMOTE_SUBCOMMANDS = frozenset({"push"})
ALLOWED_PROTOCOLS = "http:https:ssh:git"
# The configuration a networked push keeps (keys as `git config --list`
# prints them: section and name lowercased, subsection as written).
_KEPT = re.compile(
    r"core\.(repositoryformatversion|bare|filemode|logallrefupdates|ignorecase"
    r"|precomposeunicode|symlinks)"
    r"|extensions\.objectformat"
    r"|remote\..+\.(url|pushurl|fetch|push|tagopt|mirror)"
    r"|branch\..+\.(remote|pushremote|merge)"
    r"|push\.(default|followtags|autosetupremote)"
    r"|user\.(name|email)",
    re.S,
)
_REMOTE_URL = re.compile(r"remote\..+\.(url|pushurl)", re.S)
LIST_COMMAND = ("git", "config", "--file", ".git/config", "--no-includes", "--null", "--list")


def git_dir(workspace: Path) -> Path:
    """The workspace's ``.git`` folder, or ``ToolError`` when it is not a
    plain folder git would read all of its configuration from."""
    path = workspace / ".git"
    if path.is_symlink() or not path.is_dir():
        raise ToolError(
            "a push needs the workspace's .git to be a plain folder (not a gitdir file or a "
            "symlink): git would read its configuration from elsewhere"
        )
    if (path / "commondir").exists():
        raise ToolError("a push from a linked worktree is not supported (.git/commondir)")
    return path


def parse_list(output: str) -> list[tuple[str, str]]:
    """``(key, value)`` pairs of ``git config --null --list`` output."""
    pairs = []
    for record in output.split("\0"):
        if not record:
            continue
        key, _, value = record.partition("\n")
        pairs.append((key, value))
    return pairs


def kept(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in pairs if _KEPT.fullmatch(k)]


def is_network_url(url: str) -> bool:
    """Whether git reaches ``url`` over the network (not a local path or
    ``file://``); unknown forms count as network (and are then held to
    :data:`ALLOWED_PROTOCOLS`)."""
    if "://" in url:
        return url.split("://", 1)[0].lower() != "file"
    if url.startswith(("/", ".", "~")) or ":" not in url:
        return False
    return "/" not in url.split(":", 1)[0]  # scp-like host:path


def needs_network(pairs: list[tuple[str, str]]) -> bool:
    return any(_REMOTE_URL.fullmatch(k) and is_network_url(v) for k, v in pairs)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\t", "\\t") + '"'


def vetted_config(pairs: list[tuple[str, str]]) -> str:
    """A git config file holding exactly ``kept(pairs)``."""
    sections: dict[tuple[str, str | None], list[tuple[str, str]]] = {}
    for key, value in kept(pairs):
        section, _, rest = key.partition(".")
        subsection, _, name = rest.rpartition(".")
        sections.setdefault((section, subsection or None), []).append((name, value))
    lines = []
    for (name, sub), entries in sections.items():
        header = name if sub is None else f"{name} {_quote(sub)}"
        lines.append(f"[{header}]")
        lines.extend(f"\t{name} = {_quote(value)}" for name, value in entries)
    return "\n".join(lines) + "\n"


def hooks_dir(git: Path) -> Path:
    return Path(os.path.realpath(git / "hooks"))
