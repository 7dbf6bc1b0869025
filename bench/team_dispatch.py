"""Cross-daemon ``POST /dispatch`` beside the same-daemon one, in the same run
(issue 20).

Two ``futon serve`` processes share one PostgreSQL database (a throwaway
cluster, tests/pg_cluster.py): a team. One answering agent is connected to
daemon 1. The same client code POSTs ``/dispatch`` for it to daemon 1 (the
same-daemon path: push over WS, reply, receipt) and to daemon 2 (the team
path: daemon 2 mails the dispatch to daemon 1 through the team bus —
a row in ``futon_team_mail`` and a NOTIFY —, daemon 1 runs it, the receipt
comes back the same way). Both record the dispatch in PostgreSQL. The two
windows alternate per concurrency so drift hits both.

Goal (issue 20): cross-daemon p50 within 2× of same-daemon.
Run: ``.venv/bin/python bench/team_dispatch.py [--seconds S] [--durable]``
(``--durable``: the cluster with fsync on, as a deployment runs it — every
durable commit then waits for the disk, in both paths).
"""

from __future__ import annotations

import sys

try:  # a Ctrl-C while importing exits quietly too
    import argparse
    import asyncio
    import contextlib
    import os
    import tempfile
    from pathlib import Path
    from typing import Any

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    import aiohttp

    from bench.common import machine, percentile, table, within_goal
    from bench.http_dispatch import AGENT, requests, responder
    from bench.processes import daemon_process
    from bench.ws_roundtrip import register
    from tests.pg_cluster import running_cluster
except KeyboardInterrupt:
    sys.exit(130)

CONCURRENCY = (1, 10)
GOAL = 2.0  # issue 20: cross-daemon p50 within 2× of same-daemon


def team_keys(dsn: str, daemon_id: str) -> dict[str, Any]:
    return {"evidence__backend": "postgres", "evidence__postgres": {"dsn": dsn}, "daemon_id": daemon_id}


async def measure(same_url: str, other_url: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": [], "ratios": {}}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        for c in CONCURRENCY:
            same_rate, same_lat, _ = await requests(http, same_url + "/dispatch", c, f"same-c{c}", args.warmup, args.seconds)
            cross_rate, cross_lat, _ = await requests(http, other_url + "/dispatch", c, f"cross-c{c}", args.warmup, args.seconds)
            s50, s99 = percentile(same_lat, 50), percentile(same_lat, 99)
            x50, x99 = percentile(cross_lat, 50), percentile(cross_lat, 99)
            ratio = x50 / s50
            out["ratios"][c] = ratio
            out["rows"].append((c, "same daemon (agent connected here)", f"{same_rate:,.0f}", f"{s50:.2f}", f"{s99:.2f}", "1.00×"))
            out["rows"].append((c, "cross-daemon (through the team bus)", f"{cross_rate:,.0f}", f"{x50:.2f}", f"{x99:.2f}", f"{ratio:.2f}×"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per configuration")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each window")
    parser.add_argument("--durable", action="store_true", help="PostgreSQL with fsync on (default: off)")
    args = parser.parse_args()
    try:
        with contextlib.ExitStack() as stack:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="futon-team-bench-")))
            cluster = stack.enter_context(running_cluster(durable=args.durable))
            dsn = cluster.create_database()
            one = stack.enter_context(daemon_process(root / "d1", **team_keys(dsn, "d1")))
            two = stack.enter_context(daemon_process(root / "d2", **team_keys(dsn, "d2")))

            async def register_once() -> None:
                # On daemon 1: the team's registry (futon_team_agents) makes it
                # known on daemon 2 too (a second registration there is a 409).
                async with aiohttp.ClientSession() as http:
                    await register(http, one.url, [AGENT])

            asyncio.run(register_once())
            stack.enter_context(responder(one.url.replace("http", "ws", 1) + "/agency/ws", AGENT, root / "responder"))
            out = asyncio.run(measure(one.url, two.url, args))
    except KeyboardInterrupt:
        sys.exit(130)
    print(f"machine: {machine()}")
    print(
        f"setup: two daemons (`futon serve`, evidence on one throwaway PostgreSQL cluster, fsync "
        f"{'on' if args.durable else 'off'}), the answering agent "
        f"(on daemon 1) and this client each in their own process; only {os.cpu_count() or 0} cores, shared; "
        f"{args.seconds:g} s per configuration after {args.warmup:g} s warm-up; HTTP keep-alive."
    )
    print()
    print(table(
        'POST /dispatch {"type": "standup"} for an agent on daemon 1 (one request in flight per client)',
        ("clients", "sent to", "requests/s", "p50 ms", "p99 ms", "p50 vs same daemon"), out["rows"],
    ))  # fmt: skip
    print()
    print(within_goal("cross-daemon /dispatch p50", out["ratios"], GOAL, "client", "same-daemon p50"))


if __name__ == "__main__":
    main()
