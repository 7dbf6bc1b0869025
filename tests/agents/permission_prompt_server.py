"""A minimal MCP stdio server for the Claude Code permission-prompt
experiment (test_claude_permission_prompt.py): server ``futon`` with the
tool ``approve`` (what ``--permission-prompt-tool mcp__futon__approve``
calls) and ``noop`` (so the fake model sees an MCP tool offered and knows
the main conversation). Every prompt is appended to ``$PROMPT_LOG`` as one
JSON line; the answer allows the tools named in ``$PROMPT_ALLOW``
(comma-separated) and denies the rest. Standard library only."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

LOG = os.environ["PROMPT_LOG"]
ALLOW = set(filter(None, os.environ.get("PROMPT_ALLOW", "").split(",")))
TOOLS = [
    {
        "name": "approve",
        "description": "Answers Claude Code's permission prompts.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "tool_name": {"type": "string"},
                "input": {"type": "object"},
                "tool_use_id": {"type": "string"},
            },
            "required": ["tool_name", "input"],
        },
    },
    {
        "name": "noop",
        "description": "Does nothing.",
        "inputSchema": {"type": "object", "properties": {}},
    },
]


def answer(rid: Any, result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}) + "\n")
    sys.stdout.flush()


def main() -> None:
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        method, rid = request.get("method"), request.get("id")
        if rid is None:  # a notification
            continue
        if method == "initialize":
            version = request.get("params", {}).get("protocolVersion", "2025-06-18")
            answer(rid, {"protocolVersion": version, "capabilities": {"tools": {}},
                         "serverInfo": {"name": "futon", "version": "0"}})  # fmt: skip
        elif method == "tools/list":
            answer(rid, {"tools": TOOLS})
        elif method == "tools/call":
            params = request.get("params", {})
            with open(LOG, "a") as log:
                log.write(json.dumps(params) + "\n")
            arguments = params.get("arguments") or {}
            if arguments.get("tool_name") in ALLOW:
                verdict = {"behavior": "allow", "updatedInput": arguments.get("input") or {}}
            else:
                verdict = {"behavior": "deny", "message": "denied by the prompt tool"}
            answer(rid, {"content": [{"type": "text", "text": json.dumps(verdict)}]})
        else:
            sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": rid,
                                         "error": {"code": -32601, "message": "no such method"}}) + "\n")  # fmt: skip
            sys.stdout.flush()


if __name__ == "__main__":
    main()
