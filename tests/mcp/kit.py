"""Kit for the MCP bridge tests: ``futon mcp`` as a real subprocess, driven
by the ``mcp`` SDK's own stdio client, against an in-process daemon."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from futon.daemon.app import Daemon
from tests.support import futon_env


def ws_url(daemon: Daemon) -> str:
    return f"ws://127.0.0.1:{daemon.ports['http']}/agency/ws"


@dataclass
class Mcp:
    """An initialised MCP client session and what the server notified."""

    session: ClientSession
    notifications: list[str] = field(default_factory=list)

    async def tool_names(self) -> list[str]:
        return [tool.name for tool in (await self.session.list_tools()).tools]

    async def call(
        self, name: str, arguments: dict[str, Any] | None = None
    ) -> types.CallToolResult:
        return await self.session.call_tool(name, arguments or {})

    async def ok(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        """Call; assert success; the JSON content."""
        result = await self.call(name, arguments)
        assert not result.is_error, text(result)
        return json.loads(text(result))


def text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def mcp_params(agent: str, url: str, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "futon", "mcp", "--agent", agent, "--url", url, *extra],
        env=futon_env(),
    )


@asynccontextmanager
async def futon_mcp(agent: str, url: str, *extra: str) -> AsyncIterator[Mcp]:
    """``futon mcp --agent AGENT --url URL EXTRA…`` over stdio."""
    notes: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            notes.append(message.method)

    async with (
        stdio_client(mcp_params(agent, url, *extra)) as (read, write),
        ClientSession(read, write, message_handler=on_message) as session,
    ):
        await session.initialize()
        yield Mcp(session, notes)
