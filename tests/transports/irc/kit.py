"""IRC test kit: an embedded server on port 0 and raw line clients, so each
test reads like a dialogue::

    async with irc_server() as server:
        alice = await RawClient.connect(server)
        await alice.register("alice")
        await alice.send("JOIN #room")
        join = await alice.expect("JOIN")

``expect`` consumes lines up to the first match (the skipped ones stay in
``history``); ``expect_numeric`` is the same for a numeric. Everything runs
over real sockets on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from futon.config.models import IrcServerSection
from futon.protocol.irc_lines import Message, irc_lower, parse_line
from futon.transports.irc import IrcHome, IrcLimits, IrcListenerBase, IrcServer

SERVER_NAME = "irc.test"
NETWORK = "TestNet"


@asynccontextmanager
async def irc_server(
    listener: Any = None,
    limits: IrcLimits | None = None,
    *,
    home: IrcHome | None = None,
    **settings: Any,
) -> AsyncIterator[IrcServer]:
    """An :class:`IrcServer` on 127.0.0.1, port 0, with test-friendly
    defaults (keepalive long enough to stay out of the way) and generous
    flood limits unless ``limits`` says otherwise; ``home`` plays the
    daemon's nick and channels (MOTD hints, channel topics)."""
    settings = {
        "host": "127.0.0.1",
        "port": 0,
        "name": SERVER_NAME,
        "network": NETWORK,
        "ping_interval_s": 30,
        "ping_timeout_s": 60,
        **settings,
    }
    limits = limits or IrcLimits(flood_burst=200, flood_rate=500, flood_max_pending=2000)
    server = IrcServer(IrcServerSection(**settings), listener, limits=limits, home=home)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class ConnectionClosed(AssertionError):
    """The server closed the connection while a test waited for a line."""


class RawClient:
    """One TCP connection speaking raw IRC lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.history: list[Message] = []
        """Every line received, in order (including answered PINGs)."""
        self.nick = "*"
        self.auto_pong = False
        """When set, PINGs are answered as they arrive, even while the test
        is not reading, and never returned by :meth:`recv`."""
        self._lines: asyncio.Queue[Message | None] = asyncio.Queue()
        self._pump = asyncio.create_task(self._read_lines())

    @classmethod
    async def connect(cls, server: IrcServer | int, *, source: str | None = None) -> RawClient:
        """Connect to ``server`` (or a port); ``source`` picks the local
        address, e.g. ``127.0.0.2`` to look like another host."""
        port = server if isinstance(server, int) else server.bound_port
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
        return cls(reader, writer)

    async def _read_lines(self) -> None:
        try:
            while raw := await self.reader.readline():
                if not raw.endswith(b"\r\n"):
                    raise AssertionError(f"line not terminated by CR LF: {raw!r}")
                message = parse_line(raw[:-2].decode())
                self.history.append(message)
                if self.auto_pong and message.command == "PING":
                    await self.send(f"PONG :{message.text}")
                    continue
                await self._lines.put(message)
        except (ConnectionError, OSError):
            pass
        finally:
            self.writer.close()  # the server hung up: so do we
            await self._lines.put(None)

    # ---------------------------------------------------------- sending

    async def send(self, *lines: str) -> None:
        """Send each line with CR LF."""
        await self.send_raw("".join(f"{line}\r\n" for line in lines).encode())

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    # ---------------------------------------------------------- receiving

    async def recv(self, timeout: float = 5) -> Message:
        """The next line, parsed. Raises ``ConnectionClosed`` at EOF and
        ``TimeoutError`` when nothing comes within ``timeout``."""
        message = await asyncio.wait_for(self._lines.get(), timeout)
        if message is None:
            self._lines.put_nowait(None)  # stays closed
            raise ConnectionClosed(f"connection closed; lines so far: {self.transcript()}")
        return message

    async def expect(
        self,
        command: str,
        *params: str,
        where: Callable[[Message], bool] | None = None,
        timeout: float = 5,
    ) -> Message:
        """Read until a line with ``command`` whose leading parameters are
        ``params`` (and that satisfies ``where``) arrives; return it."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await self.recv(max(left, 0.001))
            except TimeoutError:
                raise AssertionError(
                    f"no {command} {' '.join(params)} within {timeout}s; got: {self.transcript()}"
                ) from None
            if (
                message.command == command.upper()
                and message.params[: len(params)] == list(params)
                and (where is None or where(message))
            ):
                return message

    async def expect_numeric(self, code: str, *params: str, timeout: float = 5) -> Message:
        """A numeric reply addressed to us: ``code <our nick> params…``."""
        return await self.expect(code, self.nick, *params, timeout=timeout)

    async def expect_closed(self, timeout: float = 5) -> list[Message]:
        """Read until the server closes the connection; return what came."""
        lines: list[Message] = []
        try:
            while True:
                lines.append(await self.recv(timeout))
        except ConnectionClosed:
            return lines
        except TimeoutError:
            raise AssertionError(
                f"connection still open after {timeout}s: {self.transcript()}"
            ) from None

    async def expect_silence(self, seconds: float = 0.3) -> None:
        """Nothing arrives for ``seconds``."""
        try:
            message = await self.recv(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected silence, got {message}")

    async def ping(self, token: str = "sync", timeout: float = 5) -> list[Message]:
        """A round trip: everything the server sent before our PONG has
        arrived by the time this returns. Returns the lines in between."""
        await self.send(f"PING :{token}")
        lines = await self.through(lambda m: m.command == "PONG" and m.text == token, timeout)
        return lines[:-1]

    async def through(self, stop: Callable[[Message], bool], timeout: float = 5) -> list[Message]:
        """Lines up to and including the first one for which ``stop`` is true."""
        lines = [await self.recv(timeout)]
        while not stop(lines[-1]):
            lines.append(await self.recv(timeout))
        return lines

    def transcript(self) -> list[str]:
        return [f"{m.source or ''} {m.command} {m.params}" for m in self.history[-30:]]

    # ---------------------------------------------------------- dialogue helpers

    async def register(
        self, nick: str, user: str | None = None, realname: str = "Test User"
    ) -> list[Message]:
        """NICK + USER, up to the end of the MOTD (376, or 422 when there is
        none); returns the lines from 001 on."""
        await self.send(f"NICK {nick}", f"USER {user or nick} 0 * :{realname}")
        welcome = await self.expect("001")
        self.nick = welcome.params[0]
        return [welcome, *await self.through(lambda m: m.command in ("376", "422"))]

    async def join(self, channel: str) -> list[Message]:
        """JOIN and wait for the end of NAMES; returns the lines from JOIN
        through 366."""
        await self.send(f"JOIN {channel}")
        return await self.through(
            lambda m: m.command == "366" and irc_lower(m.params[1]) == irc_lower(channel)
        )

    async def close(self) -> None:
        self._pump.cancel()
        self.writer.close()
        with suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


@dataclass
class RecordingListener(IrcListenerBase):
    """Keeps every hook call, and lets a test wait for one."""

    events: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _record(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.events.append((name, args, kwargs))
        self._changed.set()

    async def on_message(
        self, sender_nick: str, target: str, text: str, *, private: bool, notice: bool
    ) -> None:
        self._record("message", sender_nick, target, text, private=private, notice=notice)

    async def on_join(self, nick: str, channel: str) -> None:
        self._record("join", nick, channel)

    async def on_part(self, nick: str, channel: str, reason: str | None) -> None:
        self._record("part", nick, channel, reason)

    async def on_quit(self, nick: str, reason: str) -> None:
        self._record("quit", nick, reason)

    async def on_nick(self, old: str, new: str) -> None:
        self._record("nick", old, new)

    async def wait_for(self, name: str, *args: Any, timeout: float = 5, **kwargs: Any) -> None:
        """Until ``name(*args, **kwargs)`` has been recorded."""

        async def seen() -> None:
            while (name, args, kwargs) not in self.events:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(seen(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"listener never saw {name}{args} {kwargs}; saw {self.events}"
            ) from None
