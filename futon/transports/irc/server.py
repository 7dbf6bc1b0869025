"""The embedded IRC server's sockets (docs/irc.md, "The embedded server").

One :class:`IrcServer` owns the listening socket and every connection; the
protocol itself — state, commands, replies — is
:class:`~futon.transports.irc.handlers.IrcHandlers` over
:class:`~futon.transports.irc.state.IrcState`, which write into an
:class:`~futon.transports.irc.outbox.Outbox` that this module drains onto
the sockets. The daemon never sees a socket: it manages *virtual users*
(agents, which have no connection) with :meth:`IrcServer.add_virtual` & co.,
and hears what humans say through an
:class:`~futon.transports.irc.listener.IrcListener`.

Per connection there are two tasks: a reader that cuts the byte stream into
lines (bounded: see :class:`~futon.transports.irc.options.IrcLimits`) and a
processor that applies the flood token bucket and runs one command at a
time, so a client's commands take effect in the order it sent them and a
flooding client only delays itself. Lines to clients are written without
awaiting the socket; a client whose unsent output grows past
``sendq_bytes`` is dropped instead of slowing everybody else down. What a
client's commands produce is rendered once per message (not once per
receiver) and written at the end of the event loop's turn, one write per
receiver for everything it is owed (issue 19: channel fan-out).

Every connection has deadlines: it must register within
``registration_timeout_s``, and once idle for ``ping_interval_s`` it is
PINGed and dropped after ``ping_timeout_s`` without a complete line — a
partial line (no line end yet) is not activity, so dribbling bytes holds
no slot. The per-address and total caps are checked before anything is
allocated for a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from futon.config.models import IrcServerSection
from futon.protocol.irc_lines import (
    MAX_LINE_BYTES,
    MAX_TAGS_BYTES,
    LineBuffer,
    Message,
    RawLine,
    render,
)
from futon.transports.irc.handlers import IrcHandlers
from futon.transports.irc.history import HistorySource
from futon.transports.irc.listener import IrcListener
from futon.transports.irc.options import IrcHome, IrcLimits
from futon.transports.irc.outbox import Outbox
from futon.transports.irc.state import Client, IrcState
from futon.transports.irc.virtual import VirtualUsers
from futon.transports.ratelimit import Clock, TokenBucket

log = logging.getLogger("futon.irc")

WRITE_BATCH = 64
"""The most lines of one client processed before what they produced is written."""
_EOF = RawLine(b"")  # queued after a client's last line; LineBuffer never yields an empty line


@dataclass(eq=False)
class Connection:
    """One socket: the client it carries, its writer, its flood bucket, its
    timers (server clock) and the lines read but not yet processed (at most
    ``flood_max_pending``)."""

    client: Client
    writer: asyncio.StreamWriter
    bucket: TokenBucket
    connected_at: float
    last_activity: float  # the last complete line (partial lines do not count)
    pending: deque[RawLine] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    out: list[bytes] = field(default_factory=list)  # rendered, not yet written (see _render)
    hang_up: bool = False  # queued: close after what ``out`` holds; nothing is added after it
    hung_up: bool = False


class IrcServer:
    """An RFC 1459/2812 server on ``settings.host:settings.port``.

    Lifecycle: ``await start()`` binds (port 0 picks a free port, see
    :attr:`bound_port`); ``await stop()`` sends ``ERROR :Server shutting
    down`` to every client and closes. Virtual users (the daemon's agents)
    share the nick space with real clients and are seen by them as ordinary
    users; they receive nothing — what real clients send to channels and to
    virtual nicks goes to ``listener`` instead. ``home`` (the daemon's nick
    and channels) puts join hints in the MOTD and ``settings.topic`` on
    those channels. ``clock`` (monotonic seconds) times flood control,
    keepalive and ghost nicks.
    """

    def __init__(
        self,
        settings: IrcServerSection,
        listener: IrcListener | None = None,
        *,
        limits: IrcLimits | None = None,
        home: IrcHome | None = None,
        clock: Clock = time.monotonic,
        history: HistorySource | None = None,
    ) -> None:
        self.settings = settings
        self.listener = listener
        self.limits = limits or IrcLimits.from_settings(settings)
        self.state = IrcState()
        self.out = Outbox()
        self.handlers = IrcHandlers(
            settings,
            state=self.state,
            out=self.out,
            limits=self.limits,
            home=home,
            reserved=self._reserved,
            clock=clock,
            history=history,
        )
        self._virtual = VirtualUsers(self.handlers)
        self._clock = clock
        self._server: asyncio.Server | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._connections: dict[Client, Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._per_ip: Counter[str] = Counter()
        self._dirty: dict[Connection, None] = {}  # connections with rendered output, in order
        self._write_scheduled = False
        self._stopping = False

    # -------------------------------------------------------- public API

    @property
    def bound_port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("IrcServer.bound_port read before start()")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def clients_count(self) -> int:
        """Open connections, registered or not (virtual users excluded)."""
        return len(self._connections)

    def members(self, channel: str) -> list[str]:
        """Nicks in ``channel`` (real and virtual), in join order; ``[]``
        for a channel that does not exist."""
        chan = self.state.channel(channel)
        return [m.nick for m in chan.members] if chan else []

    def channels(self) -> list[str]:
        return [c.name for c in self.state.channels.values()]

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("IrcServer.start() called twice")
        self._stopping = False
        self._server = await asyncio.start_server(
            self._serve, self.settings.host, self.settings.port, reuse_address=True
        )
        self._keepalive = asyncio.create_task(self._keepalive_loop(), name="irc-keepalive")
        log.info(
            "irc server %s listening on %s:%s",
            self.settings.name,
            self.settings.host,
            self.bound_port,
        )

    async def stop(self) -> None:
        """Close the listener, tell every client ``ERROR :Server shutting
        down`` and close their connections. Virtual users stay. Safe to
        call twice."""
        if self._server is None:
            return
        self._stopping = True
        server, self._server = self._server, None
        server.close()
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
        for client in list(self._connections):
            self._close(client, "Server shutting down", error="Server shutting down")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
        self.state.keep_virtual_only()

    async def add_virtual(
        self, nick: str, user: str = "agent", host: str = "futon", realname: str | None = None
    ) -> None:
        """Create a user without a connection. Raises ``ProtocolError`` for
        a nick IRC cannot carry and ``Conflict`` when the nick is taken."""
        self._virtual.add(nick, user, host, realname)

    async def virtual_join(self, nick: str, channel: str) -> None:
        """Join a virtual user to ``channel`` (created if needed; the first
        joiner is op). Real members see a JOIN line. Joining twice is a no-op."""
        self._virtual.join(nick, channel)
        self._flush()

    async def virtual_part(self, nick: str, channel: str, reason: str | None = None) -> None:
        self._virtual.part(nick, channel, reason)
        self._flush()

    async def virtual_say(self, nick: str, target: str, text: str, notice: bool = False) -> None:
        """PRIVMSG (or NOTICE) from a virtual user to a channel or a nick,
        one message per line of ``text``, each cut to fit 512 bytes. Raises
        ``NotFound`` for an unknown target and ``PermissionDenied`` when the
        virtual user is not in a ``+n`` channel."""
        self._virtual.say(nick, target, text, notice)
        self._flush()

    async def evict(self, nick: str, reason: str) -> str | None:
        """Free ``nick`` from the real client holding it (case-folded), so a
        virtual user can take it: the client is renamed to a fresh
        ``Guest<N>``, told why by a NOTICE, and it and everyone sharing a
        channel with it see the NICK change. Returns the new nick, or None
        when no real client holds ``nick``."""
        guest = self._virtual.evict(nick, reason)
        await self._pump()
        return guest

    def set_away(self, nick: str, message: str | None) -> None:
        """Mark the virtual user ``nick`` away (``/WHO`` ``G``, ``/WHOIS``
        301, ``301`` to whoever messages it) with ``message``, or back with
        None. Raises ``NotFound`` when there is no such virtual user."""
        self._virtual.set_away(nick, message)

    async def remove_virtual(self, nick: str, reason: str = "Leaving") -> None:
        """The virtual user quits: ``QUIT :reason`` to everyone who shared
        a channel with it."""
        self._virtual.remove(nick, reason)
        self._flush()

    # -------------------------------------------------------- connections

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        if self._stopping:
            writer.close()
            return
        refusal = None  # the caps come before any state is made for the connection
        if len(self._connections) >= self.settings.max_clients:
            refusal = "Server is full"
        elif self._per_ip[ip] >= self.settings.max_clients_per_ip:
            refusal = "Too many connections from your IP"
        if refusal:
            with contextlib.suppress(Exception):
                writer.write(f"ERROR :Closing Link: {ip} ({refusal})\r\n".encode())
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 2)
            return
        client = Client(nick="", user="", host=ip, realname="", ip=ip)
        now = self._clock()
        conn = Connection(
            client,
            writer,
            TokenBucket(self.limits.flood_rate, self.limits.flood_burst, self._clock),
            connected_at=now,
            last_activity=now,
        )
        self._connections[client] = conn
        self._per_ip[ip] += 1
        self._tasks.add(task)
        reading = asyncio.create_task(self._read_loop(conn, reader), name=f"irc-read-{ip}")
        try:
            await self._process_loop(conn)
        except asyncio.CancelledError:
            pass
        except Exception:  # one client's bug must not take the server down
            log.exception("irc: client %s crashed; dropping it", client.prefix)
            self._close(client, "Internal error")
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
            if not client.closing:
                self._close(client, "Connection closed")
            self._connections.pop(client, None)
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]
            try:
                await self._pump()
                if not self._stopping:
                    await _drain(reader, seconds=1.0, max_bytes=1 << 16)
            finally:
                writer.close()
                self._tasks.discard(task)

    async def _read_loop(self, conn: Connection, reader: asyncio.StreamReader) -> None:
        buffer = LineBuffer(MAX_TAGS_BYTES + MAX_LINE_BYTES)
        client = conn.client
        try:
            while not client.closing:
                data = await reader.read(4096)
                if not data:
                    break
                lines = buffer.feed(data)
                # Activity is a complete line: bytes without a line end keep nothing alive.
                if lines:
                    conn.last_activity = self._clock()
                    client.ping_sent_at = None
                conn.pending.extend(lines)
                if len(conn.pending) > self.limits.flood_max_pending:
                    self._close(client, "Excess Flood", error="Excess Flood")
                    break
                conn.wake.set()
        except (ConnectionError, OSError):
            pass
        finally:
            if not client.closing:
                conn.pending.append(_EOF)
                conn.wake.set()

    async def _process_loop(self, conn: Connection) -> None:
        client = conn.client
        batched = 0
        while not client.closing:
            if not conn.pending:
                conn.wake.clear()
                await conn.wake.wait()
                continue
            if conn.pending[0] is _EOF:
                self._close(client, "Connection closed")
                return
            delay = conn.bucket.wait()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            conn.bucket.take()
            self.handlers.handle_line(client, conn.pending.popleft())
            batched += 1
            # What a client's command produced is only rendered here, and written
            # at the end of this turn of the event loop (or after WRITE_BATCH lines
            # of this client): a run of channel lines — from this client and from
            # others processed in the same turn — costs one write per receiver.
            await self._pump(write=batched >= WRITE_BATCH)
            if batched >= WRITE_BATCH:
                batched = 0
            else:
                self._write_soon()

    def _close(self, client: Client, quit_reason: str, *, error: str | None = None) -> None:
        """Drop ``client`` now (see :meth:`IrcHandlers.drop`) and write what
        that produced. Synchronous so a caller can reuse the nick right
        after; listener hooks run at the next :meth:`_pump`."""
        self.handlers.drop(client, quit_reason, error=error, announce=not self._stopping)
        self._flush()

    async def _keepalive_loop(self) -> None:
        interval = self.settings.ping_interval_s
        timeout = self.settings.ping_timeout_s
        register_within = self.settings.registration_timeout_s
        tick = self.limits.keepalive_tick_s or max(
            0.02, min(interval, timeout, register_within, 20.0) / 4
        )
        while True:
            await asyncio.sleep(tick)
            now = self._clock()
            for conn in list(self._connections.values()):
                client = conn.client
                if client.closing:
                    continue
                if not client.registered and now - conn.connected_at >= register_within:
                    self._close(client, "Registration timeout")
                    await self._pump()
                    continue
                silent = now - conn.last_activity
                if silent >= timeout:
                    self._close(
                        client,
                        "Ping timeout",
                        error=f"Closing Link: {client.host} (Ping timeout: {int(silent)} seconds)",
                    )
                    await self._pump()
                elif silent >= interval and client.ping_sent_at is None:
                    client.ping_sent_at = now
                    self.handlers.send(client, Message("PING", [self.settings.name], trailing=True))
                    self._flush()

    def _reserved(self, nick: str) -> bool:
        check = getattr(self.listener, "nick_reserved", None)
        if check is None:
            return False
        try:
            return bool(check(nick))
        except Exception:  # a broken listener must not let anyone take an agent's nick
            log.exception("irc listener nick_reserved failed")
            return True

    # -------------------------------------------------------- output

    def _flush(self) -> None:
        """Write every queued line to its socket, in order: :meth:`_render`
        then :meth:`_write_out`."""
        self._render()
        self._write_out()

    def _render(self) -> None:
        """Move every queued line into its connection's output buffer, in
        order. A message sent to many clients (a channel line) is rendered
        and encoded once per tag shape, not once per receiver: the fan-out
        hot path (bench/irc_fanout.py)."""
        items = self.out.items
        if not items:
            return
        cache: dict[tuple[int, bool, bool, bool], tuple[Message, bytes | None]] = {}
        stamp: str | None = None
        connections, dirty = self._connections, self._dirty
        last: tuple[Message | None, set[str] | None, bytes | None] = (None, None, None)
        while items:
            client, message = items.popleft()
            conn = connections.get(client)
            if conn is None or conn.hang_up:
                continue  # gone already, or nothing more after its last words
            dirty[conn] = None
            if message is None:
                conn.hang_up = True
                continue
            if message is last[0] and client.caps == last[1]:
                # The next receiver of the same broadcast, with the same caps: same bytes.
                if last[2] is not None:
                    conn.out.append(last[2])
                continue
            own_time = "time" in message.tags
            shape = (
                id(message),
                "server-time" in client.caps and not own_time,
                "batch" in client.caps and "batch" in message.tags,
                "message-tags" in client.caps,
            )
            hit = cache.get(shape)
            if hit is not None and hit[0] is message:  # holding the message keeps its id unique
                data = hit[1]
            else:
                if shape[1] and stamp is None:
                    now = datetime.now(UTC)
                    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
                data = self._encode(client, message, stamp)
                cache[shape] = (message, data)
            last = (message, client.caps, data)
            if data is not None:
                conn.out.append(data)

    def _encode(self, client: Client, message: Message, stamp: str | None) -> bytes | None:
        """``message`` as ``client`` must read it (the tags its caps ask
        for), CR LF included; None when no line can carry it."""
        tags: dict[str, str] = {}
        own = dict(message.tags)
        original = own.pop("time", None)  # a played-back line carries its original time
        batch = own.pop("batch", None)
        if "server-time" in client.caps:
            tags["time"] = original or stamp or ""
        if batch is not None and "batch" in client.caps:
            tags["batch"] = batch
        if "message-tags" in client.caps:
            tags.update(own)
        try:
            line = render(
                Message(message.command, message.params, message.source, tags, message.trailing)
            )
        except ValueError:
            log.exception("irc: could not render %r", message)
            return None
        return line.encode() + b"\r\n"

    def _write_soon(self) -> None:
        """Write what is rendered at the end of this event-loop turn."""
        if not self._write_scheduled:
            self._write_scheduled = True
            asyncio.get_running_loop().call_soon(self._write_out)

    def _write_out(self) -> None:
        """One socket write per connection for everything rendered for it,
        then its hang-up if one was queued. A write that overflows a SendQ
        drops that client, which queues more (its ERROR, the QUIT to its
        peers): those are rendered and written too."""
        self._write_scheduled = False
        while self._dirty:
            dirty, self._dirty = self._dirty, {}
            for conn in dirty:
                data = b"".join(conn.out)
                conn.out.clear()
                if data:
                    self._write(conn, data)
                if conn.hang_up and not conn.hung_up:
                    conn.hung_up = True
                    self._hang_up(conn)
            self._render()

    def _write(self, conn: Connection, data: bytes) -> None:
        writer, client = conn.writer, conn.client
        if writer.is_closing():
            return
        try:
            writer.write(data)
        except (ConnectionError, OSError, RuntimeError):
            return
        transport = writer.transport
        if transport.get_write_buffer_size() > self.limits.sendq_bytes and not client.closing:
            self.out.discard(client)  # lines queued behind these are not sent either
            self.handlers.drop(client, "SendQ exceeded", announce=not self._stopping)

    def _hang_up(self, conn: Connection) -> None:
        # Half-close: the ERROR line is flushed, then FIN. The socket is
        # closed by _serve after draining what the peer still sends, so
        # the kernel does not answer unread input with a RST that would
        # destroy the ERROR line before the peer reads it.
        conn.wake.set()
        writer = conn.writer
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()

    # -------------------------------------------------------- listener

    async def _pump(self, *, write: bool = True) -> None:
        """Write what is queued (or, with ``write=False``, only render it:
        the next flush writes it), then run the queued listener hooks in
        order (a hook may call back into this server; it flushes itself)."""
        if write:
            self._flush()
        else:
            self._render()
        hooks = self.out.hooks
        while hooks:
            hook, args, kwargs = hooks.popleft()
            await self._notify(hook, *args, **kwargs)

    async def _notify(self, hook: str, *args: object, **kwargs: object) -> None:
        listener = self.listener
        if listener is None:
            return
        method = getattr(listener, hook, None)
        if method is None:
            return
        try:
            await method(*args, **kwargs)
        except Exception:
            log.exception("irc listener %s failed", hook)


async def _drain(reader: asyncio.StreamReader, *, seconds: float, max_bytes: int) -> None:
    """Read and discard until EOF, ``seconds`` or ``max_bytes``."""

    async def discard() -> None:
        left = max_bytes
        while left > 0:
            data = await reader.read(min(left, 4096))
            if not data:
                return
            left -= len(data)

    with contextlib.suppress(Exception):
        await asyncio.wait_for(discard(), seconds)


__all__ = ["Connection", "IrcServer"]
