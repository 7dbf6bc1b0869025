"""The daemon's glue: the embedded IRC server as one side of the relay.
Agents and the daemon are virtual users of the server, and what real
clients say goes to the relay's hooks."""

from __future__ import annotations

import contextlib
import logging

from futon.protocol.errors import Conflict, FutonError
from futon.protocol.irc_lines import irc_lower
from futon.social.irc_api import RelayHooks
from futon.transports.irc.listener import IrcListenerBase
from futon.transports.irc.server import IrcServer

log = logging.getLogger("futon.irc")


class EmbeddedSide(IrcListenerBase):
    """IrcSide for the embedded server, and its listener."""

    network = "embedded"

    def __init__(self, hooks: RelayHooks) -> None:
        self.hooks = hooks
        self.server: IrcServer | None = None

    def bind(self, server: IrcServer) -> None:
        self.server = server

    # ------------------------------------------------------------- IrcSide

    async def say(self, nick: str, target: str, text: str, *, notice: bool = False) -> None:
        server = self._server()
        await self._ensure_user(nick)
        if target.startswith("#") and irc_lower(nick) not in {
            irc_lower(m) for m in server.members(target)
        }:
            await server.virtual_join(nick, target)
        await server.virtual_say(nick, target, text, notice=notice)

    async def ensure_agent(self, nick: str, channels: list[str]) -> None:
        try:
            await self._ensure_user(nick)
            for channel in channels:
                await self._server().virtual_join(nick, channel)
        except FutonError as exc:
            log.warning("cannot show %s on IRC: %s", nick, exc)

    def joined(self, channel: str) -> bool:
        return bool(self._server().members(channel))

    def set_away(self, nick: str, message: str | None) -> None:
        """PresenceSide: an agent offline is away; a nick not (yet) shown is skipped."""
        if self.server is None:
            return
        with contextlib.suppress(FutonError):
            self.server.set_away(nick, message)

    # ------------------------------------------------------------- listener

    async def on_message(
        self, sender_nick: str, target: str, text: str, *, private: bool, notice: bool
    ) -> None:
        await self.hooks.on_message(self, sender_nick, target, text, private=private, notice=notice)

    def nick_reserved(self, nick: str) -> bool:
        """Agents' ids and nicks and the daemon's nick are not for humans."""
        return self.hooks.nick_reserved(nick)

    # ------------------------------------------------------------- helpers

    async def _ensure_user(self, nick: str) -> None:
        """The virtual user ``nick`` exists afterwards. A human holding a
        reserved nick (they took it before the agent was registered) is
        renamed first: only the agent may speak, and be spoken to, as it."""
        server = self._server()
        try:
            await server.add_virtual(nick, realname=f"futon: {nick}")
            return
        except Conflict:
            pass  # a virtual user we made — or a human holding the nick
        if not self.nick_reserved(nick):
            return
        reason = f"{nick} is an agent of this server, and only the agent may use its nick"
        if await server.evict(nick, reason) is not None:
            with contextlib.suppress(Conflict):  # another show of the same agent made it meanwhile
                await server.add_virtual(nick, realname=f"futon: {nick}")

    def _server(self) -> IrcServer:
        if self.server is None:
            raise FutonError("the embedded IRC server is not running", code="agent-unreachable")
        return self.server
