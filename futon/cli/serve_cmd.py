"""``futon serve``."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from futon.cli import add_config_option


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="Run the daemon.",
        description="Run the futon daemon until it gets SIGINT or SIGTERM; SIGHUP reloads the configuration.",
    )
    add_config_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from futon.config.loader import library_problems, load_config
    from futon.daemon.app import serve
    from futon.daemon.logs import setup_logging

    config = load_config(args.config)
    setup_logging(config.daemon.logging.level)
    # `futon config validate` refuses these; the daemon still starts, and
    # only the peripheral that reads the missing folder fails its tools.
    for problem in library_problems(args.config, config):
        logging.getLogger("futon.daemon").warning("%s", problem)
    return asyncio.run(serve(config))
