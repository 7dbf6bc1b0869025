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


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get("FUTON_CONFIG", DEFAULT_CONFIG),
        metavar="PATH",
        help=f"the daemon config file (default: {DEFAULT_CONFIG})",
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
        agent_cmd,
        config_cmd,
        evidence_cmd,
        mcp_cmd,
        schema_cmd,
        serve_cmd,
        status_cmd,
    )

    parser = argparse.ArgumentParser(prog="futon", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"futon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (serve_cmd, config_cmd, agent_cmd, mcp_cmd, evidence_cmd, schema_cmd, status_cmd):
        module.register(sub)
    return parser


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
