"""Bot mode (docs/irc.md, "Bot mode"): futon connects out to an
existing IRC network as one nick and relays there.

One :class:`IrcBot` per configured network; it is an
:class:`~futon.social.irc_api.IrcSide` and reports to a
:class:`~futon.social.irc_api.RelayHooks`. pydle speaks the protocol
(registration, CAP, ISUPPORT, tags, extended-join); futon owns the
connection loop:

- **Reconnect forever** with exponential backoff and full jitter
  (``uniform(0, min(backoff_max_s, backoff_initial_s * 2**failures))``);
  ``failures`` counts attempts since the last connection that stayed up
  for :data:`STABLE_AFTER_S`. pydle's own reconnect (which gives up) is
  never used: we drive ``_connect``/``_register``/``handle_forever``
  ourselves and ``on_disconnect`` does not chain to pydle's.
- **TLS** verifies the certificate and host name unless the network says
  ``tls_verify: false``; a failed handshake is a failed attempt like any other.
- **SASL PLAIN** when ``sasl`` is configured; the password is read from the
  environment variable ``sasl.password_env`` when the bot is built (a
  missing variable is a :class:`~futon.protocol.errors.ConfigError`). The bot never
  registers without it: when the server does not offer SASL, offers it
  without PLAIN, or refuses the credentials, the bot logs an error, reports
  ``sasl-failed`` through ``on_event`` and disconnects — and *keeps
  retrying* with the usual backoff, each attempt failing as loudly.
  Networks hide the ``sasl`` capability while their services are down, so
  giving up would turn a services outage into a permanent one.
- **Outgoing lines** (:meth:`IrcBot.say`) are split with
  :func:`~futon.social.irc_api.split_text` (400 bytes including the
  ``[nick] `` prefix), queued per target and paced by a token bucket per
  target (``lines_per_s``, ``burst``) and one for the connection (twice
  those). Lines are queued while the bot is disconnected or not yet in
  the channel, and flushed after reconnect and rejoin. A line leaves the
  queue only when the server has answered a later ``PING`` — so a line
  written into a connection that was already dead is sent again after the
  reconnect (at-least-once: a crash between the server reading a line and
  its ``PONG`` can repeat that line). At most ``max_queued`` lines wait;
  a ``say`` that does not fit is refused whole and reported as
  ``queue-overflow`` — lines already accepted are never dropped (except by
  :meth:`IrcBot.stop`).
- **Incoming** PRIVMSG/NOTICE in its channels and to its nick go to
  ``hooks.on_message`` in arrival order through one dispatcher task, as do
  events (``connected``, ``disconnected``, ``connect-failed``, ``joined``,
  ``join-failed``, ``kicked``, ``nick-in-use``, ``sasl-failed``,
  ``queue-overflow``, ``parted``). ``account`` comes from the IRCv3
  ``account`` tag, or from what extended-join / account-notify told pydle,
  else None. CTCP ACTION arrives as ``/me <text>``; other CTCP is not relayed.
- :meth:`IrcBot.joined` answers "does this side carry the channel" (it is
  configured), not "is it in there right now" (:meth:`IrcBot.in_channel`):
  the relay asks ``joined`` before ``say``, and lines for a channel the bot
  is temporarily out of must be queued, not skipped.

Workarounds for pydle 1.2 (all inside :class:`_PydleClient`):
``BasicClient._sync_user`` awaits ``_create_user``, which is only a coroutine
when WHOXSupport is mixed in (and that one WHOISes every new user, delaying
— and reordering — their first message), so we leave WHOX out and make
``_create_user`` a coroutine ourselves; pydle's SASL needs the optional
``pure-sasl`` package (not installed) and schedules its timeout coroutine
with ``call_later`` (never awaited), so PLAIN is implemented here; pydle
reads a multi-line ``CAP LS 302`` reply's ``*`` as the capability list, so
we gather the lines first; pydle asks for ``echo-message``, which we decline;
pydle WHOISes us after registration and sends ``MODE #channel`` after each
join — servers penalise both (ngircd holds the next commands a second), so
``whois`` is a no-op and ``on_raw_join`` is our own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import math
import os
import random
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pydle
from pydle.features.ircv3 import cap as pydle_cap

from futon.config.models import IrcNetwork
from futon.protocol.errors import ConfigError, ProtocolError
from futon.protocol.irc_lines import irc_lower
from futon.social.irc_api import RelayHooks, split_text
from futon.transports.ratelimit import Clock, TokenBucket

log = logging.getLogger("futon.irc.bot")


class _RedactSecrets(logging.Filter):
    """pydle logs every line it sends at DEBUG: keep ``PASS`` and the SASL
    payload out of the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args and isinstance(args[0], str):
            command, _, rest = args[0].partition(" ")
            if command == "PASS" or (command == "AUTHENTICATE" and rest not in ("PLAIN", "+", "*")):
                record.args = (f"{command} <redacted>", *args[1:])
        return True


wire_log = logging.getLogger("futon.irc.wire")  # pydle's line-by-line DEBUG log
wire_log.addFilter(_RedactSecrets())

LINE_BYTES = 400  # text per PRIVMSG, prefix included (docs/irc.md)
STABLE_AFTER_S = 60.0  # a connection up this long resets the backoff
CONNECT_TIMEOUT_S = 10.0  # TCP connect + TLS handshake
REGISTER_TIMEOUT_S = 30.0  # connected → end of MOTD
QUIT_MESSAGE = "futon stopping"
PING_PREFIX = "futon-"
CHANNEL_PREFIXES = "#&+!"


def is_channel_name(name: str) -> bool:
    return name[:1] in CHANNEL_PREFIXES


@dataclass
class _Line:
    seq: int
    command: str  # PRIVMSG or NOTICE
    target: str
    text: str


@dataclass
class _Outbox:
    target: str
    bucket: TokenBucket
    lines: deque[_Line] = field(default_factory=deque)


@dataclass
class _Outcome:
    connected: bool
    stable: bool
    reason: str


# Named first: mypy cannot check a class whose base is a call expression.
_PydleBase: Any = pydle.featurize(pydle.features.IRCv3Support, pydle.features.ISUPPORTSupport)


class _PydleClient(_PydleBase):
    """One connection. Speaks IRC through pydle and tells :class:`IrcBot`
    what happened; holds no state that must survive a reconnect."""

    RECONNECT_ON_ERROR = False  # futon owns the loop
    READ_TIMEOUT = 90  # silence → PING; twice this → the connection is dead

    def __init__(self, bot: IrcBot, nick: str) -> None:
        super().__init__(nick, fallback_nicknames=[], username=_username(nick), realname="futon")
        self.bot = bot
        self.ready = asyncio.Event()  # registered and MOTD done
        self.closed = asyncio.Event()
        self.close_reason: str | None = None
        self.sasl_ok = False
        self._nick_candidates = [nick + "_", nick + "__", nick + "___"] + [
            f"{nick}{i}" for i in range(1, 10)
        ]
        self._cap_ls_lines: list[str] = []
        self._cap_ls_done = False

    def _reset_attributes(self) -> None:
        super()._reset_attributes()
        self.logger = wire_log  # pydle resets it to its own on every disconnect

    # --- connection -------------------------------------------------------

    async def open(self) -> None:
        net = self.bot.config
        await self._connect(
            hostname=net.host,
            port=net.port,
            password=net.password,
            tls=net.tls,
            tls_verify=net.tls_verify,
        )

    async def abort(self, reason: str) -> None:
        """Leave now, saying why in the log and in ``close_reason``."""
        self.close_reason = self.close_reason or reason
        if self.connected:
            with contextlib.suppress(Exception):
                await self.rawmsg("QUIT", reason)
            await self.disconnect(expected=True)

    async def on_disconnect(self, expected: bool) -> None:
        # Deliberately not chaining to pydle: its handler reconnects.
        self.closed.set()

    async def on_raw_error(self, message: Any) -> None:
        self.close_reason = self.close_reason or "server said: " + " ".join(message.params)
        await self.disconnect(expected=False)

    async def on_raw_464(self, message: Any) -> None:
        self.close_reason = "server password refused: " + message.params[-1]

    async def on_raw_465(self, message: Any) -> None:
        self.close_reason = "banned from the server: " + message.params[-1]

    async def on_unknown(self, message: Any) -> None:
        log.debug("%s: unhandled %s %s", self.bot.network, message.command, message.params)

    # --- registration -----------------------------------------------------

    async def _create_user(self, nickname: str) -> None:
        # pydle's _sync_user awaits this; only WHOXSupport makes it async.
        super()._create_user(nickname)

    async def on_raw_433(self, message: Any) -> None:
        """Nick in use (also 432 erroneous, 437 unavailable): next candidate."""
        if self.registered:
            return
        if not self._nick_candidates:
            await self.abort(f"no usable nick ({message.params[-1]})")
            return
        await self.set_nickname(self._nick_candidates.pop(0))

    on_raw_432 = on_raw_433
    on_raw_437 = on_raw_433

    async def on_raw_001(self, message: Any) -> None:
        if self.bot.sasl_account and not self.sasl_ok:
            await self._fail_sasl("registration completed without SASL authentication")
            return
        await self._registration_completed(message)

    async def on_connect(self) -> None:
        await super().on_connect()
        if self.connected and self.close_reason is None:
            self.ready.set()

    # --- capabilities and SASL PLAIN --------------------------------------

    async def on_capability_echo_message_available(self, value: Any) -> bool:
        return False  # we never want our own lines back as messages

    async def on_raw_cap_ls(self, params: list[str]) -> None:
        # CAP LS 302 may span lines: "CAP * LS * :caps…" until one without "*".
        if len(params) > 1 and params[0] == "*":
            self._cap_ls_lines.append(params[1])
            return
        caps = " ".join([*self._cap_ls_lines, params[0] if params else ""]).strip()
        self._cap_ls_lines = []
        first = not self._cap_ls_done
        self._cap_ls_done = True
        offered = {c.lstrip("-~=").split("=", 1)[0].lower() for c in caps.split()}
        if first and self.bot.sasl_account and "sasl" not in offered:
            await self._fail_sasl("the server does not offer SASL (no 'sasl' in CAP LS)")
            return
        await super().on_raw_cap_ls([caps])

    async def on_capability_sasl_available(self, value: Any) -> bool:
        if not self.bot.sasl_account:
            return False
        if isinstance(value, str) and value and "PLAIN" not in value.upper().split(","):
            await self._fail_sasl(f"the server offers SASL without PLAIN (mechanisms: {value})")
            return False
        return True

    async def on_capability_sasl_enabled(self) -> bool:
        await self.rawmsg("AUTHENTICATE", "PLAIN")
        return pydle_cap.NEGOTIATING

    async def on_raw_authenticate(self, message: Any) -> None:
        if message.params[0] != "+":
            await self._fail_sasl("unexpected SASL challenge")
            return
        account = self.bot.sasl_account or ""
        secret = f"{account}\0{account}\0{self.bot.sasl_password}".encode()
        payload = base64.b64encode(secret).decode("ascii")
        for start in range(0, len(payload), 400):
            await self.rawmsg("AUTHENTICATE", payload[start : start + 400])
        if len(payload) % 400 == 0:
            await self.rawmsg("AUTHENTICATE", "+")

    async def on_raw_903(self, message: Any) -> None:
        self.sasl_ok = True
        await self._capability_negotiated("sasl")

    async def on_raw_902(self, message: Any) -> None:
        await self._fail_sasl("SASL refused: " + message.params[-1])

    on_raw_904 = on_raw_902  # authentication failed
    on_raw_905 = on_raw_902  # message too long
    on_raw_906 = on_raw_902  # aborted
    on_raw_908 = on_raw_902  # mechanism list

    async def _fail_sasl(self, why: str) -> None:
        detail = f"SASL PLAIN as {self.bot.sasl_account!r} on {self.bot.config.host}:{self.bot.config.port}: {why}"
        log.error("%s: %s; not registering without it", self.bot.network, detail)
        self.bot.report("sasl-failed", detail)
        await self.abort("SASL failed: " + why)

    async def whois(self, nickname: str) -> None:
        """Never WHOIS: pydle asks on every nick change (our own included),
        and servers penalise it — ngircd holds our next commands ~1 s."""
        return None

    # --- channels ---------------------------------------------------------

    async def on_raw_join(self, message: Any) -> None:
        """pydle's, minus the ``MODE #channel`` query it sends on every join
        of ours (another penalty; we never read channel modes)."""
        nick, metadata = self._parse_user(message.source)
        await self._sync_user(nick, metadata)
        if (
            self._capabilities.get("extended-join")
            and len(message.params) >= 3
            and nick in self.users
        ):
            account = message.params[1]
            self.users[nick]["account"] = None if account == "*" else account
        for channel in message.params[0].split(","):
            if self.is_same_nick(self.nickname, nick):
                if not self.in_channel(channel):
                    self._create_channel(channel)
                self.bot.channel_joined(channel)
            elif self.in_channel(channel):
                self.channels[channel]["users"].add(nick)

    async def on_part(self, channel: str, user: str, message: str | None = None) -> None:
        if self.is_same_nick(user, self.nickname):
            self.bot.channel_left(channel, "parted", message or "", rejoin_after_s=None)

    async def on_kick(self, channel: str, target: str, by: str, reason: str | None = None) -> None:
        if self.is_same_nick(target, self.nickname):
            why = f"by {by}" + (f": {reason}" if reason else "")
            self.bot.channel_left(channel, "kicked", why, rejoin_after_s=self.bot.backoff_initial_s)

    async def on_raw_join_refused(self, message: Any) -> None:
        """No such channel, too many channels, full, invite-only, banned,
        bad key, needs a registered nick, TLS only."""
        channel = message.params[1] if len(message.params) > 2 else "?"
        self.bot.join_refused(channel, f"{message.command} {message.params[-1]}")

    on_raw_403 = on_raw_405 = on_raw_471 = on_raw_473 = on_raw_join_refused
    on_raw_474 = on_raw_475 = on_raw_477 = on_raw_489 = on_raw_join_refused

    # --- keepalive and delivery receipts ----------------------------------

    async def on_raw_pong(self, message: Any) -> None:
        token = message.params[-1] if message.params else ""
        if token.startswith(PING_PREFIX):
            with contextlib.suppress(ValueError):
                self.bot.confirmed(int(token[len(PING_PREFIX) :]))

    # --- what people say --------------------------------------------------

    async def on_raw_privmsg(self, message: Any) -> None:
        await self._relay(message, notice=False)

    async def on_raw_notice(self, message: Any) -> None:
        await self._relay(message, notice=True)

    async def _relay(self, message: Any, *, notice: bool) -> None:
        if len(message.params) < 2 or not message.source:
            return
        source = str(message.source)
        nick, metadata = self._parse_user(source)
        if not nick or ("!" not in source and "." in nick):
            return  # the server itself
        await self._sync_user(nick, metadata)
        if self.is_same_nick(nick, self.nickname):
            return
        target, text = message.params[0], message.params[-1]
        tags = getattr(message, "tags", None) or {}
        account = tags.get("account") if isinstance(tags.get("account"), str) else None
        if account is None and nick in self.users:
            account = self.users[nick].get("account")
        channel = (
            target.lstrip("".join(self._status_message_prefixes))
            if self._status_message_prefixes
            else target
        )
        if is_channel_name(channel):
            if not self.in_channel(channel):
                return
            self.bot.heard(nick, channel, text, private=False, notice=notice, account=account)
        elif self.is_same_nick(target, self.nickname):
            self.bot.heard(nick, self.nickname, text, private=True, notice=notice, account=account)


def _username(nick: str) -> str:
    cleaned = "".join(ch for ch in nick.lower() if ch.isalnum() or ch in "-_")
    return (cleaned or "futon")[:10]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


class IrcBot:
    """One IRC network in bot mode, seen by the relay as an ``IrcSide``.

    ``await start()`` returns once the first connection attempt is under
    way and never raises for network trouble — the bot keeps trying until
    ``await stop()``. See the module docstring for the behaviour contract.
    """

    def __init__(
        self,
        network: IrcNetwork,
        hooks: RelayHooks,
        *,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        lines_per_s: float = 1.0,
        burst: int = 4,
        max_queued: int = 1000,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        register_timeout_s: float = REGISTER_TIMEOUT_S,
        clock: Clock = time.monotonic,
    ) -> None:
        if backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("backoff needs 0 < backoff_initial_s <= backoff_max_s")
        if lines_per_s <= 0 or burst < 1 or max_queued < 1:
            raise ValueError("pacing needs lines_per_s > 0, burst >= 1 and max_queued >= 1")
        self.config = network
        self.hooks = hooks
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.lines_per_s = lines_per_s
        self.burst = burst
        self.max_queued = max_queued
        self.connect_timeout_s = connect_timeout_s
        self.register_timeout_s = register_timeout_s
        self.sasl_account: str | None = None
        self.sasl_password = ""
        if network.sasl is not None:
            password = os.environ.get(network.sasl.password_env)
            if not password:
                raise ConfigError(
                    f"irc network {network.name!r}: SASL password variable "
                    f"{network.sasl.password_env} is not set"
                )
            self.sasl_account, self.sasl_password = network.sasl.account, password
        self._channels = {irc_lower(c): c for c in network.channels}
        self._joined: set[str] = set()
        self._outboxes: dict[str, _Outbox] = {}
        self._clock = clock  # paces say(): every bucket reads it
        self._connection_bucket = TokenBucket(2 * lines_per_s, 2 * burst, clock)
        self._pending = 0  # queued + sent-but-unconfirmed lines
        self._inflight: list[tuple[int, str, _Line]] = []
        self._ping_outstanding: int | None = None
        self._sent = 0
        self._line_seq = itertools.count(1)
        self._wake = asyncio.Event()
        self._client: _PydleClient | None = None  # the connection being set up or live
        self._live: _PydleClient | None = None  # registered; lines may flow
        self._stopping = asyncio.Event()
        self._attempt_started = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._session_tasks: set[asyncio.Task[Any]] = set()
        self._hook_calls: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self._connected_reported = False

    # --- IrcSide ------------------------------------------------------------

    @property
    def network(self) -> str:
        return self.config.name

    @property
    def connected(self) -> bool:
        return self._live is not None and bool(self._live.connected)

    @property
    def nick(self) -> str:
        """The nick in use on the network (the configured one when offline)."""
        if self._live is not None and self._live.nickname != pydle.client.DEFAULT_NICKNAME:
            return self._live.nickname
        return self.config.nick

    @property
    def queued(self) -> int:
        """Lines accepted by :meth:`say` and not yet confirmed by the server."""
        return self._pending

    def joined(self, channel: str) -> bool:
        """Whether the bot carries ``channel``: a configured channel, where
        lines are delivered now or queued until the bot is (back) in it.
        :meth:`in_channel` says whether it is in the channel right now."""
        return irc_lower(channel) in self._channels

    def in_channel(self, channel: str) -> bool:
        return self.connected and irc_lower(channel) in self._joined

    async def ensure_agent(self, nick: str, channels: list[str]) -> None:
        """Nothing to do: the bot speaks for agents with a ``[nick]`` prefix."""

    async def say(self, nick: str, target: str, text: str, *, notice: bool = False) -> None:
        """Queue ``text`` for ``target`` (a configured channel or a nick) and
        return; delivery is paced and survives reconnects (module docstring)."""
        if not target or any(ch in target for ch in " ,\r\n\0") or target.startswith(":"):
            raise ProtocolError(f"{target!r} is not an IRC channel or nick", code="invalid-target")
        key = irc_lower(target)
        if is_channel_name(target) and key not in self._channels:
            raise ProtocolError(
                f"network {self.network!r} does not carry {target} (configured: {', '.join(self.config.channels) or 'none'})",
                code="invalid-target",
            )
        own = irc_lower(nick) in (irc_lower(self.config.nick), irc_lower(self.nick))
        prefix = "" if own else f"[{nick}] "
        chunks = split_text(text.replace("\0", ""), LINE_BYTES - len(prefix.encode("utf-8")))
        if not chunks:
            return
        if self._pending + len(chunks) > self.max_queued:
            detail = (
                f"refused {len(chunks)} line(s) from {nick} to {target}: "
                f"{self._pending}/{self.max_queued} lines already waiting"
            )
            log.warning("%s: queue overflow: %s", self.network, detail)
            self.report("queue-overflow", detail)
            return
        box = self._outbox(key, target)
        command = "NOTICE" if notice else "PRIVMSG"
        for chunk in chunks:
            box.lines.append(_Line(next(self._line_seq), command, box.target, prefix + chunk))
        self._pending += len(chunks)
        self._wake.set()

    # --- life cycle -----------------------------------------------------------

    async def start(self) -> None:
        """Start connecting; returns once the first attempt is under way."""
        if self._run_task is not None:
            raise RuntimeError(f"IrcBot for {self.network!r} was already started")
        self._dispatcher = asyncio.create_task(
            self._dispatch(), name=f"irc-bot-hooks-{self.network}"
        )
        self._run_task = asyncio.create_task(self._run(), name=f"irc-bot-{self.network}")
        await self._attempt_started.wait()

    async def stop(self, timeout_s: float = 3.0) -> None:
        """QUIT and stop for good (no reconnect). Unsent lines are dropped."""
        self._stopping.set()
        client = self._client
        quitting = client is not None and client.connected
        if client is not None and quitting:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.rawmsg("QUIT", QUIT_MESSAGE), timeout_s)
        if self._run_task is not None and not self._run_task.done():
            # After a QUIT the server closes the connection and the loop ends
            # by itself; otherwise (connecting, backing off) end it now.
            if quitting:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._run_task), timeout_s)
            self._run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._run_task
        if self._connected_reported:
            self.report("disconnected", "stopped")
        if self._pending:
            log.warning("%s: stopped with %d line(s) unsent", self.network, self._pending)
        if self._dispatcher is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hook_calls.join(), timeout_s)
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                outcome = await self._session()
            except Exception as exc:  # never let the loop die
                log.exception("%s: connection attempt crashed", self.network)
                outcome = _Outcome(False, False, _describe(exc))
            if self._stopping.is_set():
                return
            failures = 0 if outcome.stable else failures + 1
            cap = min(self.backoff_max_s, self.backoff_initial_s * 2 ** min(failures, 30))
            delay = random.uniform(0, cap)
            kind = "disconnected" if outcome.connected else "connect-failed"
            log.warning("%s: %s: %s; retrying in %.2fs", self.network, kind, outcome.reason, delay)
            self.report(kind, f"{outcome.reason}; retrying in {delay:.2f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _session(self) -> _Outcome:
        """One connection, from TCP connect to close."""
        self._attempt_started.set()
        client = _PydleClient(self, self.config.nick)
        self._client = client
        try:
            await asyncio.wait_for(client.open(), self.connect_timeout_s)
        except TimeoutError:
            step = "TLS handshake" if self.config.tls else "connect"
            return _Outcome(False, False, f"{step} timed out after {self.connect_timeout_s:g}s")
        except OSError as exc:  # refused, unreachable, TLS (ssl.SSLError is an OSError)
            return _Outcome(False, False, _describe(exc))
        live_since: float | None = None
        loop = asyncio.get_running_loop()
        try:
            reader = self._spawn(self._read(client))
            await client._register()
            ready = self._spawn(client.ready.wait())
            done, _ = await asyncio.wait(
                {reader, ready},
                timeout=self.register_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if ready not in done:
                reason = client.close_reason or (
                    "connection closed during registration" if done else "registration timed out"
                )
                return _Outcome(False, False, reason)
            live_since = loop.time()
            self._went_live(client)
            for channel in self.config.channels:
                await client.rawmsg("JOIN", channel)
            writer = self._spawn(self._write_loop(client))
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            failure = writer.exception() if writer.done() and not writer.cancelled() else None
            if failure is not None:
                client.close_reason = client.close_reason or f"send failed: {_describe(failure)}"
            reason = (
                client.close_reason
                or (reader.result() if reader.done() else None)
                or "connection closed"
            )
        except (OSError, TimeoutError) as exc:  # the connection broke under a send
            reason = client.close_reason or _describe(exc)
        finally:
            self._end_session(client)
            tasks = list(self._session_tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if client.connected:
                with contextlib.suppress(Exception):
                    await client.disconnect(expected=True)
        if live_since is None:
            return _Outcome(False, False, reason)
        return _Outcome(True, loop.time() - live_since >= STABLE_AFTER_S, reason)

    def _went_live(self, client: _PydleClient) -> None:
        self._live = client
        where = f"{self.config.host}:{self.config.port}{' (tls)' if self.config.tls else ''}"
        log.info("%s: connected to %s as %s", self.network, where, client.nickname)
        self.report("connected", f"{where} as {client.nickname}")
        if irc_lower(client.nickname) != irc_lower(self.config.nick):
            self.report("nick-in-use", f"{self.config.nick} is taken; using {client.nickname}")

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._session_tasks.add(task)
        task.add_done_callback(self._session_tasks.discard)
        return task

    async def _read(self, client: _PydleClient) -> str | None:
        """pydle's read loop; returns why it ended when it knows."""
        try:
            await client.handle_forever()
        except Exception as exc:  # OSError, TimeoutError, pydle's own
            return _describe(exc)
        return None

    def _end_session(self, client: _PydleClient) -> None:
        if self._live is client:
            self._live = None
        self._joined.clear()
        # Sent but never confirmed: back to the front of their queues.
        for _, key, line in reversed(self._inflight):
            self._outbox(key, line.target).lines.appendleft(line)
        self._inflight.clear()
        self._ping_outstanding = None

    # --- outgoing -------------------------------------------------------------

    def _outbox(self, key: str, target: str) -> _Outbox:
        box = self._outboxes.get(key)
        if box is None:
            box = self._outboxes[key] = _Outbox(
                target, TokenBucket(self.lines_per_s, self.burst, self._clock)
            )
        return box

    def _deliverable(self, key: str) -> bool:
        return not is_channel_name(key) or key in self._joined

    async def _write_loop(self, client: _PydleClient) -> None:
        while True:
            self._wake.clear()
            best: _Outbox | None = None
            best_key = ""
            best_wait = math.inf
            idle = [
                key for key, box in self._outboxes.items() if not box.lines and box.bucket.full()
            ]
            for key in idle:  # one per nick ever spoken to would add up
                del self._outboxes[key]
            for key, box in self._outboxes.items():
                if not box.lines or not self._deliverable(key):
                    continue
                wait = max(box.bucket.wait(), self._connection_bucket.wait())
                if wait < best_wait or (
                    wait == best_wait and best is not None and box.lines[0].seq < best.lines[0].seq
                ):
                    best, best_key, best_wait = box, key, wait
            if best is None or best_wait > 0:
                if self._inflight and self._ping_outstanding is None:
                    self._ping_outstanding = self._sent
                    await client.rawmsg("PING", f"{PING_PREFIX}{self._sent}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), None if best is None else best_wait)
                continue
            if not client.connected:
                return  # the reader saw the close; the session ends
            line = best.lines[0]
            best.bucket.take()
            self._connection_bucket.take()
            try:
                await client.rawmsg(line.command, line.target, line.text)
            except pydle.protocol.ProtocolViolation as exc:
                log.error("%s: dropping a line pydle refuses to send: %s", self.network, exc)
                best.lines.popleft()
                self._pending -= 1
                continue
            best.lines.popleft()
            self._sent += 1
            self._inflight.append((self._sent, best_key, line))

    def confirmed(self, upto: int) -> None:
        """The server answered our PING ``upto``: every line sent before it
        was read and processed."""
        kept = [entry for entry in self._inflight if entry[0] > upto]
        self._pending -= len(self._inflight) - len(kept)
        self._inflight = kept
        if self._ping_outstanding is not None and self._ping_outstanding <= upto:
            self._ping_outstanding = None
        self._wake.set()

    # --- what the connection tells us -----------------------------------------

    def channel_joined(self, channel: str) -> None:
        self._joined.add(irc_lower(channel))
        log.info("%s: joined %s", self.network, channel)
        self.report("joined", channel)
        self._wake.set()

    def channel_left(
        self, channel: str, kind: str, why: str, *, rejoin_after_s: float | None
    ) -> None:
        self._joined.discard(irc_lower(channel))
        log.warning("%s: %s from %s: %s", self.network, kind, channel, why)
        self.report(kind, f"{channel}: {why}")
        if rejoin_after_s is not None and irc_lower(channel) in self._channels:
            self._spawn(self._rejoin_later(channel, rejoin_after_s))

    def join_refused(self, channel: str, why: str) -> None:
        log.warning("%s: cannot join %s: %s", self.network, channel, why)
        self.report("join-failed", f"{channel}: {why}")
        if irc_lower(channel) in self._channels:
            self._spawn(self._rejoin_later(channel, self.backoff_max_s))

    async def _rejoin_later(self, channel: str, delay: float) -> None:
        await asyncio.sleep(delay)
        live = self._live
        if live is not None and irc_lower(channel) not in self._joined:
            await live.rawmsg("JOIN", channel)

    def heard(
        self,
        sender: str,
        target: str,
        text: str,
        *,
        private: bool,
        notice: bool,
        account: str | None,
    ) -> None:
        if text.startswith("\x01"):
            inner = text.strip("\x01")
            if not inner.upper().startswith("ACTION "):
                return  # CTCP queries are not conversation
            text = "/me " + inner[len("ACTION ") :]

        async def call() -> None:
            await self.hooks.on_message(
                self, sender, target, text, private=private, notice=notice, account=account
            )

        self._hook_calls.put_nowait(call)

    def report(self, kind: str, detail: str) -> None:
        if kind in ("connected", "disconnected"):
            self._connected_reported = kind == "connected"

        async def call() -> None:
            await self.hooks.on_event(self, kind, detail)

        self._hook_calls.put_nowait(call)

    async def _dispatch(self) -> None:
        """Hooks run one at a time, in the order things happened."""
        while True:
            call = await self._hook_calls.get()
            try:
                await call()
            except Exception:
                log.exception("%s: relay hook failed", self.network)
            finally:
                self._hook_calls.task_done()


__all__ = ["IrcBot"]
