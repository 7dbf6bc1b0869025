"""The daemon's side of the embedded server: users without a connection.

Agents (and the daemon itself) are *virtual users*: they share the nick
space with real clients and look like anyone else to them, but receive
nothing — what clients say to them goes to the listener. These operations
are synchronous over the same state and outbox as the command handlers;
:class:`~futon.transports.irc.server.IrcServer` wraps them in its async API
and writes the outbox after each.
"""

from __future__ import annotations

import logging

from futon.protocol.errors import Conflict, NotFound, PermissionDenied, ProtocolError
from futon.protocol.irc_lines import (
    MAX_BODY_BYTES,
    Message,
    irc_lower,
    split_utf8,
    truncate_utf8,
    valid_channel,
    valid_nick,
)
from futon.transports.irc.handlers import IrcHandlers, clean_word, one_line
from futon.transports.irc.options import AWAYLEN, KICKLEN, REALNAMELEN, USERLEN
from futon.transports.irc.state import Client, User

log = logging.getLogger("futon.irc")

GUEST_TRIES = 10_000  # bounded: a listener that reserves every nick must not hang us


class VirtualUsers:
    """Create, move, speak as and remove virtual users; free a nick from a
    client so an agent can have it (:meth:`evict`)."""

    def __init__(self, handlers: IrcHandlers) -> None:
        self.handlers = handlers
        self.state = handlers.state
        self._guests = 0  # Guest<N> nicks handed to clients evicted from an agent's nick

    def add(
        self, nick: str, user: str = "agent", host: str = "futon", realname: str | None = None
    ) -> None:
        """Raises ``ProtocolError`` for a nick IRC cannot carry and
        ``Conflict`` when the nick is taken."""
        if not valid_nick(nick):
            raise ProtocolError(f"{nick!r} is not a valid IRC nick", context={"nick": nick})
        if self.state.holder(nick) is not None:
            raise Conflict(f"IRC nick {nick!r} is already in use", context={"nick": nick})
        self.state.take_nick(
            User(
                nick="",
                user=clean_word(user, USERLEN) or "agent",
                host=clean_word(host, 64) or "futon",
                realname=truncate_utf8(one_line(realname or nick), REALNAMELEN),
                virtual=True,
            ),
            nick,
        )

    def join(self, nick: str, channel: str) -> None:
        """Join ``channel`` (created if needed; the first joiner is op).
        Real members see a JOIN line. Joining twice is a no-op."""
        vuser = self.state.virtual(nick)
        if not valid_channel(channel):
            raise ProtocolError(
                f"{channel!r} is not a valid channel name", context={"channel": channel}
            )
        self.handlers.join(vuser, channel)
        chan = self.state.channel(channel)
        if chan is None:
            return
        # Channel operator status is the daemon's, never an agent's: an agent
        # that creates a channel is not op; the daemon's nick takes op (a MODE
        # line for the members) wherever it sits.
        home = self.handlers.home
        if home is not None and irc_lower(nick) == irc_lower(home.nick):
            if vuser not in chan.ops:
                chan.ops.add(vuser)
                out = Message("MODE", [chan.name, "+o", vuser.nick], self.handlers.settings.name)
                for client in chan.clients():
                    self.handlers.send(client, out)
        elif home is not None:
            chan.ops.discard(vuser)

    def set_away(self, nick: str, message: str | None) -> None:
        """Away with ``message`` (cut to AWAYLEN), or back (None)."""
        vuser = self.state.virtual(nick)
        vuser.away = truncate_utf8(one_line(message), AWAYLEN) if message else None

    def part(self, nick: str, channel: str, reason: str | None = None) -> None:
        vuser = self.state.virtual(nick)
        chan = self.state.channel(channel)
        if chan is None or vuser not in chan.members:
            raise NotFound(
                f"{nick} is not in {channel}", context={"nick": nick, "channel": channel}
            )
        self.handlers.part(
            vuser, chan, truncate_utf8(one_line(reason), KICKLEN) if reason else None
        )

    def say(self, nick: str, target: str, text: str, notice: bool = False) -> None:
        """PRIVMSG (or NOTICE) to a channel or a nick.

        Each line of ``text`` becomes its own message, split on word
        boundaries so every line fits in 512 bytes. Raises ``NotFound``
        for an unknown target and ``PermissionDenied`` when the virtual
        user is not in a ``+n`` channel. Virtual recipients get nothing.
        """
        vuser = self.state.virtual(nick)
        command = "NOTICE" if notice else "PRIVMSG"
        recipients: list[Client]
        if target.startswith("#"):
            chan = self.state.channel(target)
            if chan is None:
                raise NotFound(f"no channel {target}", context={"target": target})
            if vuser not in chan.members and "n" in chan.modes:
                raise PermissionDenied(f"{nick} is not in {chan.name}", context={"target": target})
            name, recipients = chan.name, chan.clients()
        else:
            dest = self.state.lookup(target)
            if dest is None:
                raise NotFound(f"no nick {target}", context={"target": target})
            name, recipients = dest.nick, [dest] if isinstance(dest, Client) else []
        room = MAX_BODY_BYTES - len(f":{vuser.prefix} {command} {name} :".encode())
        vuser.last_message = self.handlers.wall()
        for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if not line:
                continue
            for piece in split_utf8(line.replace("\0", ""), room):
                out = Message(command, [name, piece], vuser.prefix, trailing=True)
                self.handlers.out.broadcast(recipients, out)

    def evict(self, nick: str, reason: str) -> str | None:
        """Free ``nick`` from the real client holding it (case-folded): the
        client is renamed to a fresh ``Guest<N>``, told why by a NOTICE, and
        it and everyone sharing a channel with it see the NICK change. When
        no Guest nick is free the client is dropped instead. Returns the new
        nick, or None when no real client holds ``nick`` any more."""
        holder = self.state.holder(nick)
        if not isinstance(holder, Client):
            return None
        old = holder.nick
        try:
            guest = self._guest_nick()
        except Conflict:
            self.handlers.drop(holder, "Nick reserved")  # it must not keep the nick
            return None
        why = truncate_utf8(one_line(f"{old} is now reserved: {reason}. You are now {guest}."), 400)
        self.handlers.send(
            holder, Message("NOTICE", [old, why], self.handlers.settings.name, trailing=True)
        )
        if holder.registered:
            out = Message("NICK", [guest], holder.prefix, trailing=True)
            self.handlers.send(holder, out)
            for peer in self.state.peers(holder):
                self.handlers.send(peer, out)
            self.handlers.out.hook("on_nick", old, guest)
        self.state.take_nick(holder, guest)
        log.info("irc: %s renamed to %s (%s)", old, guest, reason)
        return guest

    def _guest_nick(self) -> str:
        for _ in range(GUEST_TRIES):
            self._guests += 1
            guest = f"Guest{self._guests}"
            if self.state.holder(guest) is None and not self.handlers.reserved(guest):
                return guest
        raise Conflict("no free Guest<N> nick to rename a client to")

    def remove(self, nick: str, reason: str = "Leaving") -> None:
        """The virtual user quits: ``QUIT :reason`` to everyone who shared
        a channel with it."""
        vuser = self.state.virtual(nick)
        self.handlers.quit_user(vuser, truncate_utf8(one_line(reason), KICKLEN))


__all__ = ["VirtualUsers"]
