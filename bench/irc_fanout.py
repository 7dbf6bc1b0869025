"""IRC fan-out: one sender, N receivers on one channel, deliveries/s through
the daemon's embedded IRC server (``futon serve``: every channel line is
also recorded as evidence, as in production) beside ngircd, in the same run.

Each run: N receivers register and join ``#bench``, the sender joins, then
sends ``--lines`` PRIVMSGs as fast as the window allows: at most
``--window`` lines ahead of the slowest receiver (both servers drop a
client whose unsent output grows too long, so the window keeps every
receiver inside its SendQ; the same window is used for both). The figure
is lines × receivers over the time from the first line sent to the last
line received by the last receiver.

Flood control is raised for the sender on both servers: the daemon's by
config (``irc.server.flood_burst``/``flood_rate``/``flood_max_pending``,
issue 19) and ngircd's by ``MaxPenaltyTime = 0`` plus ``OPER`` and user
mode ``+F`` (relaxed flood protection) for the sender.

Goal (issue 19): futon ≥ 0.5× ngircd's deliveries/s at 50 and 200 receivers.

Run: ``.venv/bin/python bench/irc_fanout.py [--receivers 50 200] [--lines N] [--profile]``.
"""

from __future__ import annotations

import sys

try:  # a Ctrl-C while importing exits quietly too
    import argparse
    import asyncio
    import contextlib
    import os
    import tempfile
    import time
    from collections.abc import AsyncIterator
    from pathlib import Path
    from typing import Any

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    from bench.common import machine, result, table
    from bench.processes import daemon_process
    from bench.profiling import summary
    from tests.transports.irc_bot.kit import Ngircd, free_port, require_binary, server_folder
except KeyboardInterrupt:
    sys.exit(130)

GOAL = 0.5
CHANNEL = "#bench"
PATTERN = f" PRIVMSG {CHANNEL} :".encode()


class BenchNgircd(Ngircd):
    """The tests' ngircd with penalties off and an operator for the sender."""

    def write_config(self) -> None:
        super().write_config()
        conf = self.folder / "ngircd.conf"
        text = conf.read_text().replace(
            "[Limits]\n", "[Limits]\n  MaxPenaltyTime = 0\n  MaxJoins = 0\n", 1
        )
        text += "[Operator]\n  Name = bench\n  Password = bench\n"
        conf.write_text(text)


@contextlib.asynccontextmanager
async def ngircd() -> AsyncIterator[int]:
    binary = require_binary("ngircd", "ngircd")
    folder = server_folder("futon-bench-ngircd-")
    server = BenchNgircd(
        [binary, "-n", "-p", "-f", str(folder / "ngircd.conf")], free_port(), folder
    )
    server.write_config()
    await server.start()
    try:
        yield server.port
    finally:
        await server.stop()


# -------------------------------------------------------------------- client


class Irc:
    """One raw connection: registration, and counting channel lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received = 0
        self.target = 0
        self.progress: asyncio.Event | None = None  # set after each read that counted lines

    @classmethod
    async def connect(cls, port: int, nick: str) -> Irc:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        irc = cls(reader, writer)
        writer.write(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
        await irc.until(b" 376 ", b" 422 ")  # end of MOTD (or none): registered
        return irc

    async def until(self, *markers: bytes, timeout: float = 60) -> bytes:
        """Read (answering PINGs) until one of ``markers`` is seen."""
        seen = b""
        async with asyncio.timeout(timeout):
            while not any(m in seen for m in markers):
                data = await self.reader.read(65536)
                if not data:
                    raise RuntimeError(f"connection closed: {seen[-300:]!r}")
                seen += data
                if b"PING " in data:
                    for line in data.split(b"\r\n"):
                        if line.startswith(b"PING "):
                            self.writer.write(b"PONG " + line[5:] + b"\r\n")
        return seen

    async def count(self) -> None:
        """Count channel lines until ``target`` have arrived (a line cut
        between two reads is counted once: the tail is carried over)."""
        carry = b""
        keep = len(PATTERN) - 1
        while self.received < self.target:
            data = await self.reader.read(65536)
            if not data:
                raise RuntimeError("receiver's connection closed mid-run")
            chunk = carry + data
            found = chunk.count(PATTERN)
            self.received += found
            if found and self.progress is not None:
                self.progress.set()
            carry = chunk[-keep:] if not chunk.endswith(b"\n") else b""
            if b"\nPING " in chunk or chunk.startswith(b"PING "):
                for line in chunk.split(b"\r\n"):
                    if line.startswith(b"PING "):
                        self.writer.write(b"PONG " + line[5:] + b"\r\n")

    def close(self) -> None:
        self.writer.close()


async def run(
    port: int, receivers: int, lines: int, window: int, oper: bool
) -> tuple[float, float]:
    """One fan-out run against ``port``: (deliveries/s, seconds)."""
    group = await asyncio.gather(*(Irc.connect(port, f"r{i}") for i in range(receivers)))
    sender = await Irc.connect(port, "sender")
    try:
        for irc in group:
            irc.writer.write(f"JOIN {CHANNEL}\r\n".encode())
        await asyncio.gather(*(irc.until(b" 366 ") for irc in group))  # end of NAMES: joined
        if oper:
            sender.writer.write(b"OPER bench bench\r\n")
            await sender.until(b" 381 ")
            sender.writer.write(b"MODE sender +F\r\n")
            await sender.until(b"+F")
        sender.writer.write(f"JOIN {CHANNEL}\r\n".encode())
        await sender.until(b" 366 ")
        progress = asyncio.Event()
        for irc in group:
            irc.target = lines
            irc.progress = progress
        counting = [asyncio.create_task(irc.count()) for irc in group]
        payload = "x" * 40
        started = time.perf_counter()
        sent = 0
        while sent < lines:
            slowest = min(irc.received for irc in group)
            room = min(window - (sent - slowest), lines - sent)
            if room <= 0:
                progress.clear()
                async with asyncio.timeout(60):  # a receiver read something
                    await progress.wait()
                continue
            sender.writer.write(
                b"".join(
                    f"PRIVMSG {CHANNEL} :{sent + i:06d} {payload}\r\n".encode() for i in range(room)
                )
            )
            sent += room
            await sender.writer.drain()
        async with asyncio.timeout(120):
            await asyncio.gather(*counting)
        elapsed = time.perf_counter() - started
        return lines * receivers / elapsed, elapsed
    finally:
        for irc in [*group, sender]:
            irc.close()


async def measure(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    rows: list[tuple[object, ...]] = []
    ratios: dict[int, float] = {}
    results: list[str] = []
    overrides = {
        "irc__server__enabled": True,
        "irc__server__port": 0,
        "irc__server__flood_burst": 1_000_000,
        "irc__server__flood_rate": 1_000_000.0,
        "irc__server__flood_max_pending": 100_000,
        "irc__server__max_clients": 2000,
        "irc__server__max_clients_per_ip": 2000,
    }
    async with ngircd() as ng_port:
        with daemon_process(root / "daemon", **overrides) as daemon:
            for n in args.receivers:
                ng_rate, ng_s = await run(ng_port, n, args.lines, args.window, oper=True)
                futon_rate, futon_s = await run(
                    daemon.ports["irc"], n, args.lines, args.window, oper=False
                )
                ratio = futon_rate / ng_rate
                ratios[n] = ratio
                results.append(result(f"IRC fan-out, 1 sender → {n} receivers, deliveries/s", f"{futon_rate:,.0f}/s",
                                      f"{ng_rate:,.0f}/s (ngircd)", ratio, f"≥ {GOAL:g}×", ratio >= GOAL))  # fmt: skip
                rows.append(
                    (n, "ngircd (baseline)", args.lines, f"{ng_rate:,.0f}", f"{ng_s:.2f}", "1.00×")
                )
                rows.append(
                    (
                        n,
                        "futon serve, embedded IRC",
                        args.lines,
                        f"{futon_rate:,.0f}",
                        f"{futon_s:.2f}",
                        f"{ratio:.2f}×",
                    )
                )
    prof = ""
    if args.profile:  # a run of its own: cProfile slows the daemon down
        path = root / "daemon.prof"
        n = max(args.receivers)
        with (
            daemon_process(root / "profiled", profile=path, **overrides) as daemon,
            daemon.profiling(),
        ):
            rate, _ = await run(daemon.ports["irc"], n, args.lines, args.window, oper=False)
        prof = summary(path, f"futon serve, {n} receivers, {rate:,.0f} deliveries/s under cProfile")
    return {"rows": rows, "ratios": ratios, "results": results, "profile": prof}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receivers", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--lines", type=int, default=2000, help="lines the sender sends per run")
    parser.add_argument(
        "--window", type=int, default=50, help="most lines ahead of the slowest receiver"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="one more run against a daemon under cProfile; print its top functions",
    )
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory(prefix="futon-irc-bench-") as tmp:
            out = asyncio.run(measure(args, Path(tmp)))
    except KeyboardInterrupt:
        print("interrupted; servers stopped, temp files removed", file=sys.stderr)
        sys.exit(130)
    print(f"machine: {machine()}")
    print(
        f"note: {os.cpu_count()} cores shared by the server under test and the client process (one asyncio loop "
        "for the sender and every receiver), so the client may cap both figures; compare the ratios."
    )
    print(
        f"setup: one sender, N receivers on {CHANNEL}; {args.lines} lines of ~60 bytes per run, at most "
        f"{args.window} lines ahead of the slowest receiver; ngircd: MaxPenaltyTime 0, sender OPER +F; futon: "
        "irc.server.flood_* raised by config, evidence fsync never" + "."
    )
    print()
    print(
        table(
            "fan-out deliveries/s (lines × receivers / seconds)",
            ("receivers", "what", "lines", "deliveries/s", "seconds", "vs ngircd"),
            out["rows"],
        )
    )
    if out["profile"]:
        print()
        print(out["profile"])
    print()
    for line in out["results"]:
        print(line)
    ratios = out["ratios"]
    met = all(r >= GOAL for r in ratios.values())
    measured = ", ".join(f"{n} receivers {r:.2f}×" for n, r in ratios.items())
    print(
        f"goal: IRC fan-out ≥ {GOAL:g}× ngircd's deliveries/s — measured {measured} → {'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
