"""The embedded IRC server (irc.md, "Embedded server: what a client must see").

One :class:`IrcServer` owns the listening socket, every connection and the
nick/channel state. The wire (parsing, rendering, case mapping) lives in
:mod:`futon.protocol.irc_lines`; this module owns connections and the
RFC 1459/2812 behaviour real clients rely on. The daemon never sees a
socket: it manages *virtual users* (agents, which have no connection) with
:meth:`IrcServer.add_virtual` & co., and hears what humans say through an
:class:`IrcListener`.

Per connection there are two tasks: a reader that cuts the byte stream into
lines (bounded: see :class:`IrcLimits`) and a processor that applies the
flood token bucket and runs one command at a time, so a client's commands
take effect in the order it sent them and a flooding client only delays
itself. Lines to clients are written without awaiting the socket; a client
whose unsent output grows past ``sendq_bytes`` is dropped instead of
slowing everybody else down.

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
import fnmatch
import hmac
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from futon import __version__
from futon.config.models import IrcServerSection
from futon.protocol.errors import Conflict, NotFound, PermissionDenied, ProtocolError
from futon.protocol.irc_lines import (
    CHANNELLEN,
    MAX_BODY_BYTES,
    MAX_LINE_BYTES,
    MAX_TAGS_BYTES,
    NICKLEN,
    LineBuffer,
    Message,
    RawLine,
    irc_lower,
    parse_line,
    render,
    split_utf8,
    truncate_utf8,
    valid_channel,
    valid_nick,
)

log = logging.getLogger("futon.irc")

VERSION = f"futon-{__version__}"
SUPPORTED_CAPS = ("message-tags", "server-time")
PRE_REGISTRATION = frozenset({"NICK", "USER", "PASS", "CAP", "PING", "PONG", "QUIT"})
USER_MODES = "i"
CHANNEL_MODES = "nt"
TOPICLEN = 390
KICKLEN = 390
AWAYLEN = 200
MAXTARGETS = 4
USERLEN = 16
REALNAMELEN = 100
_EOF = RawLine(b"")  # queued after a client's last line; LineBuffer never yields an empty line


# ------------------------------------------------------------ hooks


@runtime_checkable
class IrcListener(Protocol):
    """What the daemon hears from the embedded server.

    ``on_message`` is called, in order and awaited, for every PRIVMSG and
    NOTICE a real client sends to a channel (``private=False``, ``target``
    is the channel's name as created) or to a virtual user
    (``private=True``, ``target`` is that user's nick). Messages between
    two real clients are not reported. An exception raised by the listener
    is logged and never reaches the client. The optional hooks
    (``on_join``, ``on_part``, ``on_quit``, ``on_nick``; see
    :class:`IrcListenerBase`) are looked up by name and skipped when absent.
    """

    async def on_message(
        self, sender_nick: str, target: str, text: str, *, private: bool, notice: bool
    ) -> None: ...


class IrcListenerBase:
    """An :class:`IrcListener` whose every hook is a no-op; subclass and
    override what you need.

    ``on_join``/``on_part``/``on_quit``/``on_nick`` report real clients.
    A KICK is reported as ``on_part`` of the kicked user, real or virtual
    (reason ``"kicked by <op>: <reason>"``), so the daemon learns when one
    of its agents was thrown out.
    """

    async def on_message(
        self, sender_nick: str, target: str, text: str, *, private: bool, notice: bool
    ) -> None:
        return None

    async def on_join(self, nick: str, channel: str) -> None:
        return None

    async def on_part(self, nick: str, channel: str, reason: str | None) -> None:
        return None

    async def on_quit(self, nick: str, reason: str) -> None:
        return None

    async def on_nick(self, old: str, new: str) -> None:
        return None

    def nick_reserved(self, nick: str) -> bool:
        """Whether ``nick`` belongs to the daemon (an agent, the daemon's
        own nick) even while no virtual user holds it: a real client that
        asks for it gets 433. Synchronous: asked on every NICK."""
        return False


@dataclass(slots=True)
class IrcLimits:
    """Knobs that are not in the config file (tests shrink them).

    Flood control is a token bucket per connection: ``flood_burst`` lines
    may arrive at once, then ``flood_rate`` lines per second are processed;
    the excess waits. More than ``flood_max_pending`` lines waiting is
    abuse: ``ERROR :Excess Flood``. A nick whose holder has left a PING
    unanswered for ``ghost_after_s`` (default: ``ping_interval_s``) may be
    taken over by a new client.
    """

    flood_burst: int = 20
    flood_rate: float = 2.0
    flood_max_pending: int = 100
    sendq_bytes: int = 1 << 20
    ghost_after_s: float | None = None
    max_channels_per_client: int = 50
    keepalive_tick_s: float | None = None


# ------------------------------------------------------------ state


@dataclass(eq=False)
class User:
    """Someone with a nick: a connection (:class:`Client`) or a virtual user."""

    nick: str
    user: str
    host: str
    realname: str
    virtual: bool = False
    away: str | None = None
    modes: set[str] = field(default_factory=set)
    channels: dict[str, Channel] = field(default_factory=dict)
    signon: float = field(default_factory=time.time)
    last_message: float = field(default_factory=time.time)

    @property
    def prefix(self) -> str:
        return f"{self.nick}!{self.user}@{self.host}"


@dataclass(eq=False)
class Channel:
    name: str
    modes: set[str] = field(default_factory=lambda: {"n"})
    members: dict[User, None] = field(default_factory=dict)  # ordered set, join order
    ops: set[User] = field(default_factory=set)
    topic: str = ""
    topic_by: str = ""
    topic_at: int = 0
    created: int = field(default_factory=lambda: int(time.time()))

    def clients(self) -> list[Client]:
        return [m for m in self.members if isinstance(m, Client)]

    def mode_string(self) -> str:
        return "+" + "".join(sorted(self.modes))


class TokenBucket:
    def __init__(self, capacity: int, rate: float, now: float) -> None:
        self.capacity = float(capacity)
        self.rate = rate
        self.tokens = float(capacity)
        self.stamp = now

    def delay(self, now: float) -> float:
        """Seconds until one token is available (0 when it is)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


@dataclass(eq=False)
class Client(User):
    """A socket connection; a :class:`User` once it has a nick."""

    writer: asyncio.StreamWriter | None = None
    ip: str = ""
    registered: bool = False
    got_user: bool = False
    password: str | None = None
    caps: set[str] = field(default_factory=set)
    cap_negotiating: bool = False
    closing: bool = False
    connected_at: float = 0.0
    last_activity: float = 0.0  # the last complete line (partial lines do not count)
    ping_sent_at: float | None = None
    pending: deque[RawLine] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    bucket: TokenBucket | None = None

    @property
    def name(self) -> str:
        """The nick as numerics address it: ``*`` before one is set."""
        return self.nick or "*"


# ------------------------------------------------------------ the server


Handler = Callable[[Client, Message], Awaitable[None]]


class IrcServer:
    """An RFC 1459/2812 server on ``settings.host:settings.port``.

    Lifecycle: ``await start()`` binds (port 0 picks a free port, see
    :attr:`bound_port`); ``await stop()`` sends ``ERROR :Server shutting
    down`` to every client and closes. Virtual users (the daemon's agents)
    share the nick space with real clients and are seen by them as ordinary
    users; they receive nothing — what real clients send to channels and to
    virtual nicks goes to ``listener`` instead.
    """

    def __init__(
        self,
        settings: IrcServerSection,
        listener: IrcListener | None = None,
        *,
        limits: IrcLimits | None = None,
    ) -> None:
        self.settings = settings
        self.listener = listener
        self.limits = limits or IrcLimits()
        self._server: asyncio.Server | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._clients: set[Client] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._per_ip: Counter[str] = Counter()
        self._users: dict[str, User] = {}
        self._channels: dict[str, Channel] = {}
        self._stopping = False
        self._guests = 0  # Guest<N> nicks handed to clients evicted from an agent's nick
        # Listener hooks queued by synchronous state changes, run in order
        # by the next await point of whoever caused them.
        self._hooks: deque[tuple[str, tuple[object, ...], dict[str, object]]] = deque()
        self._created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        self._commands: dict[str, tuple[Handler, int]] = {
            "PASS": (self._on_pass, 1),
            "NICK": (self._on_nick, 0),
            "USER": (self._on_user, 4),
            "CAP": (self._on_cap, 1),
            "PING": (self._on_ping, 0),
            "PONG": (self._on_pong, 0),
            "QUIT": (self._on_quit, 0),
            "JOIN": (self._on_join, 1),
            "PART": (self._on_part, 1),
            "PRIVMSG": (self._on_privmsg, 0),
            "NOTICE": (self._on_privmsg, 0),
            "TAGMSG": (self._on_tagmsg, 1),
            "TOPIC": (self._on_topic, 1),
            "NAMES": (self._on_names, 0),
            "WHO": (self._on_who, 0),
            "WHOIS": (self._on_whois, 0),
            "LIST": (self._on_list, 0),
            "MODE": (self._on_mode, 1),
            "ISON": (self._on_ison, 1),
            "USERHOST": (self._on_userhost, 1),
            "AWAY": (self._on_away, 0),
            "KICK": (self._on_kick, 2),
            "MOTD": (self._on_motd, 0),
            "LUSERS": (self._on_lusers, 0),
            "VERSION": (self._on_version, 0),
            "TIME": (self._on_time, 0),
        }

    # -------------------------------------------------------- public API

    @property
    def bound_port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("IrcServer.bound_port read before start()")
        return self._server.sockets[0].getsockname()[1]

    @property
    def clients_count(self) -> int:
        """Open connections, registered or not (virtual users excluded)."""
        return len(self._clients)

    def members(self, channel: str) -> list[str]:
        """Nicks in ``channel`` (real and virtual), in join order; ``[]``
        for a channel that does not exist."""
        chan = self._channels.get(irc_lower(channel))
        return [m.nick for m in chan.members] if chan else []

    def channels(self) -> list[str]:
        return [c.name for c in self._channels.values()]

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
        down`` and close their connections. Safe to call twice."""
        if self._server is None:
            return
        self._stopping = True
        server, self._server = self._server, None
        server.close()
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
        for client in list(self._clients):
            self._close(client, "Server shutting down", error="Server shutting down")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
        self._users = {k: u for k, u in self._users.items() if u.virtual}
        for chan in self._channels.values():
            for member in [m for m in chan.members if not m.virtual]:
                del chan.members[member]
                chan.ops.discard(member)
        self._channels = {k: c for k, c in self._channels.items() if c.members}

    async def add_virtual(
        self, nick: str, user: str = "agent", host: str = "futon", realname: str | None = None
    ) -> None:
        """Create a user without a connection. Raises ``ProtocolError`` for
        a nick IRC cannot carry and ``Conflict`` when the nick is taken."""
        if not valid_nick(nick):
            raise ProtocolError(f"{nick!r} is not a valid IRC nick", context={"nick": nick})
        if irc_lower(nick) in self._users:
            raise Conflict(f"IRC nick {nick!r} is already in use", context={"nick": nick})
        self._users[irc_lower(nick)] = User(
            nick=nick,
            user=_clean_word(user, USERLEN) or "agent",
            host=_clean_word(host, 64) or "futon",
            realname=truncate_utf8(_one_line(realname or nick), REALNAMELEN),
            virtual=True,
        )

    async def virtual_join(self, nick: str, channel: str) -> None:
        """Join a virtual user to ``channel`` (created if needed; the first
        joiner is op). Real members see a JOIN line. Joining twice is a no-op."""
        vuser = self._virtual(nick)
        if not valid_channel(channel):
            raise ProtocolError(
                f"{channel!r} is not a valid channel name", context={"channel": channel}
            )
        self._join(vuser, channel)

    async def virtual_part(self, nick: str, channel: str, reason: str | None = None) -> None:
        vuser = self._virtual(nick)
        chan = self._channels.get(irc_lower(channel))
        if chan is None or vuser not in chan.members:
            raise NotFound(
                f"{nick} is not in {channel}", context={"nick": nick, "channel": channel}
            )
        self._part(vuser, chan, truncate_utf8(_one_line(reason), KICKLEN) if reason else None)

    async def virtual_say(self, nick: str, target: str, text: str, notice: bool = False) -> None:
        """PRIVMSG (or NOTICE) from a virtual user to a channel or a nick.

        Each line of ``text`` becomes its own message, split on word
        boundaries so every line fits in 512 bytes. Raises ``NotFound``
        for an unknown target and ``PermissionDenied`` when the virtual
        user is not in a ``+n`` channel. Virtual recipients get nothing.
        """
        vuser = self._virtual(nick)
        command = "NOTICE" if notice else "PRIVMSG"
        recipients: list[Client]
        if target.startswith("#"):
            chan = self._channels.get(irc_lower(target))
            if chan is None:
                raise NotFound(f"no channel {target}", context={"target": target})
            if vuser not in chan.members and "n" in chan.modes:
                raise PermissionDenied(f"{nick} is not in {chan.name}", context={"target": target})
            name, recipients = chan.name, chan.clients()
        else:
            dest = self._lookup(target)
            if dest is None:
                raise NotFound(f"no nick {target}", context={"target": target})
            name, recipients = dest.nick, [dest] if isinstance(dest, Client) else []
        room = MAX_BODY_BYTES - len(f":{vuser.prefix} {command} {name} :".encode())
        vuser.last_message = time.time()
        for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if not line:
                continue
            for piece in split_utf8(line.replace("\0", ""), room):
                out = Message(command, [name, piece], vuser.prefix, trailing=True)
                for client in recipients:
                    self._send(client, out)

    async def evict(self, nick: str, reason: str) -> str | None:
        """Free ``nick`` from the real client holding it (case-folded), so a
        virtual user can take it: the client is renamed to a fresh
        ``Guest<N>``, told why by a NOTICE, and it and everyone sharing a
        channel with it see the NICK change. Returns the new nick, or None
        when no real client holds ``nick``."""
        holder = self._users.get(irc_lower(nick))
        if not isinstance(holder, Client):
            return None
        old = holder.nick
        try:
            guest = self._guest_nick()
        except Conflict:
            self._close(holder, "Nick reserved")  # cannot rename it: it must not keep the nick
            await self._notify_pending()
            return None
        why = truncate_utf8(_one_line(f"{old} is now reserved: {reason}. You are now {guest}."), 400)
        self._send(holder, Message("NOTICE", [old, why], self.settings.name, trailing=True))
        del self._users[irc_lower(old)]
        if holder.registered:
            out = Message("NICK", [guest], holder.prefix, trailing=True)
            self._send(holder, out)
            for peer in self._peers(holder):
                self._send(peer, out)
            self._queue_hook("on_nick", old, guest)
        holder.nick = guest
        self._users[irc_lower(guest)] = holder
        log.info("irc: %s renamed to %s (%s)", old, guest, reason)
        await self._notify_pending()
        return guest

    def _guest_nick(self) -> str:
        for _ in range(10_000):  # bounded: a listener that reserves everything must not hang us
            self._guests += 1
            guest = f"Guest{self._guests}"
            if irc_lower(guest) not in self._users and not self._reserved(guest):
                return guest
        raise Conflict("no free Guest<N> nick to rename a client to")

    def _reserved(self, nick: str) -> bool:
        check = getattr(self.listener, "nick_reserved", None)
        if check is None:
            return False
        try:
            return bool(check(nick))
        except Exception:  # a broken listener must not let anyone take an agent's nick
            log.exception("irc listener nick_reserved failed")
            return True

    async def remove_virtual(self, nick: str, reason: str = "Leaving") -> None:
        """The virtual user quits: ``QUIT :reason`` to everyone who shared
        a channel with it."""
        vuser = self._virtual(nick)
        self._quit_user(vuser, truncate_utf8(_one_line(reason), KICKLEN))

    # -------------------------------------------------------- connections

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        loop = asyncio.get_running_loop()
        if self._stopping:
            writer.close()
            return
        refusal = None  # the caps come before any state is made for the connection
        if len(self._clients) >= self.settings.max_clients:
            refusal = "Server is full"
        elif self._per_ip[ip] >= self.settings.max_clients_per_ip:
            refusal = "Too many connections from your IP"
        if refusal:
            with contextlib.suppress(Exception):
                writer.write(f"ERROR :Closing Link: {ip} ({refusal})\r\n".encode())
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 2)
            return
        client = Client(nick="", user="", host=ip, realname="", writer=writer, ip=ip)
        client.connected_at = client.last_activity = loop.time()
        client.bucket = TokenBucket(self.limits.flood_burst, self.limits.flood_rate, loop.time())
        self._clients.add(client)
        self._per_ip[ip] += 1
        self._tasks.add(task)
        reading = asyncio.create_task(self._read_loop(client, reader), name=f"irc-read-{ip}")
        try:
            await self._process_loop(client)
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
            self._clients.discard(client)
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]
            try:
                await self._notify_pending()
                if not self._stopping:
                    await _drain(reader, seconds=1.0, max_bytes=1 << 16)
            finally:
                writer.close()
                self._tasks.discard(task)

    async def _read_loop(self, client: Client, reader: asyncio.StreamReader) -> None:
        buffer = LineBuffer(MAX_TAGS_BYTES + MAX_LINE_BYTES)
        loop = asyncio.get_running_loop()
        try:
            while not client.closing:
                data = await reader.read(4096)
                if not data:
                    break
                lines = buffer.feed(data)
                if lines:  # activity is a complete line: bytes without a line end keep nothing alive
                    client.last_activity = loop.time()
                    client.ping_sent_at = None
                client.pending.extend(lines)
                if len(client.pending) > self.limits.flood_max_pending:
                    self._close(client, "Excess Flood", error="Excess Flood")
                    break
                client.wake.set()
        except (ConnectionError, OSError):
            pass
        finally:
            if not client.closing:
                client.pending.append(_EOF)
                client.wake.set()

    async def _process_loop(self, client: Client) -> None:
        loop = asyncio.get_running_loop()
        assert client.bucket is not None
        while not client.closing:
            if not client.pending:
                client.wake.clear()
                await client.wake.wait()
                continue
            if client.pending[0] is _EOF:
                self._close(client, "Connection closed")
                return
            delay = client.bucket.delay(loop.time())
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            client.bucket.take()
            await self._handle_line(client, client.pending.popleft())
            await self._notify_pending()

    def _close(self, client: Client, quit_reason: str, *, error: str | None = None) -> None:
        """Drop ``client`` now: ``ERROR`` to it, ``QUIT :quit_reason`` to
        everyone sharing a channel, nick freed, our side of the socket shut.
        Synchronous so a caller can reuse the nick right after; listener
        hooks run later (see :meth:`_notify_pending`). Idempotent.

        ``error`` is the ERROR line's text, by default ``Closing Link:
        <host> (<quit_reason>)``.
        """
        if client.closing:
            return
        client.closing = True
        client.wake.set()
        text = error if error is not None else f"Closing Link: {client.host} ({quit_reason})"
        self._write(client, Message("ERROR", [text], trailing=True))
        if client.nick and self._users.get(irc_lower(client.nick)) is client:
            if client.registered and not self._stopping:
                self._quit_user(client, quit_reason)
            else:
                del self._users[irc_lower(client.nick)]
                for chan in list(client.channels.values()):
                    self._remove_member(client, chan)
        writer = client.writer
        if writer is not None:
            # Half-close: the ERROR line is flushed, then FIN. The socket is
            # closed by _serve after draining what the peer still sends, so
            # the kernel does not answer unread input with a RST that would
            # destroy the ERROR line before the peer reads it.
            with contextlib.suppress(Exception):
                if writer.can_write_eof():
                    writer.write_eof()
                else:
                    writer.close()

    async def _keepalive_loop(self) -> None:
        interval = self.settings.ping_interval_s
        timeout = self.settings.ping_timeout_s
        register_within = self.settings.registration_timeout_s
        tick = self.limits.keepalive_tick_s or max(0.02, min(interval, timeout, register_within, 20.0) / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for client in list(self._clients):
                if client.closing:
                    continue
                if not client.registered and now - client.connected_at >= register_within:
                    self._close(client, "Registration timeout")
                    await self._notify_pending()
                    continue
                silent = now - client.last_activity
                if silent >= timeout:
                    self._close(
                        client,
                        "Ping timeout",
                        error=f"Closing Link: {client.host} (Ping timeout: {int(silent)} seconds)",
                    )
                    await self._notify_pending()
                elif silent >= interval and client.ping_sent_at is None:
                    client.ping_sent_at = now
                    self._send(client, Message("PING", [self.settings.name], trailing=True))

    def _is_ghost(self, holder: User) -> bool:
        if not isinstance(holder, Client) or holder.ping_sent_at is None:
            return False
        grace = self.limits.ghost_after_s
        if grace is None:
            grace = self.settings.ping_interval_s
        return asyncio.get_running_loop().time() - holder.ping_sent_at >= grace

    # -------------------------------------------------------- output

    def _write(self, client: Client, message: Message) -> None:
        writer = client.writer
        if writer is None or writer.is_closing():
            return
        tags: dict[str, str] = {}
        if "server-time" in client.caps:
            now = datetime.now(UTC)
            tags["time"] = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        if "message-tags" in client.caps:
            tags.update(message.tags)
        try:
            line = render(
                Message(message.command, message.params, message.source, tags, message.trailing)
            )
        except ValueError:
            log.exception("irc: could not render %r", message)
            return
        try:
            writer.write(line.encode() + b"\r\n")
        except (ConnectionError, OSError, RuntimeError):
            return
        transport = writer.transport
        if transport.get_write_buffer_size() > self.limits.sendq_bytes and not client.closing:
            self._close(client, "SendQ exceeded")

    def _send(self, client: Client, message: Message) -> None:
        if not client.closing:
            self._write(client, message)

    def _reply(self, client: Client, code: str, *params: str) -> None:
        """A numeric from the server: ``:server CODE <nick> params… :text``.
        Every parameter but the last is made a safe middle word."""
        words = [_safe_middle(p) for p in params[:-1]]
        tail = list(params[-1:])
        self._send(
            client, Message(code, [client.name, *words, *tail], self.settings.name, trailing=True)
        )

    def _from_server(self, client: Client, command: str, *params: str) -> None:
        self._send(client, Message(command, list(params), self.settings.name, trailing=True))

    def _peers(self, user: User) -> set[Client]:
        """Real clients that share at least one channel with ``user``."""
        return {c for chan in user.channels.values() for c in chan.clients() if c is not user}

    # -------------------------------------------------------- listener

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

    def _queue_hook(self, hook: str, *args: object, **kwargs: object) -> None:
        self._hooks.append((hook, args, kwargs))

    async def _notify_pending(self) -> None:
        while self._hooks:
            hook, args, kwargs = self._hooks.popleft()
            await self._notify(hook, *args, **kwargs)

    # -------------------------------------------------------- membership

    def _join(self, user: User, name: str) -> Channel | None:
        key = irc_lower(name)
        chan = self._channels.get(key)
        if chan is None:
            chan = self._channels[key] = Channel(name)
            chan.ops.add(user)
        elif user in chan.members:
            return None
        chan.members[user] = None
        user.channels[key] = chan
        out = Message("JOIN", [chan.name], user.prefix, trailing=False)
        for client in chan.clients():
            self._send(client, out)
        if isinstance(user, Client):
            if chan.topic:
                self._reply(user, "332", chan.name, chan.topic)
                self._reply(user, "333", chan.name, chan.topic_by, str(chan.topic_at))
            self._names(user, chan)
            self._queue_hook("on_join", user.nick, chan.name)
        return chan

    def _part(self, user: User, chan: Channel, reason: str | None) -> None:
        params = [chan.name, reason] if reason else [chan.name]
        out = Message("PART", params, user.prefix, trailing=bool(reason))
        for client in chan.clients():
            self._send(client, out)
        self._remove_member(user, chan)
        if isinstance(user, Client):
            self._queue_hook("on_part", user.nick, chan.name, reason)

    def _remove_member(self, user: User, chan: Channel) -> None:
        chan.members.pop(user, None)
        chan.ops.discard(user)
        user.channels.pop(irc_lower(chan.name), None)
        if not chan.members:
            self._channels.pop(irc_lower(chan.name), None)

    def _quit_user(self, user: User, reason: str) -> None:
        out = Message("QUIT", [reason], user.prefix, trailing=True)
        for client in self._peers(user):
            self._send(client, out)
        for chan in list(user.channels.values()):
            self._remove_member(user, chan)
        if self._users.get(irc_lower(user.nick)) is user:
            del self._users[irc_lower(user.nick)]
        if not user.virtual:
            self._queue_hook("on_quit", user.nick, reason)

    def _names(self, client: Client, chan: Channel) -> None:
        head = f":{self.settings.name} 353 {client.name} = {chan.name} :"
        room = MAX_BODY_BYTES - len(head.encode())
        batch: list[str] = []
        for member in chan.members:
            entry = ("@" if member in chan.ops else "") + member.nick
            if batch and len(" ".join([*batch, entry]).encode()) > room:
                self._reply(client, "353", "=", chan.name, " ".join(batch))
                batch = []
            batch.append(entry)
        if batch:
            self._reply(client, "353", "=", chan.name, " ".join(batch))
        self._reply(client, "366", chan.name, "End of /NAMES list")

    def _lookup(self, nick: str) -> User | None:
        """The user a command may address: virtual, or registered."""
        user = self._users.get(irc_lower(nick))
        if isinstance(user, Client) and not user.registered:
            return None
        return user

    def _virtual(self, nick: str) -> User:
        user = self._users.get(irc_lower(nick))
        if user is None or not user.virtual:
            raise NotFound(f"no virtual IRC user {nick!r}", context={"nick": nick})
        return user

    # -------------------------------------------------------- dispatch

    async def _handle_line(self, client: Client, raw: RawLine) -> None:
        if raw.overflow or not self._fits(client, raw.data):
            self._reply(client, "417", "Input line was too long")
            return
        text = raw.data.decode("utf-8", errors="replace").replace("\0", "")
        if not text.strip(" "):
            return
        try:
            msg = parse_line(text)
        except ProtocolError:
            word = text.lstrip(" ").split(" ", 1)[0]
            if client.registered:
                self._reply(client, "421", word or "*", "Unknown command")
            else:
                self._reply(client, "451", "You have not registered")
            return
        if not client.registered and msg.command not in PRE_REGISTRATION:
            self._reply(client, "451", "You have not registered")
            return
        entry = self._commands.get(msg.command)
        if entry is None:
            self._reply(client, "421", msg.command, "Unknown command")
            return
        handler, min_params = entry
        if len(msg.params) < min_params:
            self._reply(client, "461", msg.command, "Not enough parameters")
            return
        await handler(client, msg)

    def _fits(self, client: Client, data: bytes) -> bool:
        if data.startswith(b"@") and "message-tags" in client.caps:
            tags, _, body = data.partition(b" ")
            return len(tags) + 1 <= MAX_TAGS_BYTES and len(body.lstrip(b" ")) <= MAX_BODY_BYTES
        return len(data) <= MAX_BODY_BYTES

    # -------------------------------------------------------- registration

    async def _on_pass(self, client: Client, msg: Message) -> None:
        if client.registered:
            self._reply(client, "462", "You may not reregister")
            return
        client.password = msg.params[0]

    async def _on_nick(self, client: Client, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            self._reply(client, "431", "No nickname given")
            return
        new = msg.params[0]
        if not valid_nick(new):
            self._reply(client, "432", new, "Erroneous nickname")
            return
        holder = self._users.get(irc_lower(new))
        if holder is client and new == client.nick:
            return
        if holder is not client and self._reserved(new):
            # An agent's nick (or the daemon's), even before its virtual user
            # exists: lines from it would read as the agent's.
            self._reply(client, "433", new, "Nickname is reserved for an agent")
            return
        if holder is not None and holder is not client:
            if not self._is_ghost(holder):
                self._reply(client, "433", new, "Nickname is already in use")
                return
            assert isinstance(holder, Client)
            log.info("irc: %s reclaims ghost nick from %s", client.ip, holder.prefix)
            self._close(
                holder,
                "Ping timeout",
                error=f"Closing Link: {holder.host} (Ping timeout: nick reclaimed)",
            )
        old = client.nick
        if old and self._users.get(irc_lower(old)) is client:
            del self._users[irc_lower(old)]
        if client.registered:
            out = Message("NICK", [new], client.prefix, trailing=True)
            self._send(client, out)
            for peer in self._peers(client):
                self._send(peer, out)
            client.nick = new
            self._users[irc_lower(new)] = client
            self._queue_hook("on_nick", old, new)
            return
        client.nick = new
        self._users[irc_lower(new)] = client
        await self._try_register(client)

    async def _on_user(self, client: Client, msg: Message) -> None:
        if client.registered or client.got_user:
            self._reply(client, "462", "You may not reregister")
            return
        client.user = "~" + (_clean_word(msg.params[0], USERLEN - 1) or "user")
        client.realname = truncate_utf8(msg.params[3], REALNAMELEN)
        client.got_user = True
        await self._try_register(client)

    async def _try_register(self, client: Client) -> None:
        if client.registered or client.cap_negotiating or not client.nick or not client.got_user:
            return
        password = self.settings.password
        if password is not None and not hmac.compare_digest(
            (client.password or "").encode(), password.encode()
        ):
            self._reply(client, "464", "Password incorrect")
            self._close(client, "Bad password")
            return
        client.registered = True
        client.signon = client.last_message = time.time()
        s = self.settings
        self._reply(client, "001", f"Welcome to the {s.network} IRC Network {client.prefix}")
        self._reply(client, "002", f"Your host is {s.name}, running version {VERSION}")
        self._reply(client, "003", f"This server was created {self._created}")
        self._send(
            client,
            Message(
                "004", [client.nick, s.name, VERSION, USER_MODES, CHANNEL_MODES + "o", "o"], s.name
            ),
        )
        tokens = [
            "AWAYLEN=" + str(AWAYLEN),
            "CASEMAPPING=rfc1459",
            "CHANLIMIT=#:" + str(self.limits.max_channels_per_client),
            "CHANMODES=,,," + CHANNEL_MODES,
            "CHANNELLEN=" + str(CHANNELLEN),
            "CHANTYPES=#",
            "KICKLEN=" + str(KICKLEN),
            "MAXTARGETS=" + str(MAXTARGETS),
            "MODES=4",
            "NETWORK=" + s.network,
            "NICKLEN=" + str(NICKLEN),
            "PREFIX=(o)@",
            "TOPICLEN=" + str(TOPICLEN),
            f"TARGMAX=PRIVMSG:{MAXTARGETS},NOTICE:{MAXTARGETS},JOIN:,PART:,KICK:1,WHOIS:1",
        ]
        for start in range(0, len(tokens), 12):
            self._reply(client, "005", *tokens[start : start + 12], "are supported by this server")
        self._motd(client)

    def _motd(self, client: Client) -> None:
        motd = self.settings.motd
        if not motd:
            self._reply(client, "422", "MOTD File is missing")
            return
        self._reply(client, "375", f"- {self.settings.name} Message of the day - ")
        for line in motd.splitlines() or [""]:
            for piece in split_utf8(line, 400):
                self._reply(client, "372", f"- {piece}")
        self._reply(client, "376", "End of /MOTD command.")

    async def _on_cap(self, client: Client, msg: Message) -> None:
        sub = msg.params[0].upper()
        if sub == "LS":
            if not client.registered:
                client.cap_negotiating = True
            self._from_server(client, "CAP", client.name, "LS", " ".join(SUPPORTED_CAPS))
        elif sub == "LIST":
            self._from_server(client, "CAP", client.name, "LIST", " ".join(sorted(client.caps)))
        elif sub == "REQ":
            if not client.registered:
                client.cap_negotiating = True
            wanted = msg.params[1] if len(msg.params) > 1 else ""
            names = wanted.split()
            if names and all(n.lstrip("-") in SUPPORTED_CAPS for n in names):
                for n in names:
                    if n.startswith("-"):
                        client.caps.discard(n[1:])
                    else:
                        client.caps.add(n)
                self._from_server(client, "CAP", client.name, "ACK", wanted)
            else:
                self._from_server(client, "CAP", client.name, "NAK", wanted)
        elif sub == "END":
            client.cap_negotiating = False
            await self._try_register(client)
        else:
            self._reply(client, "410", msg.params[0], "Invalid CAP command")

    async def _on_ping(self, client: Client, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            self._reply(client, "409", "No origin specified")
            return
        self._from_server(client, "PONG", self.settings.name, msg.params[0])

    async def _on_pong(self, client: Client, msg: Message) -> None:
        return None  # any line counts as activity; see _read_loop

    async def _on_quit(self, client: Client, msg: Message) -> None:
        reason = msg.params[0] if msg.params and msg.params[0] else ""
        self._close(client, f"Quit: {reason}" if reason else "Client Quit")

    # -------------------------------------------------------- channels

    async def _on_join(self, client: Client, msg: Message) -> None:
        if msg.params[0] == "0":
            for chan in list(client.channels.values()):
                self._part(client, chan, None)
            return
        for name in msg.params[0].split(","):
            if not name:
                continue
            if not valid_channel(name):
                self._reply(client, "403", name, "No such channel")
                continue
            if (
                irc_lower(name) not in client.channels
                and len(client.channels) >= self.limits.max_channels_per_client
            ):
                self._reply(client, "405", name, "You have joined too many channels")
                continue
            self._join(client, name)

    async def _on_part(self, client: Client, msg: Message) -> None:
        reason = msg.params[1] if len(msg.params) > 1 and msg.params[1] else None
        for name in msg.params[0].split(","):
            if not name:
                continue
            chan = self._channels.get(irc_lower(name))
            if chan is None:
                self._reply(client, "403", name, "No such channel")
            elif client not in chan.members:
                self._reply(client, "442", chan.name, "You're not on that channel")
            else:
                self._part(client, chan, truncate_utf8(reason, KICKLEN) if reason else None)

    async def _on_topic(self, client: Client, msg: Message) -> None:
        chan = self._channels.get(irc_lower(msg.params[0]))
        if chan is None:
            self._reply(client, "403", msg.params[0], "No such channel")
            return
        if len(msg.params) == 1:
            if chan.topic:
                self._reply(client, "332", chan.name, chan.topic)
                self._reply(client, "333", chan.name, chan.topic_by, str(chan.topic_at))
            else:
                self._reply(client, "331", chan.name, "No topic is set")
            return
        if client not in chan.members:
            self._reply(client, "442", chan.name, "You're not on that channel")
            return
        if "t" in chan.modes and client not in chan.ops:
            self._reply(client, "482", chan.name, "You're not channel operator")
            return
        chan.topic = truncate_utf8(msg.params[1], TOPICLEN)
        chan.topic_by = client.prefix
        chan.topic_at = int(time.time())
        out = Message("TOPIC", [chan.name, chan.topic], client.prefix, trailing=True)
        for member in chan.clients():
            self._send(member, out)

    async def _on_names(self, client: Client, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            for chan in list(client.channels.values()):
                self._names(client, chan)
            return
        for name in msg.params[0].split(","):
            chan = self._channels.get(irc_lower(name))
            if chan is None:
                self._reply(client, "366", name or "*", "End of /NAMES list")
            else:
                self._names(client, chan)

    async def _on_list(self, client: Client, msg: Message) -> None:
        if msg.params and msg.params[0]:
            wanted = [self._channels.get(irc_lower(n)) for n in msg.params[0].split(",")]
            chans = [c for c in wanted if c is not None]
        else:
            chans = list(self._channels.values())
        self._reply(client, "321", "Channel", "Users  Name")
        for chan in chans:
            self._reply(
                client,
                "322",
                chan.name,
                str(len(chan.members)),
                f"[{chan.mode_string()}] {chan.topic}",
            )
        self._reply(client, "323", "End of /LIST")

    async def _on_kick(self, client: Client, msg: Message) -> None:
        chan = self._channels.get(irc_lower(msg.params[0]))
        if chan is None:
            self._reply(client, "403", msg.params[0], "No such channel")
            return
        if client not in chan.members:
            self._reply(client, "442", chan.name, "You're not on that channel")
            return
        if client not in chan.ops:
            self._reply(client, "482", chan.name, "You're not channel operator")
            return
        reason = (
            truncate_utf8(msg.params[2], KICKLEN)
            if len(msg.params) > 2 and msg.params[2]
            else client.nick
        )
        for nick in msg.params[1].split(","):
            victim = self._lookup(nick)
            if victim is None or victim not in chan.members:
                self._reply(client, "441", nick or "*", chan.name, "They aren't on that channel")
                continue
            out = Message("KICK", [chan.name, victim.nick, reason], client.prefix, trailing=True)
            for member in chan.clients():
                self._send(member, out)
            self._remove_member(victim, chan)
            self._queue_hook(
                "on_part", victim.nick, chan.name, f"kicked by {client.nick}: {reason}"
            )

    # -------------------------------------------------------- messages

    async def _on_privmsg(self, client: Client, msg: Message) -> None:
        notice = msg.command == "NOTICE"
        if not msg.params or not msg.params[0]:
            if not notice:
                self._reply(client, "411", f"No recipient given ({msg.command})")
            return
        if len(msg.params) < 2 or not msg.params[1]:
            if not notice:
                self._reply(client, "412", "No text to send")
            return
        text = msg.params[1]
        client_tags = (
            {k: v for k, v in msg.tags.items() if k.startswith("+")}
            if "message-tags" in client.caps
            else {}
        )
        client.last_message = time.time()
        for target in msg.params[0].split(",")[:MAXTARGETS]:
            if not target:
                continue
            if target.startswith("#"):
                chan = self._channels.get(irc_lower(target))
                if chan is None:
                    if not notice:
                        self._reply(client, "401", target, "No such nick/channel")
                    continue
                if client not in chan.members and "n" in chan.modes:
                    if not notice:
                        self._reply(client, "404", chan.name, "Cannot send to channel")
                    continue
                out = Message(
                    msg.command, [chan.name, text], client.prefix, client_tags, trailing=True
                )
                for member in chan.clients():
                    if member is not client:
                        self._send(member, out)
                await self._notify(
                    "on_message", client.nick, chan.name, text, private=False, notice=notice
                )
                continue
            dest = self._lookup(target)
            if dest is None:
                if not notice:
                    self._reply(client, "401", target, "No such nick/channel")
                continue
            if isinstance(dest, Client):
                self._send(
                    dest,
                    Message(
                        msg.command, [dest.nick, text], client.prefix, client_tags, trailing=True
                    ),
                )
            if dest.away is not None and not notice:
                self._reply(client, "301", dest.nick, dest.away)
            if dest.virtual:
                await self._notify(
                    "on_message", client.nick, dest.nick, text, private=True, notice=notice
                )

    async def _on_tagmsg(self, client: Client, msg: Message) -> None:
        tags = {k: v for k, v in msg.tags.items() if k.startswith("+")}
        if "message-tags" not in client.caps or not tags:
            return
        for target in msg.params[0].split(",")[:MAXTARGETS]:
            if target.startswith("#"):
                chan = self._channels.get(irc_lower(target))
                if chan is None or (client not in chan.members and "n" in chan.modes):
                    continue
                name, recipients = chan.name, [m for m in chan.clients() if m is not client]
            else:
                dest = self._lookup(target)
                if not isinstance(dest, Client):
                    continue
                name, recipients = dest.nick, [dest]
            out = Message("TAGMSG", [name], client.prefix, tags)
            for member in recipients:
                if "message-tags" in member.caps:
                    self._send(member, out)

    async def _on_away(self, client: Client, msg: Message) -> None:
        if msg.params and msg.params[0]:
            client.away = truncate_utf8(msg.params[0], AWAYLEN)
            self._reply(client, "306", "You have been marked as being away")
        else:
            client.away = None
            self._reply(client, "305", "You are no longer marked as being away")

    # -------------------------------------------------------- queries

    async def _on_who(self, client: Client, msg: Message) -> None:
        mask = msg.params[0] if msg.params and msg.params[0] else "*"
        if mask.startswith("#"):
            chan = self._channels.get(irc_lower(mask))
            rows = [(chan.name, m, m in chan.ops) for m in chan.members] if chan else []
        else:
            pattern = "*" if mask == "0" else irc_lower(mask)
            rows = []
            for user in self._users.values():
                if isinstance(user, Client) and not user.registered:
                    continue
                if fnmatch.fnmatchcase(irc_lower(user.nick), pattern):
                    first = next(iter(user.channels.values()), None)
                    rows.append(
                        (first.name if first else "*", user, bool(first and user in first.ops))
                    )
        for channel, user, is_op in rows:
            flags = ("G" if user.away is not None else "H") + ("@" if is_op else "")
            self._reply(
                client,
                "352",
                channel,
                user.user,
                user.host,
                self.settings.name,
                user.nick,
                flags,
                f"0 {user.realname}",
            )
        self._reply(client, "315", mask, "End of /WHO list")

    async def _on_whois(self, client: Client, msg: Message) -> None:
        if not msg.params or not msg.params[-1]:
            self._reply(client, "431", "No nickname given")
            return
        nicks = msg.params[-1]
        for nick in nicks.split(",")[:1]:
            user = self._lookup(nick)
            if user is None:
                self._reply(client, "401", nick, "No such nick/channel")
                continue
            self._reply(client, "311", user.nick, user.user, user.host, "*", user.realname)
            if user.channels:
                names = " ".join(
                    ("@" if user in chan.ops else "") + chan.name for chan in user.channels.values()
                )
                self._reply(client, "319", user.nick, names)
            self._reply(
                client, "312", user.nick, self.settings.name, f"{self.settings.network} (futon)"
            )
            if user.away is not None:
                self._reply(client, "301", user.nick, user.away)
            idle = max(0, int(time.time() - user.last_message))
            self._reply(
                client,
                "317",
                user.nick,
                str(idle),
                str(int(user.signon)),
                "seconds idle, signon time",
            )
        self._reply(client, "318", nicks, "End of /WHOIS list")

    async def _on_mode(self, client: Client, msg: Message) -> None:
        target = msg.params[0]
        if target.startswith("#"):
            await self._channel_mode(client, msg)
            return
        user = self._lookup(target)
        if user is None:
            self._reply(client, "401", target, "No such nick/channel")
            return
        if user is not client:
            self._reply(client, "502", "Can't change mode for other users")
            return
        if len(msg.params) == 1:
            self._reply(client, "221", "+" + "".join(sorted(client.modes)))
            return
        sign, changed, unknown = "+", "", False
        for ch in msg.params[1]:
            if ch in "+-":
                sign = ch
            elif ch in USER_MODES:
                if (ch in client.modes) != (sign == "+"):
                    (client.modes.add if sign == "+" else client.modes.discard)(ch)
                    changed += sign + ch
            else:
                unknown = True
        if unknown:
            self._reply(client, "501", "Unknown MODE flag")
        if changed:
            self._send(
                client,
                Message("MODE", [client.nick, _compact_modes(changed)], client.nick, trailing=True),
            )

    async def _channel_mode(self, client: Client, msg: Message) -> None:
        chan = self._channels.get(irc_lower(msg.params[0]))
        if chan is None:
            self._reply(client, "403", msg.params[0], "No such channel")
            return
        if len(msg.params) == 1:
            self._reply(client, "324", chan.name, chan.mode_string())
            self._reply(client, "329", chan.name, str(chan.created))
            return
        modes, args = msg.params[1], list(msg.params[2:])
        if modes.lstrip("+") == "b" and not args:
            self._reply(client, "368", chan.name, "End of channel ban list")
            return
        sign = "+"
        changes: list[tuple[str, str, User | None]] = []
        for ch in modes:
            if ch in "+-":
                sign = ch
            elif ch == "o":
                if not args:
                    continue
                nick = args.pop(0)
                who = self._lookup(nick)
                if who is None:
                    self._reply(client, "401", nick, "No such nick/channel")
                elif who not in chan.members:
                    self._reply(client, "441", who.nick, chan.name, "They aren't on that channel")
                else:
                    changes.append((sign, ch, who))
            elif ch in CHANNEL_MODES:
                changes.append((sign, ch, None))
            else:
                self._reply(client, "472", ch, "is unknown mode char to me")
        if not changes:
            return
        if client not in chan.ops:
            self._reply(client, "482", chan.name, "You're not channel operator")
            return
        applied, applied_args = "", []
        for sign, ch, who in changes:
            if who is not None:
                if (who in chan.ops) == (sign == "+"):
                    continue
                (chan.ops.add if sign == "+" else chan.ops.discard)(who)
                applied_args.append(who.nick)
            else:
                if (ch in chan.modes) == (sign == "+"):
                    continue
                (chan.modes.add if sign == "+" else chan.modes.discard)(ch)
            applied += sign + ch
        if applied:
            out = Message(
                "MODE", [chan.name, _compact_modes(applied), *applied_args], client.prefix
            )
            for member in chan.clients():
                self._send(member, out)

    async def _on_ison(self, client: Client, msg: Message) -> None:
        present = []
        for nick in " ".join(msg.params).split():
            user = self._lookup(nick)
            if user is not None:
                present.append(user.nick)
        self._reply(client, "303", " ".join(present))

    async def _on_userhost(self, client: Client, msg: Message) -> None:
        replies = []
        for nick in " ".join(msg.params).split()[:5]:
            user = self._lookup(nick)
            if user is None:
                continue
            replies.append(
                f"{user.nick}={'-' if user.away is not None else '+'}{user.user}@{user.host}"
            )
        self._reply(client, "302", " ".join(replies))

    async def _on_motd(self, client: Client, msg: Message) -> None:
        self._motd(client)

    async def _on_lusers(self, client: Client, msg: Message) -> None:
        users = sum(
            1 for u in self._users.values() if u.virtual or (isinstance(u, Client) and u.registered)
        )
        self._reply(client, "251", f"There are {users} users and 0 invisible on 1 servers")
        self._reply(client, "254", str(len(self._channels)), "channels formed")
        self._reply(client, "255", f"I have {users} clients and 0 servers")

    async def _on_version(self, client: Client, msg: Message) -> None:
        self._reply(client, "351", VERSION + ".", self.settings.name, "futon embedded IRC server")

    async def _on_time(self, client: Client, msg: Message) -> None:
        self._reply(
            client,
            "391",
            self.settings.name,
            datetime.now(UTC).strftime("%A %B %d %Y -- %H:%M:%S UTC"),
        )


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


def _clean_word(text: str, limit: int) -> str:
    """Keep what is safe in a user or host field: printable ASCII without
    spaces, ``@``, ``!`` or ``:``."""
    kept = "".join(ch for ch in text if 32 < ord(ch) < 127 and ch not in "@!:")
    return kept[:limit]


def _one_line(text: str) -> str:
    return " ".join(text.replace("\0", "").splitlines())


def _safe_middle(word: str) -> str:
    """User input echoed as a middle parameter: one word, no leading colon."""
    cleaned = "".join(ch for ch in word if ch not in " \r\n\0").lstrip(":")
    return cleaned[:200] or "*"


def _compact_modes(changes: str) -> str:
    """``+o+o-n`` → ``+oo-n``."""
    out, sign = "", ""
    for i in range(0, len(changes), 2):
        s, ch = changes[i], changes[i + 1]
        if s != sign:
            out += s
            sign = s
        out += ch
    return out


__all__ = ["IrcLimits", "IrcListener", "IrcListenerBase", "IrcServer"]
