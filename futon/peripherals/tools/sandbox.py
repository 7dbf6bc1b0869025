"""The read-only sandbox behind ``bash-readonly``, and the writable-paths
sandbox for ``bash`` in a ``paths`` scope — both bubblewrap (``bwrap``).

A read-only command sees the whole filesystem read-only, a private empty
writable ``/tmp``, the workspace read-only at its own path (bound after the
``/tmp`` tmpfs, so a workspace under /tmp is still visible), an empty
``/run`` (no host unix sockets), a fresh ``/dev`` and ``/proc``, and no
network (every namespace is unshared). It runs with no capabilities, in a
new session, and dies with its parent.

Whether bwrap works here is probed once per :class:`Sandbox` (by running
``true`` and a write attempt in exactly that sandbox). When it does not,
``bash-readonly`` refuses with ``ToolError`` — it never falls back to running
unsandboxed or to a pattern filter, because no filter can tell which
commands write.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from futon.errors import ToolError

log = logging.getLogger("futon.tools")

_PROBE_TIMEOUT_S = 10.0


class Sandbox:
    """bubblewrap, found at ``bwrap`` (a path or a name looked up on PATH;
    default ``"bwrap"``).

    ``available()`` / ``probe()`` say whether the sandbox works on this
    machine (cached after the first probe); ``reason`` says why not."""

    def __init__(self, bwrap: str | os.PathLike[str] = "bwrap") -> None:
        found = shutil.which(os.fspath(bwrap))
        self.bwrap: str | None = found
        self._requested = os.fspath(bwrap)
        self._works: bool | None = None
        self.reason: str = ""

    # ------------------------------------------------------------ argv

    def _common(self) -> list[str]:
        assert self.bwrap is not None
        return [
            self.bwrap,
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--tmpfs", "/tmp",
        ]  # fmt: skip

    def readonly_argv(self, workspace: Path, command: str) -> list[str]:
        """argv running ``bash -c command`` read-only (see module doc)."""
        if self.bwrap is None:
            raise ToolError(self._missing())
        ws = os.fspath(workspace)
        return [
            *self._common(),
            # After the /tmp tmpfs: a workspace under /tmp must stay visible.
            "--ro-bind", ws, ws,
            "--tmpfs", "/run",
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--cap-drop", "ALL",
            "--chdir", ws,
            "bash", "-c", command,
        ]  # fmt: skip

    def writable_argv(self, workspace: Path, writable: Sequence[Path], command: str) -> list[str]:
        """argv running ``bash -c command`` with only the existing
        directories of ``writable`` (and a private /tmp) writable. Network
        stays shared: an edit session may need to fetch dependencies."""
        if self.bwrap is None:
            raise ToolError(self._missing())
        ws = os.fspath(workspace)
        argv = [*self._common(), "--ro-bind", ws, ws]
        for path in writable:
            if path.is_dir():
                argv += ["--bind", os.fspath(path), os.fspath(path)]
        argv += [
            "--unshare-all",
            "--share-net",
            "--die-with-parent",
            "--new-session",
            "--cap-drop", "ALL",
            "--chdir", ws,
            "bash", "-c", command,
        ]  # fmt: skip
        return argv

    # ------------------------------------------------------------ probe

    def _missing(self) -> str:
        return (
            f"no read-only sandbox is available: bubblewrap ({self._requested!r}) was not found; "
            "install bubblewrap (apt-get install bubblewrap) to enable bash-readonly"
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
        root = Path("/")
        # Exactly the sandbox bash-readonly uses; the command must run and
        # must find / not writable, or the sandbox is not what we promise.
        argv = self.readonly_argv(root, "test ! -w /")
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_PROBE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            self.reason = f"no read-only sandbox is available: bwrap could not run: {exc}"
            self._works = False
            return False
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip()[:300]
            self.reason = (
                f"no read-only sandbox is available: bwrap failed on this machine "
                f"(exit {done.returncode}: {detail or 'no message'})"
            )
            self._works = False
            log.warning("%s", self.reason)
            return False
        self._works = True
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
