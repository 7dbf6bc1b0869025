"""RFC 1459/2812 behaviour of the embedded server, one handler per command.

A handler reads and changes :class:`~futon.transports.irc.state.IrcState`
and puts what clients must see into an
:class:`~futon.transports.irc.outbox.Outbox` (and listener hooks into its
hook queue). Handlers are synchronous and never see a socket, so a test
can drive a whole dialogue — registration, JOIN, PRIVMSG, KICK — by
calling :meth:`IrcHandlers.handle_line` and reading the outbox. The server
(:mod:`futon.transports.irc.server`) feeds them lines and writes the outbox.

Two clocks are injected: ``clock`` (monotonic, the one the server stamps
``Client.ping_sent_at`` with; used for ghost nicks) and ``wall`` (epoch
seconds, for signon, idle and topic times).
"""

from __future__ import annotations

import fnmatch
import hmac
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from futon import __version__
from futon.config.models import IrcServerSection
from futon.protocol.errors import ProtocolError
from futon.protocol.irc_lines import (
    CHANNELLEN,
    MAX_BODY_BYTES,
    MAX_TAGS_BYTES,
    NICKLEN,
    Message,
    RawLine,
    irc_lower,
    parse_line,
    split_utf8,
    truncate_utf8,
    valid_channel,
    valid_nick,
)
from futon.transports.irc.history import HISTORY_CAP, History, HistorySource
from futon.transports.irc.options import (
    AWAYLEN,
    KICKLEN,
    MAXTARGETS,
    REALNAMELEN,
    TOPICLEN,
    USERLEN,
    IrcHome,
    IrcLimits,
)
from futon.transports.irc.outbox import Outbox
from futon.transports.irc.state import Channel, Client, IrcState, User
from futon.transports.ratelimit import Clock

log = logging.getLogger("futon.irc")

VERSION = f"futon-{__version__}"
SUPPORTED_CAPS = ("message-tags", "server-time")
HISTORY_CAPS = ("batch", HISTORY_CAP)  # offered when the server has a history source
PRE_REGISTRATION = frozenset({"NICK", "USER", "PASS", "CAP", "PING", "PONG", "QUIT"})
USER_MODES = "i"
CHANNEL_MODES = "nt"

Handler = Callable[[Client, Message], None]


def _never_reserved(nick: str) -> bool:
    return False


class IrcHandlers:
    """The commands of one server over one state and one outbox.

    ``reserved(nick)`` says whether a nick belongs to the daemon even while
    no virtual user holds it (a client asking for it gets 433); it must not
    raise. ``home`` (the daemon's nick and channels) adds the join hints to
    the MOTD and the configured topic to those channels.
    """

    def __init__(
        self,
        settings: IrcServerSection,
        *,
        state: IrcState | None = None,
        out: Outbox | None = None,
        limits: IrcLimits | None = None,
        home: IrcHome | None = None,
        reserved: Callable[[str], bool] = _never_reserved,
        clock: Clock = time.monotonic,
        wall: Callable[[], float] = time.time,
        history: HistorySource | None = None,
    ) -> None:
        self.settings = settings
        self.state = state if state is not None else IrcState()
        self.out = out if out is not None else Outbox()
        self.limits = limits or IrcLimits()
        self.home = home
        self.reserved = reserved
        self.clock = clock
        self.wall = wall
        self.created = datetime.fromtimestamp(wall(), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        self.commands: dict[str, tuple[Handler, int]] = {
            "PASS": (self.on_pass, 1),
            "NICK": (self.on_nick, 0),
            "USER": (self.on_user, 4),
            "CAP": (self.on_cap, 1),
            "PING": (self.on_ping, 0),
            "PONG": (self.on_pong, 0),
            "QUIT": (self.on_quit, 0),
            "JOIN": (self.on_join, 1),
            "PART": (self.on_part, 1),
            "PRIVMSG": (self.on_privmsg, 0),
            "NOTICE": (self.on_privmsg, 0),
            "TAGMSG": (self.on_tagmsg, 1),
            "TOPIC": (self.on_topic, 1),
            "NAMES": (self.on_names, 0),
            "WHO": (self.on_who, 0),
            "WHOIS": (self.on_whois, 0),
            "LIST": (self.on_list, 0),
            "MODE": (self.on_mode, 1),
            "ISON": (self.on_ison, 1),
            "USERHOST": (self.on_userhost, 1),
            "AWAY": (self.on_away, 0),
            "KICK": (self.on_kick, 2),
            "MOTD": (self.on_motd, 0),
            "LUSERS": (self.on_lusers, 0),
            "VERSION": (self.on_version, 0),
            "TIME": (self.on_time, 0),
        }
        # Join playback and CHATHISTORY, when the daemon gives a history source.
        self.history = History(self, history) if history is not None else None
        self.caps: tuple[str, ...] = SUPPORTED_CAPS
        if self.history is not None:
            self.commands["CHATHISTORY"] = (self.history.on_chathistory, 1)
            self.caps = SUPPORTED_CAPS + HISTORY_CAPS

    # -------------------------------------------------------- dispatch

    def handle_line(self, client: Client, raw: RawLine) -> None:
        """One line from ``client``: too long → 417, unparsable → 421 (451
        before registration), unknown → 421, too few parameters → 461,
        else the command's handler."""
        if raw.overflow or not self._fits(client, raw.data):
            self.reply(client, "417", "Input line was too long")
            return
        text = raw.data.decode("utf-8", errors="replace").replace("\0", "")
        if not text.strip(" "):
            return
        try:
            msg = parse_line(text)
        except ProtocolError:
            word = text.lstrip(" ").split(" ", 1)[0]
            if client.registered:
                self.reply(client, "421", word or "*", "Unknown command")
            else:
                self.reply(client, "451", "You have not registered")
            return
        if not client.registered and msg.command not in PRE_REGISTRATION:
            self.reply(client, "451", "You have not registered")
            return
        entry = self.commands.get(msg.command)
        if entry is None:
            self.reply(client, "421", msg.command, "Unknown command")
            return
        handler, min_params = entry
        if len(msg.params) < min_params:
            self.reply(client, "461", msg.command, "Not enough parameters")
            return
        handler(client, msg)

    def _fits(self, client: Client, data: bytes) -> bool:
        if data.startswith(b"@") and "message-tags" in client.caps:
            tags, _, body = data.partition(b" ")
            return len(tags) + 1 <= MAX_TAGS_BYTES and len(body.lstrip(b" ")) <= MAX_BODY_BYTES
        return len(data) <= MAX_BODY_BYTES

    # -------------------------------------------------------- output

    def send(self, client: Client, message: Message) -> None:
        self.out.send(client, message)

    def reply(self, client: Client, code: str, *params: str) -> None:
        """A numeric from the server: ``:server CODE <nick> params… :text``.
        Every parameter but the last is made a safe middle word."""
        words = [_safe_middle(p) for p in params[:-1]]
        tail = list(params[-1:])
        self.out.send(
            client, Message(code, [client.name, *words, *tail], self.settings.name, trailing=True)
        )

    def from_server(self, client: Client, command: str, *params: str) -> None:
        self.out.send(client, Message(command, list(params), self.settings.name, trailing=True))

    # -------------------------------------------------------- shared changes

    def drop(
        self, client: Client, quit_reason: str, *, error: str | None = None, announce: bool = True
    ) -> None:
        """Drop ``client`` now: ``ERROR`` to it, ``QUIT :quit_reason`` to
        everyone sharing a channel (unless ``announce`` is off, at shutdown),
        nick freed, then a hang-up in the outbox. Synchronous so a caller
        can reuse the nick right after. Idempotent.

        ``error`` is the ERROR line's text, by default ``Closing Link:
        <host> (<quit_reason>)``.
        """
        if client.closing:
            return
        client.closing = True
        text = error if error is not None else f"Closing Link: {client.host} ({quit_reason})"
        self.out.last_words(client, Message("ERROR", [text], trailing=True))
        if client.nick and self.state.holder(client.nick) is client:
            if client.registered and announce:
                self.quit_user(client, quit_reason)
            else:
                self.state.forget(client)
                for chan in list(client.channels.values()):
                    self.state.remove_member(client, chan)
        self.out.hang_up(client)

    def join(self, user: User, name: str) -> Channel | None:
        """``user`` joins ``name`` (created if needed; the first joiner is
        op). Members see the JOIN; a client also gets the topic and NAMES.
        None when ``user`` was already in."""
        existing = self.state.channel(name)
        if existing is not None and user in existing.members:
            return None
        chan, created = self.state.add_member(user, name)
        if created:
            self._home_topic(chan)
        out = Message("JOIN", [chan.name], user.prefix, trailing=False)
        for client in chan.clients():
            self.send(client, out)
        if isinstance(user, Client):
            if chan.topic:
                self.reply(user, "332", chan.name, chan.topic)
                self.reply(user, "333", chan.name, chan.topic_by, str(chan.topic_at))
            self.names(user, chan)
            if self.history is not None:
                self.history.on_join(user, chan)
            self.out.hook("on_join", user.nick, chan.name)
        return chan

    def _home_topic(self, chan: Channel) -> None:
        """A daemon channel starts with ``irc.server.topic`` (``{nick}`` is
        the daemon's nick), whoever happens to create it first."""
        home, topic = self.home, self.settings.topic
        if home is None or not topic:
            return
        if irc_lower(chan.name) not in {irc_lower(c) for c in home.channels}:
            return
        chan.topic = truncate_utf8(one_line(topic.replace("{nick}", home.nick)), TOPICLEN)
        chan.topic_by = home.nick
        chan.topic_at = int(self.wall())

    def part(self, user: User, chan: Channel, reason: str | None) -> None:
        params = [chan.name, reason] if reason else [chan.name]
        out = Message("PART", params, user.prefix, trailing=bool(reason))
        for client in chan.clients():
            self.send(client, out)
        self.state.remove_member(user, chan)
        if isinstance(user, Client):
            self.out.hook("on_part", user.nick, chan.name, reason)

    def quit_user(self, user: User, reason: str) -> None:
        out = Message("QUIT", [reason], user.prefix, trailing=True)
        for client in self.state.peers(user):
            self.send(client, out)
        for chan in list(user.channels.values()):
            self.state.remove_member(user, chan)
        self.state.forget(user)
        if not user.virtual:
            self.out.hook("on_quit", user.nick, reason)

    def names(self, client: Client, chan: Channel) -> None:
        head = f":{self.settings.name} 353 {client.name} = {chan.name} :"
        room = MAX_BODY_BYTES - len(head.encode())
        batch: list[str] = []
        for member in chan.members:
            entry = ("@" if member in chan.ops else "") + member.nick
            if batch and len(" ".join([*batch, entry]).encode()) > room:
                self.reply(client, "353", "=", chan.name, " ".join(batch))
                batch = []
            batch.append(entry)
        if batch:
            self.reply(client, "353", "=", chan.name, " ".join(batch))
        self.reply(client, "366", chan.name, "End of /NAMES list")

    def is_ghost(self, holder: User) -> bool:
        """A client that has left a keepalive PING unanswered for the grace
        period (``ghost_after_s``, default ``ping_interval_s``)."""
        if not isinstance(holder, Client) or holder.ping_sent_at is None:
            return False
        grace = self.limits.ghost_after_s
        if grace is None:
            grace = self.settings.ping_interval_s
        return self.clock() - holder.ping_sent_at >= grace

    # -------------------------------------------------------- registration

    def on_pass(self, client: Client, msg: Message) -> None:
        if client.registered:
            self.reply(client, "462", "You may not reregister")
            return
        client.password = msg.params[0]

    def on_nick(self, client: Client, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            self.reply(client, "431", "No nickname given")
            return
        new = msg.params[0]
        if not valid_nick(new):
            self.reply(client, "432", new, "Erroneous nickname")
            return
        holder = self.state.holder(new)
        if holder is client and new == client.nick:
            return
        if holder is not client and self.reserved(new):
            # An agent's nick (or the daemon's), even before its virtual user
            # exists: lines from it would read as the agent's.
            self.reply(client, "433", new, "Nickname is reserved for an agent")
            return
        if holder is not None and holder is not client:
            if not self.is_ghost(holder):
                self.reply(client, "433", new, "Nickname is already in use")
                return
            assert isinstance(holder, Client)
            log.info("irc: %s reclaims ghost nick from %s", client.ip, holder.prefix)
            self.drop(
                holder,
                "Ping timeout",
                error=f"Closing Link: {holder.host} (Ping timeout: nick reclaimed)",
            )
        old = client.nick
        if client.registered:
            out = Message("NICK", [new], client.prefix, trailing=True)
            self.send(client, out)
            for peer in self.state.peers(client):
                self.send(peer, out)
            self.state.take_nick(client, new)
            self.out.hook("on_nick", old, new)
            return
        self.state.take_nick(client, new)
        self.try_register(client)

    def on_user(self, client: Client, msg: Message) -> None:
        if client.registered or client.got_user:
            self.reply(client, "462", "You may not reregister")
            return
        client.user = "~" + (clean_word(msg.params[0], USERLEN - 1) or "user")
        client.realname = truncate_utf8(msg.params[3], REALNAMELEN)
        client.got_user = True
        self.try_register(client)

    def try_register(self, client: Client) -> None:
        """Welcome ``client`` once it has a nick and a USER, CAP negotiation
        is over, and the server password (if any) matches."""
        if client.registered or client.cap_negotiating or not client.nick or not client.got_user:
            return
        password = self.settings.password
        if password is not None and not hmac.compare_digest(
            (client.password or "").encode(), password.encode()
        ):
            self.reply(client, "464", "Password incorrect")
            self.drop(client, "Bad password")
            return
        client.registered = True
        client.signon = client.last_message = self.wall()
        s = self.settings
        self.reply(client, "001", f"Welcome to the {s.network} IRC Network {client.prefix}")
        self.reply(client, "002", f"Your host is {s.name}, running version {VERSION}")
        self.reply(client, "003", f"This server was created {self.created}")
        self.send(
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
        if self.history is not None:
            tokens.append(f"CHATHISTORY={s.chathistory_max}")
        for start in range(0, len(tokens), 12):
            self.reply(client, "005", *tokens[start : start + 12], "are supported by this server")
        self.motd(client)

    def motd(self, client: Client) -> None:
        """375, the configured text as 372 lines, the daemon's hints (where
        to join, how to ask it for help), 376; 422 when there is no MOTD."""
        motd = self.settings.motd
        if not motd:
            self.reply(client, "422", "MOTD File is missing")
            return
        self.reply(client, "375", f"- {self.settings.name} Message of the day - ")
        for line in [*(motd.splitlines() or [""]), *self.hints()]:
            for piece in split_utf8(line, 400):
                self.reply(client, "372", f"- {piece}")
        self.reply(client, "376", "End of /MOTD command.")

    def hints(self) -> list[str]:
        """What a newcomer should type first, from the daemon's home."""
        home = self.home
        if home is None:
            return []
        hints: list[str] = []
        if home.channels:
            others = f" (also: {', '.join(home.channels[1:])})" if len(home.channels) > 1 else ""
            hints.append(f"Join the conversation: /join {home.channels[0]}{others}")
        hints.append(f"Ask the daemon what it can do: say '{home.nick}: help' in a channel")
        return hints

    def on_cap(self, client: Client, msg: Message) -> None:
        sub = msg.params[0].upper()
        if sub == "LS":
            if not client.registered:
                client.cap_negotiating = True
            self.from_server(client, "CAP", client.name, "LS", " ".join(self.caps))
        elif sub == "LIST":
            self.from_server(client, "CAP", client.name, "LIST", " ".join(sorted(client.caps)))
        elif sub == "REQ":
            if not client.registered:
                client.cap_negotiating = True
            wanted = msg.params[1] if len(msg.params) > 1 else ""
            names = wanted.split()
            if names and all(n.lstrip("-") in self.caps for n in names):
                for n in names:
                    if n.startswith("-"):
                        client.caps.discard(n[1:])
                    else:
                        client.caps.add(n)
                self.from_server(client, "CAP", client.name, "ACK", wanted)
            else:
                self.from_server(client, "CAP", client.name, "NAK", wanted)
        elif sub == "END":
            client.cap_negotiating = False
            self.try_register(client)
        else:
            self.reply(client, "410", msg.params[0], "Invalid CAP command")

    def on_ping(self, client: Client, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            self.reply(client, "409", "No origin specified")
            return
        self.from_server(client, "PONG", self.settings.name, msg.params[0])

    def on_pong(self, client: Client, msg: Message) -> None:
        return None  # any complete line counts as activity; the server's reader sees it

    def on_quit(self, client: Client, msg: Message) -> None:
        reason = msg.params[0] if msg.params and msg.params[0] else ""
        self.drop(client, f"Quit: {reason}" if reason else "Client Quit")

    # -------------------------------------------------------- channels

    def on_join(self, client: Client, msg: Message) -> None:
        if msg.params[0] == "0":
            for chan in list(client.channels.values()):
                self.part(client, chan, None)
            return
        for name in msg.params[0].split(","):
            if not name:
                continue
            if not valid_channel(name):
                self.reply(client, "403", name, "No such channel")
                continue
            if (
                irc_lower(name) not in client.channels
                and len(client.channels) >= self.limits.max_channels_per_client
            ):
                self.reply(client, "405", name, "You have joined too many channels")
                continue
            self.join(client, name)

    def on_part(self, client: Client, msg: Message) -> None:
        reason = msg.params[1] if len(msg.params) > 1 and msg.params[1] else None
        for name in msg.params[0].split(","):
            if not name:
                continue
            chan = self.state.channel(name)
            if chan is None:
                self.reply(client, "403", name, "No such channel")
            elif client not in chan.members:
                self.reply(client, "442", chan.name, "You're not on that channel")
            else:
                self.part(client, chan, truncate_utf8(reason, KICKLEN) if reason else None)

    def on_topic(self, client: Client, msg: Message) -> None:
        chan = self.state.channel(msg.params[0])
        if chan is None:
            self.reply(client, "403", msg.params[0], "No such channel")
            return
        if len(msg.params) == 1:
            if chan.topic:
                self.reply(client, "332", chan.name, chan.topic)
                self.reply(client, "333", chan.name, chan.topic_by, str(chan.topic_at))
            else:
                self.reply(client, "331", chan.name, "No topic is set")
            return
        if client not in chan.members:
            self.reply(client, "442", chan.name, "You're not on that channel")
            return
        if "t" in chan.modes and client not in chan.ops:
            self.reply(client, "482", chan.name, "You're not channel operator")
            return
        chan.topic = truncate_utf8(msg.params[1], TOPICLEN)
        chan.topic_by = client.prefix
        chan.topic_at = int(self.wall())
        out = Message("TOPIC", [chan.name, chan.topic], client.prefix, trailing=True)
        for member in chan.clients():
            self.send(member, out)

    def on_names(self, client: Client, msg: Message) -> None:
        if not msg.params or not msg.params[0]:
            for chan in list(client.channels.values()):
                self.names(client, chan)
            return
        for name in msg.params[0].split(","):
            found = self.state.channel(name)
            if found is None:
                self.reply(client, "366", name or "*", "End of /NAMES list")
            else:
                self.names(client, found)

    def on_list(self, client: Client, msg: Message) -> None:
        if msg.params and msg.params[0]:
            wanted = [self.state.channel(n) for n in msg.params[0].split(",")]
            chans = [c for c in wanted if c is not None]
        else:
            chans = list(self.state.channels.values())
        self.reply(client, "321", "Channel", "Users  Name")
        for chan in chans:
            self.reply(
                client,
                "322",
                chan.name,
                str(len(chan.members)),
                f"[{chan.mode_string()}] {chan.topic}",
            )
        self.reply(client, "323", "End of /LIST")

    def on_kick(self, client: Client, msg: Message) -> None:
        chan = self.state.channel(msg.params[0])
        if chan is None:
            self.reply(client, "403", msg.params[0], "No such channel")
            return
        if client not in chan.members:
            self.reply(client, "442", chan.name, "You're not on that channel")
            return
        if client not in chan.ops:
            self.reply(client, "482", chan.name, "You're not channel operator")
            return
        reason = (
            truncate_utf8(msg.params[2], KICKLEN)
            if len(msg.params) > 2 and msg.params[2]
            else client.nick
        )
        for nick in msg.params[1].split(","):
            victim = self.state.lookup(nick)
            if victim is None or victim not in chan.members:
                self.reply(client, "441", nick or "*", chan.name, "They aren't on that channel")
                continue
            out = Message("KICK", [chan.name, victim.nick, reason], client.prefix, trailing=True)
            for member in chan.clients():
                self.send(member, out)
            self.state.remove_member(victim, chan)
            self.out.hook("on_part", victim.nick, chan.name, f"kicked by {client.nick}: {reason}")

    # -------------------------------------------------------- messages

    def on_privmsg(self, client: Client, msg: Message) -> None:
        notice = msg.command == "NOTICE"
        if not msg.params or not msg.params[0]:
            if not notice:
                self.reply(client, "411", f"No recipient given ({msg.command})")
            return
        if len(msg.params) < 2 or not msg.params[1]:
            if not notice:
                self.reply(client, "412", "No text to send")
            return
        text = msg.params[1]
        client_tags = (
            {k: v for k, v in msg.tags.items() if k.startswith("+")}
            if "message-tags" in client.caps
            else {}
        )
        client.last_message = self.wall()
        for target in msg.params[0].split(",")[:MAXTARGETS]:
            if not target:
                continue
            if target.startswith("#"):
                chan = self.state.channel(target)
                if chan is None:
                    if not notice:
                        self.reply(client, "401", target, "No such nick/channel")
                    continue
                if client not in chan.members and "n" in chan.modes:
                    if not notice:
                        self.reply(client, "404", chan.name, "Cannot send to channel")
                    continue
                out = Message(
                    msg.command, [chan.name, text], client.prefix, client_tags, trailing=True
                )
                self.out.broadcast(chan.clients(), out, skip=client)
                self.out.hook(
                    "on_message", client.nick, chan.name, text, private=False, notice=notice
                )
                continue
            dest = self.state.lookup(target)
            if dest is None:
                if not notice:
                    self.reply(client, "401", target, "No such nick/channel")
                continue
            if isinstance(dest, Client):
                self.send(
                    dest,
                    Message(
                        msg.command, [dest.nick, text], client.prefix, client_tags, trailing=True
                    ),
                )
            if dest.away is not None and not notice:
                self.reply(client, "301", dest.nick, dest.away)
            if dest.virtual:
                self.out.hook(
                    "on_message", client.nick, dest.nick, text, private=True, notice=notice
                )

    def on_tagmsg(self, client: Client, msg: Message) -> None:
        tags = {k: v for k, v in msg.tags.items() if k.startswith("+")}
        if "message-tags" not in client.caps or not tags:
            return
        for target in msg.params[0].split(",")[:MAXTARGETS]:
            if target.startswith("#"):
                chan = self.state.channel(target)
                if chan is None or (client not in chan.members and "n" in chan.modes):
                    continue
                name, recipients = chan.name, [m for m in chan.clients() if m is not client]
            else:
                dest = self.state.lookup(target)
                if not isinstance(dest, Client):
                    continue
                name, recipients = dest.nick, [dest]
            out = Message("TAGMSG", [name], client.prefix, tags)
            for member in recipients:
                if "message-tags" in member.caps:
                    self.send(member, out)

    def on_away(self, client: Client, msg: Message) -> None:
        if msg.params and msg.params[0]:
            client.away = truncate_utf8(msg.params[0], AWAYLEN)
            self.reply(client, "306", "You have been marked as being away")
        else:
            client.away = None
            self.reply(client, "305", "You are no longer marked as being away")

    # -------------------------------------------------------- queries

    def on_who(self, client: Client, msg: Message) -> None:
        mask = msg.params[0] if msg.params and msg.params[0] else "*"
        rows: list[tuple[str, User, bool]]
        if mask.startswith("#"):
            chan = self.state.channel(mask)
            rows = [(chan.name, m, m in chan.ops) for m in chan.members] if chan else []
        else:
            pattern = "*" if mask == "0" else irc_lower(mask)
            rows = []
            for user in self.state.users.values():
                if isinstance(user, Client) and not user.registered:
                    continue
                if fnmatch.fnmatchcase(irc_lower(user.nick), pattern):
                    first = next(iter(user.channels.values()), None)
                    rows.append(
                        (first.name if first else "*", user, bool(first and user in first.ops))
                    )
        for channel, user, is_op in rows:
            flags = ("G" if user.away is not None else "H") + ("@" if is_op else "")
            self.reply(
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
        self.reply(client, "315", mask, "End of /WHO list")

    def on_whois(self, client: Client, msg: Message) -> None:
        if not msg.params or not msg.params[-1]:
            self.reply(client, "431", "No nickname given")
            return
        nicks = msg.params[-1]
        for nick in nicks.split(",")[:1]:
            user = self.state.lookup(nick)
            if user is None:
                self.reply(client, "401", nick, "No such nick/channel")
                continue
            self.reply(client, "311", user.nick, user.user, user.host, "*", user.realname)
            if user.channels:
                names = " ".join(
                    ("@" if user in chan.ops else "") + chan.name for chan in user.channels.values()
                )
                self.reply(client, "319", user.nick, names)
            self.reply(
                client, "312", user.nick, self.settings.name, f"{self.settings.network} (futon)"
            )
            if user.away is not None:
                self.reply(client, "301", user.nick, user.away)
            idle = max(0, int(self.wall() - user.last_message))
            self.reply(
                client,
                "317",
                user.nick,
                str(idle),
                str(int(user.signon)),
                "seconds idle, signon time",
            )
        self.reply(client, "318", nicks, "End of /WHOIS list")

    def on_mode(self, client: Client, msg: Message) -> None:
        target = msg.params[0]
        if target.startswith("#"):
            self._channel_mode(client, msg)
            return
        user = self.state.lookup(target)
        if user is None:
            self.reply(client, "401", target, "No such nick/channel")
            return
        if user is not client:
            self.reply(client, "502", "Can't change mode for other users")
            return
        if len(msg.params) == 1:
            self.reply(client, "221", "+" + "".join(sorted(client.modes)))
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
            self.reply(client, "501", "Unknown MODE flag")
        if changed:
            self.send(
                client,
                Message("MODE", [client.nick, _compact_modes(changed)], client.nick, trailing=True),
            )

    def _channel_mode(self, client: Client, msg: Message) -> None:
        chan = self.state.channel(msg.params[0])
        if chan is None:
            self.reply(client, "403", msg.params[0], "No such channel")
            return
        if len(msg.params) == 1:
            self.reply(client, "324", chan.name, chan.mode_string())
            self.reply(client, "329", chan.name, str(chan.created))
            return
        modes, args = msg.params[1], list(msg.params[2:])
        if modes.lstrip("+") == "b" and not args:
            self.reply(client, "368", chan.name, "End of channel ban list")
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
                who = self.state.lookup(nick)
                if who is None:
                    self.reply(client, "401", nick, "No such nick/channel")
                elif who not in chan.members:
                    self.reply(client, "441", who.nick, chan.name, "They aren't on that channel")
                else:
                    changes.append((sign, ch, who))
            elif ch in CHANNEL_MODES:
                changes.append((sign, ch, None))
            else:
                self.reply(client, "472", ch, "is unknown mode char to me")
        if not changes:
            return
        if client not in chan.ops:
            self.reply(client, "482", chan.name, "You're not channel operator")
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
                self.send(member, out)

    def on_ison(self, client: Client, msg: Message) -> None:
        present = []
        for nick in " ".join(msg.params).split():
            user = self.state.lookup(nick)
            if user is not None:
                present.append(user.nick)
        self.reply(client, "303", " ".join(present))

    def on_userhost(self, client: Client, msg: Message) -> None:
        replies = []
        for nick in " ".join(msg.params).split()[:5]:
            user = self.state.lookup(nick)
            if user is None:
                continue
            replies.append(
                f"{user.nick}={'-' if user.away is not None else '+'}{user.user}@{user.host}"
            )
        self.reply(client, "302", " ".join(replies))

    def on_motd(self, client: Client, msg: Message) -> None:
        self.motd(client)

    def on_lusers(self, client: Client, msg: Message) -> None:
        users = self.state.visible_users()
        self.reply(client, "251", f"There are {users} users and 0 invisible on 1 servers")
        self.reply(client, "254", str(len(self.state.channels)), "channels formed")
        self.reply(client, "255", f"I have {users} clients and 0 servers")

    def on_version(self, client: Client, msg: Message) -> None:
        self.reply(client, "351", VERSION + ".", self.settings.name, "futon embedded IRC server")

    def on_time(self, client: Client, msg: Message) -> None:
        self.reply(
            client,
            "391",
            self.settings.name,
            datetime.fromtimestamp(self.wall(), UTC).strftime("%A %B %d %Y -- %H:%M:%S UTC"),
        )


# ------------------------------------------------------------ text helpers


def clean_word(text: str, limit: int) -> str:
    """Keep what is safe in a user or host field: printable ASCII without
    spaces, ``@``, ``!`` or ``:``."""
    kept = "".join(ch for ch in text if 32 < ord(ch) < 127 and ch not in "@!:")
    return kept[:limit]


def one_line(text: str) -> str:
    """``text`` with NULs removed and line breaks turned into spaces."""
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


__all__ = [
    "CHANNEL_MODES",
    "SUPPORTED_CAPS",
    "USER_MODES",
    "VERSION",
    "IrcHandlers",
    "clean_word",
    "one_line",
]
