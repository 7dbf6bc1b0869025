"""History on the embedded server (docs/irc.md, "History"): a client that
joins a channel gets its recent conversation, and IRCv3 ``CHATHISTORY``
(``draft/chathistory``) answers clients that ask — both read from the
channel's evidence thread through a :class:`HistorySource`, so they survive
restarts.

- **Join playback**: the last ``irc.server.history_lines`` lines, after the
  NAMES list, each as the PRIVMSG/NOTICE it was, with its original time as
  a ``server-time`` tag (``time=``) for clients that negotiated it, and a
  ``[MM-DD HH:MM] `` prefix for those that did not. A client that negotiated
  ``draft/chathistory`` gets none: it asks for what it wants.
- **CHATHISTORY** ``LATEST <#channel> <*|msgid=ID|timestamp=T> <limit>``,
  ``BEFORE <#channel> <msgid=ID|timestamp=T> <limit>`` and ``AFTER`` (same
  form): at most ``irc.server.chathistory_max`` lines, oldest first, inside
  a ``BATCH`` of type ``chathistory`` for clients with ``batch``; ``msgid``
  is the evidence id (sent as a tag with ``message-tags``). Only members of
  a channel may read it. Bad requests get standard replies:
  ``FAIL CHATHISTORY INVALID_PARAMS|INVALID_TARGET|INVALID_MSGREFTYPE|
  MESSAGE_ERROR|UNKNOWN_COMMAND``.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol

from futon.config.models import IrcServerSection
from futon.protocol.errors import FutonError
from futon.protocol.irc_lines import Message, split_utf8
from futon.social.history import Anchor, ChatLine
from futon.transports.irc.state import Channel, Client, IrcState

log = logging.getLogger("futon.irc")

HISTORY_CAP = "draft/chathistory"
_LIMIT = re.compile(r"^[0-9]{1,6}$")


class HistorySource(Protocol):
    """Where history comes from (:class:`futon.social.history.ChannelHistory`)."""

    def latest(self, channel: str, limit: int, after: Anchor | None = None) -> list[ChatLine]: ...

    def before(self, channel: str, anchor: Anchor, limit: int) -> list[ChatLine]: ...

    def after(self, channel: str, anchor: Anchor, limit: int) -> list[ChatLine]: ...


class Host(Protocol):
    """What history needs of the server's handlers
    (:class:`~futon.transports.irc.handlers.IrcHandlers`)."""

    settings: IrcServerSection
    state: IrcState

    def send(self, client: Client, message: Message) -> None: ...


class History:
    """Join playback and the CHATHISTORY command over one handler set."""

    def __init__(self, handlers: Host, source: HistorySource) -> None:
        self.handlers = handlers
        self.source = source
        self._batches = 0

    @property
    def max_lines(self) -> int:
        return self.handlers.settings.chathistory_max

    def on_join(self, client: Client, chan: Channel) -> None:
        """Play the channel's recent lines to a client that just joined."""
        count = self.handlers.settings.history_lines
        if count <= 0 or HISTORY_CAP in client.caps:
            return
        try:
            lines = self.source.latest(chan.name, count)
        except FutonError as exc:  # history is a courtesy: a failing store must not block JOIN
            log.warning("irc: no history for %s: %s", chan.name, exc)
            return
        self._play(client, chan.name, lines, stamp_text="server-time" not in client.caps)

    def on_chathistory(self, client: Client, msg: Message) -> None:
        params = msg.params
        sub = params[0].upper()
        if sub not in ("LATEST", "BEFORE", "AFTER"):
            self._fail(client, "UNKNOWN_COMMAND", sub, "Unknown CHATHISTORY subcommand")
            return
        if len(params) < 4:
            self._fail(client, "INVALID_PARAMS", sub, "Need a target, a reference and a limit")
            return
        target, ref, raw_limit = params[1], params[2], params[3]
        chan = self.handlers.state.channel(target) if target.startswith("#") else None
        if chan is None or client not in chan.members:
            self._fail(client, "INVALID_TARGET", sub, target, "You may read the history of "
                       "channels you are in")  # fmt: skip
            return
        if not _LIMIT.match(raw_limit):
            self._fail(client, "INVALID_PARAMS", sub, raw_limit, "The limit must be a number")
            return
        limit = min(int(raw_limit) or self.max_lines, self.max_lines)
        anchor: Anchor | None = None
        if ref != "*":
            kind, sep, value = ref.partition("=")
            if not sep or kind not in ("msgid", "timestamp") or not value:
                self._fail(client, "INVALID_MSGREFTYPE", sub, ref, "Use msgid=ID or timestamp=T")
                return
            anchor = ("msgid", value) if kind == "msgid" else ("timestamp", value)
        elif sub != "LATEST":
            self._fail(client, "INVALID_PARAMS", sub, ref, "Only LATEST takes *")
            return
        try:
            if sub == "LATEST":
                lines = self.source.latest(chan.name, limit, anchor)
            elif sub == "BEFORE":
                assert anchor is not None
                lines = self.source.before(chan.name, anchor, limit)
            else:
                assert anchor is not None
                lines = self.source.after(chan.name, anchor, limit)
        except FutonError as exc:
            self._fail(client, "MESSAGE_ERROR", sub, target, f"{exc.message} ({exc.code})")
            return
        self._play(client, chan.name, lines, stamp_text=False, batch=True)

    # ------------------------------------------------------------- output

    def _play(
        self,
        client: Client,
        target: str,
        lines: list[ChatLine],
        *,
        stamp_text: bool,
        batch: bool = False,
    ) -> None:
        handlers = self.handlers
        server = handlers.settings.name
        ref: str | None = None
        if "batch" in client.caps and (batch or lines):
            self._batches += 1
            ref = f"h{self._batches}"
            handlers.send(client, Message("BATCH", [f"+{ref}", "chathistory", target], server))
        for line in lines:
            tags = {"time": line.at, "msgid": line.entry_id}
            if ref is not None:
                tags["batch"] = ref
            text = f"[{line.at[5:10]} {line.at[11:16]}] {line.text}" if stamp_text else line.text
            user = handlers.state.lookup(line.nick)
            source = user.prefix if user is not None else f"{line.nick}!~history@{server}"
            command = "NOTICE" if line.notice else "PRIVMSG"
            for row in text.replace("\r", "\n").replace("\0", "").split("\n"):
                for piece in split_utf8(row, 400) if row else []:
                    handlers.send(client, Message(command, [target, piece], source, tags, True))
        if ref is not None:
            handlers.send(client, Message("BATCH", [f"-{ref}"], server))

    def _fail(self, client: Client, code: str, *context: str) -> None:
        *raw, text = context
        # echoed user input: one safe word each (no spaces, no leading colon)
        words = ["".join(c for c in w if c not in " \r\n\0").lstrip(":")[:100] or "*" for w in raw]
        self.handlers.send(
            client,
            Message(
                "FAIL",
                ["CHATHISTORY", code, *words, text],
                self.handlers.settings.name,
                trailing=True,
            ),
        )


__all__ = ["HISTORY_CAP", "History", "HistorySource"]
