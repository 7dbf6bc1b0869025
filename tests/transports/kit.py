"""Test kit for the HTTP and WS transports: a daemon on port 0 in this
process (real sockets on loopback) and an agent client that reads like a
dialogue: ``await agent.ask({"type": "ping"})`` → the reply frame."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from futon.config.loader import load_config
from futon.daemon.app import Daemon
from tests.support import make_config


@asynccontextmanager
async def running_daemon(folder: Path, **overrides: Any) -> AsyncIterator[Daemon]:
    workspace = folder / "ws"
    (workspace / "src").mkdir(parents=True, exist_ok=True)
    (workspace / "README.md").write_text("hello\n")
    (workspace / "src" / "app.py").write_text("def add(a, b):\n    return a - b\n")
    overrides.setdefault("evidence__fsync", "never")
    overrides.setdefault("dispatch__reply_timeout_s", 5)
    config_path = make_config(folder / "cfg", workspace=str(workspace), **overrides)
    async with daemon_of(config_path) as daemon:
        yield daemon


@asynccontextmanager
async def daemon_of(config_path: Path) -> AsyncIterator[Daemon]:
    """A daemon started in this process from ``config_path``; stopped after."""
    daemon = Daemon(load_config(config_path))
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()


def base_url(daemon: Daemon) -> str:
    return f"http://127.0.0.1:{daemon.ports['http']}"


class AgentClient:
    """One WebSocket connection, speaking frames."""

    _ids = itertools.count(1)

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pushes: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send_str(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"expected a text frame, got {msg.type} {msg.data!r} (close code {self.ws.close_code})")
        return json.loads(msg.data)

    async def ask(self, frame: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        """Send with a fresh req_id; return the reply carrying it (pushes
        that arrive meanwhile are kept in ``pushes``)."""
        req_id = f"r{next(self._ids)}"
        await self.send({**frame, "req_id": req_id})
        return await self.reply_to(req_id, timeout)

    async def reply_to(self, req_id: str, timeout: float = 10) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - asyncio.get_running_loop().time()))
            if frame.get("req_id") == req_id:
                return frame
            self.pushes.append(frame)

    async def push_of(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        for i, frame in enumerate(self.pushes):
            if frame["type"] == kind:
                return self.pushes.pop(i)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - asyncio.get_running_loop().time()))
            if frame["type"] == kind and "req_id" not in frame:
                return frame
            self.pushes.append(frame)

    async def closed_with(self, timeout: float = 10) -> int | None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.ws.closed and asyncio.get_running_loop().time() < deadline:
            msg = await self.ws.receive(timeout=max(0.01, deadline - asyncio.get_running_loop().time()))
            if msg.type == aiohttp.WSMsgType.CLOSE:
                return msg.data
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                break
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.pushes.append(json.loads(msg.data))
        return self.ws.close_code


@asynccontextmanager
async def agent_socket(http: aiohttp.ClientSession, daemon: Daemon, path: str = "/agency/ws") -> AsyncIterator[AgentClient]:
    async with http.ws_connect(base_url(daemon) + path, max_msg_size=0) as ws:
        yield AgentClient(ws)


@asynccontextmanager
async def connected(
    http: aiohttp.ClientSession, daemon: Daemon, agent_id: str, token: str | None = None, *, resumes: bool = False
) -> AsyncIterator[AgentClient]:
    """A socket past ``ready``. ``resumes`` declares the ``resume`` capability:
    the pushes kept while the agent was offline wait for its ``resume``
    instead of arriving at connect."""
    async with agent_socket(http, daemon) as agent:
        frame: dict[str, Any] = {"type": "ready", "agent_id": agent_id}
        if token:
            frame["token"] = token
        if resumes:
            frame["capabilities"] = ["resume"]
        ack = await agent.ask(frame)
        assert ack["type"] == "ready_ack", ack
        yield agent
