"""The live agent registry.

Agents come from agents.yaml and from ``POST /api/alpha/agents`` at run
time. Every handshake and dispatch looks an agent up here *at that moment*
(never a snapshot taken at start-up), so a registration or a reload takes
effect for the very next frame.

Tokens are kept only as sha256 hex and compared in constant time. Each
agent has a push queue with a per-agent ``seq`` and a replay window that
outlives its connections, so an agent that reconnects can ``resume``.

An agent's id and nick are its IRC names: :meth:`AgentRegistry.owner_of_nick`
answers whether a nick belongs to an agent (rfc1459 case folding, as the IRC
server compares nicks), and :meth:`AgentRegistry.on_added` tells the IRC
side at once when an agent is registered at run time, so it can reserve the
nick (agents a reload adds are shown by the daemon's reload, in order with
the agents it removes).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from futon.config.models import AgentsFile, AgentSpec
from futon.evidence.model import format_at
from futon.protocol.errors import Conflict, NotFound, PermissionDenied, ProtocolError
from futon.protocol.irc_lines import irc_lower

log = logging.getLogger("futon.registry")

HELD_TYPES = frozenset({"irc_message", "chat_message"})  # delivered at connect, resume or not


class AgentLink(Protocol):
    """A live connection an agent is reachable through (the WS transport).
    ``send`` must not block on a slow peer: it queues or drops."""

    transport: str

    async def send(self, frame: dict[str, Any]) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class AgentRecord:
    """An agent as the daemon knows it. Setting :attr:`link` (its live
    connection, or None) calls ``on_presence(record)`` when the agent goes
    online or offline, so IRC can show the truth (away while offline)."""

    spec: AgentSpec
    source: str = "config"  # config | runtime
    _link: AgentLink | None = field(default=None, repr=False)
    # Epoch seconds of its last frame: touched on every action, formatted
    # only when someone reads it (a strftime per action showed in profiles).
    active_at: float | None = None
    seq: int = 0
    replay: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    session_id: str | None = None  # the active peripheral session
    peripheral_id: str | None = None
    # The seq of the first push kept while the agent was offline: those are
    # delivered when it connects, whether or not it sends ``resume``.
    held_from: int | None = None
    on_presence: Callable[[AgentRecord], None] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def link(self) -> AgentLink | None:
        return self._link

    @link.setter
    def link(self, value: AgentLink | None) -> None:
        changed = (self._link is None) != (value is None)
        self._link = value
        if changed and self.on_presence is not None:
            self.on_presence(self)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def type(self) -> str:
        return self.spec.type

    @property
    def nick(self) -> str:
        return self.spec.nick or self.spec.id

    @property
    def connected(self) -> bool:
        return self.link is not None

    def touch(self) -> None:
        self.active_at = time.time()

    @property
    def last_active(self) -> str | None:
        """When its last frame came, as evidence times are written."""
        at = self.active_at
        return None if at is None else format_at(datetime.fromtimestamp(at, UTC))

    def describe(self) -> dict[str, Any]:
        return {
            "agent_id": self.id,
            "type": self.type,
            "connected": self.connected,
            "transport": self.link.transport if self.link else None,
            "last_active": self.last_active,
            "session_id": self.session_id,
            "peripheral_id": self.peripheral_id,
        }


@dataclass(frozen=True)
class _Lookup:
    """The registry's folded lookups; the first agent (in registry order)
    wins a name two agents share, as the scans these replace did."""

    by_nick: dict[str, AgentRecord]
    owner: dict[str, AgentRecord]
    channels: dict[str, list[AgentRecord]]

    @classmethod
    def of(cls, records: Iterable[AgentRecord]) -> _Lookup:
        by_nick: dict[str, AgentRecord] = {}
        owner: dict[str, AgentRecord] = {}
        channels: dict[str, list[AgentRecord]] = {}
        for record in records:
            nick = irc_lower(record.nick)
            by_nick.setdefault(nick, record)
            owner.setdefault(nick, record)
            owner.setdefault(irc_lower(record.id), record)
            for channel in {irc_lower(c) for c in record.spec.channels}:
                channels.setdefault(channel, []).append(record)
        return cls(by_nick, owner, channels)


class AgentRegistry:
    def __init__(self, agents: AgentsFile, *, replay_window: int = 1000) -> None:
        self.replay_window = replay_window
        self.routing: dict[str, str] = {}
        self._agents: dict[str, AgentRecord] = {}
        self._on_added: list[Callable[[AgentRecord], None]] = []
        self._on_presence: list[Callable[[AgentRecord], None]] = []
        # Folded nick/id/channel lookups, rebuilt on the first lookup after
        # the agent set changes: every IRC line asks who owns a nick, and a
        # scan of 300 agents per line was most of the daemon's time under load.
        self._lookup: _Lookup | None = None
        # Set by the team (social/team_state.py): told of every stamped push,
        # so the agent's replay window is kept team-wide. Must not block.
        self.stamped: Callable[[AgentRecord, dict[str, Any]], None] | None = None
        self.load(agents)

    # ------------------------------------------------------------- config

    def apply_settings(self, agents: AgentsFile, replay_window: int) -> None:
        """A reload: agents.yaml again (:meth:`load`) and ``ws.replay_window``
        for replay windows made from now on (existing ones keep their size)."""
        self.replay_window = replay_window
        self.load(agents)

    def load(self, agents: AgentsFile) -> None:
        """(Re)load agents.yaml: new agents appear, changed ones update in
        place (keeping their connection and replay window), agents removed
        from the file go — unless they were registered at run time."""
        self.routing = dict(agents.routing)
        self.access = agents.irc_access
        seen = set()
        for spec in agents.agents:
            seen.add(spec.id)
            record = self._agents.get(spec.id)
            if record is None:
                self._agents[spec.id] = AgentRecord(
                    spec, replay=deque(maxlen=self.replay_window), on_presence=self._presence
                )
            else:
                record.spec = spec
                record.source = "config"
        for agent_id in [
            a for a, r in self._agents.items() if r.source == "config" and a not in seen
        ]:
            del self._agents[agent_id]
        self._lookup = None

    # ------------------------------------------------------------- lookup

    def get(self, agent_id: str) -> AgentRecord:
        record = self._agents.get(agent_id)
        if record is None:
            raise NotFound(
                f"unknown agent {agent_id!r}",
                code="agent-not-found",
                context={"agent_id": agent_id},
            )
        return record

    def find(self, agent_id: str) -> AgentRecord | None:
        return self._agents.get(agent_id)

    def by_nick(self, nick: str) -> AgentRecord | None:
        return self._lookups().by_nick.get(irc_lower(nick))

    def owner_of_nick(self, nick: str) -> AgentRecord | None:
        """The agent ``nick`` belongs to — as its nick or as its id, both
        compared with IRC case folding — or None. Nobody else may use it."""
        return self._lookups().owner.get(irc_lower(nick))

    def all(self) -> list[AgentRecord]:
        return list(self._agents.values())

    def in_channel(self, channel: str) -> Iterable[AgentRecord]:
        return list(self._lookups().channels.get(irc_lower(channel), ()))

    def changed(self) -> None:
        """An agent's spec was replaced in place (the team's registry):
        the folded lookups are rebuilt at the next use."""
        self._lookup = None

    def _lookups(self) -> _Lookup:
        if self._lookup is None:
            self._lookup = _Lookup.of(self._agents.values())
        return self._lookup

    def default_peripheral(self, record: AgentRecord) -> str:
        return self.routing.get(record.type, self.routing.get("default", "explore"))

    # ------------------------------------------------------------- auth

    def authenticate(self, agent_id: str, token: str | None) -> AgentRecord:
        """The agent, if ``token`` is right for it (constant-time compare).
        An agent without a token needs none (loopback deployments)."""
        record = self.get(agent_id)
        expected = record.spec.token_sha256
        if expected is None:
            return record
        if not token or not hmac.compare_digest(token_digest(token), expected):
            raise PermissionDenied(f"wrong or missing token for {agent_id!r}", code="unauthorized")
        return record

    def agent_for_token(self, token: str) -> AgentRecord | None:
        digest = token_digest(token)
        for record in self._agents.values():
            expected = record.spec.token_sha256
            if expected is not None and hmac.compare_digest(digest, expected):
                return record
        return None

    # ------------------------------------------------------------- runtime

    def register(
        self,
        agent_id: str,
        agent_type: str,
        token: str | None = None,
        channels: list[str] | None = None,
    ) -> AgentRecord:
        if agent_id in self._agents:
            raise Conflict(
                f"agent {agent_id!r} is already registered", code="duplicate-registration"
            )
        return self.adopt(self.runtime_spec(agent_id, agent_type, token, channels))

    @staticmethod
    def runtime_spec(
        agent_id: str, agent_type: str, token: str | None = None, channels: list[str] | None = None
    ) -> AgentSpec:
        """The spec :meth:`register` makes (token kept as its digest only);
        ``invalid-input`` when it is not a valid agent."""
        try:
            return AgentSpec(
                id=agent_id,
                type=agent_type,
                token_sha256=token_digest(token) if token else None,
                channels=channels if channels is not None else ["#futon"],
            )
        except ValueError as exc:
            raise ProtocolError(f"invalid agent: {exc}", code="invalid-input") from None

    def adopt(self, spec: AgentSpec) -> AgentRecord:
        """Add a runtime agent from its spec (:meth:`register`, or one the
        team registered on another daemon); ``duplicate-registration`` when
        the id is taken here."""
        if spec.id in self._agents:
            raise Conflict(f"agent {spec.id!r} is already registered", code="duplicate-registration")
        record = AgentRecord(
            spec,
            source="runtime",
            replay=deque(maxlen=self.replay_window),
            on_presence=self._presence,
        )
        self._agents[spec.id] = record
        self._lookup = None
        self._added(record)
        return record

    def on_added(self, callback: Callable[[AgentRecord], None]) -> None:
        """Call ``callback(record)`` whenever an agent is registered at run
        time (:meth:`register`). Callbacks must not block: they run inside
        :meth:`register`. (A reload's new agents are the reload's to show.)"""
        self._on_added.append(callback)

    def _added(self, record: AgentRecord) -> None:
        for callback in self._on_added:
            callback(record)

    def on_presence(self, callback: Callable[[AgentRecord], None]) -> None:
        """Call ``callback(record)`` whenever an agent connects or its last
        connection goes (``record.connected`` tells which). Callbacks must
        not block: they run where the link is set."""
        self._on_presence.append(callback)

    def _presence(self, record: AgentRecord) -> None:
        for callback in self._on_presence:
            try:
                callback(record)
            except Exception:  # a broken watcher must not break a handshake
                log.exception("presence callback failed for %s", record.id)

    def deregister(self, agent_id: str) -> AgentRecord:
        record = self.get(agent_id)
        del self._agents[agent_id]
        self._lookup = None
        return record

    # ------------------------------------------------------------- persistence

    def snapshot(self) -> dict[str, Any]:
        """Each agent's push seq and replay window, for the next daemon."""
        return {
            r.id: {"seq": r.seq, "replay": list(r.replay), "held_from": r.held_from}
            for r in self._agents.values()
            if r.seq
        }

    def restore(self, snapshot: dict[str, Any]) -> int:
        """Take back seqs and replay windows saved by :meth:`snapshot`
        (agents no longer configured are skipped); returns how many."""
        restored = 0
        for agent_id, saved in snapshot.items():
            record = self._agents.get(agent_id)
            if record is None or not isinstance(saved, dict):
                continue
            frames = [f for f in saved.get("replay", []) if isinstance(f, dict) and isinstance(f.get("seq"), int)]
            record.seq = max(int(saved.get("seq", 0)), record.seq)
            record.replay.extend(frames[-self.replay_window :] if self.replay_window else [])
            held = saved.get("held_from")
            if isinstance(held, int) and not isinstance(held, bool) and record.held_from is None:
                record.held_from = held
            restored += 1
        return restored

    # ------------------------------------------------------------- pushes

    def stamp(self, record: AgentRecord, frame: dict[str, Any]) -> dict[str, Any]:
        """Give a push frame the agent's next seq and keep it for resume."""
        record.seq += 1
        frame = {**frame, "seq": record.seq}
        record.replay.append(frame)
        if record.link is None and record.held_from is None:
            record.held_from = record.seq
        if self.stamped is not None:
            self.stamped(record, frame)
        return frame

    def take_held(self, record: AgentRecord) -> list[dict[str, Any]]:
        """The lines said to the agent while it was offline (``irc_message``
        and ``chat_message`` pushes still in its replay window), oldest
        first, once: the caller delivers them at connect. (A coordination
        ``message`` sent meanwhile was already refused to its sender as
        ``agent-unreachable``: only ``resume`` replays it.)"""
        held, record.held_from = record.held_from, None
        if held is None:
            return []
        return [
            frame
            for frame in record.replay
            if frame["seq"] >= held and frame.get("type") in HELD_TYPES
        ]

    def replay_since(self, record: AgentRecord, since_seq: int) -> list[dict[str, Any]]:
        """Pushes after ``since_seq``; ``replay-gap`` if some fell out of the window."""
        oldest = record.replay[0]["seq"] if record.replay else record.seq + 1
        if since_seq + 1 < oldest and since_seq < record.seq:
            raise Conflict(
                f"seq {since_seq} is older than the replay window (oldest held: {oldest})",
                code="replay-gap",
                context={"oldest_seq": oldest},
            )
        return [frame for frame in record.replay if frame["seq"] > since_seq]
