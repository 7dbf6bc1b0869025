"""The embedded IRC server as one side of the relay: agents and the daemon
are virtual users of the server, and what real clients say goes to the
relay's hooks."""

from __future__ import annotations

import contextlib
import logging

from futon.errors import Conflict, FutonError
from futon.social.irc_api import RelayHooks
from futon.transports.irc_lines import irc_lower
from futon.transports.irc_server import IrcListenerBase, IrcServer

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
        if target.startswith("#") and irc_lower(nick) not in {irc_lower(m) for m in server.members(target)}:
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

    # ------------------------------------------------------------- listener

    async def on_message(self, sender_nick: str, target: str, text: str, *, private: bool, notice: bool) -> None:
        await self.hooks.on_message(self, sender_nick, target, text, private=private, notice=notice)

    # ------------------------------------------------------------- helpers

    async def _ensure_user(self, nick: str) -> None:
        # Conflict: already there (a virtual user we made, or a human holding the nick).
        with contextlib.suppress(Conflict):
            await self._server().add_virtual(nick, realname=f"futon: {nick}")

    def _server(self) -> IrcServer:
        if self.server is None:
            raise FutonError("the embedded IRC server is not running", code="agent-unreachable")
        return self.server
