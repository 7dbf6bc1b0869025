"""What the embedded IRC server knows: users, channels, modes and the nick
table. Plain data — no sockets, no asyncio, no output: whoever changes the
state (:mod:`futon.transports.irc.handlers`) says what the clients see.

Every nick and channel lookup goes through
:func:`~futon.protocol.irc_lines.irc_lower` (rfc1459 case mapping), so
``Alice``, ``alice`` and ``ALICE`` are one nick and ``#Room[1]`` is
``#room{1}``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from futon.protocol.errors import NotFound
from futon.protocol.irc_lines import irc_lower


@dataclass(eq=False)
class User:
    """Someone with a nick: a connected :class:`Client` or a virtual user
    (an agent, the daemon), which has no connection and receives nothing."""

    nick: str
    user: str
    host: str
    realname: str
    virtual: bool = False
    away: str | None = None
    modes: set[str] = field(default_factory=set)
    channels: dict[str, Channel] = field(default_factory=dict)  # irc_lower(name) → channel
    signon: float = field(default_factory=time.time)
    last_message: float = field(default_factory=time.time)

    @property
    def prefix(self) -> str:
        return f"{self.nick}!{self.user}@{self.host}"


@dataclass(eq=False)
class Client(User):
    """A connection as the protocol sees it (the socket itself belongs to
    the server); a :class:`User` in the nick table once it has a nick.

    ``closing`` is set when the connection is being dropped: nothing more
    is sent to it. ``ping_sent_at`` is the server's monotonic time of an
    unanswered keepalive PING (None when none is outstanding); a nick held
    by a client silent that long may be reclaimed.
    """

    ip: str = ""
    registered: bool = False
    got_user: bool = False
    password: str | None = None
    caps: set[str] = field(default_factory=set)
    cap_negotiating: bool = False
    closing: bool = False
    ping_sent_at: float | None = None

    @property
    def name(self) -> str:
        """The nick as numerics address it: ``*`` before one is set."""
        return self.nick or "*"


@dataclass(eq=False)
class Channel:
    name: str  # as created: the first joiner's spelling
    modes: set[str] = field(default_factory=lambda: {"n"})
    members: dict[User, None] = field(default_factory=dict)  # ordered set, join order
    ops: set[User] = field(default_factory=set)
    topic: str = ""
    topic_by: str = ""
    topic_at: int = 0
    created: int = field(default_factory=lambda: int(time.time()))
    # clients() for every channel line, kept until the members change
    # (IrcState's add/remove are the only writers of ``members``).
    _clients: list[Client] | None = field(default=None, repr=False)

    def clients(self) -> list[Client]:
        """Members with a connection, in join order: who sees channel traffic.
        The caller must not change the list."""
        if self._clients is None:
            self._clients = [m for m in self.members if isinstance(m, Client)]
        return self._clients

    def changed(self) -> None:
        """``members`` changed: :meth:`clients` is computed again."""
        self._clients = None

    def mode_string(self) -> str:
        return "+" + "".join(sorted(self.modes))


class IrcState:
    """The nick table and the channel table of one server.

    A channel exists while it has members: :meth:`remove_member` deletes
    the last one's channel. A :class:`Client` is in the nick table from its
    first NICK, registered or not; :meth:`lookup` hides the unregistered.
    """

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}

    # -------------------------------------------------------- lookups

    def holder(self, nick: str) -> User | None:
        """Whoever holds ``nick`` (registered or not)."""
        return self.users.get(irc_lower(nick))

    def lookup(self, nick: str) -> User | None:
        """The user a command may address: virtual, or registered."""
        user = self.holder(nick)
        if isinstance(user, Client) and not user.registered:
            return None
        return user

    def virtual(self, nick: str) -> User:
        """The virtual user ``nick``; ``NotFound`` when there is none."""
        user = self.holder(nick)
        if user is None or not user.virtual:
            raise NotFound(f"no virtual IRC user {nick!r}", context={"nick": nick})
        return user

    def channel(self, name: str) -> Channel | None:
        return self.channels.get(irc_lower(name))

    def peers(self, user: User) -> set[Client]:
        """Connected clients that share at least one channel with ``user``."""
        return {c for chan in user.channels.values() for c in chan.clients() if c is not user}

    def visible_users(self) -> int:
        """Users LUSERS counts: virtual ones and registered clients."""
        return sum(
            1 for u in self.users.values() if u.virtual or (isinstance(u, Client) and u.registered)
        )

    # -------------------------------------------------------- changes

    def take_nick(self, user: User, nick: str) -> None:
        """``user`` is known as ``nick`` from now on; its old nick, if it
        held one, is free. The caller has checked that ``nick`` is free."""
        if user.nick and self.users.get(irc_lower(user.nick)) is user:
            del self.users[irc_lower(user.nick)]
        user.nick = nick
        self.users[irc_lower(nick)] = user

    def forget(self, user: User) -> None:
        """``user`` leaves the nick table (if it is the holder of its nick)."""
        if user.nick and self.users.get(irc_lower(user.nick)) is user:
            del self.users[irc_lower(user.nick)]

    def add_member(self, user: User, name: str) -> tuple[Channel, bool]:
        """``user`` joins ``name``; the channel is created (with ``user`` as
        its op) when it does not exist. Returns the channel and whether it
        was created. Joining twice is a no-op."""
        key = irc_lower(name)
        chan = self.channels.get(key)
        created = chan is None
        if chan is None:
            chan = self.channels[key] = Channel(name)
            chan.ops.add(user)
        chan.members[user] = None
        chan.changed()
        user.channels[key] = chan
        return chan, created

    def remove_member(self, user: User, chan: Channel) -> None:
        chan.members.pop(user, None)
        chan.changed()
        chan.ops.discard(user)
        user.channels.pop(irc_lower(chan.name), None)
        if not chan.members:
            self.channels.pop(irc_lower(chan.name), None)

    def keep_virtual_only(self) -> None:
        """After a shutdown: connected clients are gone, virtual users and
        the channels they sit in stay (a restarted server shows them again)."""
        self.users = {k: u for k, u in self.users.items() if u.virtual}
        for chan in self.channels.values():
            for member in [m for m in chan.members if not m.virtual]:
                del chan.members[member]
                chan.ops.discard(member)
            chan.changed()
        self.channels = {k: c for k, c in self.channels.items() if c.members}


__all__ = ["Channel", "Client", "IrcState", "User"]
