"""``futon agent …``: manage and run agents.

The group is built by :func:`add_agent_group`, which returns its
subparsers; each subcommand has its own ``register_*`` function taking
those subparsers. To add ``agent run``, write ``register_run(agent_sub)``
(here or in its own module) and call it from :func:`register`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from futon.cli import add_config_option, add_group
from futon.config.edit import add_agent


def add_agent_group(subparsers: Any) -> Any:
    """Add the ``agent`` command to the top-level subparsers; return the
    group's own subparsers, for its subcommands to register into."""
    return add_group(
        subparsers,
        "agent",
        help="add and run agents",
        description="Add agents to agents.yaml, or run an agent process.",
    )


def register(subparsers: Any) -> Any:
    """Add ``agent`` and its subcommands; return the group's subparsers."""
    agent_sub = add_agent_group(subparsers)
    register_add(agent_sub)
    return agent_sub


def register_add(agent_sub: Any) -> argparse.ArgumentParser:
    parser = agent_sub.add_parser(
        "add",
        help="add an agent to agents.yaml and print its fresh token once",
        description=(
            "Append an agent to agents.yaml (keeping its comments). A fresh token is "
            "printed once on stdout; only its sha256 is stored."
        ),
    )
    parser.add_argument("agent_id", metavar="ID", help="the agent id (also its IRC nick)")
    parser.add_argument(
        "--type",
        dest="agent_type",
        required=True,
        metavar="TYPE",
        help="claude, codex, tickle, mock, peripheral or a type of your own",
    )
    parser.add_argument(
        "--channels",
        nargs="+",
        metavar="CHANNEL",
        default=None,
        help='IRC channels to sit in (default: "#futon"); commas also separate',
    )
    parser.add_argument(
        "--relay",
        choices=["mentions", "all"],
        default="mentions",
        help="which channel lines the agent receives (default: mentions)",
    )
    add_config_option(parser)
    parser.set_defaults(func=cmd_add)
    return parser


def cmd_add(args: argparse.Namespace) -> int:
    channels = None
    if args.channels is not None:
        channels = [c.strip() for item in args.channels for c in item.split(",") if c.strip()]
    added = add_agent(
        args.config, args.agent_id, args.agent_type, channels=channels, relay=args.relay
    )
    # The token alone on stdout, so `TOKEN=$(futon agent add …)` works; the
    # explanation goes to stderr.
    print(
        f"added agent {added.agent_id} to {added.display}; its token follows "
        "(shown once, only its sha256 is stored):",
        file=sys.stderr,
    )
    print(added.token)
    return 0
