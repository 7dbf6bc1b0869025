"""Test kit for the daemon's lifecycle: a real notify socket (what systemd
listens on) and ``futon serve`` as a child process that talks to it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from tests.support import futon_env


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd's notify socket.
    ``abstract=True`` binds in the Linux abstract namespace (``@name``)."""

    def __init__(self, folder: Path | None = None, *, abstract: bool = True) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        name = f"futon-test-{uuid.uuid4().hex}"
        if abstract:
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            assert folder is not None
            path = folder / "notify.sock"
            self.sock.bind(str(path))
            self.env_value = str(path)
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    async def receive(self, timeout: float = 10) -> dict[str, str]:
        """The next datagram, as its KEY=VALUE assignments."""
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), timeout)
        fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
        self.messages.append(fields)
        return fields

    async def wait_for(self, key: str, timeout: float = 20) -> dict[str, str]:
        """Datagrams up to the first one carrying ``key``; returns it."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                fields = await self.receive(max(left, 0.01))
            except TimeoutError:
                raise AssertionError(f"no {key} within {timeout}s; got {self.messages}") from None
            if key in fields:
                return fields

    def close(self) -> None:
        self.sock.close()


def start_serve(
    config: Path, notify: NotifySocket | None = None, **env: str
) -> subprocess.Popen[str]:
    """``futon serve --config CONFIG`` with NOTIFY_SOCKET pointing at ``notify``."""
    environment = futon_env()
    if notify is not None:
        environment["NOTIFY_SOCKET"] = notify.env_value
    environment.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "futon", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
