"""``futon agent …``: manage and run agents.

The group is built by :func:`add_agent_group`, which returns its
subparsers; each subcommand has its own ``register_*`` function taking
those subparsers (``add``, ``run``), called from :func:`register`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from typing import Any

from futon.cli import add_config_option, add_group
from futon.config.edit import add_agent
from futon.protocol.errors import FutonError, ProtocolError

DEFAULT_URL = "ws://127.0.0.1:7070/agency/ws"


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
    register_run(agent_sub)
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


# ------------------------------------------------------------------ agent run

RUN_DESCRIPTION = """\
Run an agent process: connect to the daemon over WebSocket as ID, and answer
every irc_message, chat_message and coordination message pushed to it with a
model turn inside a peripheral session (agents.md).

drivers:
  openai     an OpenAI-compatible Chat Completions endpoint with tool calling
             (--model, --base-url, key from OPENAI_API_KEY or --api-key-env;
             OpenAI, vLLM, llama.cpp server, Ollama, LM Studio, gateways)
  anthropic  the Anthropic Messages API with tool use (--model; key from
             ANTHROPIC_API_KEY or --api-key-env; --base-url optional)
  command    a local CLI per turn: prompt on stdin, answer on stdout
             (--cmd 'claude -p'); no futon tools, no peripheral session —
             unless --mcp: then each turn writes an MCP config pointing the
             CLI at `futon mcp` for this agent, and {mcp_config} in --cmd
             is its path: --cmd 'claude -p --mcp-config {mcp_config}'
             ({mcp_command_toml} and {mcp_args_toml} serve Codex's -c)
  script     canned model turns from a YAML/JSON file (--script), for demos
             and tests

The model sees exactly the active peripheral's tools. futon tools take a JSON
array of arguments, so each is offered as a function with one parameter,
"args" (that array), plus "hop" (to, exit_condition, reason) and "reply"
(text).
"""


def register_run(agent_sub: Any) -> argparse.ArgumentParser:
    from futon.agents.drivers import DRIVERS

    parser = agent_sub.add_parser(
        "run",
        help="run an agent: connect over WS and answer with a model",
        description=RUN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "agent_id", metavar="ID", help="the agent id to connect as (must be registered)"
    )
    parser.add_argument(
        "--driver", required=True, choices=DRIVERS, help="what answers: " + ", ".join(DRIVERS)
    )
    parser.add_argument(
        "--url",
        help="the daemon: ws://HOST:PORT/agency/ws or http://HOST:PORT "
        "(default: from the config's http.host/port, or its data_dir/ports.json)",
    )
    parser.add_argument("--token", help="the agent's token (default: $FUTON_AGENT_TOKEN)")
    parser.add_argument("--model", help="the model name (openai, anthropic)")
    parser.add_argument(
        "--base-url", metavar="URL", help="the API base URL (openai: …/v1; anthropic: without /v1)"
    )
    parser.add_argument(
        "--api-key-env", metavar="VAR", help="read the API key from this environment variable"
    )
    parser.add_argument(
        "--cmd", metavar="COMMAND", help="the command of the command driver, e.g. 'claude -p'"
    )
    parser.add_argument("--script", metavar="FILE", help="the YAML/JSON file of the script driver")
    parser.add_argument(
        "--mcp",
        action="store_true",
        help="command driver: give the command futon's envelope as MCP tools for each turn "
        "(see {mcp_config} above)",
    )
    parser.add_argument(
        "--max-steps",
        type=_positive_int,
        default=20,
        metavar="N",
        help="model calls per turn (default: 20)",
    )
    parser.add_argument(
        "--max-seconds",
        type=_positive_float,
        default=300,
        metavar="S",
        help="time per turn (default: 300)",
    )
    parser.add_argument(
        "--max-context",
        type=_positive_int,
        default=32_000,
        metavar="TOKENS",
        help="compact the conversation past this many tokens, estimated as characters/4 (default: 32000)",
    )
    parser.add_argument(
        "--keep-session",
        action="store_true",
        help="keep the peripheral session and the conversation open between turns",
    )
    add_config_option(parser)
    parser.set_defaults(func=cmd_run)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def default_url(config_path: str) -> str:
    """The daemon's WS URL from its config: http.host and http.port (for
    port 0, the port it picked, from data_dir/ports.json)."""
    from futon.config.loader import load_config

    try:
        config = load_config(config_path)
    except (FutonError, OSError):
        return DEFAULT_URL
    host = config.daemon.http.host
    port = config.daemon.http.port
    if not port:  # a free port, picked at start and written to ports.json
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            port = int(json.loads((config.data_dir / "ports.json").read_text())["http"])
    if not port:
        return DEFAULT_URL
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"ws://{host}:{port}/agency/ws"


def cmd_run(args: argparse.Namespace) -> int:
    from futon.agents.drivers import make_driver
    from futon.agents.runtime import TurnSettings, endpoints, run_agent

    url = args.url or default_url(args.config)
    try:
        endpoints(url)
        driver = make_driver(
            args.driver,
            model=args.model,
            base_url=args.base_url,
            api_key_env=args.api_key_env,
            cmd=args.cmd,
            script=args.script,
            timeout_s=args.max_seconds,
        )
        if args.mcp:
            from futon.agents.drivers.command import CommandDriver

            if not isinstance(driver, CommandDriver):
                raise ValueError("--mcp goes with --driver command")
            driver.mcp = True
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None
    settings = TurnSettings(
        max_steps=args.max_steps,
        max_seconds=args.max_seconds,
        max_context=args.max_context,
        keep_session=args.keep_session,
    )
    token = args.token or os.environ.get("FUTON_AGENT_TOKEN") or None
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            return await run_agent(args.agent_id, url, driver, settings, token=token, stop=stop)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    return asyncio.run(main())


