"""``futon alfworld serve``: the ALFWorld-style text environment the alfworld
peripheral plays (config/peripherals.yaml, ``alfworld_server``), on
``--host``/``--port`` (default 127.0.0.1:3000; port 0 picks a free one).

Its first line on stdout names the bound URL and the seed, e.g. ``alfworld:
serving http://127.0.0.1:3000 (seed 7); …``. Without ``--seed`` the seed
is random; with it, the games (one per reset, seeds N, N+1, …) are the same
on every run. SIGINT/SIGTERM stop it (exit 0); a port that cannot be bound
is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from collections.abc import Callable

from futon.cli import add_group


def _bounded(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``low..high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in {low}..{high}")
        return value

    return parse


def register(sub: argparse._SubParsersAction) -> None:
    from futon.peripherals.domain.alfworld_env import MAX_STEPS
    from futon.peripherals.domain.alfworld_server import DEFAULT_HOST, DEFAULT_PORT, MAX_GAMES

    actions = add_group(
        sub,
        "alfworld",
        help="Run the ALFWorld-style text environment the alfworld peripheral plays.",
        description="The ALFWorld-style text environment the alfworld peripheral plays.",
    )
    parser = actions.add_parser(
        "serve",
        help="Serve the environment over HTTP.",
        description="Serve the text environment over HTTP (POST /reset, POST /step, GET /state) "
        "until SIGINT or SIGTERM.",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"The address to listen on (default: {DEFAULT_HOST})."
    )
    parser.add_argument(
        "--port",
        type=_bounded(0, 65535),
        default=DEFAULT_PORT,
        help=f"The port (default: {DEFAULT_PORT}); 0 picks a free one, printed on the first line.",
    )
    parser.add_argument(
        "--seed",
        type=_bounded(0, 2**63 - 1),
        default=None,
        metavar="N",
        help="The seed of the first game (default: random, printed on the first line).",
    )
    parser.add_argument(
        "--max-games",
        type=_bounded(1, 10_000),
        default=MAX_GAMES,
        metavar="N",
        help=f"How many games to keep in memory, one per session (default: {MAX_GAMES}).",
    )
    parser.add_argument(
        "--max-steps",
        type=_bounded(1, 10_000),
        default=MAX_STEPS,
        metavar="N",
        help=f"How many steps a game lasts before it ends unwon (default: {MAX_STEPS}).",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from futon.peripherals.domain.alfworld_server import serve

    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)

    def announce(line: str) -> None:
        print(line, flush=True)

    asyncio.run(
        serve(
            args.host,
            args.port,
            seed,
            max_games=args.max_games,
            max_steps=args.max_steps,
            announce=announce,
        )
    )
    return 0
