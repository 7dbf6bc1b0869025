"""The agent side of the WebSocket protocol (docs/ws-protocol.md), as a library.

:class:`AgentClient` owns one logical connection to a futon daemon for one
agent id. What a caller may rely on:

- ``await client.connect()`` returns the ``ready_ack``. Connection failures
  are retried with exponential backoff and jitter (``wait=False`` fails
  fast instead); refusals that retrying cannot fix (``unauthorized``,
  ``agent-not-found``, ``unsupported-protocol``) raise at once.
- After a dropped socket the client reconnects by itself, forever, with the
  same backoff, sends ``ready`` again and then ``resume`` so the pushes sent
  while it was away arrive. Close codes 4000 (superseded by another
  connection), 4001 and 4004 end the client instead: reconnecting would only
  fight the other process or be refused again.
- Requests (:meth:`start`, :meth:`act`, :meth:`hop`, …) are matched to their
  reply by ``req_id``. An ``error`` reply raises a :class:`FutonError` (the
  subclass that fits the code) carrying the wire code, message and context.
  A request in flight when the socket drops, or made while it is down, raises
  :class:`Disconnected` — a ``ConnectionError`` *and* a ``FutonError`` with
  code ``agent-unreachable`` — so callers can wait (:meth:`wait_connected`)
  and retry.
- Pushes (``irc_message``, ``chat_message``, ``message``, ``evidence``) come
  out of ``async for push in client`` (or :meth:`next_push`) as frame
  models, in arrival order, exactly once across reconnects: each is
  identified by its ``seq`` and content, and a replayed copy is dropped.

The server numbers pushes per agent. A daemon that keeps its replay window
across restarts continues the numbering; one that does not starts again at
1. After a disconnect that looks like a server restart (close code 1001 or
1012, an abnormal close, or failed connection attempts) the client therefore
resumes from 0 and tells the two cases apart by whether the replay still
holds pushes it has already seen; either way nothing is lost or repeated.
(One corner stays: a client that had received no push at all before such a
restart may also be handed pushes that were queued before it first
connected.)

Frames are the models of :mod:`futon.protocol.frames`, the same
definitions the server parses and renders with.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import random
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

import aiohttp

from futon import __version__
from futon.protocol import frames as f
from futon.protocol.errors import (
    STATUS_BY_CODE,
    Conflict,
    FutonError,
    NotFound,
    PermissionDenied,
    ProtocolError,
)

log = logging.getLogger("futon.agent.client")

Push = f.IrcMessage | f.ChatMessage | f.PushedMessage | f.EvidencePush
PUSH_TYPES = (f.IrcMessage, f.ChatMessage, f.PushedMessage, f.EvidencePush)

# Refusals that another attempt cannot fix.
FATAL_CODES = frozenset(
    {"unauthorized", "agent-not-found", "unsupported-protocol", "identity-locked"}
)
# Close codes after which reconnecting is wrong: superseded, unauthorized, unknown agent.
TERMINAL_CLOSE_CODES = frozenset({4000, 4001, 4004})
# Close codes sent by a server that is still running (policy, too big,
# internal error): a reconnect resumes from the last seq.
ALIVE_CLOSE_CODES = frozenset({1008, 1009, 1011})

T = TypeVar("T", bound=f.ServerFrame)


class Disconnected(FutonError, ConnectionError):
    """The request could not complete because the socket is down (or the
    client is closed). Safe to retry once :meth:`AgentClient.wait_connected`
    returns; a request that was in flight may or may not have run."""

    default_code = "agent-unreachable"


def error_from_frame(frame: f.ErrorFrame) -> FutonError:
    """The :class:`FutonError` an ``error`` frame stands for, keeping its
    code, message and context; the subclass follows the code's HTTP class."""
    status = STATUS_BY_CODE.get(frame.code, 500)
    if status in (401, 403):
        cls: type[FutonError] = PermissionDenied
    elif status == 404:
        cls = NotFound
    elif status == 409:
        cls = Conflict
    elif status in (400, 413):
        cls = ProtocolError
    else:
        cls = FutonError
    return cls(frame.message, code=frame.code, context=frame.context or {})


def _fingerprint(frame: f.ServerFrame) -> str:
    data = frame.model_dump(by_alias=True, exclude={"seq", "req_id"})
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


class AgentClient:
    """One agent's connection to a futon daemon (see the module docstring
    for the contract). Use as ``async with AgentClient(url, id) as client``
    or call :meth:`connect` / :meth:`close` yourself.
    ``url`` may be a list of the URLs of one team's daemons: a failed
    attempt (first connect or reconnect) moves to the next one, round robin,
    and the reconnect resumes there as it would on the same daemon."""

    def __init__(
        self,
        url: str | Sequence[str],
        agent_id: str,
        token: str | None = None,
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30,
        session_id: str | None = None,
        capabilities: list[str] | None = None,
        client_name: str = "futon-agent",
        heartbeat_s: float = 20,
        handshake_timeout_s: float = 10,
        dedupe_size: int = 4096,
    ) -> None:
        if backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        # Failover: several daemons of one team. Each failed attempt moves
        # to the next URL (round robin); ``url`` is the one in use now.
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("need at least one daemon URL")
        self._url_index = 0
        self.url = self.urls[0]
        self.agent_id = agent_id
        self.token = token
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.session_id = session_id
        self.capabilities = list(capabilities or [])
        self.client_name = client_name
        self.heartbeat_s = heartbeat_s
        self.handshake_timeout_s = handshake_timeout_s
        #: The latest ``ready_ack`` (``None`` before the first handshake).
        self.ready: f.ReadyAck | None = None
        #: Bumped at every successful handshake; a peripheral session opened
        #: under an older generation was stopped by the server when its socket closed.
        self.generation = 0
        #: ``seq`` of the newest push received (what a reconnect resumes from).
        self.last_seq = 0
        self._ids = itertools.count(1)
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[int | None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[f.ServerFrame]] = {}
        self._pushes: asyncio.Queue[Push | None] = asyncio.Queue()
        self._seen: OrderedDict[tuple[int, str], None] = OrderedDict()
        self._seen_evidence: OrderedDict[str, None] = OrderedDict()
        self._dedupe_size = dedupe_size
        self._collecting: list[Push] | None = None
        self._connected = asyncio.Event()
        self._closed_event = asyncio.Event()
        self._closed = False
        self._failure: FutonError | None = None
        self._subscription: dict[str, Any] | None = None
        self._evidence_seq: int | None = None
        self._on_reconnect: list[Callable[[f.ReadyAck], Any]] = []
        self._on_interrupted: list[Callable[[f.Interrupted], None]] = []

    # ------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> AgentClient:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def closed(self) -> bool:
        return self._closed

    async def connect(self, *, since_seq: int | None = None, wait: bool = True) -> f.ReadyAck:
        """Handshake (and keep reconnecting from then on). ``since_seq``
        asks for the pushes after it right away (``resume``); ``wait=False``
        raises :class:`Disconnected` on the first failed attempt."""
        if self._closed:
            raise Disconnected("the client is closed")
        if self._supervisor is not None and self.ready is not None:
            return self.ready
        if self._http is None:
            self._http = aiohttp.ClientSession()
        delay = self.backoff_initial_s
        tries = 0
        while True:
            tries += 1
            try:
                ack = await self._open()
                break
            except FutonError as exc:
                last_url = not wait and tries >= len(self.urls)  # wait=False: each URL once
                if exc.code in FATAL_CODES or last_url:
                    await self._http.close()
                    self._http = None
                    raise
                log.warning("cannot connect to %s: %s; retrying", self.url, exc.message)
                self._next_url()
                if not wait:
                    continue
            await asyncio.sleep(self._jitter(delay))
            delay = min(delay * 2, self.backoff_max_s)
        if since_seq is not None:
            self.last_seq = since_seq
            await self._resume(since_seq, restarted=False)
        self._supervisor = asyncio.ensure_future(self._supervise())
        return ack

    async def close(self) -> None:
        """Close for good: the socket, in-flight requests (:class:`Disconnected`)
        and the push iterator (it ends)."""
        if self._closed:
            return
        self._closed = True
        self._closed_event.set()
        self._connected.clear()
        current = asyncio.current_task()
        for task in (self._supervisor, self._reader):
            if task is not None and task is not current and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        self._fail_pending(Disconnected("the client is closed"))
        if self._http is not None:
            await self._http.close()
            self._http = None
        self._pushes.put_nowait(None)

    async def wait_connected(self, timeout: float | None = None) -> f.ReadyAck:
        """Wait until the (re)connection is up; :class:`Disconnected` if
        the client is closed meanwhile, ``TimeoutError`` after ``timeout``."""
        if not self._connected.is_set() and not self._closed:
            waiters = {
                asyncio.ensure_future(self._connected.wait()),
                asyncio.ensure_future(self._closed_event.wait()),
            }
            try:
                done, _ = await asyncio.wait(
                    waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if not done:
                raise TimeoutError(f"not connected within {timeout} s")
        if self._closed or self.ready is None:
            raise self._failure or Disconnected("the client is closed")
        return self.ready

    def on_reconnect(self, callback: Callable[[f.ReadyAck], Any]) -> None:
        """Call ``callback(ready_ack)`` after each automatic reconnect (not
        the first connect); a coroutine result is awaited."""
        self._on_reconnect.append(callback)

    def on_interrupted(self, callback: Callable[[f.Interrupted], None]) -> None:
        """Call ``callback(frame)`` (synchronously, from the reader) for each
        ``interrupted`` push: a human stopped the agent's session. A driver
        whose model runs its own tools stops them there (codex-app-server)."""
        self._on_interrupted.append(callback)

    # ------------------------------------------------------------- requests

    async def start(
        self,
        peripheral_id: str | None = None,
        *,
        goal: str | None = None,
        request: str | None = None,
        timeout: float | None = None,
    ) -> f.PeripheralStarted:
        """Open a peripheral session (the routed default without an id);
        with a ``goal`` the answer's ``related`` lists earlier work on it;
        ``request`` (the evidence id of the human's line it answers) makes
        the session's goal entry reply to that line."""
        frame = f.PeripheralStart(
            type="peripheral_start", peripheral_id=peripheral_id, goal=goal, request=request
        )
        return await self._request(frame, f.PeripheralStarted, timeout)

    async def act(
        self,
        tool: str,
        args: list[Any] | dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> f.ToolResult:
        """Run one tool in the active peripheral, with positional ``args`` (a
        list) or named ones (a dict). A failed tool is a result with
        ``ok=False``; a refused one raises (``tool-not-allowed``, …)."""
        wire: list[Any] | dict[str, Any] = (
            dict(args) if isinstance(args, dict) else list(args or [])
        )
        frame = f.ToolAction(type="tool_action", tool=tool, args=wire)
        return await self._request(frame, f.ToolResult, timeout)

    # Native agents (a model running its own tools: the Codex App Server):
    # the daemon judges each action against the active session's envelope
    # without running it. Each returns the ``tool_checked`` frame (``.tool``:
    # the futon tool that admits it, ``.evidence_id``: its step entry), or
    # raises the refusal's FutonError with the code a refused tool_action
    # gets (``tool-not-allowed``, ``out-of-scope``, ``approval-denied`` …).
    # ``timeout`` should allow for a human's approval (``ask:`` tools).

    async def check_command(
        self, command: str, cwd: str | None = None, source: str | None = None,
        *, timeout: float | None = None,
    ) -> f.ToolChecked:  # fmt: skip
        """Would the session run the shell command line ``command`` (in
        ``cwd``: absolute under the workspace or workspace-relative)?"""
        frame = f.ToolCheck(
            type="tool_check", kind="command", command=command, cwd=cwd, source=source
        )
        return await self._request(frame, f.ToolChecked, timeout)

    async def check_file_change(
        self, paths: list[str], source: str | None = None, *, timeout: float | None = None
    ) -> f.ToolChecked:
        """May the session write every one of ``paths``?"""
        frame = f.ToolCheck(type="tool_check", kind="file_change", paths=list(paths), source=source)
        return await self._request(frame, f.ToolChecked, timeout)

    async def check_tool(
        self, tool: str, args: list[Any] | dict[str, Any] | None = None, source: str | None = None,
        *, timeout: float | None = None,
    ) -> f.ToolChecked:  # fmt: skip
        """Would the session run ``tool`` with ``args`` (as :meth:`act` would)?"""
        wire: list[Any] | dict[str, Any] = dict(args) if isinstance(args, dict) else list(args or [])
        frame = f.ToolCheck(type="tool_check", kind="tool", tool=tool, args=wire, source=source)
        return await self._request(frame, f.ToolChecked, timeout)

    async def record_item(
        self, kind: str, body: dict[str, Any], *, timeout: float | None = None
    ) -> f.Recorded:
        """Record what the native agent did (``kind``: agent_message, command,
        file_change, plan, reasoning) in the active session's chain; returns
        the ``recorded`` frame (``.evidence_id``). ``invalid-input`` for a
        body over 16 KiB; ``no-active-peripheral`` without a session."""
        # The server's own parsing: an unknown kind is invalid-frame, here as there.
        frame = f.frame_from_object({"type": "native_item", "kind": kind, "body": body})
        return await self._request(frame, f.Recorded, timeout)

    async def hop(
        self, to: str, exit_condition: str, reason: str = "", context: dict[str, Any] | None = None,
        *, timeout: float | None = None,
    ) -> f.Hopped:  # fmt: skip
        frame = f.Hop(
            type="hop", to=to, exit_condition=exit_condition, reason=reason, context=context or {}
        )
        return await self._request(frame, f.Hopped, timeout)

    async def stop(
        self, reason: str = "client-requested", *, timeout: float | None = None
    ) -> f.PeripheralStopped:
        frame = f.PeripheralStop(type="peripheral_stop", reason=reason)
        return await self._request(frame, f.PeripheralStopped, timeout)

    async def message(
        self, to: str, payload: Any, *, msg_id: str | None = None, timeout: float | None = None
    ) -> f.Receipt:
        """Send a message into the dispatch path; the receipt carries the
        addressed agent's ``reply`` for a coordination payload."""
        frame = f.Message(
            type="message",
            msg_id=msg_id or f"{self.agent_id}-{uuid.uuid4().hex[:12]}",
            to=to,
            payload=payload,
        )
        return await self._request(frame, f.Receipt, timeout)

    async def reply(self, msg_id: str, payload: Any, *, timeout: float | None = None) -> None:
        """Answer a pushed coordination ``message`` (it becomes the reply of
        the sender's receipt)."""
        await self._confirm(f.Reply(type="reply", msg_id=msg_id, payload=payload), timeout)

    async def chat(
        self,
        to: str,
        text: str,
        *,
        in_reply_to: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Say ``text`` to a ``#channel``, a nick or an agent; ``in_reply_to``
        (a ``chat_message``'s ``evidence_id``) links the line to the question."""
        await self._confirm(f.Chat(type="chat", to=to, text=text, in_reply_to=in_reply_to), timeout)

    async def irc_response(
        self,
        text: str,
        *,
        channel: str | None = None,
        nick: str | None = None,
        in_reply_to: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Answer in an IRC channel, or privately to ``nick``; ``in_reply_to``
        (an ``irc_message``'s ``evidence_id``) links the answer to the question."""
        if (channel is None) == (nick is None):
            raise ValueError("irc_response needs exactly one of channel or nick")
        frame = f.IrcResponse(
            type="irc_response", channel=channel, nick=nick, text=text, in_reply_to=in_reply_to
        )
        await self._confirm(frame, timeout)

    async def progress(self, to: str, text: str, *, timeout: float | None = None) -> None:
        """One progress line, said as a NOTICE from the agent's nick to
        ``to`` (a #channel or nick) when its ``progress`` is ``notice``."""
        await self._confirm(f.Progress(type="progress", to=to, text=text), timeout)

    async def query_evidence(
        self,
        filters: dict[str, Any] | None = None,
        limit: int | None = None,
        *,
        timeout: float | None = None,
    ) -> f.EvidenceResult:
        frame = f.EvidenceQueryFrame(
            type="evidence_query", filters=dict(filters or {}), limit=limit
        )
        return await self._request(frame, f.EvidenceResult, timeout)

    async def subscribe(
        self,
        filters: dict[str, Any] | None = None,
        since_seq: int | None = None,
        *,
        timeout: float | None = None,
    ) -> f.Subscribed:
        """Have new matching evidence pushed as ``evidence`` frames. The
        subscription is renewed after a reconnect, from the newest entry seen."""
        frame = f.Subscribe(type="subscribe", filters=dict(filters or {}), since_seq=since_seq)
        ack = await self._request(frame, f.Subscribed, timeout)
        self._subscription = dict(filters or {})
        if since_seq is not None:
            self._evidence_seq = max(self._evidence_seq or 0, since_seq)
        return ack

    async def ping(self, *, timeout: float | None = None) -> None:
        await self._request(f.Ping(type="ping"), f.Pong, timeout)

    # ------------------------------------------------------------- pushes

    def __aiter__(self) -> AsyncIterator[Push]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Push]:
        while True:
            push = await self._pushes.get()
            if push is None:
                self._pushes.put_nowait(None)  # let other iterators end too
                return
            yield push

    async def next_push(self, timeout: float | None = None) -> Push:
        """The next push; :class:`Disconnected` once the client is closed,
        ``TimeoutError`` after ``timeout``."""
        push = await asyncio.wait_for(self._pushes.get(), timeout)
        if push is None:
            self._pushes.put_nowait(None)
            raise self._failure or Disconnected("the client is closed")
        return push

    # ------------------------------------------------------------- internals: requests

    def _next_req_id(self) -> str:
        return f"c{next(self._ids)}"

    async def _send(self, frame: f.ClientFrame) -> str:
        """Send a frame with a fresh ``req_id``; its reply will resolve
        ``self._pending[req_id]``."""
        if self._closed:
            raise self._failure or Disconnected("the client is closed")
        ws = self._ws
        if ws is None or ws.closed or not self._connected.is_set():
            raise Disconnected("not connected to the daemon (reconnecting)")
        req_id = self._next_req_id()
        frame.req_id = req_id
        future: asyncio.Future[f.ServerFrame] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        try:
            await ws.send_str(frame.model_dump_json(by_alias=True, exclude_none=True))
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            self._pending.pop(req_id, None)
            raise Disconnected(f"the socket closed while sending: {exc}") from None
        return req_id

    async def _await(self, req_id: str, timeout: float | None) -> f.ServerFrame:
        future = self._pending.get(req_id)
        if future is None:  # failed (dropped) between sending and here
            raise Disconnected("the connection to the daemon closed")
        try:
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(req_id, None)
        if isinstance(reply, f.ErrorFrame):
            raise error_from_frame(reply)
        return reply

    async def _request(self, frame: f.ClientFrame, expect: type[T], timeout: float | None) -> T:
        reply = await self._await(await self._send(frame), timeout)
        if not isinstance(reply, expect):
            raise ProtocolError(
                f"expected {expect.model_fields['type'].default}, got {reply.type}",
                code="invalid-frame",
            )
        return reply

    async def _confirm(self, frame: f.ClientFrame, timeout: float | None) -> None:
        """Frames the server does not answer on success (``chat``, ``reply``,
        ``irc_response``, ``resume``): send it, then a ``ping``. The server
        handles both in order, so the ``pong`` means the frame was taken, and
        an error for it has arrived before the ``pong``."""
        req_id = await self._send(frame)
        sent = self._pending[req_id]
        try:
            await self._request(f.Ping(type="ping"), f.Pong, timeout)
        finally:
            self._pending.pop(req_id, None)
        if sent.done() and not sent.cancelled() and sent.exception() is None:
            reply = sent.result()
            if isinstance(reply, f.ErrorFrame):
                raise error_from_frame(reply)

    def _fail_pending(self, error: FutonError) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()  # mark retrieved: nobody may be waiting any more

    # ------------------------------------------------------------- internals: connection

    async def _open(self) -> f.ReadyAck:
        """One connection attempt: socket, ``ready``, ``ready_ack``."""
        assert self._http is not None
        try:
            ws = await asyncio.wait_for(
                self._http.ws_connect(self.url, heartbeat=self.heartbeat_s, max_msg_size=0),
                self.handshake_timeout_s,
            )
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            raise Disconnected(f"cannot connect to {self.url}: {exc}") from None
        ready = f.Ready(
            type="ready",
            agent_id=self.agent_id,
            token=self.token,
            session_id=self.session_id,
            protocol_version=f.PROTOCOL_VERSION,
            capabilities=self.capabilities,
            client=f.ClientInfo(name=self.client_name, version=__version__),
            req_id=f"ready-{next(self._ids)}",
        )
        try:
            await ws.send_str(ready.model_dump_json(by_alias=True, exclude_none=True))
            reply = await asyncio.wait_for(
                self._handshake_reply(ws, ready.req_id), self.handshake_timeout_s
            )
        except (OSError, aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
            await ws.close()
            raise Disconnected(
                f"handshake with {self.url} failed: {exc or type(exc).__name__}"
            ) from None
        if isinstance(reply, f.ErrorFrame):
            await ws.close()
            raise error_from_frame(reply)
        assert isinstance(reply, f.ReadyAck)
        self._ws = ws
        self.ready = reply
        self.session_id = reply.session_id  # the same WS session id on every reconnect
        self.generation += 1
        self._reader = asyncio.ensure_future(self._read(ws))
        self._connected.set()
        return reply

    async def _handshake_reply(
        self, ws: aiohttp.ClientWebSocketResponse, req_id: f.ReqId | None
    ) -> f.ServerFrame:
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(
                    f"socket closed during the handshake (close code {ws.close_code})"
                )
            try:
                frame = f.parse_server_frame(msg.data)
            except ProtocolError as exc:
                log.warning("ignoring a bad frame during the handshake: %s", exc.message)
                continue
            if frame.req_id == req_id or isinstance(frame, f.ReadyAck):
                return frame

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> int | None:
        """Read one socket until it closes; return its close code."""
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._on_text(msg.data)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    break
        except (ConnectionError, aiohttp.ClientError) as exc:
            log.info("socket error: %s", exc)
        return ws.close_code

    def _on_text(self, text: str) -> None:
        try:
            frame = f.parse_server_frame(text)
        except ProtocolError as exc:
            log.warning("ignoring a frame the client cannot read: %s", exc.message)
            return
        if frame.req_id is not None:
            future = self._pending.get(str(frame.req_id))
            if future is not None and not future.done():
                future.set_result(frame)
                return
        if isinstance(frame, PUSH_TYPES):
            if self._collecting is not None:
                self._collecting.append(frame)
            else:
                self._accept(frame)
        elif isinstance(frame, f.Interrupted):
            for callback in list(self._on_interrupted):
                try:
                    callback(frame)
                except Exception:  # a listener's bug must not stop the reader
                    log.exception("an interrupted listener failed")
        elif isinstance(frame, f.ErrorFrame):
            log.warning("server error %s: %s", frame.code, frame.message)

    def _accept(self, push: Push) -> bool:
        """Queue a push unless it was seen already; True if queued."""
        key = (push.seq, _fingerprint(push))
        if key in self._seen:
            return False
        if isinstance(push, f.EvidencePush):
            evidence_id = push.entry.get("evidence/id")
            if isinstance(evidence_id, str):
                if evidence_id in self._seen_evidence:
                    return False
                self._remember(self._seen_evidence, evidence_id)
            entry_seq = push.entry.get("evidence/seq")
            if isinstance(entry_seq, int):
                self._evidence_seq = max(self._evidence_seq or 0, entry_seq)
        self._remember(self._seen, key)
        # The latest, not the highest: after a restart that renumbered
        # pushes, resuming must follow the new numbering.
        self.last_seq = push.seq
        self._pushes.put_nowait(push)
        return True

    def _remember(self, table: OrderedDict[Any, None], key: Any) -> None:
        table[key] = None
        while len(table) > self._dedupe_size:
            table.popitem(last=False)

    async def _supervise(self) -> None:
        """Reconnect after every drop until closed or told to stop."""
        try:
            while not self._closed:
                assert self._reader is not None
                code = await self._reader
                self._connected.clear()
                self._fail_pending(
                    Disconnected(f"the connection to the daemon closed (code {code})")
                )
                if self._closed:
                    return
                if code in TERMINAL_CLOSE_CODES:
                    reason = {
                        4000: "superseded by another connection",
                        4001: "unauthorized",
                        4004: "unknown agent",
                    }[code]
                    self._failure = Disconnected(
                        f"the daemon closed the connection: {reason} ({code})"
                    )
                    log.error("%s; not reconnecting", self._failure.message)
                    await self.close()
                    return
                restarted = code not in ALIVE_CLOSE_CODES
                log.info("connection closed (code %s); reconnecting", code)
                restarted = await self._reconnect() or restarted
                if self._closed:
                    return
                await self._after_reconnect(restarted)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the reconnect loop failed")
            self._failure = Disconnected("the reconnect loop failed")
            await self.close()

    async def _reconnect(self) -> bool:
        """Back off and try until connected; True if an attempt failed
        (the server was down: it may have restarted)."""
        delay = self.backoff_initial_s
        failed = False
        while not self._closed:
            await asyncio.sleep(self._jitter(delay))
            try:
                await self._open()
                return failed
            except FutonError as exc:
                if exc.code in FATAL_CODES:
                    self._failure = exc
                    log.error("reconnect refused: %s", exc.message)
                    await self.close()
                    return failed
                failed = True
                log.info("reconnect failed: %s", exc.message)
                self._next_url()
            delay = min(delay * 2, self.backoff_max_s)
        return failed

    async def _after_reconnect(self, restarted: bool) -> None:
        try:
            await self._resume(self.last_seq, restarted=restarted)
            if self._subscription is not None:
                await self.subscribe(self._subscription, since_seq=self._evidence_seq)
        except Disconnected:
            return  # dropped again; the supervisor loops
        except FutonError as exc:
            log.warning("after reconnecting: %s", exc.message)
        assert self.ready is not None
        for callback in self._on_reconnect:
            try:
                result = callback(self.ready)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("on_reconnect callback failed")

    async def _resume(self, since_seq: int, *, restarted: bool) -> None:
        """Ask for missed pushes and deliver the ones not seen before.

        After a suspected restart, resume from 0: if the replay still holds
        pushes this client saw (same seq, same content), the numbering went
        on and only newer ones are new; if none matches, the server started
        numbering again and every unseen push in it is new."""
        self._collecting = []
        replayed: list[Push] = []
        try:
            start = 0 if restarted else since_seq
            try:
                await self._confirm(
                    f.Resume(type="resume", since_seq=start), self.handshake_timeout_s
                )
            except (
                Conflict
            ) as exc:  # replay-gap: the window moved on (so the numbering did not restart)
                oldest = int(exc.context.get("oldest_seq", since_seq + 1))
                start, restarted = max(since_seq, oldest - 1, 0), False
                if start > since_seq:
                    log.warning(
                        "resume: %s; pushes %d..%d are lost", exc.message, since_seq + 1, start
                    )
                await self._confirm(
                    f.Resume(type="resume", since_seq=start), self.handshake_timeout_s
                )
        finally:
            replayed, self._collecting = self._collecting or [], None
        if not restarted:
            for push in replayed:
                self._accept(push)
            return
        old = [p for p in replayed if p.seq <= since_seq]
        continued = any((p.seq, _fingerprint(p)) in self._seen for p in old)
        if not continued and old:
            log.info("the daemon's push numbering restarted; taking its replay window as new")
        for push in replayed:
            if continued and push.seq <= since_seq:
                continue
            self._accept(push)

    def _next_url(self) -> None:
        """Try the next daemon of the team at the next attempt (failover)."""
        if len(self.urls) > 1:
            self._url_index = (self._url_index + 1) % len(self.urls)
            self.url = self.urls[self._url_index]
            log.info("trying the next daemon: %s", self.url)

    def _jitter(self, delay: float) -> float:
        return delay / 2 + random.uniform(0, delay / 2)
