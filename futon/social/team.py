"""The team bus: several daemons sharing one PostgreSQL database act as one
team (issue 20). Built only when ``evidence.backend`` is ``postgres``; with
the JSONL store there is no bus and nothing here runs.

What it gives the daemon:

- **Presence.** When an agent connects here, its row in
  ``futon_team_presence`` names this daemon (:meth:`TeamBus.connected`,
  awaited by the WS handshake before ``ready_ack``); when it leaves, the
  row goes. Every :data:`HEARTBEAT_S` the daemon refreshes its rows; a row
  whose heartbeat is older than :data:`DEAD_AFTER_S` is a dead daemon's and
  counts as absent. A second connection for an agent, on any daemon of the
  team, supersedes the first — as on one daemon: the daemon holding the old
  one closes it with 4000 (``superseded``), and the agent is where its
  newest connection is. (Refusing the newer one instead would keep an agent
  whose daemon died off the team for a whole heartbeat window.) The
  heartbeat also repairs what a lost write left: it restores missing rows
  of its agents and takes back a dead daemon's, deletes rows of agents gone,
  and closes a connection here whose row a live daemon holds.
- **Silence.** A daemon that lets a call time out counts as dead to the
  caller until it is heard from again (or its rows are dead anyway): its
  agents are offline at once instead of every caller waiting.
- **Not routed:** ``irc_message`` pushes (every daemon's bot hears the IRC
  line and relays it to its own agents).
- **Runtime agents and replay windows** are the team's
  (:mod:`futon.social.team_state`, :attr:`TeamBus.state`): an agent
  registered on one daemon connects to any; the daemon an agent connects to
  continues its seq and replay window from the database, so it resumes
  there after a move.
- **Approvals.** Each approval a daemon opens is listed in
  ``futon_team_approvals`` (its id is unique in the team). A decision
  (HTTP, WS operator, IRC ``approve``) that reaches a daemon which does not
  hold the approval is sent to the one that does (:meth:`TeamBus.decide_elsewhere`),
  which makes every check there (approver, self-approval, expired,
  decided twice) and answers; ``GET /api/alpha/approvals`` lists the
  team's pending ones (:meth:`TeamBus.approvals_elsewhere`).
- **Sessions** are the team's (:mod:`futon.social.team_sessions`,
  :attr:`TeamBus.sessions`): each is a row of ``futon_team_sessions``;
  listings show each session's daemon; ``stop AGENT`` (IRC) and the HTTP
  interrupt of a session held elsewhere are ``interrupt`` mail served by
  :meth:`_serve` on the daemon that runs it (every check there); each
  heartbeat ends a dead daemon's sessions (``daemon-lost``, once).
- **One record per human IRC line.** Every daemon's bot hears a human's
  channel line; one daemon records it (:meth:`TeamBus.records_line`): the
  daemon of an agent the line names (the lowest such daemon id), so the
  addressed agent gets the line's ``evidence_id``; a line naming no
  connected agent is claimed in ``futon_team_irc_lines`` by the first
  daemon to hear it. The database unreachable: each records its own copy
  (a duplicate rather than a lost line).
- **Routing.** A coordination message (``POST /dispatch``, a WS
  ``message``, a whistle) for an agent connected to another live daemon
  runs there (:meth:`TeamBus.dispatch`): that daemon's pipeline pushes it,
  waits for the agent's ``reply`` and records the dispatch, and the
  receipt comes back — within the reply timeout plus :data:`CALL_MARGIN_S`,
  else ``agent-unreachable``. A push (chat line, approval request,
  interrupt) for such an agent is delivered there (:meth:`TeamBus.push`):
  the agent's own daemon numbers it in its seq and replay window. Frames
  travel as rows of ``futon_team_mail`` with a NOTIFY on the receiver's
  channel (measured on a throwaway cluster: 0.8 ms round trip, against 22
  ms when polling every 10 ms — and polling costs queries when idle); a
  dispatch or an answer that fits a NOTIFY payload (:data:`NOTIFY_MAX_BYTES`)
  rides on the notification alone — no row to write and take (taking it
  was one of the four database round trips a cross-daemon dispatch added). What
  that trades: a notification lost with the receiver's listening connection
  is lost (a row would be taken at its next heartbeat), so that call ends
  ``agent-unreachable`` at its timeout; and anyone who can connect to the
  database can NOTIFY, where writing the mail table needs its privilege —
  which changes little, since whoever can connect can already LISTEN to a
  daemon's channel and answer its calls, and a dispatch that way is only
  ever a coordination message without the admin's rights (:meth:`_serve`).
  Pushes, approval decisions and supersedes always go through the table.
  Mail rows commit asynchronously (team_sql.py's doc: mail is not evidence).

Every wait is bounded: calls in flight (:data:`MAX_CALLS`), frames being
handled for other daemons (:data:`MAX_HANDLING`), mail taken per round
(:data:`TAKE_LIMIT`), unclaimed mail (:data:`MAIL_TTL_S`), each database
statement (:data:`DB_TIMEOUT_S`). The database unreachable is never an
exception for a caller that could go on alone: presence writes are logged
and retried by the next heartbeat, and :meth:`TeamBus.owner` answers
"not elsewhere", so the daemon serves its own agents as a single daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import asyncpg

from futon.evidence.pg_conn import CONNECT_TIMEOUT_S, PgConnection
from futon.protocol.errors import FutonError, ProtocolError, StoreError
from futon.protocol.irc_lines import irc_lower
from futon.social import team_sql as sql
from futon.social import team_state
from futon.social.approvals import Approvals
from futon.social.pipeline import Inbound, Pipeline, Receipt, classify
from futon.social.registry import AgentRecord, AgentRegistry

log = logging.getLogger("futon.team")

T = TypeVar("T")

HEARTBEAT_S = 5.0  # presence rows refreshed this often
DEAD_AFTER_S = 15.0  # a row older than this is a dead daemon's: the agent is offline
CALL_MARGIN_S = 5.0  # a forwarded dispatch may take its reply timeout plus this
PUSH_TIMEOUT_S = 2.0  # a push handed to another daemon is answered within this
DB_TIMEOUT_S = 5.0  # one statement of the bus
NOTIFY_MAX_BYTES = 7900  # PostgreSQL's NOTIFY payload limit is 8000 bytes
BUS_CONNECTIONS = 3  # database connections of the bus (besides the listening one)
DOWN_S = 1.0  # after a failed statement, the database counts as down this long
MAX_CALLS = 1000  # calls this daemon waits on at once
MAX_HANDLING = 1000  # frames from other daemons handled at once
TAKE_LIMIT = 500  # mail rows taken per statement
MAIL_TTL_S = 600.0  # mail nobody took (its daemon died) is dropped after this
DECIDE_TIMEOUT_S = 10.0  # an approval decision sent to its daemon is answered within this
LINE_WINDOW_S = 30.0  # the same human line heard by several bots within this is one line
MAX_LINE_KEYS = 10_000  # recent lines remembered to number repeats (bounded)
NOTIFIED = ("dispatch", "answer")  # the kinds a notification may carry itself (module doc)
SUPERSEDED = 4000  # the WS close code of a connection taken over (transports/ws.py)
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class Sessions(Protocol):
    """What the bus needs of the team's sessions (team_sessions.py, which
    imports this module): answer an ``interrupt`` mail, sweep at each
    heartbeat, write the last changes before the bus closes."""

    async def serve(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def beat(self) -> None: ...

    async def close(self) -> None: ...


class TeamBus:
    """One daemon's side of the team bus (module doc). Create, then
    :meth:`start`; :meth:`close` at shutdown. Runs on the daemon's loop."""

    def __init__(
        self,
        dsn: str,
        *,
        daemon_id: str,
        registry: AgentRegistry,
        pipeline: Pipeline,
        password: str | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        dead_after_s: float = DEAD_AFTER_S,
    ) -> None:
        if not 0 < heartbeat_s < dead_after_s:
            raise ValueError("need 0 < heartbeat_s < dead_after_s")
        self.dsn = dsn
        self.daemon_id = daemon_id
        self.registry = registry
        self.pipeline = pipeline
        self.heartbeat_s = heartbeat_s
        self.dead_after_s = dead_after_s
        self.channel = sql.channel(daemon_id)
        self._password = password
        # A few connections, each used by one statement at a time, so concurrent
        # calls do not queue every statement behind one. bench/team_dispatch.py on a
        # loaded 2-core box could not separate 3 from 1 (10 clients: 1.3-2.4× vs
        # 1.8-1.9× same-daemon p50): re-measure on a quiet machine.
        self._sql = [PgConnection(dsn, password) for _ in range(BUS_CONNECTIONS)]
        self._busy = [0] * BUS_CONNECTIONS
        self._listen: asyncpg.Connection | None = None
        self._presence_lock = asyncio.Lock()
        # Agents whose handshake here is writing their row (count per agent):
        # the heartbeat must not take their old row for a newer connection.
        self._connecting: dict[str, int] = {}
        self._calls: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # handling, presence writes, drains
        self._handling = 0
        self._draining = False
        self._drain_again = False
        self._beat: asyncio.Task[None] | None = None
        self._closed = False
        self._down_until = 0.0  # loop time before which the database counts as down
        # Daemons that let a call time out → loop time until which their
        # agents count as offline here (cleared by any mail from them).
        self._silent: dict[str, float] = {}
        # Set by the daemon: where approval decisions from other daemons go.
        self.approvals: Approvals | None = None
        # Set by the daemon: the team's sessions (their rows, interrupts sent here).
        self.sessions: Sessions | None = None
        # Recent human IRC lines heard here → when: the n-th repeat of a line
        # in the window has its own key, so a human who says "yes" twice is
        # recorded twice, and each of the N bots' copies once.
        self._lines: OrderedDict[str, deque[float]] = OrderedDict()
        # Set by the daemon: the nicks of this daemon's IRC bots (configured
        # and current). The other daemons' (read every heartbeat) are not
        # humans: what they say is an agent's line, recorded by its daemon.
        self.bot_nicks: Callable[[], list[str]] = list
        self._team_bots: set[str] = set()
        # The team's runtime agents and replay windows (team_state.py).
        self.state = team_state.TeamState(
            dsn, daemon_id=daemon_id, registry=registry, password=password
        )

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Create the tables if needed, forget what a previous life of this
        daemon left, listen, and start the heartbeat. ``store-unavailable``
        when the database cannot be reached."""

        async def prepare(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await conn.execute(sql.LOCK_SCHEMA, sql.SCHEMA_LOCK)
                await conn.execute(sql.SCHEMA)
                await conn.execute(team_state.SCHEMA)
            for statement in sql.RESET:
                await conn.execute(statement, self.daemon_id)
            await conn.execute(team_state.RELEASE, self.daemon_id)
            await conn.execute(sql.ALIVE, self.daemon_id, self.bot_nicks())
            self._team_bots = {irc_lower(str(r[0])) for r in await conn.fetch(sql.TEAM_BOTS, self.daemon_id, self.dead_after_s)}

        await self._db(prepare, CONNECT_TIMEOUT_S + DB_TIMEOUT_S)
        try:
            await self._relisten()
        except _DB_ERRORS as exc:
            raise StoreError(f"the team database is unavailable: {exc}") from None
        self.registry.on_presence(self._presence)
        self.state.start()
        self._beat = asyncio.ensure_future(self._heartbeat_loop())

    async def close(self) -> None:
        """Stop: calls in flight fail (``agent-unreachable``), this daemon's
        presence rows go (its agents may connect elsewhere at once)."""
        if self._closed:
            return
        self._closed = True
        await self.state.close()  # its last batch of replay rows first
        if self.sessions is not None:  # the sessions' last ends too
            await self.sessions.close()
        for task in [t for t in (self._beat, *self._tasks) if t is not None]:
            task.cancel()
        for task in [t for t in (self._beat, *self._tasks) if t is not None]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._fail_calls("this daemon is stopping")
        self._down_until = 0.0  # one last try, whatever failed before
        with contextlib.suppress(StoreError):
            await self._db(lambda c: c.execute(sql.RESET[0], self.daemon_id))
            await self._db(lambda c: c.execute(sql.GONE, self.daemon_id))
        listen, self._listen = self._listen, None
        if listen is not None and not listen.is_closed():
            try:
                await asyncio.wait_for(listen.close(), 2)
            except (*_DB_ERRORS, asyncio.CancelledError):
                listen.terminate()
        for conn in self._sql:
            await conn.close()

    # ------------------------------------------------------------- presence

    async def connected(self, record: AgentRecord) -> None:
        """``record`` connected here: its row names this daemon from now on;
        the daemon that held it before (if alive) closes its connection."""
        if self._closed:
            return
        self._connecting[record.id] = self._connecting.get(record.id, 0) + 1
        try:
            async with self._presence_lock:
                if record.link is None:
                    return  # gone again before we got here
                try:
                    previous = await self._db(
                        lambda c: c.fetchval(sql.CONNECT, record.id, self.daemon_id)
                    )
                except StoreError as exc:
                    log.warning("presence of %s not written (%s); the heartbeat retries", record.id, exc)
                    return
        finally:
            left = self._connecting.pop(record.id) - 1
            if left:
                self._connecting[record.id] = left
        if isinstance(previous, str) and previous != self.daemon_id:
            log.info("%s moved here from daemon %s", record.id, previous)
            with contextlib.suppress(StoreError):
                await self._send(previous, {"kind": "supersede", "agent_id": record.id})

    def _presence(self, record: AgentRecord) -> None:
        """Registry callback: an agent's last connection here went."""
        if not record.connected and not self._closed:
            self._spawn(self._left(record))

    async def _left(self, record: AgentRecord) -> None:
        async with self._presence_lock:
            if record.link is not None or self._closed:
                return  # back already: its row stays
            try:
                await self._db(lambda c: c.execute(sql.DISCONNECT, record.id, self.daemon_id))
            except StoreError as exc:
                log.warning("presence of %s not removed (%s); the heartbeat does", record.id, exc)

    async def known(self, agent_id: str) -> None:
        """Make sure this daemon knows ``agent_id`` if the team does (a
        runtime agent registered on another daemon: team_state.py)."""
        await self.state.known(agent_id)

    async def owner(self, agent_id: str) -> str | None:
        """The other live daemon ``agent_id`` is connected to now; None when
        it is here, nowhere, or the database cannot say (the local path
        applies: the agent counts as offline)."""
        try:
            found = await self._db(lambda c: c.fetchval(sql.OWNER, agent_id, self.dead_after_s))
        except StoreError as exc:
            log.warning("cannot look %s up in the team (%s); treating it as local", agent_id, exc)
            return None
        if not isinstance(found, str) or found == self.daemon_id:
            return None
        if self._silent.get(found, 0.0) > asyncio.get_running_loop().time():
            return None  # it stopped answering: its agents are offline, at once
        return found

    async def live(self) -> list[dict[str, Any]]:
        """Every agent connected anywhere in the team (rows of live daemons)."""
        rows = await self._db(lambda c: c.fetch(sql.LIVE, self.dead_after_s))
        return [
            {"agent_id": r["agent_id"], "daemon_id": r["daemon_id"],
             "connected_at": r["connected_at"].isoformat(), "heartbeat_at": r["heartbeat_at"].isoformat()}
            for r in rows
        ]  # fmt: skip

    async def agents(self, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``GET /api/alpha/agents`` for the team: this daemon's registry
        (``listed``, each agent's describe()) with ``daemon``, the daemon it
        is connected to (None: offline everywhere), and ``connected`` true
        wherever that is; agents connected to another daemon that this
        registry does not know are added. The database unreachable: only
        what this daemon knows (its own agents with its id)."""
        try:
            live = {row["agent_id"]: row for row in await self.live()}
        except StoreError as exc:
            log.warning("cannot read the team's presence (%s); listing this daemon's agents", exc)
            live = {}
        out = []
        for agent in listed:
            row = live.pop(agent["agent_id"], None)
            if agent.get("connected"):
                out.append({**agent, "daemon": self.daemon_id})
            elif row is not None:
                out.append({**agent, "connected": True, "daemon": row["daemon_id"],
                            "connected_at": row["connected_at"], "heartbeat_at": row["heartbeat_at"]})  # fmt: skip
            else:
                out.append({**agent, "daemon": None})
        for row in live.values():  # registered at run time on another daemon
            out.append({"agent_id": row["agent_id"], "type": None, "connected": True, "transport": None,
                        "last_active": None, "session_id": None, "peripheral_id": None,
                        "daemon": row["daemon_id"], "connected_at": row["connected_at"],
                        "heartbeat_at": row["heartbeat_at"]})  # fmt: skip
        return out

    async def beat(self) -> None:
        """One heartbeat: refresh (or restore) this daemon's rows, drop rows
        of agents it no longer holds and stale mail, re-listen if the
        listening connection was lost, and sweep the mailbox."""
        self._down_until = 0.0  # the heartbeat is the probe: it always tries
        try:
            async with self._presence_lock:
                # Read under the lock: an agent connecting meanwhile writes its row after.
                here = [r.id for r in self.registry.all() if r.connected]
                await self._db(lambda c: c.execute(sql.ALIVE, self.daemon_id, self.bot_nicks()))
                bots = await self._db(lambda c: c.fetch(sql.TEAM_BOTS, self.daemon_id, self.dead_after_s))
                self._team_bots = {irc_lower(str(r[0])) for r in bots}
                await self._db(lambda c: c.execute(sql.HEARTBEAT, self.daemon_id, here, self.dead_after_s))
                await self._db(lambda c: c.execute(sql.FORGET, self.daemon_id, here))
                taken = await self._db(lambda c: c.fetch(sql.TAKEN, self.daemon_id, here, self.dead_after_s))
                for row in taken:  # the newest connection wins, as on one daemon
                    if row["agent_id"] not in self._connecting:  # not one taking its row over now
                        self._supersede(str(row["agent_id"]), str(row["daemon_id"]))
            await self._db(lambda c: c.execute(sql.EXPIRE, MAIL_TTL_S))
            await self._db(lambda c: c.execute(sql.EXPIRE_APPROVALS, sql.KEEP_APPROVALS_S, self.dead_after_s))
            await self._db(lambda c: c.execute(sql.EXPIRE_LINES, 2 * LINE_WINDOW_S))
        except StoreError as exc:
            log.warning("team heartbeat failed: %s", exc)
        if self.sessions is not None:  # a dead daemon's sessions end (team_sessions.py)
            await self.sessions.beat()
        await self.state.beat()  # replay rows left by a failed batch; agents deregistered elsewhere
        if self._listen is None or self._listen.is_closed():
            try:
                await self._relisten()
            except _DB_ERRORS as exc:
                log.warning("cannot listen for the team (%s); retrying at the next heartbeat", exc)
                return
        self._kick()  # a notification lost with a connection is late, never lost

    async def _heartbeat_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.heartbeat_s)
            await self.beat()

    # ------------------------------------------------------------- approvals

    async def approval_opened(self, approval_id: str, shape: dict[str, Any], expires_in_s: float) -> bool:
        """List a new approval of this daemon; False when another approval of
        the team holds ``approval_id`` (the caller picks another). The
        database unreachable: True (the approval is only decidable here)."""
        text = json.dumps(shape, ensure_ascii=False, default=str)
        try:
            row = await self._db(
                lambda c: c.fetchval(sql.OPEN_APPROVAL, approval_id, self.daemon_id, text, expires_in_s)
            )
        except StoreError as exc:
            log.warning("approval %s not listed for the team (%s)", approval_id, exc)
            return True
        return row is not None

    async def approval_described(self, approval_id: str, shape: dict[str, Any]) -> None:
        """Approval ``approval_id`` of this daemon has a new public shape
        (its request recorded: ``evidence_id``)."""
        text = json.dumps(shape, ensure_ascii=False, default=str)
        try:
            await self._db(lambda c: c.execute(sql.DESCRIBE_APPROVAL, approval_id, self.daemon_id, text))
        except StoreError as exc:
            log.warning("approval %s not described for the team (%s)", approval_id, exc)

    async def approval_closed(self, approval_id: str, outcome: str) -> None:
        """Approval ``approval_id`` of this daemon finished with ``outcome``."""
        try:
            await self._db(lambda c: c.execute(sql.CLOSE_APPROVAL, approval_id, self.daemon_id, outcome))
        except StoreError as exc:
            log.warning("approval %s not closed for the team (%s)", approval_id, exc)

    async def approval_daemon(self, approval_id: str) -> str | None:
        """The other live daemon that opened ``approval_id``; None when it is
        this one, none, a dead one, or the database cannot say."""
        try:
            found = await self._db(lambda c: c.fetchval(sql.APPROVAL_DAEMON, approval_id, self.dead_after_s))
        except StoreError as exc:
            log.warning("cannot look approval %s up in the team (%s)", approval_id, exc)
            return None
        return found if isinstance(found, str) and found != self.daemon_id else None

    async def decide_elsewhere(self, daemon_id: str, approval_id: str, decision: dict[str, Any]) -> dict[str, Any]:
        """Decide ``approval_id`` on ``daemon_id`` (its checks, its record);
        its answer (the approval's shape with ``outcome``) or its typed error."""
        answer = await self._call(
            daemon_id, {"kind": "approval", "approval_id": approval_id, "decision": decision}, DECIDE_TIMEOUT_S
        )
        decided = answer.get("decided")
        if not isinstance(decided, dict):
            raise FutonError(f"daemon {daemon_id!r} sent a decision this daemon cannot read")
        return decided

    async def approvals_elsewhere(self) -> list[dict[str, Any]]:
        """Pending approvals of the other live daemons (their public shape
        with ``daemon``); empty when the database cannot say."""
        try:
            rows = await self._db(lambda c: c.fetch(sql.APPROVALS_ELSEWHERE, self.daemon_id, self.dead_after_s))
        except StoreError as exc:
            log.warning("cannot list the team's approvals (%s)", exc)
            return []
        listed = []
        for row in rows:
            shape = json.loads(row["shape"])
            if isinstance(shape, dict):
                shape.update(expires_in_s=round(float(row["expires_in_s"]), 1), daemon=str(row["daemon_id"]))
                listed.append(shape)
        return listed

    # ------------------------------------------------------------- IRC lines

    def is_team_bot(self, nick: str) -> bool:
        """``nick`` is another daemon's IRC bot (as of the last heartbeat)."""
        return irc_lower(nick) in self._team_bots

    async def records_line(self, network: str, sender: str, target: str, text: str, named: list[str]) -> bool:
        """Whether this daemon records a human's channel line that every
        daemon's bot hears (module doc): ``named`` are the agents it
        addresses. True when the database cannot say."""
        now = asyncio.get_running_loop().time()
        line = "\x00".join((network, irc_lower(target), irc_lower(sender), text))
        heard = self._lines.pop(line, None) or deque()
        while heard and heard[0] < now - LINE_WINDOW_S:
            heard.popleft()
        heard.append(now)
        self._lines[line] = heard  # newest last: the oldest go first when full
        while len(self._lines) > MAX_LINE_KEYS:
            self._lines.popitem(last=False)
        key = hashlib.sha256(f"{line}\x00{len(heard)}".encode()).hexdigest()
        try:
            if named:
                rows = await self._db(lambda c: c.fetch(sql.OWNERS, named, self.dead_after_s))
                daemons = sorted(str(r["daemon_id"]) for r in rows)
                if daemons:
                    return daemons[0] == self.daemon_id
            row = await self._db(lambda c: c.fetchval(sql.CLAIM_LINE, key, self.daemon_id, LINE_WINDOW_S))
        except StoreError as exc:
            log.warning("cannot agree on who records an IRC line (%s); recording it here", exc)
            return True
        return row is not None

    # ------------------------------------------------------------- routing (caller side)

    async def dispatch(self, daemon_id: str, inbound: Inbound, timeout_s: float) -> Receipt:
        """Run a coordination message on ``daemon_id`` (where its target is
        connected); its receipt, or the typed error it failed with there."""
        fields = dataclasses.asdict(inbound)
        fields.pop("forwarded", None)
        answer = await self._call(
            daemon_id,
            {"kind": "dispatch", "inbound": fields, "timeout_s": timeout_s},
            timeout_s + CALL_MARGIN_S,
        )
        saved = answer.get("receipt")
        names = {f.name for f in dataclasses.fields(Receipt)}
        if not isinstance(saved, dict) or not names >= set(saved):
            raise FutonError(f"daemon {daemon_id!r} sent a receipt this daemon cannot read")
        receipt = Receipt(**saved)
        receipt.extras = {**receipt.extras, "daemon_id": daemon_id}
        return receipt

    async def push(self, daemon_id: str, agent_id: str, fields: dict[str, Any]) -> bool:
        """Deliver a push (unstamped ``fields``) through ``daemon_id``;
        whether it went out to the agent there."""
        answer = await self._call(
            daemon_id, {"kind": "push", "agent_id": agent_id, "fields": fields}, PUSH_TIMEOUT_S
        )
        return answer.get("delivered") is True

    async def _call(self, daemon_id: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send ``body`` to ``daemon_id`` and wait for its answer (a dispatch
        that fits rides on the NOTIFY alone; anything else is a mail row)."""
        if self._closed:
            raise FutonError("this daemon is stopping", code="agent-unreachable")
        if len(self._calls) >= MAX_CALLS:
            raise FutonError(
                f"{MAX_CALLS} calls to other daemons are already in flight; try again",
                code="rate-limited",
            )
        call = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[call] = future
        unreachable = {"daemon_id": daemon_id}
        try:
            try:
                await self._send(daemon_id, {**body, "call": call}, alone=body.get("kind") == "dispatch")
            except StoreError as exc:
                raise FutonError(
                    f"cannot reach daemon {daemon_id!r}: {exc.message}",
                    code="agent-unreachable", context=unreachable,
                ) from None  # fmt: skip
            try:
                answer = await asyncio.wait_for(asyncio.shield(future), timeout_s)
            except TimeoutError:
                self._mark_silent(daemon_id)
                raise FutonError(
                    f"daemon {daemon_id!r} did not answer within {timeout_s:g} s",
                    code="agent-unreachable", context=unreachable,
                ) from None  # fmt: skip
        finally:
            self._calls.pop(call, None)
        error = answer.get("error")
        if isinstance(error, dict):
            context = error.get("context")
            raise FutonError(
                str(error.get("message", "failed on another daemon")),
                code=str(error.get("code", "internal-error")),
                context=context if isinstance(context, dict) else None,
            )
        return answer

    def _mark_silent(self, daemon_id: str) -> None:
        """``daemon_id`` did not answer: until its presence would be dead
        anyway (or it sends anything), its agents count as offline here —
        callers get ``agent-unreachable`` at once instead of each waiting."""
        now = asyncio.get_running_loop().time()
        self._silent = {d: t for d, t in self._silent.items() if t > now}  # bounded: live entries only
        self._silent[daemon_id] = now + self.dead_after_s

    def _fail_calls(self, why: str) -> None:
        calls, self._calls = self._calls, {}
        for future in calls.values():
            if not future.done():
                future.set_exception(FutonError(why, code="agent-unreachable"))
                future.exception()  # retrieved: its waiter may be gone

    # ------------------------------------------------------------- routing (receiver side)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith("{"):  # a dispatch or an answer carried by the notification itself
            try:
                body = json.loads(payload)
            except ValueError:
                body = None
            # Only these travel so (module doc); anything else only wakes the mailbox.
            if isinstance(body, dict) and body.get("kind") in NOTIFIED and isinstance(body.get("from"), str):
                self._handle_body(body["from"], body)
                return
        self._kick()

    def _kick(self) -> None:
        """Take this daemon's mail now (or once more, if a round runs)."""
        if self._closed:
            return
        if self._draining:
            self._drain_again = True
            return
        self._draining = True
        self._spawn(self._drain())

    async def _drain(self) -> None:
        try:
            while True:
                self._drain_again = False
                rows = await self._db(lambda c: c.fetch(sql.TAKE, self.daemon_id, TAKE_LIMIT))
                for row in sorted(rows, key=lambda r: int(r["id"])):
                    self._handle(str(row["from_daemon"]), row["body"])
                if not self._drain_again and len(rows) < TAKE_LIMIT:
                    return
        except StoreError as exc:
            log.warning("cannot take team mail (%s); the heartbeat retries", exc)
        finally:
            self._draining = False

    def _handle(self, sender: str, text: str) -> None:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        self._handle_body(sender, body)

    def _handle_body(self, sender: str, body: Any) -> None:
        self._silent.pop(sender, None)  # it speaks: it is alive
        try:
            kind = body["kind"]
        except (TypeError, KeyError, IndexError):
            log.warning("unreadable team mail from %s dropped", sender)
            return
        if kind == "answer":
            future = self._calls.get(str(body.get("call")))
            if future is not None and not future.done():
                future.set_result(body)
        elif kind == "supersede":
            self._supersede(str(body.get("agent_id")), sender)
        elif kind in ("dispatch", "push", "approval", "interrupt"):
            if self._handling >= MAX_HANDLING:
                busy = {"code": "rate-limited", "message": "the agent's daemon is busy; try again"}
                self._spawn(self._answer(sender, body, {"error": busy}))
                return
            self._handling += 1
            self._spawn(self._serve(sender, kind, body))
        else:
            log.warning("team mail of unknown kind %r from %s dropped", kind, sender)

    def _supersede(self, agent_id: str, by: str) -> None:
        """Close this daemon's connection of ``agent_id``: it connected on ``by``."""
        record = self.registry.find(agent_id)
        link = record.link if record is not None else None
        if link is not None:
            log.info("%s connected on daemon %s: closing its connection here", agent_id, by)
            self._spawn(link.close(SUPERSEDED, f"superseded by a connection on daemon {by}"))

    async def _serve(self, sender: str, kind: str, body: dict[str, Any]) -> None:
        answer: dict[str, Any]
        try:
            if kind == "dispatch":
                # Only what TeamBus.dispatch sends: a coordination message,
                # never an action, never with the admin's rights — whoever
                # else can write the mail table gets no more than that.
                fields = {**body["inbound"], "admin": False, "forwarded": True}
                inbound = Inbound(**fields)
                if classify(inbound.payload) != "coordination":
                    raise ProtocolError(
                        "only coordination messages are routed between daemons", code="invalid-message"
                    )
                receipt = await self.pipeline.dispatch(
                    inbound, reply_timeout_s=float(body["timeout_s"])
                )
                answer = {"receipt": dataclasses.asdict(receipt)}
            elif kind == "approval":
                answer = {"decided": await self._decide_here(body)}
            elif kind == "interrupt":  # checked and done here (team_sessions.py)
                if self.sessions is None:
                    raise FutonError("sessions are not shared on this daemon", code="agent-unreachable")
                answer = await self.sessions.serve(body)
            else:
                record = self.registry.find(str(body["agent_id"]))
                push = body["fields"]
                if not isinstance(push, dict):
                    raise TypeError("fields must be an object")
                delivered = record is not None and await self.pipeline.deliver(record, push)
                answer = {"delivered": delivered}
        except FutonError as exc:
            answer = {"error": {"code": exc.code, "message": exc.message, "context": exc.context}}
        except (KeyError, TypeError, ValueError) as exc:
            message = f"unreadable {kind} from daemon {sender}: {exc}"
            answer = {"error": {"code": "invalid-message", "message": message}}
        except Exception:
            log.exception("handling a %s from daemon %s failed", kind, sender)
            answer = {"error": {"code": "internal-error", "message": "internal error; it was logged"}}
        finally:
            self._handling -= 1
        await self._answer(sender, body, answer)

    async def _decide_here(self, body: dict[str, Any]) -> dict[str, Any]:
        """A decision another daemon received for an approval of this one:
        every check is made here, by :meth:`Approvals.decide`."""
        if self.approvals is None:
            raise FutonError("approvals are not available on this daemon")
        d = body["decision"]
        if not isinstance(d, dict):
            raise TypeError("decision must be an object")
        account, agent = d.get("account"), d.get("agent")
        return await self.approvals.decide(
            str(body["approval_id"]), str(d["decision"]), str(d["by"]), str(d.get("reason", "")),
            admin=d.get("admin") is True, account=account if isinstance(account, str) else None,
            agent=agent if isinstance(agent, str) else None, here_only=True,
        )  # fmt: skip

    async def _answer(self, sender: str, body: dict[str, Any], answer: dict[str, Any]) -> None:
        reply = {"kind": "answer", "call": body.get("call"), **answer}
        try:
            await self._send(sender, reply, alone=True)
        except StoreError as exc:
            log.warning("cannot answer daemon %s (%s); it will time out", sender, exc)

    # ------------------------------------------------------------- plumbing

    async def _send(self, daemon_id: str, body: dict[str, Any], *, alone: bool = False) -> None:
        """Mail ``body`` to ``daemon_id``. ``alone`` (a dispatch or an answer):
        when it fits a NOTIFY payload it is the notification itself — no row to
        write and take; if the receiver's listening connection drops just then
        it is lost and the call ends agent-unreachable at its timeout (a row
        would have been read at the receiver's next heartbeat): rare, typed."""
        text = json.dumps({**body, "from": self.daemon_id}, ensure_ascii=False, default=str)
        channel = sql.channel(daemon_id)
        if alone and len(text.encode("utf-8")) <= NOTIFY_MAX_BYTES:
            await self._db(lambda c: c.execute(sql.NOTIFY, channel, text))
        else:
            await self._db(lambda c: c.execute(sql.SEND, daemon_id, self.daemon_id, text, channel))

    async def _relisten(self) -> None:
        old, self._listen = self._listen, None
        if old is not None and not old.is_closed():
            old.terminate()
        conn = await asyncpg.connect(self.dsn, password=self._password, timeout=CONNECT_TIMEOUT_S)
        await conn.add_listener(self.channel, self._notified)
        self._listen = conn
        self._kick()  # what arrived while nobody listened

    async def _db(
        self, work: Callable[[asyncpg.Connection], Awaitable[T]], timeout_s: float = DB_TIMEOUT_S
    ) -> T:
        """One use of the bus's connection, bounded; ``store-unavailable``
        when the database cannot be reached or does not answer in time —
        at once for :data:`DOWN_S` after a failure, so a database that is
        down does not cost every push and handshake a timeout."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._down_until:
            raise StoreError("the team database is unavailable (it failed a moment ago)")
        try:
            pick = self._busy.index(min(self._busy))  # the least busy connection
            self._busy[pick] += 1
            try:
                async with asyncio.timeout(timeout_s), self._sql[pick].use() as conn:
                    return await work(conn)
            finally:
                self._busy[pick] -= 1
        except _DB_ERRORS as exc:
            self._down_until = loop.time() + DOWN_S
            raise StoreError(f"the team database is unavailable: {exc or type(exc).__name__}") from None

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
