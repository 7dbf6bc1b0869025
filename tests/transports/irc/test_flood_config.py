"""Flood limits come from the config file (``irc.server.flood_*``, issue 19):
a configured burst, rate and pending cap are what a real client meets, and
the defaults are today's values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from ruamel.yaml import YAML

from futon.config.models import IrcServerSection
from futon.transports.irc import IrcLimits, IrcServer
from tests.support import until
from tests.transports.irc.kit import NETWORK, SERVER_NAME, RawClient


class FakeClock:
    """Monotonic seconds that move only when the test says so: the bucket
    refills exactly as much as the test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def configured_server(clock: FakeClock, **flood: float) -> AsyncIterator[IrcServer]:
    """A server built as the daemon builds it: settings only, no IrcLimits."""
    settings = IrcServerSection(
        host="127.0.0.1",
        port=0,
        name=SERVER_NAME,
        network=NETWORK,
        **flood,  # type: ignore[arg-type]
    )
    server = IrcServer(settings, clock=clock)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def waiting(server: IrcServer, nick: str) -> int:
    """Lines read from ``nick``'s socket but held back by its flood bucket."""
    for client, conn in server._connections.items():
        if client.nick == nick:
            return len(conn.pending)
    raise AssertionError(f"no connection for {nick}")


def test_defaults_are_unchanged() -> None:
    section = IrcServerSection()
    assert (section.flood_burst, section.flood_rate, section.flood_max_pending) == (20, 2.0, 100)
    limits = IrcLimits.from_settings(section)
    default = IrcLimits()
    assert (limits.flood_burst, limits.flood_rate, limits.flood_max_pending) == (
        default.flood_burst,
        default.flood_rate,
        default.flood_max_pending,
    )
    shipped = Path(__file__).resolve().parents[3] / "futon/data/config/futon.yaml"
    server = YAML(typ="safe").load(shipped.read_text())["irc"]["server"]
    assert (server["flood_burst"], server["flood_rate"], server["flood_max_pending"]) == (
        20,
        2.0,
        100,
    )


async def test_configured_burst_and_rate_are_obeyed() -> None:
    clock = FakeClock()
    async with configured_server(clock, flood_burst=4, flood_rate=10.0) as server:
        client = await RawClient.connect(server)
        await client.register("alice")  # NICK + USER spend 2 tokens
        clock.advance(1.0)  # 10 tokens' worth: the bucket is full again, at the burst (4)
        await client.send(*(f"PING :p{i}" for i in range(10)))
        for i in range(4):  # the burst is answered at once ...
            await client.expect("PONG", where=lambda m, i=i: m.text == f"p{i}")  # type: ignore[misc]
        await until(lambda: waiting(server, "alice") == 6, what="6 lines held back")
        clock.advance(0.2)  # ... then 10 lines/s: 0.2 s frees exactly two
        for i in (4, 5):
            await client.expect("PONG", where=lambda m, i=i: m.text == f"p{i}")  # type: ignore[misc]
        await until(lambda: waiting(server, "alice") == 4, what="4 lines held back")
        assert [m.text for m in client.history if m.command == "PONG"] == [
            f"p{i}" for i in range(6)
        ]
        await client.close()


async def test_configured_pending_cap_is_excess_flood() -> None:
    clock = FakeClock()
    async with configured_server(
        clock, flood_burst=2, flood_rate=1.0, flood_max_pending=5
    ) as server:
        client = await RawClient.connect(server)
        await client.send("NICK bob", "USER bob 0 * :Bob")
        await client.send(*(f"PING :p{i}" for i in range(20)))
        lines = await client.expect_closed()
        assert [m.params for m in lines if m.command == "ERROR"] == [["Excess Flood"]]


async def test_raised_limits_let_a_fast_sender_through() -> None:
    clock = FakeClock()  # never advanced: only the burst is available
    async with configured_server(clock, flood_burst=500, flood_max_pending=1000) as server:
        client = await RawClient.connect(server)
        await client.register("carol")
        await client.send(*(f"PING :p{i}" for i in range(300)))
        await client.expect("PONG", where=lambda m: m.text == "p299")
        assert len([m for m in client.history if m.command == "PONG"]) == 300
        await client.close()
