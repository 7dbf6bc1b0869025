"""The team's agent registry and replay windows in PostgreSQL (issue 20).

Built by the team bus (:mod:`futon.social.team`) when ``evidence.backend``
is ``postgres``; with the JSONL store nothing here runs and each daemon
keeps its registry and replay windows to itself, as before.

**Runtime agents, team-wide.** ``POST /api/alpha/agents`` on any daemon
writes the agent to ``futon_team_agents`` (id, type, token *digest*,
channels, the daemon that registered it); an id taken anywhere in the team
is ``duplicate-registration`` (409), as on one daemon. A daemon asked for an
agent it does not know — a ``ready``, an agent's bearer token on HTTP, a
dispatch to it — looks it up there and adopts it (registry record source
``runtime``); at every ``ready`` of a runtime agent the row is read again, so
a token changed or an agent deregistered elsewhere applies at once.
``DELETE /api/alpha/agents/{id}`` removes the row (and the agent's replay
window): the daemon where it was asked closes its connection at once, the
others at their next heartbeat (:meth:`TeamState.beat`), and no daemon takes
a ``ready`` for it again. An id or token the table has no row for is
remembered as a miss for :data:`MISS_TTL_S` (bounded: :data:`MISSES_MAX`),
so a client repeating a made-up one costs one query per second, not one per
attempt. agents.yaml agents stay per configuration (every
daemon has the same file). Tokens: only digests are stored, and the
comparison stays :func:`hmac.compare_digest` on the digest (an HTTP token
unknown here is looked up by its digest's index: equality on a sha256 says
nothing about the token). Registering needs the database: while it is
unreachable ``POST /api/alpha/agents`` is ``store-unavailable`` (a local
registration could take an id another daemon gives out meanwhile).

**Replay windows, team-wide.** Every push stamped for an agent (its seq and
frame, :meth:`AgentRegistry.stamp`) is queued here and written to
``futon_team_replay``; ``futon_team_seqs`` holds each agent's highest seq and
the daemon that numbers its pushes now. A daemon that takes the agent (its
``ready``) becomes that daemon and continues the numbering from the table,
with the table's window (:meth:`TeamState.take`), so a ``resume since_seq``
after a move replays from the team's window (a ``replay-gap`` as on one
daemon when the window no longer reaches back); a ``resume`` naming a seq
above the daemon's raises its seq to it (the agent saw that seq: it is never
given again). Rows are written by one writer task in batches — every frame
stamped while the previous batch commits goes in the next, one statement
per batch that also trims the agent's rows to the newest ``ws.replay_window``
— so a push never waits on the database: the queue is bounded
(:data:`MAX_PENDING`; past it the oldest queued frames are only local) and a
database that is down is logged, the frames stay in the local window and the
writer retries at the next heartbeat.

What a daemon that dies loses: the frames stamped since its last batch
committed — about one batch's round trip. Measured by driving
:class:`TeamState` against the throwaway cluster (fsync on, 2 shared cores
under load), stamp to commit: one push p50 0.4-1.9 ms (p95 4-13 ms), a
burst of 100 p50 4-6 ms (p95 10-16 ms): the pushes of the daemon's last few
milliseconds. They are not in the team's window, so ``resume`` cannot hand
them over; the next daemon numbers on from the table's seq — and a
``resume`` naming a seq above it (the agent saw some of them) raises it
first, so a seq the agent saw is never given again. The same holds when an
agent moves while its old daemon is alive: a batch of that daemon that
commits after the move is dropped (the daemon numbering the agent is
checked in the statement). A daemon that starts gives up what its previous
life numbered (:data:`RELEASE`). Rows are written with
``synchronous_commit`` off (replay windows are not evidence): a database
crash may also lose its last fraction of a second. Pushes kept here for an
agent that is offline here while another daemon numbers it are renumbered
after the team's seq when the agent connects here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from futon.config.models import AgentSpec
from futon.evidence.pg_conn import PgConnection
from futon.protocol.errors import Conflict, StoreError
from futon.social.registry import AgentRecord, AgentRegistry, token_digest

log = logging.getLogger("futon.team.state")

T = TypeVar("T")

MAX_PENDING = 10_000  # frames queued for the table; past it the oldest stay local only
BATCH_MAX = 1000  # frames written per statement
DB_TIMEOUT_S = 5.0  # one statement
DOWN_S = 1.0  # after a failure the database counts as down this long (no wait per handshake)
FLUSH_S = 1.0  # at close, the last batch is given this long
MISS_TTL_S = 1.0  # an id or token the table had no row for is not looked up again this long
MISSES_MAX = 4096  # misses remembered (the oldest are forgotten first)
DEREGISTERED = 4004  # the close code of a deregistered agent's connection (transports/http.py)
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
# What the database says of a batch's content (not of itself): dropped, not retried.
_BAD_BATCH = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.CardinalityViolationError,
)

# Created by TeamBus.start under the team's schema lock (team_sql.SCHEMA_LOCK).
# Frames are ``json``, not ``jsonb``: stored and read back as text, never
# queried inside, and jsonb refuses a string holding U+0000, which a push may.
SCHEMA = """
CREATE TABLE IF NOT EXISTS futon_team_agents (
    agent_id      text PRIMARY KEY,
    type          text NOT NULL,
    token_sha256  text,
    channels      text[] NOT NULL,
    registered_by text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS futon_team_agents_token ON futon_team_agents (token_sha256);
CREATE TABLE IF NOT EXISTS futon_team_seqs (
    agent_id  text PRIMARY KEY,
    seq       bigint NOT NULL,
    daemon_id text NOT NULL,
    taken_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS futon_team_replay (
    agent_id text NOT NULL,
    seq      bigint NOT NULL,
    frame    json NOT NULL,
    PRIMARY KEY (agent_id, seq)
);
"""

# ($1 id, $2 type, $3 digest, $4 channels, $5 daemon) → a row when the id was free.
REGISTER = """
INSERT INTO futon_team_agents (agent_id, type, token_sha256, channels, registered_by)
VALUES ($1, $2, $3, $4::text[], $5)
ON CONFLICT (agent_id) DO NOTHING
RETURNING agent_id
"""

DEREGISTER = [
    "DELETE FROM futon_team_agents WHERE agent_id = $1",
    "DELETE FROM futon_team_seqs WHERE agent_id = $1",
    "DELETE FROM futon_team_replay WHERE agent_id = $1",
]

AGENT = "SELECT agent_id, type, token_sha256, channels FROM futon_team_agents WHERE agent_id = $1"
BY_TOKEN = (
    "SELECT agent_id, type, token_sha256, channels FROM futon_team_agents WHERE token_sha256 = $1"
)
STILL = "SELECT agent_id FROM futon_team_agents WHERE agent_id = ANY($1::text[])"

# ($1 agent, $2 daemon) → the team's seq and the daemon that numbered it
# before (NULL: nobody). RETURNING's subquery reads the row as it was.
# With the newest $3 frames of its window (a JSON array, oldest first): one
# statement, one round trip per handshake.
TAKE = """
WITH t AS (
    INSERT INTO futon_team_seqs AS s (agent_id, seq, daemon_id) VALUES ($1, 0, $2)
    ON CONFLICT (agent_id) DO UPDATE SET daemon_id = excluded.daemon_id, taken_at = now()
    RETURNING s.seq, (SELECT o.daemon_id FROM futon_team_seqs o WHERE o.agent_id = $1) AS previous
)
SELECT t.seq, t.previous, (
    SELECT coalesce(json_agg(w.frame ORDER BY w.seq), '[]'::json)::text FROM (
        SELECT seq, frame FROM futon_team_replay WHERE agent_id = $1 ORDER BY seq DESC LIMIT $3
    ) w
) AS frames
FROM t
"""

# At start: what this daemon numbered in a previous life is nobody's now
# (its seqs may have died with it): the next daemon to take each agent
# continues from the table.
RELEASE = "UPDATE futon_team_seqs SET daemon_id = '' WHERE daemon_id = $1"


# One batch ($1 daemon; $2, $3, $4 agents, seqs, frames; $5 the window): the
# rows of agents this daemon numbers (or that nobody numbered yet: it claims
# them) are written, their seq raised, and their older rows trimmed to the
# window — one statement, one commit, without a WAL flush (module doc).
# Rows of agents another daemon took meanwhile are dropped: its numbering wins.
WRITE = """
WITH r AS (
    SELECT * FROM unnest($2::text[], $3::bigint[], $4::text[]) AS r(agent_id, seq, frame)
), top AS (
    SELECT agent_id, max(seq) AS seq FROM r GROUP BY agent_id
), claimed AS (
    INSERT INTO futon_team_seqs (agent_id, seq, daemon_id) SELECT agent_id, seq, $1 FROM top
    ON CONFLICT (agent_id) DO NOTHING
    RETURNING agent_id
), mine AS (
    SELECT t.agent_id, t.seq FROM top t JOIN futon_team_seqs s ON s.agent_id = t.agent_id AND s.daemon_id = $1
    UNION SELECT t.agent_id, t.seq FROM top t JOIN claimed c ON c.agent_id = t.agent_id
), raised AS (
    UPDATE futon_team_seqs s SET seq = greatest(s.seq, m.seq) FROM mine m
    WHERE s.agent_id = m.agent_id AND s.daemon_id = $1
    RETURNING s.agent_id
), written AS (
    INSERT INTO futon_team_replay (agent_id, seq, frame)
    SELECT r.agent_id, r.seq, r.frame::json FROM r JOIN mine m ON m.agent_id = r.agent_id
    WHERE r.seq > m.seq - $5
    ON CONFLICT (agent_id, seq) DO UPDATE SET frame = excluded.frame
    RETURNING 1
), trimmed AS (
    DELETE FROM futon_team_replay d USING mine m WHERE d.agent_id = m.agent_id AND d.seq <= m.seq - $5
    RETURNING 1
)
SELECT (SELECT count(*) FROM written), set_config('synchronous_commit', 'off', true)
"""


class TeamState:
    """The registry's and replay windows' team side (module doc). Made and
    driven by the team bus: :meth:`start`, :meth:`beat`, :meth:`close`."""

    def __init__(
        self, dsn: str, *, daemon_id: str, registry: AgentRegistry, password: str | None = None
    ) -> None:
        self.daemon_id = daemon_id
        self.registry = registry
        # Reads (handshakes, lookups) and the writer have a connection each,
        # so a handshake never queues behind a batch.
        self._read = PgConnection(dsn, password)
        self._write = PgConnection(dsn, password)
        self._pending: deque[tuple[str, dict[str, Any]]] = deque()
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()  # a batch, or a take renumbering an agent
        self._writer: asyncio.Task[None] | None = None
        self._down_until = 0.0
        self._writer_down = False  # the last batch failed: wait for the heartbeat
        self._closed = False
        # Runtime agents this daemon registered through the team or adopted
        # from it: only these follow the table (one registered on this
        # registry alone, as tests and embedders do, stays this daemon's).
        self._teamed: set[str] = set()
        # Ids and token digests the table had no row for, with when to look
        # again: a client repeating an unknown id or token (a retry loop, a
        # flood) costs one query per MISS_TTL_S, not one per attempt.
        self._misses: dict[str, float] = {}
        self.lookups = 0  # queries for an agent by id or token
        self.dropped = 0  # frames that overflowed the queue (local only)
        self.written = 0  # frames written to the table

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start keeping stamped pushes (the schema is made by the bus)."""
        self.registry.stamped = self._stamped
        self._writer = asyncio.ensure_future(self._write_loop())

    async def beat(self) -> None:
        """Heartbeat: retry a failed batch, and let go of runtime agents
        deregistered on another daemon (their connection here is closed)."""
        self._writer_down = False
        self._wake.set()
        adopted = [
            r.id for r in self.registry.all() if r.source == "runtime" and r.id in self._teamed
        ]
        if not adopted:
            return
        try:
            rows = await self._db(self._read, lambda c: c.fetch(STILL, adopted), probe=True)
        except StoreError as exc:
            log.warning("cannot check the team's runtime agents (%s)", exc)
            return
        still = {str(r["agent_id"]) for r in rows}
        for agent_id in adopted:
            if agent_id not in still:
                await self._forget(agent_id)

    async def close(self) -> None:
        """Write what is queued (within :data:`FLUSH_S`), then stop."""
        if self._closed:
            return
        self._closed = True
        self.registry.stamped = None
        self._writer_down = False
        self._wake.set()
        if self._writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), FLUSH_S)
            except (TimeoutError, Exception):
                self._writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._writer
        if self._pending:
            log.warning(
                "%d push(es) not written to the team's replay windows at close", len(self._pending)
            )
        await self._read.close()
        await self._write.close()

    # ------------------------------------------------------------- agents

    async def register(
        self,
        agent_id: str,
        agent_type: str,
        token: str | None = None,
        channels: list[str] | None = None,
    ) -> AgentRecord:
        """``POST /api/alpha/agents`` in a team: the id must be free here
        and in the table (``duplicate-registration``); ``store-unavailable``
        when the database cannot say."""
        if self.registry.find(agent_id) is not None:
            raise Conflict(
                f"agent {agent_id!r} is already registered", code="duplicate-registration"
            )
        spec = self.registry.runtime_spec(agent_id, agent_type, token, channels)
        row = await self._db(
            self._read,
            lambda c: c.fetchval(
                REGISTER, spec.id, spec.type, spec.token_sha256, spec.channels, self.daemon_id
            ),
        )
        if row is None:
            raise Conflict(
                f"agent {agent_id!r} is already registered in the team",
                code="duplicate-registration",
            )
        self._teamed.add(spec.id)
        self._misses.pop(f"id:{spec.id}", None)
        return self.registry.adopt(spec)

    async def deregistered(self, agent_id: str) -> None:
        """``DELETE /api/alpha/agents/{id}``: gone from the team (before the
        daemon drops it: ``store-unavailable`` leaves everything as it was)."""

        async def delete(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                for statement in DEREGISTER:
                    await conn.execute(statement, agent_id)

        await self._db(self._read, delete)
        self._teamed.discard(agent_id)
        self._pending = deque(item for item in self._pending if item[0] != agent_id)

    async def known(self, agent_id: str) -> AgentRecord | None:
        """The agent ``agent_id`` as the team knows it now: a config agent
        as configured; a runtime one adopted from (or refreshed by, or
        forgotten after) its row. The database unreachable: what this
        daemon knows."""
        record = self.registry.find(agent_id)
        if record is not None and (record.source == "config" or agent_id not in self._teamed):
            return record  # this daemon's own
        if record is None and self._missed(f"id:{agent_id}"):
            return None
        try:
            self.lookups += 1
            row = await self._db(self._read, lambda c: c.fetchrow(AGENT, agent_id))
        except StoreError as exc:
            log.warning(
                "cannot look %s up in the team (%s); using what this daemon knows", agent_id, exc
            )
            return record
        if row is None:
            if record is not None:
                await self._forget(agent_id)
            self._miss(f"id:{agent_id}")
            return None
        return self._adopt(row)

    async def by_token(self, token: str) -> AgentRecord | None:
        """A runtime agent of the team whose token this is (HTTP bearer
        tokens this daemon does not know); None when none is."""
        digest = token_digest(token)
        if self._missed(f"token:{digest}"):
            return None
        try:
            self.lookups += 1
            row = await self._db(self._read, lambda c: c.fetchrow(BY_TOKEN, digest))
        except StoreError as exc:
            log.warning("cannot look a token up in the team (%s)", exc)
            return None
        if row is None:
            self._miss(f"token:{digest}")
            return None
        record = self._adopt(row)
        # The record's own digest decides (a local agent of that id keeps its token).
        if record is None or not hmac.compare_digest(record.spec.token_sha256 or "", digest):
            return None
        return record

    def _missed(self, key: str) -> bool:
        """Whether the table had no row for ``key`` less than MISS_TTL_S ago."""
        until = self._misses.get(key)
        if until is None:
            return False
        if asyncio.get_running_loop().time() < until:
            return True
        del self._misses[key]
        return False

    def _miss(self, key: str) -> None:
        if len(self._misses) >= MISSES_MAX:
            del self._misses[next(iter(self._misses))]  # the oldest (dicts keep insertion order)
        self._misses.pop(key, None)
        self._misses[key] = asyncio.get_running_loop().time() + MISS_TTL_S

    def _adopt(self, row: asyncpg.Record) -> AgentRecord | None:
        try:
            spec = AgentSpec(
                id=str(row["agent_id"]), type=str(row["type"]), token_sha256=row["token_sha256"],
                channels=list(row["channels"]),
            )  # fmt: skip
        except ValueError as exc:  # a row this daemon cannot read is no agent of its
            log.warning("ignoring the team's agent %r: %s", row["agent_id"], exc)
            return None
        record = self.registry.find(spec.id)
        if record is None:
            log.info("adopting %s, registered on another daemon of the team", spec.id)
            self._teamed.add(spec.id)
            return self.registry.adopt(spec)
        if spec.id not in self._teamed:
            return record  # this daemon's own agent of that id
        if record.source == "runtime" and record.spec != spec:  # registered again elsewhere
            record.spec = spec
            self.registry.changed()
        return record

    async def _forget(self, agent_id: str) -> None:
        """A runtime agent deregistered elsewhere: gone here too."""
        record = self.registry.find(agent_id)
        self._teamed.discard(agent_id)
        if record is None or record.source != "runtime":
            return
        log.info("%s was deregistered in the team: dropping it here", agent_id)
        self.registry.deregister(agent_id)
        if record.link is not None:
            await record.link.close(DEREGISTERED, "deregistered")

    # ------------------------------------------------------------- replay windows

    async def take(self, record: AgentRecord) -> None:
        """``record`` connected here: this daemon numbers its pushes from
        now on, continuing the team's seq with the team's window (module
        doc). The database unreachable: the local window, logged."""
        before = record.seq  # pushes stamped while we wait are new here
        window = (
            record.replay.maxlen
            if record.replay.maxlen is not None
            else self.registry.replay_window
        )

        async def take(conn: asyncpg.Connection) -> tuple[int, str | None, Any]:
            row = await conn.fetchrow(TAKE, record.id, self.daemon_id, window)
            assert row is not None  # INSERT … ON CONFLICT DO UPDATE returns its row
            return int(row["seq"]), row["previous"], json.loads(row["frames"])

        try:  # bounded: a batch stuck on an unreachable database holds the lock
            async with asyncio.timeout(DB_TIMEOUT_S):
                await self._write_lock.acquire()
        except TimeoutError:
            log.warning(
                "%s keeps this daemon's replay window (the team's writer is stuck)", record.id
            )
            return
        try:  # no batch with the old numbering commits after the take
            try:
                seq, previous, rows = await self._db(self._read, take)
            except StoreError as exc:
                log.warning("%s keeps this daemon's replay window (%s)", record.id, exc)
                return
            team = [
                frame
                for frame in rows
                if isinstance(frame, dict) and isinstance(frame.get("seq"), int)
            ]
            local = list(record.replay)
            if previous is None or previous == self.daemon_id:
                # Nobody numbered it since this daemon did: its frames are the newest.
                merged = {int(f["seq"]): f for f in team} | {int(f["seq"]): f for f in local}
                record.seq = max(seq, record.seq)
                fresh: list[dict[str, Any]] = []
            else:
                # Another daemon numbered it since (or this one before a
                # restart): the team's window is the history; what was kept
                # here meanwhile and is not in it goes after it, renumbered.
                held = record.held_from
                in_team = {int(f["seq"]): f for f in team}
                kept = [
                    f for f in local if f["seq"] > before or (held is not None and f["seq"] >= held)
                ]
                known = [f["seq"] for f in kept if in_team.get(f["seq"]) == f]
                fresh = [
                    {**f, "seq": seq + n}
                    for n, f in enumerate((f for f in kept if in_team.get(f["seq"]) != f), 1)
                ]
                merged = in_team | {int(f["seq"]): f for f in fresh}
                record.seq = seq + len(fresh)
                # Delivered at connect: the held ones in the team's window, then the renumbered.
                if held is not None:
                    record.held_from = min(known) if known else (seq + 1 if fresh else None)
                self._pending = deque(item for item in self._pending if item[0] != record.id)
                self._pending.extend((record.id, f) for f in fresh)
                if fresh:
                    self._wake.set()
            record.replay.clear()
            record.replay.extend(merged[s] for s in sorted(merged))
        finally:
            self._write_lock.release()
        if previous is not None and previous != self.daemon_id:
            log.info(
                "%s: numbering taken over from daemon %s at seq %d", record.id, previous, record.seq
            )

    def seen(self, record: AgentRecord, since_seq: int) -> None:
        """``resume since_seq``: the agent saw pushes up to ``since_seq``,
        so this daemon never numbers one at or below it again (pushes its
        old daemon stamped that never reached the table)."""
        if since_seq > record.seq:
            log.info(
                "%s saw seq %d, above this daemon's %d: continuing from it",
                record.id,
                since_seq,
                record.seq,
            )
            record.seq = since_seq

    def _stamped(self, record: AgentRecord, frame: dict[str, Any]) -> None:
        """Registry hook, on every push: queue it; never waits."""
        if self._closed:
            return
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning(
                    "the team's replay queue is full: %d push(es) kept only locally", self.dropped
                )
        self._pending.append((record.id, frame))
        self._wake.set()

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and not self._writer_down:
                await self._write_batch()
            if self._closed:
                return

    async def _write_batch(self) -> None:
        async with self._write_lock:
            batch = [self._pending.popleft() for _ in range(min(BATCH_MAX, len(self._pending)))]
            if not batch:
                return
            # One row per (agent, seq): a seq given twice (an agent removed and
            # added again meanwhile) keeps its newest frame.
            rows = {(agent_id, int(frame["seq"])): frame for agent_id, frame in batch}
            agents = [agent_id for agent_id, _ in rows]
            seqs = [seq for _, seq in rows]
            texts = [json.dumps(frame, ensure_ascii=False, default=str) for frame in rows.values()]
            window = self.registry.replay_window

            async def write(conn: asyncpg.Connection) -> BaseException | None:
                try:
                    await conn.fetchrow(WRITE, self.daemon_id, agents, seqs, texts, window)
                except _BAD_BATCH as exc:  # the batch itself: retrying would fail forever
                    return exc
                return None

            try:
                bad = await self._db(self._write, write, probe=True)
            except StoreError as exc:
                # Back in front (bounded: the oldest go first), tried again at the heartbeat.
                room = max(MAX_PENDING - len(self._pending), 0)
                back = batch[-room:] if room else []
                self.dropped += len(batch) - len(back)
                self._pending.extendleft(reversed(back))
                self._writer_down = True
                log.warning("pushes not written to the team's replay windows (%s); kept locally, "
                            "retried at the next heartbeat", exc)  # fmt: skip
                return
            if bad is not None:
                self.dropped += len(batch)
                log.error("a batch of %d push(es) was refused by the team database (%s); "
                          "kept locally only", len(batch), bad)  # fmt: skip
                return
            self.written += len(batch)

    # ------------------------------------------------------------- plumbing

    async def _db(
        self,
        conn: PgConnection,
        work: Callable[[asyncpg.Connection], Awaitable[T]],
        *,
        probe: bool = False,
    ) -> T:
        """One bounded use of ``conn``; ``store-unavailable`` when the
        database cannot be reached — at once for :data:`DOWN_S` after a
        failure (``probe``: always try), so a handshake does not wait."""
        loop = asyncio.get_running_loop()
        if not probe and loop.time() < self._down_until:
            raise StoreError("the team database is unavailable (it failed a moment ago)")
        try:
            async with asyncio.timeout(DB_TIMEOUT_S), conn.use() as c:
                return await work(c)
        except _DB_ERRORS as exc:
            self._down_until = loop.time() + DOWN_S
            raise StoreError(
                f"the team database is unavailable: {exc or type(exc).__name__}"
            ) from None
