"""The OS wall around the Codex App Server: futon's bubblewrap sandbox.

futon answers every approval Codex asks (the first wall), but what it
admits Codex runs itself — so the App Server process, and every command and
patch it runs, lives inside the same bwrap sandbox futon's own process tools
use (:mod:`futon.config.sandbox`), with a view that follows the session's
peripheral (:func:`view_for`):

- the workspace at its own path: read-only, or — for a peripheral with
  ``write``/``edit`` — exactly the scope's paths writable (a ``paths``
  scope: those folders; ``full-codebase``: the whole workspace; any other:
  nothing); futon's hidden paths (data directory, config files) masked;
- ``CODEX_HOME`` bound writable (Codex's threads live there, so a new
  process can resume one);
- read-only: the system directories, /etc with its secrets masked, the
  Codex installation, the Python running futon (its MCP server) and the
  futon package, and the folder of the relay socket;
- nothing else of the host: no /root, /home, /var, /srv, /mnt, /run …
  (only the folders above, at their own paths); a private /tmp of
  :data:`TMP_BYTES`; the sandbox's root read-only (a write lands in /tmp,
  CODEX_HOME or the scope, nowhere else); a new PID namespace;
- NO network: a new, empty network namespace (bwrap ``--unshare-net``),
  whose only way out is the model server, through the egress forwarders
  (:mod:`.egress`: a unix socket in the relay's folder, a listener on
  127.0.0.1 inside; for https a hosts file over /etc/hosts maps the
  model's host name to it). No command Codex runs reaches the daemon's
  HTTP or IRC port on loopback, or anything else of the host's network;
- user namespaces allowed inside: Codex's own sandbox (bwrap again) nests
  in futon's and still confines the commands Codex runs on its own
  (read-only ones); the mounts it inherits stay locked.

The environment is built, not inherited: PATH, HOME=/tmp, LANG, CODEX_HOME,
the API key, certificate settings, and pagers that cannot run a
shell (``PAGER=cat``, ``LESSSECURE=1``). Nothing else of the agent's
environment (no futon token) reaches Codex.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import futon
from futon.config.models import SandboxSpec
from futon.config.sandbox import SYSTEM_DIRS, View

TMP_BYTES = 512 * 1024 * 1024  # the private /tmp of the App Server and its commands
# Passed on from the agent's environment when set (reaching the model server).
# No proxy settings: the view has no network but the egress to the model
# server, so a proxy would be unreachable (the egress itself connects directly).
PASSED_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR", "RUST_LOG")
# Pagers that print and exit: a pager in a PTY (git log, man) would take
# `!command` from the model's write_stdin.
PAGERS = {"PAGER": "cat", "GIT_PAGER": "cat", "MANPAGER": "cat", "LESSSECURE": "1"}
WRITING_TOOLS = frozenset({"write", "edit"})
WHOLE_WORKSPACE_SCOPES = frozenset({"full-codebase"})


def writable_paths(tools: Collection[str], scope: Any, workspace: Path) -> tuple[Path, ...] | None:
    """What of ``workspace`` the App Server may write under a peripheral of
    ``tools`` and ``scope`` (as the daemon describes it): ``()`` unless the
    peripheral writes; then a ``paths`` scope's folders, the whole
    workspace (None) for ``full-codebase``, nothing for any other scope or
    one futon could not read."""
    if not WRITING_TOOLS & set(tools):
        return ()
    if isinstance(scope, str) and scope in WHOLE_WORKSPACE_SCOPES:
        return None
    if isinstance(scope, dict) and isinstance(scope.get("paths"), list):
        return tuple(Path(os.path.realpath(workspace / str(p))) for p in scope["paths"])
    return ()


def installation(binary: str) -> Path:
    """The folder holding ``binary``'s installation, shown read-only: the
    ``node_modules`` it lives in (the npm package finds its platform binary
    next to it), else the binary's own folder."""
    real = Path(os.path.realpath(binary))
    for parent in real.parents:
        if parent.name == "node_modules":
            return parent
    return real.parent


def _outside_system(path: Path) -> bool:
    return not any(path == Path(d) or Path(d) in path.parents for d in SYSTEM_DIRS)


def read_only_folders(binary: str, relay_dir: str) -> list[str]:
    """The host folders the App Server sees read-only besides the system:
    Codex's installation, node (when the binary is the npm wrapper and node
    lies outside the system directories), the Python running futon, the
    futon package, the relay socket's folder."""
    folders = [installation(binary)]
    node = shutil.which("node")
    if node:
        prefix = Path(os.path.realpath(node)).parent.parent
        if _outside_system(prefix):
            folders.append(prefix)
    folders += [Path(sys.prefix), Path(sys.base_prefix), Path(futon.__file__).resolve().parent]
    folders.append(Path(os.path.realpath(relay_dir)))
    unique: list[str] = []
    for folder in folders:
        text = os.path.realpath(folder)
        if text not in unique and text != "/":
            unique.append(text)
    return unique


def environment(
    home: str, api_key: str | None, key_env: str, outer: Mapping[str, str]
) -> dict[str, str]:
    """The App Server's variables besides PATH, HOME and LANG."""
    env = {"CODEX_HOME": home, **PAGERS}
    for name in PASSED_ENV:
        if outer.get(name):
            env[name] = outer[name]
    key = api_key or outer.get(key_env)
    if key:
        env[key_env] = key
    return env


def view_for(
    *,
    workspace: Path,
    hidden: Sequence[Path],
    writable: tuple[Path, ...] | None,
    home: str,
    read_only: Sequence[str],
    env: Mapping[str, str],
    hosts: Path | None = None,
) -> View:
    """The sandbox of the App Server for one peripheral (module doc), with
    no network; ``hosts`` (the egress's, for an https model server) is
    bound over /etc/hosts."""
    spec = SandboxSpec(network=False, read_only=list(read_only), env=dict(env))
    return View(
        workspace,
        writable=writable,
        hidden=tuple(hidden),
        spec=spec,
        tmp_bytes=TMP_BYTES,
        bound=(Path(os.path.realpath(home)),),
        nested_userns=True,
        read_only_root=True,
        files=((hosts, "/etc/hosts"),) if hosts is not None else (),
    )
