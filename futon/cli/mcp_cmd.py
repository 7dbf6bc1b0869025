"""``futon mcp``: an MCP server over stdio acting as one agent inside
futon's envelope (see :mod:`futon.agents.mcp_bridge`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from futon.cli import add_config_option
from futon.protocol.errors import ProtocolError

DESCRIPTION = """\
Serve MCP (Model Context Protocol) on stdin and stdout as agent ID. The tools
are those of the active peripheral, each taking one parameter, "args", the
JSON array of its positional arguments, plus futon_start, futon_hop,
futon_stop, futon_reply, futon_inbox and futon_evidence. Every call is a
frame on the agent's WebSocket connection, so it lands in evidence like any
agent's action; a refusal comes back as an MCP tool error "CODE: MESSAGE".

A Claude Code --mcp-config file that points at it:
  {"mcpServers": {"futon": {"command": "futon",
                            "args": ["mcp", "--agent", "claude-1", "--start"]}}}
Other MCP clients are set up the same way.
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "mcp",
        help="Serve MCP over stdio as an agent, for Claude Code, Codex CLI and other MCP clients.",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--agent", required=True, metavar="ID", help="The agent id to act as.")
    parser.add_argument(
        "--url",
        help="The daemon, as ws://HOST:PORT/agency/ws or http://HOST:PORT (default: the "
        "config's http.host and http.port, or the port in its data_dir/ports.json).",
    )
    parser.add_argument("--token", help="The agent's token (default: $FUTON_AGENT_TOKEN).")
    parser.add_argument(
        "--start",
        nargs="?",
        const="",
        default=None,
        metavar="PERIPHERAL",
        help="Start a peripheral session at once; without a value, the agent's routed default.",
    )
    parser.add_argument(
        "--relay",
        metavar="SOCKET",
        help="Reach the daemon through the unix socket of a running futon agent run --mcp; "
        "the MCP configuration it writes sets this, it is not for direct use.",
    )
    parser.add_argument(
        "--reconnect-wait",
        type=float,
        default=10,
        metavar="S",
        help="How many seconds a call waits for a dropped connection to come back (default: 10).",
    )
    add_config_option(parser)
    parser.set_defaults(func=cmd_mcp)
    return parser


def cmd_mcp(args: argparse.Namespace) -> int:
    from futon.agents.mcp_bridge import run_mcp
    from futon.agents.runtime import endpoints
    from futon.cli.agent_cmd import default_url

    ws_url = None
    if not args.relay:
        try:
            ws_url, _ = endpoints(args.url or default_url(args.config))
        except ValueError as exc:
            raise ProtocolError(str(exc)) from None
    token = args.token or os.environ.get("FUTON_AGENT_TOKEN") or None
    # stdout carries MCP: every log line goes to stderr.
    logging.basicConfig(
        level=logging.INFO if os.environ.get("FUTON_DEBUG") else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(name)s: %(message)s",
    )
    return asyncio.run(
        run_mcp(
            args.agent,
            url=ws_url,
            token=token,
            relay=args.relay,
            start=args.start is not None,
            peripheral=args.start or None,
            reconnect_wait_s=args.reconnect_wait,
        )
    )
