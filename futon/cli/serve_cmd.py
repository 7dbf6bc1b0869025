"""``futon serve``."""

from __future__ import annotations

import argparse
import asyncio

from futon.cli import add_config_option


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="run the daemon", description="Run the futon daemon until SIGINT/SIGTERM.")
    add_config_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from futon.config.loader import load_config
    from futon.daemon.app import serve
    from futon.daemon.logs import setup_logging

    config = load_config(args.config)
    setup_logging(config.daemon.logging.level)
    return asyncio.run(serve(config))
