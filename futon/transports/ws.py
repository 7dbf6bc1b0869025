"""The agent WebSocket transport (docs/ws-protocol.md) on aiohttp.

This module owns the connection state machine — connecting → connected →
closed — and turns frames into calls on the registry, the runner and the
pipeline. It knows nothing of how peripherals or the pipeline work inside.

Per connection:
- one reader loop, which never waits on a tool: peripheral frames
  (start, tool_action, hop, stop, tool_check, native_item) go through an ordered worker, so actions
  run one at a time in arrival order while ``ping``/``reply``/queries stay
  responsive (a frame with nothing ahead of it starts in the reader and
  moves to a task at its first wait: ``Connection._act_now``); ``message``
  frames run as their own tasks (a coordination
  message may wait up to ``reply_timeout_s`` for another agent);
- one writer task draining a bounded queue, so a slow peer never blocks the
  pipeline: a peer that falls too far behind — more than
  :data:`OUTBOUND_LIMIT` frames or ``ws.max_outbound_bytes`` waiting, before
  ``ready`` as after — is closed (it can ``resume``). aiohttp's writer waits
  for the socket to drain, so the transport's own buffer stays small. A small
  reply of the ordered worker skips the queue when nothing waits in it and
  the socket's buffer is empty (``Connection._send_now``): same order, one
  task hop less per action;
- a token bucket (``ws.max_frames_per_s`` / ``ws.burst``), and bounds on
  what may wait for the ordered worker (:data:`MAX_PENDING_ACTIONS`) and on
  ``message`` frames in flight (:data:`MAX_PENDING_MESSAGES`);
- a deadline: a socket that has not said ``ready`` within
  ``ws.ready_timeout_s`` of the upgrade is closed with 4001 ``ready timeout``
  (the code of a failed ``ready``: the socket never authenticated);
- JSON nested deeper than ``frames.MAX_JSON_DEPTH`` is an ``invalid-json``
  error frame, and the socket stays usable;
- on close: the active peripheral stops with ``connection-closed`` exactly
  once, presence is removed, the subscription ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from futon import __version__
from futon.config.models import WsSection
from futon.evidence.query import EvidenceQuery
from futon.evidence.related import related_work
from futon.evidence.search import SearchRequest
from futon.evidence.store import EvidenceStore
from futon.peripherals import eager
from futon.peripherals.args import to_positional
from futon.peripherals.native import NativeCheck
from futon.peripherals.runner import PeripheralRunner, SessionSlot
from futon.peripherals.session import Session
from futon.protocol import frames as f
from futon.protocol.errors import FutonError, PermissionDenied, ProtocolError
from futon.social.approvals import Approvals
from futon.social.chat import Chat
from futon.social.pipeline import Inbound, Pipeline
from futon.social.registry import AgentRecord, AgentRegistry, token_digest
from futon.social.team import TeamBus
from futon.transports.ratelimit import TokenBucket

log = logging.getLogger("futon.ws")

# Frames refused for rate back to back before the socket is closed (1008).
RATE_IGNORED_AFTER = 200
CLOSE_SUPERSEDED = 4000
CLOSE_UNAUTHORIZED = 4001
CLOSE_UNKNOWN_AGENT = 4004
OUTBOUND_LIMIT = 2000  # frames queued for a slow peer before it is dropped
MAX_PENDING_ACTIONS = 100  # peripheral frames waiting for the ordered worker
MAX_PENDING_MESSAGES = 100  # message frames in flight (each may wait reply_timeout_s)
# A reply at most this long (characters; ≤ 16 KiB of UTF-8, aiohttp's limit
# for compressing in the loop) may skip the writer queue: see _send_now.
DIRECT_SEND_MAX_CHARS = 4096


def _positional(tool: str, args: list[Any] | dict[str, Any]) -> list[Any] | dict[str, Any]:
    """Named arguments as the positional array when their names fit, so the
    evidence records one form; otherwise as sent, for the dispatcher to
    refuse in its order: ``tool-not-allowed`` for a tool outside the
    envelope first, else ``invalid-input`` naming the parameter."""
    if isinstance(args, dict):
        with contextlib.suppress(ProtocolError):
            return to_positional(tool.removeprefix(":"), args)
    return args


class WsHub:
    """The WS transport: shared state of all agent connections."""

    def __init__(
        self,
        registry: AgentRegistry,
        runner: PeripheralRunner,
        pipeline: Pipeline,
        store: EvidenceStore,
        settings: WsSection,
        *,
        chat: Chat | None = None,
    ) -> None:
        self.registry = registry
        self.runner = runner
        self.pipeline = pipeline
        self.store = store
        self.settings = settings
        # Where ``chat``/``irc_response`` go (the daemon's one chat path);
        # a hub built alone gets one without IRC sides.
        self.chat = chat or Chat(registry, pipeline, store)
        self.connections: set[Connection] = set()
        # Closes of dropped peers: they outlive their connection's own tasks,
        # which end when the socket's reader does (see Connection._drop).
        self.closers: set[asyncio.Task[None]] = set()
        self.frames_in = 0  # text frames read and written, for /metrics
        self.frames_out = 0
        # Operator clients (a ready with admin_token) decide approvals; the
        # daemon sets both (the digest is read per handshake: reloads apply).
        self.approvals: Approvals | None = None
        self.admin_token_sha256: Callable[[], str | None] = lambda: None
        # Set by the daemon when it is one of a team (PostgreSQL backend).
        self.team: TeamBus | None = None

    @property
    def count(self) -> int:
        return sum(1 for c in self.connections if c.agent is not None)

    def apply_settings(self, settings: WsSection) -> None:
        """A reload: rate limits and outbound bounds apply at once (each
        connection reads them per frame); heartbeat and frame size apply to
        connections made from now on."""
        self.settings = settings

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=self.settings.heartbeat_s, max_msg_size=self.settings.max_frame_bytes)
        await ws.prepare(request)
        connection = Connection(self, ws, request.transport)
        connection.loopback = _is_loopback(request.remote)
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
            await connection.closed()
        return ws

    async def close_all(self, code: int = WSCloseCode.GOING_AWAY, reason: str = "server shutting down") -> None:
        await asyncio.gather(*(c.close(code, reason) for c in list(self.connections)), return_exceptions=True)


class Connection:
    """One agent socket. Implements the registry's AgentLink."""

    transport = "websocket"

    def __init__(self, hub: WsHub, ws: web.WebSocketResponse, transport: asyncio.Transport | None = None) -> None:
        self.hub = hub
        self.ws = ws
        self._socket = transport  # the TCP transport, to abort a peer that will not read
        self.agent: AgentRecord | None = None
        # The peripheral session this socket drives, through the session
        # service (runner.py); made at the first ``ready``.
        self.slot: SessionSlot | None = None
        self._shown_session: str | None = None  # what this socket put in the registry's presence
        self._held_sent: tuple[int, int] = (1, 0)  # seqs delivered at connect (empty range: none)
        self.ws_session_id: str | None = None
        # Bounded by _enqueue (frames and bytes), not by maxsize: the closing
        # sentinel must always fit.
        self._outbound: asyncio.Queue[str | None] = asyncio.Queue()
        self._queued_chars = 0  # text waiting in _outbound
        self._writing = False  # the writer holds a frame it has not finished sending
        self._actions: asyncio.Queue[f.ClientFrame | None] = asyncio.Queue()
        # The ordered worker holds a frame (from _actions); or an action the
        # reader began that had to wait (see _act_now) is still running.
        self._acting = False
        self._inflight: asyncio.Task[None] | None = None
        self._messages = 0  # message frames in flight
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._bucket = TokenBucket(hub.settings.max_frames_per_s, hub.settings.burst)
        self._refused_in_a_row = 0  # rate-limited frames since the last accepted one
        self._closing = False
        self.loopback = False  # the peer's address is loopback (set by WsHub.handle)
        self.operator = False  # the ready carried a valid admin_token: may decide approvals

    # ------------------------------------------------------------- AgentLink

    async def send(self, frame: dict[str, Any]) -> None:
        """Queue a frame for this peer; never waits on the network."""
        if self._closing:
            raise ConnectionError("connection is closing")
        if not self._enqueue(json.dumps(frame, ensure_ascii=False, default=str)):
            raise ConnectionError("peer too slow")

    def _enqueue(self, text: str) -> bool:
        """Queue one rendered frame for the writer; False if it was not.

        The one way into ``_outbound``. A frame always fits an empty queue
        (a large tool result is not a slow peer); past :data:`OUTBOUND_LIMIT`
        frames or ``ws.max_outbound_bytes`` of text waiting, the peer has
        stopped reading and is dropped."""
        if self._closing:
            return False
        waiting = self._outbound.qsize()
        too_many = waiting >= OUTBOUND_LIMIT
        too_big = self._queued_chars + len(text) > self.hub.settings.max_outbound_bytes
        if waiting and (too_many or too_big):
            self._drop_slow_peer()
            return False
        self._queued_chars += len(text)
        self._outbound.put_nowait(text)
        return True

    def _drop_slow_peer(self) -> None:
        """A peer that stopped reading: it leaves presence at once (pushes
        go to its replay window for ``resume``), and its socket is closed —
        aborted if the close handshake cannot get through its full buffers."""
        self._closing = True
        if self.agent is not None and self.agent.link is self:
            self.agent.link = None
        while not self._outbound.empty():
            self._outbound.get_nowait()
        self._queued_chars = 0
        log.warning("closing %s: too slow, outbound queue full", self.agent.id if self.agent else "a socket")
        self._drop(WSCloseCode.POLICY_VIOLATION, "too slow: reconnect and resume")

    def _drop(self, code: int, reason: str) -> None:
        """Close in the background, aborting if need be. Not one of
        ``_tasks``: those are cancelled as soon as the reader loop ends,
        which the close itself causes — before the abort could happen."""
        closer = asyncio.ensure_future(self._close_or_abort(code, reason))
        self.hub.closers.add(closer)
        closer.add_done_callback(self.hub.closers.discard)

    async def _close_or_abort(self, code: int, reason: str) -> None:
        """Close; abort the socket if the close handshake cannot get
        through within a second (a peer that does not read). Aborted even
        when aiohttp already began closing it: a graceful close waits for
        the unsent bytes to drain, which a peer that does not read never
        lets happen — the socket would stay open for good."""
        try:
            await asyncio.wait_for(self.close(code, reason), 1)
        except (TimeoutError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # aiohttp shares one drain future among writers: cancelling the
            # writer task cancels it under the close frame's write too.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        else:
            if self._socket is None or not self._socket.get_write_buffer_size():
                return  # the peer took everything, the close frame included
        if self._socket is not None:
            self._socket.abort()

    def _ready_expired(self) -> None:
        if self.agent is None and not self._closing:
            log.info("closing a socket that sent no 'ready' within %gs", self.hub.settings.ready_timeout_s)
            self._closing = True
            self._drop(CLOSE_UNAUTHORIZED, "ready timeout")

    async def close(self, code: int, reason: str) -> None:
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, message=reason.encode()[:120])

    # ------------------------------------------------------------- loops

    async def run(self) -> None:
        writer = asyncio.ensure_future(self._write_loop())
        worker = asyncio.ensure_future(self._action_loop())
        ready_within = self.hub.settings.ready_timeout_s
        deadline = asyncio.get_running_loop().call_later(ready_within, self._ready_expired)
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text_safely(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._reply(None, self._error(ProtocolError("binary frames are not accepted; send JSON text", code="invalid-json")))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            deadline.cancel()
            self._closing = True
            self._actions.put_nowait(None)
            self._outbound.put_nowait(None)
            if self._inflight is not None:
                self._inflight.cancel()  # as the worker's own action is, below
            for task in (worker, writer):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _write_loop(self) -> None:
        while True:
            text = await self._outbound.get()
            if text is None:
                return
            self._queued_chars -= len(text)
            self._writing = True
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return
            finally:
                self._writing = False
            self.hub.frames_out += 1

    async def _action_loop(self) -> None:
        while True:
            frame = await self._actions.get()
            if frame is None:
                return
            self._acting = True
            try:
                inflight = self._inflight
                if inflight is not None:  # the reader's action came first: its reply too
                    with contextlib.suppress(Exception):
                        await inflight
                await self._act(frame)
            finally:
                self._acting = False

    def _act_now(self, frame: f.ClientFrame) -> None:
        """Run a peripheral frame in the reader when nothing is ahead of it
        (no action running, none waiting): up to its first wait, which a
        small read with an inline evidence append never reaches — no hop to
        the worker and back. If it does wait, it goes on as a task that
        later frames queue behind (the worker awaits it first), so order
        holds and the reader never waits on a tool."""
        started = eager.start(self._act(frame))
        if not started.finished:
            task = asyncio.ensure_future(started)
            self._inflight = task
            task.add_done_callback(self._inflight_done)

    def _inflight_done(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _act(self, frame: f.ClientFrame) -> None:
        """One peripheral frame, answered (the ordered worker's unit)."""
        text = await self._answer(frame, self._peripheral_frame(frame))
        if text is not None:
            await self._send_now(text)

    async def _send_now(self, text: str) -> None:
        """Send a reply of the ordered worker straight to the socket when
        that can neither overtake nor wait, saving the writer task's hop;
        otherwise queue it (:meth:`_enqueue`). Straight only when nothing
        is queued or in the writer's hands (so every earlier frame is
        already written: order holds), the socket's buffer is empty (a
        peer that stopped reading still fills the bounded queue and is
        dropped) and the frame is small (aiohttp then writes — compressed
        or not — without awaiting: no executor, no lock wait, no drain)."""
        socket = self._socket
        if (
            self._closing
            or self._writing
            or not self._outbound.empty()
            or len(text) > DIRECT_SEND_MAX_CHARS
            or socket is None
            or socket.get_write_buffer_size()
        ):
            self._enqueue(text)
            return
        try:
            await self.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            return  # the socket is going: the reader loop ends and cleans up
        self.hub.frames_out += 1

    async def closed(self) -> None:
        """Socket gone: stop the session exactly once, drop presence."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
        agent = self.agent
        if agent is not None and agent.link is self:
            agent.link = None
        if self.slot is not None:
            await self.slot.close("connection-closed")

    # ------------------------------------------------------------- frames

    async def _on_text_safely(self, text: str) -> None:
        """A bug in reading one frame is an error frame, never an exception
        out of the handler (aiohttp would write a 500 into the WS stream)."""
        try:
            await self._on_text(text)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("internal error reading a frame")
            self._reply(None, self._error(FutonError("internal error; it was logged", code="internal-error")))

    async def _on_text(self, text: str) -> None:
        self.hub.frames_in += 1
        if self._closing:
            return  # being dropped: reading more is wasted work
        if not self._take_token():
            self._refused_in_a_row += 1
            if self._refused_in_a_row > RATE_IGNORED_AFTER:
                # A peer that ignores a whole bucket of refusals is flooding:
                # answering each frame would spend the daemon on it.
                self._closing = True
                log.warning("closing %s: ignored %d rate-limit refusals", self.agent.id if self.agent else "a socket",
                            RATE_IGNORED_AFTER)  # fmt: skip
                self._drop(WSCloseCode.POLICY_VIOLATION, "rate limit ignored")
                return
            self._reply(f.req_id_of(text), self._error(FutonError("frame rate exceeded; slow down", code="rate-limited")))
            return
        self._refused_in_a_row = 0
        try:
            raw = f.load_client_text(text)
        except f.JsonError as exc:  # not JSON, or nested too deep: req_id if it could be read
            self._reply(exc.req_id, self._error(exc))
            return
        try:
            frame = f.frame_from_object(raw)
        except ProtocolError as exc:
            self._reply(f.req_id_of(raw), self._error(exc))
            return
        if self.agent is None and not isinstance(frame, f.Ready | f.Ping):
            self._reply(frame.req_id, self._error(FutonError("send 'ready' first", code="not-ready")))
            return
        if isinstance(frame, f.Ready):
            await self._guard(frame, self._ready(frame))
            if "resume" not in frame.capabilities:  # a client that resumes asks for them itself
                await self._deliver_held()
        elif isinstance(frame, f.PeripheralStart | f.ToolAction | f.Hop | f.PeripheralStop | f.ToolCheck | f.NativeItem):
            if self._actions.qsize() >= MAX_PENDING_ACTIONS:
                busy = _busy(f"{MAX_PENDING_ACTIONS} actions are already waiting")
                self._reply(frame.req_id, self._error(busy))
                return
            if self._acting or self._inflight is not None or not self._actions.empty():
                self._actions.put_nowait(frame)  # behind what runs or waits: in order
            else:
                self._act_now(frame)
        elif isinstance(frame, f.Message):
            if self._messages >= MAX_PENDING_MESSAGES:
                busy = _busy(f"{MAX_PENDING_MESSAGES} messages are already in flight")
                self._reply(frame.req_id, self._error(busy))
                return
            self._messages += 1  # counted now: frames read in one go must not all pass the check
            self._spawn(self._counted_message(frame))
        else:
            await self._guard(frame, self._other(frame))

    async def _guard(self, frame: f.ClientFrame, work: Awaitable[f.ServerFrame | str | None]) -> None:
        """Run a frame's work; every failure becomes a typed error frame and
        the connection stays usable."""
        text = await self._answer(frame, work)
        if text is not None:
            self._enqueue(text)

    async def _answer(self, frame: f.ClientFrame, work: Awaitable[f.ServerFrame | str | None]) -> str | None:
        """A frame's reply, rendered (None: it has none), as :meth:`_guard`
        sends it. ``work`` may return the reply already rendered (with
        ``req_id``): the hot path of ``tool_action``."""
        try:
            reply = await work
        except FutonError as exc:
            reply = self._error(exc)
        except asyncio.CancelledError:
            raise
        except ConnectionError:  # this peer was dropped meanwhile (too slow): nobody to answer
            return None
        except Exception:
            log.exception("internal error on %s frame", frame.type)
            reply = self._error(FutonError("internal error; it was logged", code="internal-error"))
        if reply is None or isinstance(reply, str):
            return reply
        reply.req_id = frame.req_id
        return f.render(reply)

    def _reply(self, req_id: f.ReqId | None, frame: f.ServerFrame) -> None:
        frame.req_id = req_id
        self._enqueue(f.render(frame))

    @staticmethod
    def _error(exc: FutonError) -> f.ErrorFrame:
        return f.ErrorFrame(code=exc.code, message=exc.message, context=exc.context or None)

    # ------------------------------------------------------------- handshake

    async def _ready(self, frame: f.Ready) -> f.ServerFrame | None:
        registry = self.hub.registry
        if self.agent is not None and self.agent.id != frame.agent_id:
            raise FutonError(f"this socket is {self.agent.id!r}; it cannot become {frame.agent_id!r}", code="identity-locked")
        if frame.protocol_version is not None and frame.protocol_version > f.PROTOCOL_VERSION:
            raise FutonError(
                f"protocol {frame.protocol_version} is newer than this server's {f.PROTOCOL_VERSION}",
                code="unsupported-protocol",
                context={"server_protocol_version": f.PROTOCOL_VERSION},
            )
        try:
            if self.hub.team is not None:  # a runtime agent as the team knows it now (team_state.py)
                await self.hub.team.state.known(frame.agent_id)
            record = registry.authenticate(frame.agent_id, frame.token)  # live lookup
        except FutonError as exc:
            self._reply(frame.req_id, self._error(exc))
            code = CLOSE_UNKNOWN_AGENT if exc.code == "agent-not-found" else CLOSE_UNAUTHORIZED
            await self._flush_then_close(code, exc.code)
            return None
        if self.hub.team is not None:  # its seq and replay window go on from the team's
            await self.hub.team.state.take(record)
        previous = record.link
        if previous is not None and previous is not self:
            await previous.close(CLOSE_SUPERSEDED, "superseded")
        record.link = self
        record.touch()
        self.agent = record
        if self.hub.team is not None:  # the team sees it here before ready_ack (social/team.py)
            await self.hub.team.connected(record)
        self.operator = frame.admin_token is not None and self._admin(frame.admin_token)
        if self.slot is None:
            self.slot = self.hub.runner.slot(record.id, self._show_session)
        self.ws_session_id = frame.session_id or self.ws_session_id or f"ws-{uuid.uuid4()}"
        permitted = record.spec.peripherals or list(self.hub.runner.peripherals)
        return f.ReadyAck(
            agent_id=record.id,
            session_id=self.ws_session_id,
            server=f.ServerInfo(name="futon", version=__version__),
            peripherals=permitted,
            default_peripheral=registry.default_peripheral(record),
            progress=record.spec.progress,
        )

    def _admin(self, token: str) -> bool:
        """The HTTP rule (transports/http.py auth): the admin token when one
        is configured; without one, a loopback peer is the admin."""
        digest = self.hub.admin_token_sha256()
        if digest is None:
            return self.loopback
        return hmac.compare_digest(token_digest(token), digest)

    async def _approval_decision(self, frame: f.ApprovalDecisionFrame) -> f.ServerFrame:
        """An operator client decides, recorded with author ``admin`` (like
        the HTTP route); any other socket is refused ``not-an-approver``."""
        if not self.operator:
            raise PermissionDenied(
                "only an operator client (ready with admin_token) may decide approvals", code="not-an-approver"
            )
        if self.hub.approvals is None:
            raise FutonError("approvals are not available in this daemon", code="internal-error")
        # An operator socket is also an agent's: it never decides that agent's own request.
        # agent=: the approval-self rule, checked where the approval lives (a team: maybe another daemon)
        decided = await self.hub.approvals.decide(
            frame.approval_id, frame.decision, "admin", frame.reason, admin=True, agent=self._agent().id
        )
        return f.ApprovalDecided(approval_id=frame.approval_id, outcome=decided["outcome"], by=decided["by"])

    async def _flush_then_close(self, code: int, reason: str) -> None:
        deadline = time.monotonic() + 1
        while not self._outbound.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await self.close(code, reason)

    # ------------------------------------------------------------- peripherals

    async def _peripheral_frame(self, frame: f.ClientFrame) -> f.ServerFrame | str:
        """Translate a peripheral frame into a call on the session service."""
        agent = self._agent()
        agent.touch()
        slot = self.slot
        assert slot is not None  # made by ``ready``, which _on_text requires first
        if isinstance(frame, f.PeripheralStart):
            session = await slot.start(
                frame.peripheral_id or self.hub.registry.default_peripheral(agent),
                permitted=agent.spec.peripherals,
                workspace=_workspace(agent),
                request=frame.request,
            )
            described = session.peripheral.describe()
            # A goal gets the earlier conclusions and refusals relevant to it.
            related = None if frame.goal is None else [f.RelatedWork(**r) for r in related_work(self.hub.store, frame.goal)]
            return f.PeripheralStarted(
                peripheral_id=session.peripheral.id, session_id=session.id, tools=described["tools"], scope=described["scope"],
                related=related,
            )
        if isinstance(frame, f.ToolAction):
            result = await slot.step(frame.tool, _positional(frame.tool, frame.args))
            return f.render_tool_result(frame.req_id, result.tool, result.ok, result.result)
        if isinstance(frame, f.Hop):
            hop = await slot.hop(frame.to, frame.exit_condition, frame.reason, frame.context)
            # By alias: "from" is a keyword; typed Any so mypy (no pydantic
            # plugin) does not match it against the Literal `type` parameter.
            origin: dict[str, Any] = {"from": hop.from_id}
            return f.Hopped(**origin, to=hop.to_id, session_id=hop.session_id, context=hop.context, tools=hop.tools)
        if isinstance(frame, f.ToolCheck):
            tool, evidence_id = await slot.check(_native_check(frame))
            return f.ToolChecked(tool=tool, evidence_id=evidence_id)
        if isinstance(frame, f.NativeItem):
            return f.Recorded(evidence_id=await slot.record_item(frame.kind, frame.body))
        assert isinstance(frame, f.PeripheralStop)
        stopped = await slot.stop(frame.reason)
        return f.PeripheralStopped(peripheral_id=stopped.peripheral_id, reason=stopped.reason, fruit=stopped.fruit)

    def _show_session(self, session: Session | None) -> None:
        """The slot's session changed: show it in the registry's presence
        (and clear only what this socket put there)."""
        agent = self.agent
        if agent is None:
            return
        if session is not None:
            agent.session_id, agent.peripheral_id = session.id, session.peripheral.id
            self._shown_session = session.id
        elif self._shown_session is not None and agent.session_id == self._shown_session:
            agent.session_id = agent.peripheral_id = None
            self._shown_session = None

    # ------------------------------------------------------------- the rest

    async def _counted_message(self, frame: f.Message) -> None:
        try:
            await self._guard(frame, self._message(frame))
        finally:
            self._messages -= 1

    async def _message(self, frame: f.Message) -> f.ServerFrame:
        agent = self._agent()
        to = frame.to if isinstance(frame.to, str) else frame.to.value
        # The socket is authenticated as this agent and nothing else (never
        # admin): actions to another agent are refused by the pipeline with
        # ``forbidden``; actions to itself run inside its own peripherals.
        receipt = await self.hub.pipeline.dispatch(
            Inbound(msg_id=frame.msg_id, sender=agent.id, to=to, payload=frame.payload, transport="websocket", admin=False)
        )
        return f.Receipt(
            msg_id=receipt.msg_id, delivered=receipt.delivered, at=receipt.at, route=receipt.route,
            session_id=receipt.session_id, peripheral_id=receipt.peripheral_id, fruit=receipt.fruit, reply=receipt.reply,
        )  # fmt: skip

    async def _other(self, frame: f.ClientFrame) -> f.ServerFrame | None:
        agent = self.agent
        if isinstance(frame, f.Ping):
            return f.Pong()
        assert agent is not None
        agent.touch()
        if isinstance(frame, f.Reply):
            self.hub.pipeline.reply(agent.id, frame.msg_id, frame.payload)
            return None
        if isinstance(frame, f.EvidenceQueryFrame):
            params = dict(frame.filters)
            if frame.limit is not None:
                params["limit"] = frame.limit
            if frame.q is not None or "q" in params:
                return self._search(SearchRequest.from_params({**params, "q": frame.q or params.get("q")}))
            page = self.hub.store.query(EvidenceQuery.from_params(params))
            return f.EvidenceResult(entries=page.entries, count=len(page.entries))
        if isinstance(frame, f.Subscribe):
            return await self._subscribe(frame)
        if isinstance(frame, f.Resume):
            if self.hub.team is not None:  # never number again a push the agent saw
                self.hub.team.state.seen(agent, frame.since_seq)
            low, high = self._held_sent
            for pushed in self.hub.registry.replay_since(agent, frame.since_seq):
                if not low <= pushed["seq"] <= high:  # sent at connect on this socket already
                    await self.send(pushed)
            return None
        if isinstance(frame, f.IrcResponse | f.Chat):
            return await self._chat(frame)
        if isinstance(frame, f.Progress):
            return await self._progress(frame)
        if isinstance(frame, f.Interrupt):
            return await self._interrupt(agent)
        if isinstance(frame, f.ApprovalDecisionFrame):
            return await self._approval_decision(frame)
        raise ProtocolError(f"frame {frame.type!r} is not handled here", code="invalid-frame")

    async def _interrupt(self, agent: AgentRecord) -> f.ServerFrame:
        """The agent's own controller stops its running session at once
        (issue 17). Read by the reader loop, not the ordered worker, so it
        reaches a step (or an approval wait) that is still running."""
        running = [s for s in self.hub.runner.sessions(agent.id) if s.active]
        if not running:
            raise FutonError(f"{agent.id} has no running session", code="no-active-peripheral")
        stopped = await self.hub.runner.interrupt(running[0].id)
        return f.Interrupted(session_id=stopped.session_id, by=agent.id)

    def _search(self, search: SearchRequest) -> f.EvidenceResult:
        hits = self.hub.store.search(search)
        results = [
            {"evidence_id": h.entry["evidence/id"], "match": h.tier, "score": round(h.score, 4), "snippet": h.snippet}
            for h in hits
        ]
        return f.EvidenceResult(entries=[h.entry for h in hits], count=len(hits), results=results)

    async def _subscribe(self, frame: f.Subscribe) -> f.ServerFrame | None:
        """Ack first, then the backlog after ``since_seq``, then live entries."""
        agent = self._agent()
        query = EvidenceQuery.from_params(frame.filters)
        if self._unsubscribe is not None:
            self._unsubscribe()
        pipeline = self.hub.pipeline

        def deliver(entry: dict[str, Any]) -> None:
            if query.matches(entry) and not self._closing:
                self._spawn(pipeline.push(agent, f.EvidencePush(entry=entry, seq=0)))

        ack = f.Subscribed(filters=frame.filters, req_id=frame.req_id)
        if not self._enqueue(f.render(ack)):
            return None
        if frame.since_seq is not None:
            backlog = self.hub.store.query(replace(query, after_seq=frame.since_seq, before_seq=None, limit=1000))
            for entry in backlog.entries:
                await pipeline.push(agent, f.EvidencePush(entry=entry, seq=0))
        self._unsubscribe = self.hub.store.subscribe(deliver)
        return None

    async def _chat(self, frame: f.IrcResponse | f.Chat) -> f.ServerFrame | None:
        agent = self._agent()
        to = frame.to if isinstance(frame, f.Chat) else (frame.channel or frame.nick)
        if not to:
            raise ProtocolError("irc_response needs 'channel' or 'nick'", code="invalid-frame")
        # A line that reaches nobody raises (no-such-channel, unknown-target):
        # _guard answers it as an error frame with the frame's req_id.
        # in_reply_to: the question's evidence id (irc_message/chat_message), so the answer links.
        await self.hub.chat.say(agent.id, to, frame.text, transport="websocket", in_reply_to=frame.in_reply_to)
        if self.slot is not None:
            await self.slot.say(to, frame.text)  # a step when the session is in chat
        return None

    async def _progress(self, frame: f.Progress) -> f.ServerFrame | None:
        """A progress line: a NOTICE from the agent's nick where the work was
        asked, recorded like any line; pushed to no agent. Dropped without
        an answer when the agent's ``progress`` is ``off``."""
        agent = self._agent()
        if agent.spec.progress != "notice":
            return None
        text = " ".join(frame.text.split())  # one line
        await self.hub.chat.say(agent.id, frame.to, text, transport="websocket", reach="nobody", notice=True)
        return None

    async def _deliver_held(self) -> None:
        """After a successful ``ready``: the pushes kept while the agent was
        offline go out now, so a client that never sends ``resume`` gets
        them too (a later ``resume`` on this socket skips them). A client
        whose ``ready`` lists the capability ``resume`` fetches them itself."""
        agent = self.agent
        if agent is None or agent.link is not self:
            return
        held = self.hub.registry.take_held(agent)
        if held:
            self._held_sent = (held[0]["seq"], held[-1]["seq"])
        for pushed in held:
            await self.send(pushed)

    # ------------------------------------------------------------- helpers

    def _agent(self) -> AgentRecord:
        if self.agent is None:
            raise FutonError("send 'ready' first", code="not-ready")
        return self.agent

    def _take_token(self) -> bool:
        settings = self.hub.settings  # a reload may have changed the limits
        self._bucket.retune(settings.max_frames_per_s, settings.burst)
        return self._bucket.try_take()

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _busy(what: str) -> FutonError:
    return FutonError(f"{what}; wait for their answers", code="rate-limited")


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:  # a unix socket or an unparsable peer: not loopback
        return False


def _native_check(frame: f.ToolCheck) -> NativeCheck:
    """The session service's form of a tool_check (named args as tool_action's)."""
    args = None if frame.tool is None else _positional(frame.tool, frame.args if frame.args is not None else [])
    return NativeCheck(
        frame.kind, command=frame.command, cwd=frame.cwd, paths=tuple(frame.paths or ()), tool=frame.tool,
        args=args, source=frame.source,
    )  # fmt: skip


def _workspace(agent: AgentRecord) -> Path | None:
    return Path(agent.spec.workspace) if agent.spec.workspace else None
