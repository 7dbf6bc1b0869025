"""The peripheral sessions of a team (issue 20): which daemon runs each
session, stop and interrupt across daemons, and the end of a dead daemon's
sessions. Built beside the team bus (:mod:`futon.social.team`) when
``evidence.backend`` is ``postgres``; with the JSONL store nothing here runs.

- **The table.** ``futon_team_sessions`` has one row per session of the
  team: ``session_id``, ``agent_id``, ``peripheral_id`` (the one it is in
  now), ``daemon_id``, ``started_at``, ``ended_at``, ``outcome`` (the stop
  reason). The runner tells :meth:`TeamSessions.changed` of every start, hop
  and end; the row is written off the session's path by one writer task
  (a bounded queue; many changes are one statement). The database down
  never fails a session: the change is logged and the heartbeat's repair
  (:meth:`TeamSessions.beat`) writes what this daemon's sessions are now.
- **Listings.** ``GET /api/alpha/sessions`` and ``GET /session/{id}`` on any
  daemon show each session's ``daemon``; a session running on another live
  daemon is ``active`` there (the shared evidence alone would make it look
  ``interrupted``: it has no conclusion yet); one a dead daemon left is
  ``interrupted`` with reason :data:`LOST`. ``GET /api/alpha/agents``
  gives an agent connected elsewhere the ``session_id`` and
  ``peripheral_id`` of its open session.
- **Stop and interrupt.** ``futon: stop AGENT`` (IRC) for an agent whose
  session runs on another daemon, and ``POST
  /api/alpha/sessions/{id}/interrupt`` for a session held elsewhere, are sent
  to that daemon as an ``interrupt`` mail; it makes every check (the
  approver, the session still active), interrupts, tells the agent, and
  answers. Bounded by :data:`INTERRUPT_TIMEOUT_S`; a daemon that does not
  answer, or whose heartbeat is dead, is ``agent-unreachable``.
- **A dead daemon's sessions.** Every heartbeat, a live daemon claims the
  unended rows of daemons whose heartbeat is older than the dead window
  (``UPDATE … WHERE ended_at IS NULL … RETURNING``: exactly one daemon
  gets each row) and records a ``conclusion`` with reason
  :data:`LOST` for each, replying to the session's last entry — so the
  session's story, its audit and its thread end there. A daemon that
  starts again does the same for what its previous life left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg

from futon.evidence.query import EvidenceQuery
from futon.evidence.store import EvidenceStore
from futon.peripherals.runner import PeripheralRunner
from futon.peripherals.session import Session
from futon.protocol import frames as f
from futon.protocol.errors import FutonError, PermissionDenied, StoreError
from futon.social import team_sql
from futon.social.approvals import Approvals
from futon.social.pipeline import Pipeline
from futon.social.registry import AgentRegistry
from futon.social.team import TeamBus

log = logging.getLogger("futon.team")

LOST = "daemon-lost"  # the outcome (and conclusion reason) of a dead daemon's session
QUEUE_MAX = 10_000  # session changes waiting to be written; beyond, the heartbeat repairs
BATCH = 500  # changes written per statement
INTERRUPT_TIMEOUT_S = 10.0  # an interrupt sent to the session's daemon is answered within this
FLUSH_S = 1.0  # at shutdown, the last changes are written within this
LOST_BATCH = 100  # a dead daemon's sessions ended per heartbeat (the rest at the next)

SCHEMA = """
CREATE TABLE IF NOT EXISTS futon_team_sessions (
    session_id    text PRIMARY KEY,
    agent_id      text NOT NULL,
    peripheral_id text NOT NULL,
    daemon_id     text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz,
    outcome       text
);
CREATE INDEX IF NOT EXISTS futon_team_sessions_open ON futon_team_sessions (daemon_id)
    WHERE ended_at IS NULL;
CREATE INDEX IF NOT EXISTS futon_team_sessions_agent ON futon_team_sessions (agent_id)
    WHERE ended_at IS NULL;
"""

# Sessions of this daemon ($1) as they are now: ($2 ids, $3 agents, $4
# peripherals, $5 outcomes, NULL while running). A row another daemon ended
# (daemon-lost) stays ended. Mail-like: no WAL flush waited for.
WRITE = """
INSERT INTO futon_team_sessions AS s (session_id, agent_id, peripheral_id, daemon_id, ended_at, outcome)
SELECT t.id, t.agent, t.peripheral, $1, CASE WHEN t.outcome IS NULL THEN NULL ELSE now() END, t.outcome
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS t(id, agent, peripheral, outcome)
ON CONFLICT (session_id) DO UPDATE SET
    peripheral_id = coalesce(nullif(excluded.peripheral_id, ''), s.peripheral_id),
    ended_at = CASE WHEN excluded.outcome IS NULL THEN NULL ELSE now() END,
    outcome = excluded.outcome
    WHERE s.daemon_id = $1 AND s.ended_at IS NULL
RETURNING set_config('synchronous_commit', 'off', true)
"""

# This daemon's ($1) unended rows, but for the sessions running here ($2).
OPEN_HERE = """
SELECT session_id FROM futon_team_sessions
WHERE daemon_id = $1 AND ended_at IS NULL AND NOT (session_id = ANY($2::text[]))
"""

_ALIVE = """EXISTS (SELECT 1 FROM futon_team_daemons d WHERE d.daemon_id = s.daemon_id
    AND d.heartbeat_at > now() - make_interval(secs => $2))"""

# Claim the unended sessions of dead daemons ($1 this daemon, $2 the dead
# window, $3 how many): each row is returned to one daemon only (a
# concurrent claim re-checks ended_at after the first commits).
CLAIM_LOST = f"""
UPDATE futon_team_sessions s SET ended_at = now(), outcome = '{LOST}'
WHERE s.session_id IN (
    SELECT s.session_id FROM futon_team_sessions s
    WHERE s.ended_at IS NULL AND s.daemon_id <> $1 AND NOT {_ALIVE}
    LIMIT $3 FOR UPDATE SKIP LOCKED
) AND s.ended_at IS NULL
RETURNING s.session_id, s.agent_id, s.peripheral_id, s.daemon_id
"""

# What a previous life of this daemon ($1) left open (at start).
CLAIM_MINE = f"""
UPDATE futon_team_sessions s SET ended_at = now(), outcome = '{LOST}'
WHERE s.daemon_id = $1 AND s.ended_at IS NULL
RETURNING s.session_id, s.agent_id, s.peripheral_id, s.daemon_id
"""

# A claim whose conclusion could not be recorded: open again (the next sweep retries).
UNCLAIM = f"UPDATE futon_team_sessions SET ended_at = NULL, outcome = NULL WHERE session_id = $1 AND outcome = '{LOST}'"

# Sessions $1 with their daemon, whether they are open, and whether that daemon is alive ($2).
ROWS = f"""
SELECT s.session_id, s.agent_id, s.peripheral_id, s.daemon_id, s.ended_at IS NULL AS open, {_ALIVE} AS alive
FROM futon_team_sessions s WHERE s.session_id = ANY($1::text[])
"""

# The daemons other than $3 running sessions of agent $1 ($2: the dead window).
AGENT_DAEMONS = f"""
SELECT DISTINCT s.daemon_id, {_ALIVE} AS alive FROM futon_team_sessions s
WHERE s.agent_id = $1 AND s.ended_at IS NULL AND s.daemon_id <> $3
"""

# The newest open session of each agent $1 on a live daemon ($2).
OPEN_OF = f"""
SELECT DISTINCT ON (s.agent_id) s.agent_id, s.session_id, s.peripheral_id, s.daemon_id
FROM futon_team_sessions s WHERE s.agent_id = ANY($1::text[]) AND s.ended_at IS NULL AND {_ALIVE}
ORDER BY s.agent_id, s.started_at DESC
"""


@dataclass(frozen=True)
class _Change:
    """A session as it is now (``outcome`` None: running)."""

    session_id: str
    agent_id: str
    peripheral_id: str
    outcome: str | None


@dataclass(frozen=True)
class Stopped:
    """What an interrupt sent to other daemons did: the agent's nick there
    and the sessions it interrupted (none: nothing was running)."""

    nick: str
    session_ids: list[str]


class TeamSessions:
    """One daemon's side of the team's sessions (module doc). Create after
    the bus has started, then :meth:`start`; the bus calls :meth:`beat`
    every heartbeat, :meth:`serve` for ``interrupt`` mail and :meth:`close`
    before it leaves."""

    def __init__(
        self,
        bus: TeamBus,
        runner: PeripheralRunner,
        store: EvidenceStore,
        registry: AgentRegistry,
        pipeline: Pipeline,
        approvals: Approvals | None,
    ) -> None:
        self.bus = bus
        self.runner = runner
        self.store = store
        self.registry = registry
        self.pipeline = pipeline
        self.approvals = approvals
        self._queue: asyncio.Queue[_Change | None] = asyncio.Queue(QUEUE_MAX)  # None: repair
        self._writer: asyncio.Task[None] | None = None
        self._repair = False  # a change was dropped (or not written): repair at the next beat

    @property
    def daemon_id(self) -> str:
        return self.bus.daemon_id

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Create the table if needed, end what a previous life of this
        daemon left open, and hear the runner's sessions."""

        async def prepare(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await conn.execute(team_sql.LOCK_SCHEMA, team_sql.SCHEMA_LOCK)
                await conn.execute(SCHEMA)

        await self.bus._db(prepare)
        await self._end_lost(CLAIM_MINE, self.daemon_id)
        self.runner.on_session = self.changed
        self._writer = asyncio.ensure_future(self._write_loop())
        self._queue.put_nowait(None)  # sessions started before (none, normally): written now

    async def close(self) -> None:
        """Write the last changes (within :data:`FLUSH_S`), then stop."""
        self.runner.on_session = None
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if not writer.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), FLUSH_S)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer

    def changed(self, session: Session) -> None:
        """Runner hook: ``session`` started, hopped or ended. Never raises:
        a change that does not fit the queue is written by the next repair."""
        outcome = None if session.status == "active" else (session.stop_reason or "stopped")
        try:
            self._queue.put_nowait(
                _Change(session.id, session.agent_id, session.peripheral.id, outcome)
            )
        except asyncio.QueueFull:
            self._repair = True

    async def beat(self) -> None:
        """One heartbeat: repair this daemon's rows if a write was lost, and
        end the sessions of dead daemons."""
        if self._repair:
            self._repair = False
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)
        await self._end_lost(CLAIM_LOST, self.daemon_id, self.bus.dead_after_s, LOST_BATCH)

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write_batch(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write_batch(self, batch: list[_Change | None]) -> None:
        try:
            await self._write([c for c in batch if c is not None])
            if None in batch:
                await self._repair_rows()
        except StoreError as exc:
            log.warning("team sessions not written (%s); the heartbeat repairs them", exc)
            self._repair = True
        except Exception:
            log.exception("writing team sessions failed; the heartbeat repairs them")
            self._repair = True

    async def _write(self, changes: list[_Change]) -> None:
        last = {c.session_id: c for c in changes}  # one row once per statement: its newest state
        if not last:
            return
        rows = list(last.values())
        await self.bus._db(
            lambda c: c.execute(
                WRITE, self.daemon_id, [r.session_id for r in rows], [r.agent_id for r in rows],
                [r.peripheral_id for r in rows], [r.outcome for r in rows],
            )
        )  # fmt: skip

    async def _repair_rows(self) -> None:
        """Write every session this daemon holds as it is now, and end its
        open rows for sessions it no longer runs. Runs in the writer task, so
        a change queued meanwhile is written after it (never undone by it)."""
        held = self.runner.sessions()
        # Stopping ones count as running: their end, with its reason, is queued.
        running = [s.id for s in held if s.status == "active"]
        await self._write(
            [_Change(s.id, s.agent_id, s.peripheral.id, None) for s in held if s.status == "active"]
        )
        stale = await self.bus._db(lambda c: c.fetch(OPEN_HERE, self.daemon_id, running))
        ended = []
        for row in stale:
            sid = str(row["session_id"])
            known = next((s for s in held if s.id == sid), None)
            reason = (known.stop_reason if known is not None else None) or "stopped"
            ended.append(
                _Change(
                    sid,
                    known.agent_id if known else "",
                    known.peripheral.id if known else "",
                    reason,
                )
            )
        await self._write(ended)

    # ------------------------------------------------------------- dead daemons

    async def _end_lost(self, claim: str, *args: Any) -> None:
        """Claim open sessions (``claim``) and record each one's end."""
        try:
            rows = await self.bus._db(lambda c: c.fetch(claim, *args))
        except StoreError as exc:
            log.warning(
                "cannot end a dead daemon's sessions now (%s); the next heartbeat tries", exc
            )
            return
        for row in rows:
            sid, agent, daemon = str(row["session_id"]), str(row["agent_id"]), str(row["daemon_id"])
            try:
                await self._conclude_lost(sid, agent, str(row["peripheral_id"]), daemon)
            except FutonError as exc:
                log.warning(
                    "the end of session %s (daemon %s lost) not recorded: %s", sid, daemon, exc
                )
                await self._unclaim(sid)

    async def _unclaim(self, session_id: str) -> None:
        """Open a claimed session again: its end was not recorded (the next sweep retries)."""
        with contextlib.suppress(StoreError):
            await self.bus._db(lambda c: c.execute(UNCLAIM, session_id))

    async def _conclude_lost(
        self, session_id: str, agent_id: str, peripheral_id: str, daemon: str
    ) -> None:
        """The conclusion the lost daemon could not write, replying to the
        session's last entry (its chain, its audit, its thread end here)."""
        mine = EvidenceQuery(
            session_id=session_id,
            tags=("peripheral",),
            subject_type="session",
            author=agent_id,
            limit=1,
        )
        newest = self.store.query(mine).entries
        if newest and newest[0].get("evidence/claim-type") == "conclusion":
            return  # it did end (its row's end was lost with its daemon): one conclusion only
        tags = newest[0].get("evidence/tags") if newest else None
        if isinstance(tags, list) and len(tags) > 1:
            peripheral_id = str(tags[1])  # where it was (a hop the row may not have heard of)
        entry: dict[str, Any] = {
            "evidence/subject": {"ref/type": "session", "ref/id": session_id},
            "evidence/type": "coordination",
            "evidence/claim-type": "conclusion",
            "evidence/author": agent_id,
            "evidence/session-id": session_id,
            "evidence/tags": ["peripheral", peripheral_id],
            "evidence/body": {
                "peripheral": peripheral_id, "reason": LOST, "fruit": {},
                "daemon": daemon, "recorded_by": self.daemon_id,
            },
        }  # fmt: skip
        if newest:
            entry["evidence/in-reply-to"] = newest[0]["evidence/id"]
        await self.store.append_own(entry)
        log.warning(
            "session %s of %s ended: its daemon %s is gone (%s)", session_id, agent_id, daemon, LOST
        )

    # ------------------------------------------------------------- listings

    async def annotate(self, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sessions as this daemon describes them (``SessionInfo.to_dict``),
        each with its ``daemon``; one running on another live daemon is
        ``active``. The database unreachable: the ones held here name this
        daemon, the others None."""
        here = {s.id for s in self.runner.sessions()}
        try:
            rows = await self.bus._db(
                lambda c: c.fetch(ROWS, [d["session_id"] for d in listed], self.bus.dead_after_s)
            )
        except StoreError as exc:
            log.warning("cannot read the team's sessions (%s); listing what this daemon knows", exc)
            rows = []
        found = {str(r["session_id"]): r for r in rows}
        out = []
        for item in listed:
            sid = item["session_id"]
            row = found.get(sid)
            daemon = (
                self.daemon_id
                if sid in here
                else (str(row["daemon_id"]) if row is not None else None)
            )
            shown = {**item, "daemon": daemon}
            running_there = row is not None and sid not in here and row["open"] and row["alive"]
            if running_there and item.get("state") == "interrupted" and item.get("reason") is None:
                shown.update(state="active", reason=None)  # running there: no conclusion yet
            elif item.get("reason") == LOST:
                shown["state"] = "interrupted"  # its daemon went away under it (history.py's word)
            out.append(shown)
        return out

    async def agents(self, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``GET /api/alpha/agents`` for the team (:meth:`TeamBus.agents`),
        with the open session of each agent connected to another daemon."""
        agents = await self.bus.agents(listed)
        elsewhere = [a["agent_id"] for a in agents if a.get("daemon") not in (None, self.daemon_id)]
        if not elsewhere:
            return agents
        try:
            rows = await self.bus._db(lambda c: c.fetch(OPEN_OF, elsewhere, self.bus.dead_after_s))
        except StoreError as exc:
            log.warning("cannot read the team's sessions (%s)", exc)
            return agents
        sessions = {str(r["agent_id"]): r for r in rows}
        for agent in agents:
            row = sessions.get(agent["agent_id"])
            if row is not None and agent.get("daemon") not in (None, self.daemon_id):
                agent.update(
                    session_id=str(row["session_id"]), peripheral_id=str(row["peripheral_id"])
                )
        return agents

    # ------------------------------------------------------------- interrupt (caller side)

    async def interrupt_session(self, session_id: str) -> dict[str, Any] | None:
        """``POST /api/alpha/sessions/{id}/interrupt`` (the admin) for a
        session another daemon runs: that daemon's answer (the stopped
        session with ``daemon``). None when no other daemon runs it (or
        the database cannot say): the local path answers."""
        try:
            rows = await self.bus._db(lambda c: c.fetch(ROWS, [session_id], self.bus.dead_after_s))
        except StoreError as exc:
            log.warning("cannot look session %s up in the team (%s)", session_id, exc)
            return None
        if not rows or not rows[0]["open"] or rows[0]["daemon_id"] == self.daemon_id:
            return None
        daemon = str(rows[0]["daemon_id"])
        if not rows[0]["alive"]:
            raise self._dead(daemon, f"session {session_id}")
        answer = await self._send(daemon, {"session_id": session_id, "by": "admin", "admin": True})
        stopped = answer["interrupted"]
        if not stopped:
            raise FutonError(f"session {session_id} has already ended", code="session-stopped")
        return {**stopped[0], "daemon": daemon}

    async def stop_agent(self, agent_id: str, by: str, account: str | None) -> Stopped | None:
        """``futon: stop AGENT`` by ``by`` (IRC nick; ``account`` its
        services account) for an agent whose sessions run on other daemons:
        each checks ``by`` is an approver and interrupts what is running
        there. None when no other daemon runs one (or the database cannot
        say): the local path answers."""
        try:
            rows = await self.bus._db(
                lambda c: c.fetch(AGENT_DAEMONS, agent_id, self.bus.dead_after_s, self.daemon_id)
            )
        except StoreError as exc:
            log.warning("cannot look the sessions of %s up in the team (%s)", agent_id, exc)
            return None
        if not rows:
            return None
        live = sorted(str(r["daemon_id"]) for r in rows if r["alive"])
        if not live:
            raise self._dead(str(rows[0]["daemon_id"]), f"the session of {agent_id}")
        nick, stopped = agent_id, []
        for daemon in live:
            answer = await self._send(daemon, {"agent_id": agent_id, "by": by, "account": account})
            nick = str(answer.get("nick") or nick)
            stopped += [str(s["session_id"]) for s in answer["interrupted"]]
        return Stopped(nick, stopped)

    async def _send(self, daemon: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self.bus._call(daemon, {"kind": "interrupt", **body}, INTERRUPT_TIMEOUT_S)
        interrupted = answer.get("interrupted")
        if not isinstance(interrupted, list) or not all(isinstance(s, dict) for s in interrupted):
            raise FutonError(f"daemon {daemon!r} sent an answer this daemon cannot read")
        return answer

    def _dead(self, daemon: str, what: str) -> FutonError:
        return FutonError(
            f"{what} runs on daemon {daemon!r}, which is not running (no heartbeat for "
            f"{self.bus.dead_after_s:g} s); it ends as {LOST} shortly",
            code="agent-unreachable", context={"daemon_id": daemon},
        )  # fmt: skip

    # ------------------------------------------------------------- interrupt (holder side)

    async def serve(self, body: dict[str, Any]) -> dict[str, Any]:
        """An ``interrupt`` mail from another daemon: every check is made
        here (the approver — unless the admin token asked —, the session
        still active). Answers ``interrupted`` (the stopped sessions) and
        the agent's ``nick``."""
        by = str(body["by"])
        account = body.get("account")
        if body.get("admin") is not True and (
            self.approvals is None
            or not self.approvals.is_approver(by, account if isinstance(account, str) else None)
        ):
            raise PermissionDenied("only approvers may stop an agent", code="not-an-approver")
        session_id = body.get("session_id")
        if isinstance(session_id, str):
            targets = [self.runner.get(session_id)]
            nick = targets[0].agent_id
        else:
            name = str(body["agent_id"])
            agent = self.registry.find(name) or self.registry.owner_of_nick(name)
            agent_id = agent.id if agent is not None else name
            nick = agent.nick if agent is not None else name
            targets = [s for s in self.runner.sessions(agent_id) if s.active]
        stopped = []
        for session in targets:
            try:
                done = await self.runner.interrupt(session.id)
            except FutonError:
                if isinstance(session_id, str):
                    raise  # the one asked for: session-stopped, said so
                continue  # ended meanwhile
            stopped.append({"session_id": done.session_id, "peripheral_id": done.peripheral_id,
                            "reason": done.reason, "fruit": done.fruit})  # fmt: skip
            await self._tell(session.agent_id, done.session_id, by)
        return {"interrupted": stopped, "nick": nick}

    async def _tell(self, agent_id: str, session_id: str, by: str) -> None:
        """Tell the agent its session was interrupted (it ends its turn)."""
        record = self.registry.find(agent_id)
        if record is None:
            return
        try:
            await self.pipeline.push(record, f.Interrupted(session_id=session_id, by=by))
        except (FutonError, ConnectionError) as exc:
            log.info("could not tell %s it was interrupted: %s", agent_id, exc)
