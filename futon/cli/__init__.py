"""The ``futon`` console script.

Each subcommand family lives in its own module with a ``register(subparsers)``
function; this module only assembles them and owns the one place where errors
become exit codes: 0 success, 1 runtime failure, 2 usage or configuration
error. No traceback reaches the terminal unless ``FUTON_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from futon import __version__
from futon.protocol.errors import FutonError

DEFAULT_CONFIG = "config/futon.yaml"
DESCRIPTION = (
    "A daemon where humans (IRC) and AI agents (WebSocket, MCP) work together inside "
    "capability envelopes, with an append-only evidence landscape. Start with "
    "futon init, then futon serve."
)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get("FUTON_CONFIG", DEFAULT_CONFIG),
        metavar="PATH",
        help=f"The daemon's futon.yaml, as futon init writes it (default: {DEFAULT_CONFIG}).",
    )


def add_group(subparsers: Any, name: str, *, help: str, description: str) -> Any:
    """A command family (``futon NAME ACTION``) whose action is required;
    returns the family's own subparsers for its actions to register into."""
    parser = subparsers.add_parser(name, help=help, description=description)
    actions = parser.add_subparsers(dest=f"{name}_command", metavar="ACTION")
    actions.required = True
    return actions


def build_parser() -> argparse.ArgumentParser:
    from futon.cli import (
        admin_token_cmd,
        agent_cmd,
        alfworld_cmd,
        config_cmd,
        evidence_cmd,
        init_cmd,
        mcp_cmd,
        schema_cmd,
        serve_cmd,
        status_cmd,
    )

    parser = argparse.ArgumentParser(prog="futon", description=DESCRIPTION)
    parser.add_argument(
        "--version", action="version", version=f"futon {__version__}", help="Print the version and exit."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (
        init_cmd, serve_cmd, config_cmd, agent_cmd, admin_token_cmd, mcp_cmd, evidence_cmd,
        schema_cmd, status_cmd, alfworld_cmd,
    ):  # fmt: skip
        module.register(sub)
    _plain_help(parser)
    return parser


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """argparse's own -h text, as a sentence, in every parser of the tree."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            action.help = "Show this help and exit."
        elif isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _plain_help(child)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except FutonError as exc:
        _print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `futon evidence query | head`: the reader left; not our failure.
        sys.stderr.close()
        return 0
    except Exception as exc:  # the last line of defence: no traceback for users
        if os.environ.get("FUTON_DEBUG"):
            raise
        _print_error(f"internal error: {type(exc).__name__}: {exc}")
        return 1
    return int(code or 0)


def _print_error(text: str) -> None:
    print(f"futon: {text}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
