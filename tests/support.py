"""Helpers shared across test packages: a daemon config in a temp folder,
a real ``futon`` subprocess, and :func:`until`, the one bounded wait for a
state change (tests never sleep a fixed time to let something happen)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "futon" / "data" / "config"  # the one copy, shipped as package data


async def until(condition: Callable[[], object], timeout: float = 10, what: str = "") -> None:
    """Return as soon as ``condition()`` is truthy; raise AssertionError
    (naming ``what``) if it is still falsy after ``timeout`` seconds.

    For state that nothing announces (a counter, a registry entry, a file):
    the poll interval only bounds how late the test notices, never whether
    it passes, so it is not a timing threshold."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what or 'condition'} not reached within {timeout}s")
        await asyncio.sleep(0.02)


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port where every connection is refused, for the block.

    The socket stays bound (so no other process can take the number) and
    never listens (so the kernel answers a SYN with RST): unlike binding
    port 0, closing and handing the number on, nothing can start listening
    there while the test relies on "nothing listens"."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def make_config(folder: Path, **daemon_overrides: object) -> Path:
    """Copy the shipped config into ``folder`` with port 0, the embedded IRC
    server off and ``data_dir`` inside the folder; ``daemon_overrides`` are
    dotted futon.yaml keys (``http__host`` for ``http.host``). Returns the
    futon.yaml path."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("futon.yaml", "peripherals.yaml", "agents.yaml"):
        shutil.copyfile(SHIPPED / name, folder / name)
    yaml = YAML()
    path = folder / "futon.yaml"
    doc = yaml.load(path)
    doc["data_dir"] = "var"
    doc["http"]["port"] = 0
    doc["irc"]["server"]["enabled"] = False
    for dotted, value in daemon_overrides.items():
        *parents, leaf = dotted.split("__")
        node = doc
        for key in parents:
            node = node[key]
        node[leaf] = value
    yaml.dump(doc, path)
    return path


def futon_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    for key in ("FUTON_DEBUG", "FUTON_CONFIG", "JOURNAL_STREAM"):
        env.pop(key, None)
    return env


def start_futon(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "futon", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=futon_env(),
    )


def wait_for_ports(data_dir: Path, proc: subprocess.Popen[str], timeout: float = 30) -> dict[str, int]:
    """Wait until the daemon writes ports.json (or dies)."""
    path = data_dir / "ports.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"daemon exited with {proc.returncode}: {err}")
        if path.exists():
            try:
                return json.loads(path.read_text())
            except ValueError:
                pass  # written atomically, but be patient anyway
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("daemon did not write ports.json in time")
