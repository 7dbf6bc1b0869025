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
from futon.cli.reload_hint import admin_token, tell_daemon
from futon.config.edit import add_agent, rotate_agent_token
from futon.protocol.errors import ConfigError, FutonError, ProtocolError

DEFAULT_URL = "ws://127.0.0.1:7070/agency/ws"


def add_agent_group(subparsers: Any) -> Any:
    """Add the ``agent`` command to the top-level subparsers; return the
    group's own subparsers, for its subcommands to register into."""
    return add_group(
        subparsers,
        "agent",
        help="Add agents, rotate their tokens and run them.",
        description="Add agents to agents.yaml, give them new tokens, or run an agent process.",
    )


def register(subparsers: Any) -> Any:
    """Add ``agent`` and its subcommands; return the group's subparsers."""
    agent_sub = add_agent_group(subparsers)
    register_add(agent_sub)
    register_token(agent_sub)
    register_run(agent_sub)
    return agent_sub


def register_add(agent_sub: Any) -> argparse.ArgumentParser:
    parser = agent_sub.add_parser(
        "add",
        help="Add an agent to agents.yaml and print its new token once.",
        description=(
            "Append an agent to agents.yaml, keeping the file's comments. A new token is "
            "printed once on stdout; only its sha256 is stored. A running daemon is asked "
            "to reload, or told that it needs one."
        ),
    )
    parser.add_argument("agent_id", metavar="ID", help="The agent id, also its IRC nick.")
    parser.add_argument(
        "--type",
        dest="agent_type",
        required=True,
        metavar="TYPE",
        help="The agent type: claude, codex, tickle, mock, peripheral or one of your own.",
    )
    parser.add_argument(
        "--channels",
        nargs="+",
        metavar="CHANNEL",
        default=None,
        help='The IRC channels to sit in, separated by spaces or commas (default: "#futon").',
    )
    parser.add_argument(
        "--relay",
        choices=["mentions", "all"],
        default="mentions",
        help="Which channel lines the agent receives (default: mentions).",
    )
    _add_admin_token_option(parser)
    add_config_option(parser)
    parser.set_defaults(func=cmd_add)
    return parser


def _add_admin_token_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help=(
            "The admin token of a running daemon, used to make it reload "
            "(default: $FUTON_ADMIN_TOKEN)."
        ),
    )


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
    print(tell_daemon(args.config, admin_token(args.token), f"agent {added.agent_id!r}"),
          file=sys.stderr)  # fmt: skip
    return 0


def register_token(agent_sub: Any) -> argparse.ArgumentParser:
    parser = agent_sub.add_parser(
        "token",
        help="Show whether an agent has a token, or give it a new one with --rotate.",
        description=(
            "Without --rotate, say whether the agent has a token (only its sha256 is "
            "stored, so a token cannot be shown again). With --rotate, make a new "
            "token, print it once on stdout and store its sha256 in agents.yaml, "
            "keeping the file's comments; a running daemon is asked to reload, after "
            "which the old token stops working."
        ),
    )
    parser.add_argument("agent_id", metavar="ID", help="The agent id.")
    parser.add_argument(
        "--rotate", action="store_true", help="Make a new token and store its sha256."
    )
    _add_admin_token_option(parser)
    add_config_option(parser)
    parser.set_defaults(func=cmd_token)
    return parser


def cmd_token(args: argparse.Namespace) -> int:
    if not args.rotate:
        from futon.config.edit import get_value

        try:
            agent = get_value(args.config, f"agents.{args.agent_id}")
        except ConfigError as exc:
            if not exc.message.startswith("unknown key"):
                raise
            raise ConfigError(f"no agent {args.agent_id!r}", problems=exc.problems) from None
        digest = agent.get("token_sha256") if isinstance(agent, dict) else None
        state = "has a token" if digest else "has no token (it may connect from loopback only)"
        print(f"agent {args.agent_id} {state}; --rotate makes a new one")
        return 0
    made = rotate_agent_token(args.config, args.agent_id)
    print(
        f"new token for agent {args.agent_id} in {made.display}; it follows "
        "(shown once, only its sha256 is stored):",
        file=sys.stderr,
    )
    print(made.token)
    print(tell_daemon(args.config, admin_token(args.token), f"the new token of {args.agent_id!r}"),
          file=sys.stderr)  # fmt: skip
    return 0


# ------------------------------------------------------------------ agent run

RUN_DESCRIPTION = """\
Run an agent process: connect to the daemon over WebSocket as ID, and answer
every IRC, chat and coordination message pushed to it with a model turn
inside a peripheral session.

Drivers:
  openai     An OpenAI-compatible Chat Completions endpoint with tool calling
             (OpenAI, vLLM, llama.cpp server, Ollama, LM Studio, gateways).
             It takes --model and --base-url, and the key from OPENAI_API_KEY
             or the variable --api-key-env names.
  anthropic  The Anthropic Messages API with tool use. It takes --model, the
             key from ANTHROPIC_API_KEY or --api-key-env, and an optional
             --base-url.
  command    A local program run for each turn, prompt on stdin and answer
             on stdout, such as --cmd 'claude -p'. It gets no futon tools and
             no peripheral session unless --mcp is given: then each turn
             writes an MCP configuration that points the program at futon mcp
             for this agent, and {mcp_config} in --cmd is replaced by its
             path, as in --cmd 'claude -p --mcp-config {mcp_config}'.
             {mcp_command_toml} and {mcp_args_toml} serve Codex's -c option.
  script     Canned model turns from a YAML or JSON file (--script), for
             demos and tests.
  claude-code
             The real Claude Code CLI (claude -p) per turn, acting only
             through futon mcp: its own tools (Bash, Edit, Write, Read ...)
             are switched off. --cli names the binary (default: claude on
             PATH), --base-url sets ANTHROPIC_BASE_URL, --model its model;
             the key comes from ANTHROPIC_API_KEY (or --api-key-env).
  codex-cli  The real Codex CLI (codex exec) per turn, acting only through
             futon mcp: its shell and patch tools are switched off and its
             sandbox is read-only. --cli names the binary (default: codex on
             PATH), --base-url (ending in /v1) becomes a Responses API model
             provider, --model its model; the key comes from OPENAI_API_KEY
             (or --api-key-env).
  codex-app-server
             The real Codex through its App Server (codex app-server), with
             its own shell and patch tools: every command and patch it asks
             to run is approved or declined by the active peripheral, and
             what it does is recorded as evidence. Options as codex-cli;
             the workspace comes from --config. Needs Codex 0.169.0.

The model sees exactly the active peripheral's tools. Each takes its JSON
array of arguments as one parameter, "args"; the model also gets "hop" (to,
exit_condition, reason) and "reply" (text).
"""


def register_run(agent_sub: Any) -> argparse.ArgumentParser:
    from futon.agents.drivers import DRIVERS

    parser = agent_sub.add_parser(
        "run",
        help="Run an agent: connect over WebSocket and answer with a model.",
        description=RUN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "agent_id", metavar="ID", help="The registered agent id to connect as."
    )
    parser.add_argument(
        "--driver", required=True, choices=DRIVERS, metavar="DRIVER",
        help="What answers: " + ", ".join(DRIVERS) + ".",
    )
    parser.add_argument(
        "--url",
        action="append",
        help="The daemon, as ws://HOST:PORT/agency/ws or http://HOST:PORT (default: the "
        "config's http.host and http.port, or the port in its data_dir/ports.json). "
        "Repeat it for a team's daemons: the agent moves to the next when its own goes away.",
    )
    parser.add_argument("--token", help="The agent's token (default: $FUTON_AGENT_TOKEN).")
    parser.add_argument(
        "--model", help="The model name, for the openai, anthropic, claude-code, codex-cli and codex-app-server drivers."
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="The API base URL, ending in /v1 for openai and without it for anthropic.",
    )
    parser.add_argument(
        "--api-key-env", metavar="VAR", help="Read the API key from this environment variable."
    )
    parser.add_argument(
        "--cmd", metavar="COMMAND", help="The program of the command driver, such as 'claude -p'."
    )
    parser.add_argument("--script", metavar="FILE", help="The YAML or JSON file of the script driver.")
    parser.add_argument(
        "--cli",
        metavar="PATH",
        help="The binary of the claude-code, codex-cli or codex-app-server driver (default: claude or codex on PATH).",
    )
    parser.add_argument(
        "--mcp",
        action="store_true",
        help="With the command driver, give the program futon's envelope as MCP tools in "
        "each turn (see {mcp_config} above).",
    )
    parser.add_argument(
        "--max-steps",
        type=_positive_int,
        default=20,
        metavar="N",
        help="The most model calls in one turn (default: 20).",
    )
    parser.add_argument(
        "--max-seconds",
        type=_positive_float,
        default=300,
        metavar="S",
        help="The most seconds one turn may take (default: 300).",
    )
    parser.add_argument(
        "--max-context",
        type=_positive_int,
        default=32_000,
        metavar="TOKENS",
        help="Compact the conversation past this many tokens, estimated as characters/4 (default: 32000).",
    )
    parser.add_argument(
        "--keep-session",
        action="store_true",
        help="Keep the peripheral session and the conversation open between turns.",
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


def _workspace(config_path: str) -> str | None:
    """The daemon's workspace from its config (the codex-app-server
    driver's thread runs there); None when the config cannot be read."""
    from futon.config.loader import load_config

    try:
        return str(load_config(config_path).workspace)
    except (FutonError, OSError):
        return None


def _hidden(config_path: str) -> list[str]:
    """futon's hidden paths from the daemon's config (its data directory and
    config files), which the codex-app-server driver's sandbox masks."""
    from futon.config.loader import load_config

    try:
        config = load_config(config_path)
    except (FutonError, OSError):
        return []
    return [str(p) for p in (config.data_dir, *config.files)]


def cmd_run(args: argparse.Namespace) -> int:
    from futon.agents.drivers import make_driver
    from futon.agents.runtime import TurnSettings, endpoints, run_agent

    urls: list[str] = args.url or [default_url(args.config)]
    try:
        for url in urls:
            endpoints(url)
        driver = make_driver(
            args.driver,
            model=args.model,
            base_url=args.base_url,
            api_key_env=args.api_key_env,
            cmd=args.cmd,
            script=args.script,
            timeout_s=args.max_seconds,
            cli=args.cli,
            workspace=_workspace(args.config) if args.driver == "codex-app-server" else None,
            hidden=_hidden(args.config) if args.driver == "codex-app-server" else (),
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
            return await run_agent(args.agent_id, urls, driver, settings, token=token, stop=stop)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    return asyncio.run(main())


