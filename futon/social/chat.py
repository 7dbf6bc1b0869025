"""One chat path (issue 14): say something from X to Y.

Every line someone on futon's side says — an agent's ``chat`` or
``irc_response`` frame, ``POST /api/alpha/chat``, a bulletin or bell from a
peripheral tool, a Tickle page, the daemon's answer to ``futon: status`` —
goes through :meth:`Chat.say`, which does the same three things for each:

1. **agents**: a ``chat_message`` push (built from
   :class:`futon.protocol.frames.ChatMessage`) to the agent ``to`` names, or,
   for a channel, to the agents sitting in it that the line reaches
   (:data:`Reach`); pushes go through the pipeline's per-agent seq and replay
   window, so an offline agent gets them on ``resume``;
2. **IRC**: out on every IRC side that carries the channel (the embedded
   server and each bot-mode network), or to the nick on every side — never
   to IRC when ``to`` is an agent;
3. **evidence**: one ``forum-post`` in the line's thread (:func:`thread_id`).

The line is recorded before any agent is pushed it, and each push carries
the entry's id (``chat_message.evidence_id``), so an agent's answer can reply
to it (``chat.in_reply_to``). Nothing is pushed that is not recorded: when
the record fails no agent gets the line and :meth:`Chat.say` raises
``store-unavailable`` (IRC, said first, may already have it).

A line that would reach nobody is refused with a typed error and has no
effect: a channel no IRC side carries and no agent sits in is
``no-such-channel``, a nick that is neither an agent nor known to any IRC
side is ``unknown-target`` (both 404); a malformed channel or nick is
``invalid-target`` (400).

Who speaks on IRC: an agent speaks from its own nick, the daemon from its
nick; anyone else (an HTTP caller, Tickle when no tickle agent is
configured) is spoken for by the daemon's nick with a ``[name] `` prefix,
so no caller can make a virtual user appear — or speak as an agent.

Who spoke is recorded (``body.speaker``, :data:`Speaker`): a ``user-request``
hop may cite only a line a human said (futon/peripherals/hop.py), so the
record must not take a caller's word for it — an agent is ``agent`` on every
path (its WebSocket lines, its token on ``POST /api/alpha/chat``), the
daemon's own lines (command answers, Tickle, approvals) are ``daemon``, and
only the relay's lines from IRC and an HTTP caller without an agent token
are ``human``.

Lines humans say on IRC come the other way (:mod:`futon.social.relay`); the
relay records them with :meth:`Chat.record` and pushes them with
:meth:`Chat.push`, so both directions share one thread rule and one push
shape.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from futon.evidence.store import EvidenceStore
from futon.protocol import frames as f
from futon.protocol.errors import FutonError, NotFound, ProtocolError, StoreError

# irc_lower is futon's one IRC case folding (rfc1459), shared with the IRC
# server, bot mode, the registry and the relay.
from futon.protocol.irc_lines import irc_lower, valid_channel, valid_nick
from futon.social.irc_api import IrcSide
from futon.social.pipeline import Pipeline
from futon.social.registry import AgentRecord, AgentRegistry

log = logging.getLogger("futon.chat")

Speaker = Literal["human", "agent", "daemon"]
"""Who said a line, as recorded (``body.speaker``): a person (on IRC, or an
HTTP caller without an agent token), an agent, or the daemon itself."""

Reach = Literal["addressed", "everyone", "nobody"]
"""Which agents sitting in a channel a line is pushed to: ``addressed`` —
those it mentions (``nick:``, ``@nick``), like a human's line to an agent
with ``relay: mentions``; ``everyone`` — all of them (the bell);
``nobody`` — IRC and evidence only (an answer meant for the human who
asked, or a copy of a page the agent gets directly)."""

MAX_RECORDED_CHARS = 16_000  # a line's text in evidence; IRC and pushes get all of it

# docs/irc.md: an agent's line over WebSocket is recorded with transport
# "ws-relay"; its push says "websocket". Every other transport name is the
# same in both places.
_EVIDENCE_TRANSPORT = {"websocket": "ws-relay"}


@dataclass(frozen=True)
class Said:
    """Where a line went: the agents it was pushed to (sent now or kept
    for ``resume``), the IRC networks that took it, and its thread."""

    to: str
    thread: str
    agents: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    evidence_id: str | None = None  # the line's entry (say always records one)

    def to_dict(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "thread": self.thread,
            "agents": list(self.agents),
            "networks": list(self.networks),
            "evidence_id": self.evidence_id,  # the line's entry: an answer replies to it
        }


def is_channel(name: str) -> bool:
    return name.startswith("#")


def thread_id(a: str, b: str | None = None) -> str:
    """The one evidence-thread rule: ``irc/<#channel>`` for a channel,
    ``irc/<a>+<b>`` (sorted) for two parties talking privately. Names are
    compared as IRC compares them (rfc1459 case folding), so ``#Futon`` and
    ``#futon`` — or ``Joe`` and ``joe`` — are one thread."""
    if b is None:
        return f"irc/{irc_lower(a)}"
    return "irc/" + "+".join(sorted((irc_lower(a), irc_lower(b))))


_ACTION = re.compile(r"\x01ACTION [^\x01]*\x01?")


def plain_text(text: str) -> str:
    """``text`` as IRC text, never a CTCP request: ``\\x01`` is dropped from
    every line (a ``\\x01DCC``/``VERSION``/``PING`` line would make a human's
    client answer or offer a connection), except a whole-line ``ACTION``
    (``/me``), which stays one. Each line is checked, because the sides send
    each line of a text as its own message."""
    if "\x01" not in text:
        return text
    out = []
    for line in re.split(r"\r\n|\r|\n", text):
        if _ACTION.fullmatch(line):
            out.append(line.rstrip("\x01") + "\x01")
        else:
            out.append(line.replace("\x01", ""))
    return "\n".join(out)


def mentions(text: str, nick: str) -> bool:
    """``nick:`` / ``nick,`` at the start, or ``nick:`` / ``@nick`` anywhere."""
    escaped = re.escape(nick)
    return bool(
        re.match(rf"^\s*{escaped}\s*[:,]", text, re.IGNORECASE)
        or re.search(rf"(^|\W){escaped}:", text, re.IGNORECASE)
        or re.search(rf"@{escaped}\b", text, re.IGNORECASE)
    )


class Chat:
    """The chat service: :meth:`say` (futon's side speaks), :meth:`record`
    and :meth:`push` (for the relay's lines from IRC)."""

    def __init__(
        self,
        registry: AgentRegistry,
        pipeline: Pipeline,
        store: EvidenceStore,
        *,
        daemon_nick: str = "futon",
    ) -> None:
        self.registry = registry
        self.pipeline = pipeline
        self.store = store
        self.daemon_nick = daemon_nick
        self.sides: list[IrcSide] = []

    def attach(self, side: IrcSide) -> None:
        self.sides.append(side)

    # ------------------------------------------------------------- say

    async def say(
        self,
        sender: str,
        to: str,
        text: str,
        *,
        transport: str,
        via: IrcSide | None = None,
        reach: Reach = "addressed",
        notice: bool = False,
        in_reply_to: str | None = None,
        speaker: Speaker | None = None,
    ) -> Said:
        """``sender`` (an agent id, the daemon's nick, or any caller's name)
        says ``text`` to ``to`` (a ``#channel``, an agent id or nick, or an
        IRC nick). ``via`` limits IRC to one side (an answer goes where the
        question was asked). ``notice`` says it as an IRC NOTICE (recorded
        with ``"notice": true``); ``in_reply_to`` (an evidence id) makes the
        line's entry a reply to that entry. ``speaker`` is who said it; by
        default an agent (``sender`` is a registered agent) or the daemon
        (anyone else) — only a caller that knows a person spoke (the HTTP
        chat route, for a caller without an agent token) says ``human``.
        Raises ``ProtocolError``
        (``invalid-target``, ``invalid-input`` — also for an ``in_reply_to``
        the store does not hold) or ``NotFound`` (``no-such-channel``,
        ``unknown-target``) before anything is delivered; ``StoreError``
        (``store-unavailable``) when the line cannot be recorded — then no
        agent is pushed it (IRC sides, which come first, may have said it)."""
        if not text.strip():
            raise ProtocolError("there is nothing to say: 'text' is blank", code="invalid-input")
        if in_reply_to is not None and not self.store.exists(in_reply_to):
            raise ProtocolError(
                f"in_reply_to names no evidence entry: {in_reply_to!r}",
                code="invalid-input",
                context={"in_reply_to": in_reply_to},
            )
        sides = [via] if via is not None else list(self.sides)
        who: Speaker = speaker or ("agent" if self.registry.find(sender) is not None else "daemon")
        line = _Line(text, transport, notice, in_reply_to, who)
        if is_channel(to):
            return await self._to_channel(sender, to, line, sides, reach)
        return await self._to_one(sender, to, line, sides)

    async def _to_channel(
        self,
        sender: str,
        channel: str,
        line: _Line,
        sides: list[IrcSide],
        reach: Reach,
    ) -> Said:
        text, transport = line.text, line.transport
        if not valid_channel(channel):
            raise ProtocolError(
                f"{channel!r} is not a channel name", code="invalid-target", context={"to": channel}
            )
        carrying = [side for side in sides if side.joined(channel)]
        sitting = list(self.registry.in_channel(channel))
        if not carrying and not sitting:
            raise NotFound(
                f"nobody carries {channel}: no IRC side is in it and no agent sits in it",
                code="no-such-channel",
                context={"to": channel},
            )
        networks = await self._irc(sender, channel, text, carrying, notice=line.notice)
        hearers = [
            agent for agent in sitting if agent.id != sender and self._reaches(agent, text, reach)
        ]
        thread = thread_id(channel)
        # Recorded before it is pushed: the push carries the entry's id.
        entry_id = await self._record_line(sender, thread, line, channel=channel, networks=networks)
        agents = await self._push_chat(hearers, sender, channel, text, transport, entry_id)
        return Said(channel, thread, agents, networks, entry_id)

    async def _to_one(self, sender: str, to: str, line: _Line, sides: list[IrcSide]) -> Said:
        text, transport = line.text, line.transport
        agent = self.registry.find(to) or self.registry.owner_of_nick(to)
        if agent is not None:  # an agent is reached over its push queue, never through IRC
            thread = self.thread_of(sender, agent.id)
            entry_id = await self._record_line(sender, thread, line, channel=None, networks=())
            agents = await self._push_chat([agent], sender, to, text, transport, entry_id)
            return Said(to, thread, agents, evidence_id=entry_id)
        if not valid_nick(to):
            raise ProtocolError(
                f"{to!r} is neither a channel, an agent nor an IRC nick",
                code="invalid-target",
                context={"to": to},
            )
        networks = await self._irc(sender, to, text, sides, notice=line.notice)
        if not networks:
            raise NotFound(
                f"no agent or IRC user is called {to!r}", code="unknown-target", context={"to": to}
            )
        thread = self.thread_of(sender, to)
        entry_id = await self._record_line(sender, thread, line, channel=None, networks=networks)
        return Said(to, thread, (), networks, entry_id)

    def _reaches(self, agent: AgentRecord, text: str, reach: Reach) -> bool:
        if reach == "everyone":
            return True
        return reach == "addressed" and mentions(text, agent.nick)

    async def _irc(
        self, sender: str, to: str, text: str, sides: Iterable[IrcSide], *, notice: bool = False
    ) -> tuple[str, ...]:
        """Say the line on each side; the networks that took it. A side that
        fails is logged and skipped: the others still get the line. (A nick
        unknown to a side is expected — it may live on another network.)"""
        nick, prefix = self._voice(sender)
        text = plain_text(text)
        line = prefix + text if prefix else text
        took = []
        for side in sides:
            try:
                await side.say(nick, to, line, notice=notice)
            except (ConnectionError, FutonError) as exc:
                level = logging.WARNING if is_channel(to) else logging.INFO
                log.log(level, "%s: not said to %s on %s: %s", sender, to, side.network, exc)
                continue
            took.append(side.network)
        return tuple(took)

    def _voice(self, sender: str) -> tuple[str, str]:
        """(nick, prefix) a sender speaks with on IRC: an agent its nick,
        the daemon its nick; anyone else through the daemon, named."""
        record = self.registry.find(sender)
        if record is not None:
            return record.nick, ""
        if irc_lower(sender) == irc_lower(self.daemon_nick):
            return self.daemon_nick, ""
        return self.daemon_nick, f"[{sender}] "

    async def _push_chat(
        self,
        agents: list[AgentRecord],
        sender: str,
        to: str,
        text: str,
        transport: str,
        evidence_id: str,
    ) -> tuple[str, ...]:
        # seq=0: the registry stamps each agent's own next seq (push_fields drops this one)
        frame = f.ChatMessage.model_validate(
            {
                "to": to,
                "from": sender,
                "text": text,
                "transport": transport,
                "evidence_id": evidence_id,
                "seq": 0,
            }
        )
        for agent in agents:
            await self.push(agent, frame)
        return tuple(agent.id for agent in agents)

    # ------------------------------------------------------------- shared with the relay

    async def push(self, agent: AgentRecord, frame: f.IrcMessage | f.ChatMessage) -> bool:
        """Push one frame to an agent (seq, replay window); whether it went
        out now — an offline agent gets it on ``resume``."""
        return await self.pipeline.push(agent, frame)

    def thread_of(self, a: str, b: str) -> str:
        """The private thread of two parties; an agent named by its nick
        counts as its id, so both directions of a talk are one thread."""
        return thread_id(self._party(a), self._party(b))

    def _party(self, name: str) -> str:
        agent = self.registry.find(name) or self.registry.owner_of_nick(name)
        return agent.id if agent is not None else name

    async def record(
        self,
        author: str,
        to: str,
        text: str,
        *,
        transport: str,
        network: str | None,
        private_with: str | None = None,
        notice: bool = False,
    ) -> str | None:
        """Record a line heard on IRC: in ``to``'s channel thread, or —
        with ``private_with`` (the sender's nick) — in the private thread.
        Returns the entry's id (None when recording failed: it is logged)."""
        if private_with is not None:
            thread, channel = self.thread_of(private_with, to), None
        else:
            thread, channel = thread_id(to), to
        try:
            return await self._record_line(
                author,
                thread,
                _Line(text, transport, notice, None, "human"),  # the relay reports humans only
                channel=channel,
                networks=(network,) if network else (),
            )
        except StoreError:  # the human said it: a failed record is logged, not unsaid
            return None

    async def _record_line(
        self,
        author: str,
        thread: str,
        line: _Line,
        *,
        channel: str | None,
        networks: Iterable[str],
    ) -> str:
        """Append the line's entry; its id. A failure is logged and raised
        as ``store-unavailable`` (context: the thread and the IRC networks
        that already took the line), so the caller pushes it to no agent."""
        networks = tuple(networks)
        body: dict[str, Any] = {
            "text": line.text[:MAX_RECORDED_CHARS],
            "channel": channel,
            "transport": _EVIDENCE_TRANSPORT.get(line.transport, line.transport),
            "network": ",".join(networks) or None,
            "speaker": line.speaker,
        }
        if line.notice:
            body["notice"] = True  # history plays it back as a NOTICE
        entry: dict[str, Any] = {
            "subject": {"ref/type": "thread", "ref/id": thread},
            "type": "forum-post",
            "claim-type": "observation",
            "author": author,
            "body": body,
        }
        if line.in_reply_to is not None:
            entry["in-reply-to"] = line.in_reply_to
        try:
            stored = await self.store.append(entry)
            entry_id = stored.get("evidence/id")
        except FutonError as exc:
            log.error("could not record a line in %s: %s", thread, exc)
            raise StoreError(
                f"the line was not recorded ({exc.code}), so no agent was pushed it",
                code="store-unavailable",
                context={"thread": thread, "networks": list(networks)},
            ) from exc
        if not isinstance(entry_id, str):  # the store always stamps one; never push unlinked
            raise StoreError("the line's entry has no evidence id", code="store-unavailable")
        return entry_id


@dataclass(frozen=True)
class _Line:
    """What is said, besides who says it to whom."""

    text: str
    transport: str
    notice: bool = False
    in_reply_to: str | None = None
    speaker: Speaker = "daemon"
