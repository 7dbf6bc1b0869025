"""A channel's recent conversation, read back from its evidence thread.

Every line said in a channel — a human's, an agent's, the daemon's — is a
``forum-post`` in the thread :func:`futon.social.chat.thread_id` names, so
the conversation people missed is in the store, and survives restarts. The
embedded IRC server plays it to a client that joins and answers
``CHATHISTORY`` from here (docs/irc.md, "History").

Who a line is from, as IRC shows it: an agent's line from the agent's nick,
the daemon's from its nick, a human's from the nick they had (``irc:<nick>``
authors are humans who carried a reserved name); anyone else (an HTTP
caller, Tickle) was said through the daemon's nick with a ``[name] ``
prefix, and is shown that way again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from futon.evidence.model import parse_at
from futon.evidence.query import EvidenceQuery
from futon.evidence.store import EvidenceStore
from futon.protocol.errors import FutonError, NotFound
from futon.protocol.irc_lines import irc_lower
from futon.social.chat import thread_id
from futon.social.registry import AgentRegistry

MAX_HISTORY_LINES = 1000  # no request reads more than this many entries

Anchor = tuple[Literal["msgid", "timestamp"], str]
"""Where a history request starts: an entry id, or an ISO-8601 time."""


@dataclass(frozen=True)
class ChatLine:
    """One recorded line as IRC plays it back."""

    entry_id: str
    seq: int
    at: str  # ISO-8601 UTC with milliseconds and Z: the stored format, IRCv3's too
    nick: str
    text: str
    notice: bool = False


class ChannelHistory:
    """Reads a channel's lines from the store, oldest first in every answer.
    Counts are bounded by ``MAX_HISTORY_LINES``; an anchor that names no
    entry or no time is ``NotFound`` / ``ProtocolError`` (typed)."""

    def __init__(self, store: EvidenceStore, registry: AgentRegistry, daemon_nick: str) -> None:
        self.store = store
        self.registry = registry
        self.daemon_nick = daemon_nick

    def latest(self, channel: str, limit: int, after: Anchor | None = None) -> list[ChatLine]:
        """The newest ``limit`` lines (only those after ``after``, if given)."""
        lines = self._newest(self._query(channel, limit))
        if after is None:
            return lines
        seq, at = self._resolve(after)
        return [line for line in lines if (line.seq > seq if seq else line.at > at)]

    def before(self, channel: str, anchor: Anchor, limit: int) -> list[ChatLine]:
        """The ``limit`` lines just before ``anchor``."""
        seq, at = self._resolve(anchor)
        query = self._query(channel, limit)
        query = replace(query, before_seq=seq) if seq else replace(query, until=at)
        return self._newest(query)

    def after(self, channel: str, anchor: Anchor, limit: int) -> list[ChatLine]:
        """The ``limit`` lines just after ``anchor``."""
        seq, at = self._resolve(anchor)
        if seq:
            page = self.store.query(replace(self._query(channel, limit), after_seq=seq))
            return self._lines(page.entries)
        page = self.store.query(replace(self._query(channel, MAX_HISTORY_LINES), since=at))
        later = [line for line in self._lines(page.entries) if line.at > at]
        later.sort(key=lambda line: line.seq)
        return later[:limit]

    # ------------------------------------------------------------- helpers

    def _query(self, channel: str, limit: int) -> EvidenceQuery:
        return EvidenceQuery(
            subject_type="thread",
            subject_id=thread_id(channel),
            type="forum-post",
            limit=max(1, min(limit, MAX_HISTORY_LINES)),
        )

    def _newest(self, query: EvidenceQuery) -> list[ChatLine]:
        lines = self._lines(self.store.query(query).entries)  # newest first
        lines.reverse()
        return lines

    def _resolve(self, anchor: Anchor) -> tuple[int, str]:
        """(seq, "") for a msgid, (0, stored time) for a timestamp."""
        kind, value = anchor
        if kind == "msgid":
            try:
                entry = self.store.get(value)
            except FutonError:
                raise NotFound(f"no message {value!r}", code="evidence-not-found") from None
            return int(entry["evidence/seq"]), ""
        try:
            return 0, parse_at(value)
        except (ValueError, OverflowError):
            raise FutonError(f"{value!r} is not a timestamp", code="invalid-query") from None

    def _lines(self, entries: list[dict[str, Any]]) -> list[ChatLine]:
        out = []
        for entry in entries:
            body = entry.get("evidence/body")
            if not isinstance(body, dict) or not isinstance(body.get("text"), str):
                continue
            nick, prefix = self._voice(str(entry.get("evidence/author", "")), body)
            out.append(
                ChatLine(
                    entry_id=str(entry["evidence/id"]),
                    seq=int(entry["evidence/seq"]),
                    at=str(entry["evidence/at"]),
                    nick=nick,
                    text=prefix + body["text"],
                    notice=body.get("notice") is True,
                )
            )
        return out

    def _voice(self, author: str, body: dict[str, Any]) -> tuple[str, str]:
        """(nick, prefix) a recorded line is shown with (module docstring)."""
        record = self.registry.find(author)
        if record is not None:
            return record.nick, ""
        if irc_lower(author) == irc_lower(self.daemon_nick):
            return self.daemon_nick, ""
        if author.startswith("irc:"):
            return author[4:], ""
        if body.get("transport") == "irc":
            return author, ""
        return self.daemon_nick, f"[{author}] "


__all__ = ["MAX_HISTORY_LINES", "Anchor", "ChannelHistory", "ChatLine"]
