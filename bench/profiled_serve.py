"""``futon serve`` with a steady-state cProfile: the daemon starts as usual,
SIGUSR1 starts profiling, SIGUSR2 stops it and writes the stats to
``--out``. So a bench profiles just its measured window — not start-up,
imports or shutdown. ``--uvloop`` runs the daemon on uvloop instead of
asyncio's loop (to measure whether that dependency would pay; uvloop must
be importable, e.g. ``PYTHONPATH`` pointing at a ``pip install --target``).

Run by bench/processes.py (``daemon_process(profile=…)``); by hand:
``python bench/profiled_serve.py --config futon.yaml --out daemon.prof``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from futon.config.loader import load_config
from futon.daemon.app import serve
from futon.daemon.logs import setup_logging


async def main(config_path: str, out: Path) -> int:
    profiler = cProfile.Profile()
    loop = asyncio.get_running_loop()

    def stop() -> None:
        profiler.disable()
        profiler.dump_stats(str(out))
        logging.getLogger("futon.bench").info("profile written to %s", out)

    loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
    loop.add_signal_handler(signal.SIGUSR2, stop)
    config = load_config(Path(config_path))
    setup_logging(config.daemon.logging.level)
    return await serve(config)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop  # type: ignore[import-not-found]  # not a dependency: measured only

        sys.exit(uvloop.run(main(args.config, args.out)))
    sys.exit(asyncio.run(main(args.config, args.out)))
