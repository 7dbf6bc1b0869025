"""The processes the benches measure: ``futon serve`` (optionally under
cProfile) and helpers to stop them and read their memory.

Every server under test runs in its own process, so the client load does
not share its event loop; the baseline runs in its own process too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import futon_env, make_config

RATE_LIMIT = 1_000_000
"""The WS frame limit and burst the benches raise the daemon's to: the
limiter is not what is measured."""


def stop_process(proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM and wait (SIGKILL after ``timeout`` s: a profiled daemon
    needs a moment to write its profile)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Daemon:
    """A running ``futon serve``: its ports (``http``, ``irc``), pid, data
    folder and — when profiled — where its cProfile stats will be written
    once it has stopped."""

    ports: dict[str, int]
    pid: int
    data_dir: Path
    profile: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @contextlib.contextmanager
    def profiling(self) -> Iterator[None]:
        """Profile the daemon for the duration of the block (it must have
        been started with ``profile``); the stats are in :attr:`profile`
        afterwards."""
        if self.profile is None:
            yield
            return
        os.kill(self.pid, signal.SIGUSR1)
        try:
            yield
        finally:
            os.kill(self.pid, signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not self.profile.exists() and time.monotonic() < deadline:
                time.sleep(0.05)  # the daemon writes it between two event-loop turns


@contextlib.contextmanager
def daemon_process(
    folder: Path, *, profile: Path | None = None, uvloop: bool = False, **overrides: Any
) -> Iterator[Daemon]:
    """``futon serve`` in its own process on port 0, with a small workspace
    (README.md, src/app.py), evidence ``fsync: never`` and the WS limiter
    raised unless ``overrides`` (dotted config keys, ``a__b``) say
    otherwise. With ``profile``, the daemon runs under
    bench/profiled_serve.py: :meth:`Daemon.profiling` profiles a window and
    writes the stats there. ``uvloop`` runs it on uvloop (see there)."""
    workspace = folder / "ws"
    (workspace / "src").mkdir(parents=True, exist_ok=True)
    (workspace / "README.md").write_text("hello\n")
    (workspace / "src" / "app.py").write_text("def add(a, b):\n    return a + b\n")
    overrides.setdefault("evidence__fsync", "never")
    overrides.setdefault("ws__max_frames_per_s", float(RATE_LIMIT))
    overrides.setdefault("ws__burst", RATE_LIMIT)
    overrides.setdefault("http__max_connections_per_ip", 100_000)  # every client is on 127.0.0.1
    if uvloop:  # the daemon reads its bound port from an asyncio.Server; uvloop's is not one
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            overrides.setdefault("http__port", sock.getsockname()[1])
    config = make_config(folder / "cfg", workspace=str(workspace), **overrides)
    data_dir = folder / "cfg" / "var"
    ports_file = data_dir / "ports.json"
    log = folder / "daemon.log"
    if profile or uvloop:  # a steady-state profile, or uvloop: see bench/profiled_serve.py
        out_file = profile or folder / "unused.prof"
        argv = [sys.executable, str(Path(__file__).resolve().parent / "profiled_serve.py"),
                "--config", str(config), "--out", str(out_file), *(["--uvloop"] if uvloop else [])]  # fmt: skip
    else:
        argv = [sys.executable, "-m", "futon", "serve", "--config", str(config)]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out, stderr=subprocess.STDOUT, env=futon_env(), start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        ports: dict[str, int] | None = None
        while ports is None:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {proc.returncode}:\n{log_tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"daemon wrote no ports.json within 30 s:\n{log_tail(log)}")
            with contextlib.suppress(OSError, ValueError, TypeError):
                found = {k: int(v) for k, v in json.loads(ports_file.read_text()).items()}
                ports = found if "http" in found else None
            time.sleep(0.05)
        yield Daemon(ports, proc.pid, data_dir, profile)
    finally:
        stop_process(proc)


__all__ = ["RATE_LIMIT", "Daemon", "daemon_process", "log_tail", "rss_kib", "stop_process"]
