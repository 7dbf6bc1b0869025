"""A stand-in for ``claude -p --mcp-config FILE``: an MCP client that reads
its prompt from stdin, starts the MCP servers of the config file, calls
``edit`` (refused: the session is in explore) and ``read README.md`` with
named parameters, and prints an answer built from the result."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


async def main(config_path: str) -> int:
    prompt = sys.stdin.read()
    server = json.loads(Path(config_path).read_text())["mcpServers"]["futon"]
    params = StdioServerParameters(command=server["command"], args=server["args"])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = sorted(t.name for t in (await session.list_tools()).tools)
        # Every futon tool is listed; the envelope refuses at call time.
        if "read" not in tools or "edit" not in tools or "futon_start" not in tools:
            print(f"unexpected tools: {tools}", file=sys.stderr)
            return 3
        edit = await session.call_tool("edit", {"path": "README.md", "old": "h", "new": "j"})
        if not edit.is_error or not edit.content[0].text.startswith("tool-not-allowed: "):
            print(f"edit was not refused: {edit}", file=sys.stderr)
            return 3
        result = await session.call_tool("read", {"path": "README.md"})
        content = json.loads(result.content[0].text)
    asked = "README" in prompt
    print(f"README says: {content['result'].strip()}" if asked else "no question")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[sys.argv.index("--mcp-config") + 1])))
