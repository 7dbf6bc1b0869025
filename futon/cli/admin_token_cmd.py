"""``futon admin-token [--rotate]``: make the daemon's admin token.

The token is printed once on stdout (so ``TOKEN=$(futon admin-token)``
works); futon.yaml keeps only its sha256 in ``http.admin_token_sha256``,
with the file's comments. A running daemon is asked to reload, after which
every route but /health, /metrics and the WebSocket needs the token.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from futon.cli import add_config_option
from futon.cli.reload_hint import admin_token, tell_daemon
from futon.config.edit import new_admin_token


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "admin-token",
        help="Make the admin token of the HTTP API and print it once.",
        description=(
            "Make a new admin token, print it once on stdout and store its sha256 in "
            "futon.yaml as http.admin_token_sha256, keeping the file's comments. "
            "When a token is set already, --rotate is needed to replace it. A running "
            "daemon is asked to reload, after which the token is required."
        ),
    )
    parser.add_argument(
        "--rotate", action="store_true", help="Replace the admin token that is set now."
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help=(
            "The admin token in force now, used to make a running daemon reload "
            "(default: $FUTON_ADMIN_TOKEN)."
        ),
    )
    add_config_option(parser)
    parser.set_defaults(func=cmd_admin_token)


def cmd_admin_token(args: argparse.Namespace) -> int:
    made = new_admin_token(args.config, rotate=args.rotate)
    verb = "replaced the admin token" if made.replaced else "made the admin token"
    print(
        f"{verb} of {made.display}; it follows (shown once, only its sha256 is stored):",
        file=sys.stderr,
    )
    print(made.token)
    print(tell_daemon(args.config, admin_token(args.token), "the admin token"), file=sys.stderr)
    return 0
