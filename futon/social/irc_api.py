"""The seam between IRC transports (embedded server, bot mode) and the
relay that connects IRC to agents. Transports implement :class:`IrcSide`;
the relay implements :class:`RelayHooks`. Neither imports the other."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class IrcSide(Protocol):
    """One place channels live: the embedded server, or one network the bot
    is connected to."""

    @property
    def network(self) -> str:
        """"embedded", or the network's configured name (read-only here, so
        a property satisfies it as well as an attribute does)."""

    async def say(self, nick: str, target: str, text: str, *, notice: bool = False) -> None:
        """Send ``text`` to a channel or nick as ``nick`` (an agent or the
        daemon). The embedded server sends it from that user; a bot, which
        has one nick, prefixes each line with ``[nick] ``. Long text is split
        and paced by the side."""

    async def ensure_agent(self, nick: str, channels: list[str]) -> None:
        """Make an agent visible in its channels (embedded: a virtual user
        joins; bot: nothing — the bot speaks for agents)."""

    def joined(self, channel: str) -> bool:
        """Whether this side can speak in ``channel``."""


@runtime_checkable
class PresenceSide(Protocol):
    """A side that hosts agents' nicks (the embedded server) and can show
    whether each is connected: away (``/WHO`` ``G``, ``/WHOIS`` 301) while
    it is not."""

    def set_away(self, nick: str, message: str | None) -> None:
        """Mark ``nick`` away with ``message``, or back (None). A nick the
        side does not host is ignored."""


class RelayHooks(Protocol):
    """What a transport tells the relay."""

    async def on_message(
        self,
        side: IrcSide,
        sender: str,
        target: str,
        text: str,
        *,
        private: bool,
        notice: bool = False,
        account: str | None = None,
    ) -> None:
        """A human (or another bot) said ``text`` to ``target`` (a channel,
        or — with ``private`` — a nick this side carries). ``account`` is
        the services account when the network tells it."""

    async def on_event(self, side: IrcSide, kind: str, detail: str) -> None:
        """Connection life: ``connected``, ``disconnected``, ``joined``…
        (recorded as evidence)."""

    def nick_reserved(self, nick: str) -> bool:
        """Whether ``nick`` belongs to an agent or the daemon (IRC case
        folding): a side that hosts nicks refuses it to humans."""


def split_text(text: str, limit: int = 400) -> list[str]:
    """Lines for IRC: newlines split, each line at most ``limit`` UTF-8
    bytes, cut on word boundaries where there is one."""
    out: list[str] = []
    for raw_line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw_line.rstrip()
        if not line:
            continue
        while len(line.encode("utf-8")) > limit:
            cut = _cut(line, limit)
            out.append(line[:cut].rstrip())
            line = line[cut:].lstrip()
        if line:
            out.append(line)
    return out


def _cut(line: str, limit: int) -> int:
    """Index to cut ``line`` so the head fits ``limit`` bytes, preferring a space."""
    size = 0
    last_space = -1
    for index, char in enumerate(line):
        size += len(char.encode("utf-8"))
        if size > limit:
            return last_space if last_space > 0 else max(index, 1)
        if char == " ":
            last_space = index
    return len(line)
