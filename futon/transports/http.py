"""The HTTP transport (aiohttp). It renders; it does not decide.

Handlers parse a request into the pipeline's or the store's terms, call
them, and render the answer. Errors of the one error tree become the JSON
bodies of docs/http-api.md (the evidence routes use their own ``{ok: false, err}``
shape); aiohttp's own 404/405/413 become that JSON; a malformed
percent-escape is a 400; nothing unexpected ever leaves as a traceback.

Request bodies are pydantic models (:mod:`futon.protocol.bodies`): the
same definitions parse requests and feed ``/openapi.json``; JSON nested
deeper than ``frames.MAX_JSON_DEPTH`` is ``invalid-json``, and a body must
arrive within ``http.body_timeout_s``.

Connections are bounded by :class:`HttpRunner` (aiohttp has no header
timeout of its own): ``http.header_timeout_s`` for a request's headers,
``http.keepalive_timeout_s`` for an idle connection, and
``http.max_connections_per_ip`` open connections (WebSockets included) per
client address. An SSE stream whose client does not read is cut off past
:data:`SSE_QUEUE` entries or :data:`SSE_MAX_BYTES` waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler
from pydantic import BaseModel, ValidationError

from futon import __version__
from futon.config.models import HttpSection
from futon.evidence.model import format_at
from futon.evidence.query import EvidenceQuery
from futon.evidence.search import SearchRequest
from futon.evidence.store import EvidenceStore
from futon.peripherals.audit import audit_session, audit_window_async
from futon.peripherals.runner import PeripheralRunner
from futon.protocol import bodies
from futon.protocol import frames as f
from futon.protocol.errors import FutonError, PermissionDenied, ProtocolError
from futon.protocol.frames import MAX_SEQ, loads_bounded
from futon.social.approvals import Approvals
from futon.social.chat import Said, Speaker
from futon.social.pipeline import Inbound, Pipeline
from futon.social.registry import AgentRecord, AgentRegistry, token_digest
from futon.social.team_sessions import TeamSessions
from futon.social.team_state import TeamState

log = logging.getLogger("futon.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AGENT = web.RequestKey("agent", str)  # the agent an agent token speaks for ("" for admin/open)
HTTP_CALLER = "http"  # the author of what an HTTP caller without an agent token does, unless it names itself
SSE_QUEUE = 1000  # entries buffered for one slow SSE client before it is cut off ...
SSE_MAX_BYTES = 8 * 1024 * 1024  # ... or this much of their text
SSE_WRITE_TIMEOUT_S = 60  # a stream whose client takes longer to accept one write ends
SSE_PAGE = 100  # backlog entries read from the store at a time


class HealthSource(Protocol):
    """What /health reports; every number is read live on each request."""

    def health(self) -> dict[str, Any]: ...


class ChatSink(Protocol):
    """Where POST /api/alpha/chat goes: the daemon's one chat path
    (:class:`futon.social.chat.Chat`) — agents, every IRC side that carries
    the channel, and the thread. Raises ``no-such-channel`` /
    ``unknown-target`` (404) or ``invalid-target`` (400) for a line that
    would reach nobody."""

    async def say(
        self, sender: str, to: str, text: str, *, transport: str, speaker: Speaker | None = None
    ) -> Said: ...


@dataclass
class Services:
    """What the HTTP transport talks to. Optional parts (the WS hub, chat)
    may be absent in small test apps."""

    health: HealthSource
    registry: AgentRegistry | None = None
    runner: PeripheralRunner | None = None
    store: EvidenceStore | None = None
    pipeline: Pipeline | None = None
    ws_handler: Handler | None = None
    chat: ChatSink | None = None
    admin_token_sha256: str | None = None
    max_body_bytes: int = 1024 * 1024
    body_timeout_s: float = 30  # a request body must arrive within this
    on_deregister: Callable[[str], Awaitable[None]] | None = None
    reload: Callable[[], Awaitable[dict[str, Any]]] | None = None  # POST /api/alpha/config/reload
    metrics: Callable[[], str] | None = None  # GET /metrics: the exposition text
    approvals: Approvals | None = None  # humans in the loop (issue 17)
    # One of a team (issue 20): the agent list with each agent's daemon and presence (TeamBus.agents).
    team_agents: Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]] | None = None
    # One of a team: sessions listed with their daemon, interrupted where they run (team_sessions.py).
    team_sessions: TeamSessions | None = None
    # One of a team: runtime agents registered, deregistered and known team-wide (team_state.py).
    team_state: TeamState | None = None

    def apply_settings(self, http: HttpSection) -> None:
        """A reload: the admin token guards the very next request (the auth
        middleware reads it per request). Ports, hosts and body limits wait
        for a restart (reload.py)."""
        self.admin_token_sha256 = http.admin_token_sha256


SERVICES = web.AppKey("services", Services)


def _now() -> str:
    return format_at(datetime.now(UTC))


# ------------------------------------------------------------------ errors


def error_response(error: FutonError, component: str = "http") -> web.Response:
    body: dict[str, Any] = {
        "error": True,
        "code": error.code,
        "message": error.message,
        "component": component,
        "at": _now(),
    }
    if error.context:
        body["context"] = error.context
    return web.json_response(body, status=error.status)


def evidence_error(error: FutonError) -> web.Response:
    """The evidence routes' own error shape (docs/http-api.md)."""
    body: dict[str, Any] = {"ok": False, "err": error.code, "code": error.code, "message": error.message}
    body.update({k: v for k, v in error.context.items() if k == "evidence-id"})
    return web.json_response(body, status=error.status)


def _render_error(request: web.Request, error: FutonError) -> web.Response:
    if request.path.startswith("/api/alpha/evidence"):
        return evidence_error(error)
    return error_response(error)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    bad = malformed_escape(request.raw_path)
    if bad is not None:
        return _render_error(request, ProtocolError(f"malformed percent-escape in the request target: {bad}", code="invalid-input"))
    try:
        return await handler(request)
    except FutonError as error:
        return _render_error(request, error)
    except web.HTTPMethodNotAllowed as exc:
        response = _render_error(request, FutonError(f"Method not allowed: {request.method} {request.path}", code="invalid-message"))
        response.set_status(405)
        response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except web.HTTPNotFound:
        return error_response(FutonError(f"Unknown endpoint: {request.method} {request.path}", code="not-found"))
    except web.HTTPRequestEntityTooLarge:
        return _render_error(request, FutonError("request body too large", code="payload-too-large"))
    except web.HTTPException:
        raise
    except (ConnectionError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.rel_url)
        return _render_error(request, FutonError("internal error", code="internal-error"))


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def malformed_escape(raw_target: str) -> str | None:
    """Why a raw request target's percent-escapes are malformed, or None.

    aiohttp keeps a bad escape literally; docs/http-api.md promises a 400 instead, both
    for a ``%`` not followed by two hex digits and for escapes that do not
    decode as UTF-8."""
    if "%" not in raw_target:
        return None
    match = _BAD_ESCAPE.search(raw_target)
    if match:
        return repr(raw_target[match.start() : match.start() + 3])
    try:
        for part in raw_target.replace("+", " ").split("?", 1):
            unquote_to_bytes(part).decode("utf-8")
    except UnicodeDecodeError:
        return "escapes that are not UTF-8"
    return None


# ------------------------------------------------------------------ auth

# The web page and its assets hold no data: a browser loads them without a
# header, and the page then sends the admin token with every API call.
WEB_ASSETS = {"/web/app.js": ("app.js", "text/javascript"), "/web/app.css": ("app.css", "text/css")}
OPEN_ROUTES = {("GET", "/health"), ("GET", "/metrics"), ("GET", "/agency/ws"), ("GET", "/ws"), ("GET", "/")} | {
    ("GET", path) for path in WEB_ASSETS
}
# EventSource cannot send headers: the page's SSE stream may carry the token
# as ?token= instead (this route only; it is stripped before the filters).
QUERY_TOKEN_ROUTES = {("GET", "/api/alpha/evidence/stream")}
AGENT_ROUTES = {("POST", "/dispatch"), ("POST", "/api/alpha/evidence"), ("POST", "/api/alpha/chat")}


def auth_middleware(services: Services) -> Middleware:
    """With an admin token configured every route but the open ones needs
    ``Authorization: Bearer``; an agent's own token works on agent routes.

    Without one (the daemon then serves loopback only) a caller without a
    token is the admin, as before; on an agent route a bearer token still
    says which agent is calling (``request[AGENT]``), so an agent cannot
    borrow another agent's identity, and a token no agent owns is refused."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[AGENT] = ""
        admin = services.admin_token_sha256
        route = (request.method, request.path)
        if route in OPEN_ROUTES or request.method == "OPTIONS":
            return await handler(request)
        if admin is None:
            header = request.headers.get("Authorization", "")
            if header and route in AGENT_ROUTES:
                request[AGENT] = await _agent_of_header(services, header)
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if not header and route in QUERY_TOKEN_ROUTES and request.query.get("token"):
            header = "Bearer " + request.query["token"]
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise PermissionDenied("this route needs Authorization: Bearer <token>", code="unauthorized")
        token = token.strip()
        if hmac.compare_digest(token_digest(token), admin):
            return await handler(request)
        agent = await _agent_for_token(services, token)
        if agent is None:
            raise PermissionDenied("unknown token", code="unauthorized")
        if route not in AGENT_ROUTES:
            raise PermissionDenied("an agent token may not use this route", code="forbidden")
        request[AGENT] = agent.id
        return await handler(request)

    return middleware


async def _agent_of_header(services: Services, header: str) -> str:
    """The id of the agent whose token ``header`` carries; ``unauthorized``
    for anything else (a malformed header, a token no agent owns)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise PermissionDenied("Authorization must be 'Bearer <token>'", code="unauthorized")
    agent = await _agent_for_token(services, token.strip())
    if agent is None:
        raise PermissionDenied("unknown token", code="unauthorized")
    return agent.id


async def _agent_for_token(services: Services, token: str) -> AgentRecord | None:
    """The agent owning ``token`` here, else (one of a team) a runtime agent
    registered on another daemon, adopted here (team_state.py)."""
    agent = services.registry.agent_for_token(token) if services.registry else None
    if agent is None and services.team_state is not None:
        agent = await services.team_state.by_token(token)
    return agent


# ------------------------------------------------------------------ helpers


async def read_body(request: web.Request, model: type[bodies.Body]) -> Any:
    """Parse a JSON body into ``model``; typed 400s for everything else."""
    if request.content_type not in ("application/json", "application/octet-stream", "") and not request.content_type.endswith("+json"):
        raise ProtocolError(f"Content-Type must be application/json, not {request.content_type}", code="invalid-json")
    raw = await _read_within(request)
    if not raw.strip():
        raise ProtocolError("empty request body; send a JSON object", code="invalid-json")
    data = loads_bounded(raw, what="request body")  # invalid-json, never a RecursionError
    if model is bodies.RawObject:
        return data
    if not isinstance(data, dict):
        raise ProtocolError("request body must be a JSON object", code=model.error_code)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in error["loc"]) or "body"
        raise ProtocolError(f"{field}: {error['msg']}", code=model.error_code) from None


async def _read_within(request: web.Request) -> bytes:
    """The body, within ``body_timeout_s`` (a body sent a byte at a time
    must not hold a handler forever): else 408 ``request-timeout``. aiohttp
    then reads what is left of the body for at most its lingering time
    (10 s) and closes the connection."""
    if request.content.is_eof():
        # The whole body has arrived (the usual case for a small one): read()
        # cannot wait, so no timer to arm and cancel per request.
        return await request.read()
    timeout = request.app[SERVICES].body_timeout_s if SERVICES in request.app else 30.0
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        message = f"the request body did not arrive within {timeout:g}s"
        raise FutonError(message, code="request-timeout") from None


def ok(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False, default=str))


def _need(value: Any, what: str) -> Any:
    if value is None:
        raise FutonError(f"{what} is not available in this daemon", code="internal-error")
    return value


AUDIT_WINDOW_CAP = 100  # sessions one GET /api/alpha/audit replays (on the loop, yielding between them)


def _query_params(request: web.Request) -> dict[str, str]:
    return {key: value for key, value in request.query.items()}


# ------------------------------------------------------------------ connections

_REFUSED = json.dumps(
    {"error": True, "code": "too-many-connections", "message": "too many open connections from your address",
     "component": "http"}
).encode()  # fmt: skip
TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_REFUSED)).encode() + b"\r\n\r\n" + _REFUSED
)
HEADER_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class HttpRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are bounded by ``settings``
    (:class:`HttpSection`): header timeout, idle keep-alive timeout and
    connections per client address. Use it as ``web.AppRunner``."""

    def __init__(self, app: web.Application, settings: HttpSection, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", settings.keepalive_timeout_s)
        super().__init__(app, **kwargs)
        self._settings = settings

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        # aiohttp builds its Server from the app's private parts; take them
        # over as they are and only change the protocol it makes.
        return _GuardedServer(
            plain.request_handler,
            settings=self._settings,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )


class _GuardedServer(web.Server):
    """Makes :class:`_GuardedHandler` protocols and counts them per address."""

    def __init__(self, handler: Any, *, settings: HttpSection, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.settings = settings
        self.per_ip: Counter[str] = Counter()

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(self, loop=self._loop, **self._kwargs)

    def admit(self, ip: str) -> bool:
        if self.per_ip[ip] >= self.settings.max_connections_per_ip:
            return False
        self.per_ip[ip] += 1
        return True

    def release(self, ip: str) -> None:
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]


class _GuardedHandler(RequestHandler):
    """aiohttp's protocol plus two walls.

    - Per address: past ``max_connections_per_ip`` open connections a new
      one gets a 503 ``too-many-connections`` and is closed before anything
      is parsed or a task started.
    - Header timeout: a timer starts when the connection opens, and again
      at the first byte of each later request while the connection is
      idle; it stops when a request's headers are complete. If it fires
      first the peer gets a 408 and the connection is closed — trickling
      bytes does not extend it. (An idle connection without a partial
      request is aiohttp's keep-alive timeout's business.)
    """

    def __init__(self, manager: _GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._ip: str | None = None
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self._guard.admit(ip):
            log.warning("refusing a connection from %s: %d already open", ip, self._guard.per_ip[ip])
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(TOO_MANY_CONNECTIONS)
            transport.close()
            return
        self._ip = ip
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._ip is not None:
            self._guard.release(self._ip)
            self._ip = None
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        requests = self._request_count
        super().data_received(data)
        if self._request_count != requests or self._upgraded:
            self._disarm_header_timer()  # headers complete (or refused by the parser)
        elif self._header_timer is None and self._idle():
            self._arm_header_timer()  # the first bytes of a new request

    def _idle(self) -> bool:
        """Waiting for the next request's headers: not handling a request,
        not lingering over an unread body, not upgraded."""
        waiter = self._waiter
        return waiter is not None and not waiter.done() and not self._messages and not self._upgraded

    def _arm_header_timer(self) -> None:
        if self._ip is not None and self._header_timer is None:
            timeout = self._guard.settings.header_timeout_s
            self._header_timer = self._loop.call_later(timeout, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._idle() or self.transport is None:
            return
        log.info("closing a connection from %s: no complete request headers within %gs", self._ip,
                 self._guard.settings.header_timeout_s)  # fmt: skip
        self.transport.write(HEADER_TIMEOUT)
        self.force_close()


# ------------------------------------------------------------------ the app


def build_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, auth_middleware(services)],
        client_max_size=services.max_body_bytes,
    )
    app[SERVICES] = services
    api = HttpApi(services)
    for method, path, handler, _ in api.routes():
        app.router.add_route(method, path, handler)
    app.on_shutdown.append(api.end_streams)
    if services.ws_handler is not None:
        app.router.add_get("/agency/ws", services.ws_handler)
        app.router.add_get("/ws", services.ws_handler)
    return app


class HttpApi:
    def __init__(self, services: Services) -> None:
        self.s = services
        self._streams: set[asyncio.Queue[tuple[int, bytes] | None]] = set()  # open SSE streams

    def routes(self) -> list[tuple[str, str, Handler, str]]:
        """(method, path, handler, summary) — also the source of /openapi.json."""
        return [
            ("GET", "/health", self.health, "Liveness and live counts"),
            ("POST", "/dispatch", self.dispatch, "Send a message into the dispatch path (agent route)"),
            ("POST", "/presence", self.presence, "Mark an agent present over HTTP"),
            ("GET", "/session/{id}", self.session, "One peripheral session"),
            ("POST", "/api/alpha/evidence", self.evidence_post, "Append an evidence entry (agent route)"),
            ("GET", "/api/alpha/evidence", self.evidence_query, "Query evidence, newest first"),
            ("GET", "/api/alpha/evidence/count", self.evidence_count, "Count matching evidence"),
            ("GET", "/api/alpha/evidence/search", self.evidence_search, "Full-text search of evidence, best first"),
            ("GET", "/api/alpha/evidence/stream", self.evidence_stream, "Server-Sent Events of new evidence"),
            ("POST", "/api/alpha/evidence/compact", self.evidence_compact, "Drop old ephemeral entries from the shards (admin)"),
            ("GET", "/api/alpha/evidence/{id}", self.evidence_get, "One evidence entry"),
            ("GET", "/api/alpha/evidence/{id}/chain", self.evidence_chain, "Ancestors by in-reply-to, root first"),
            ("GET", "/api/alpha/evidence/{id}/thread", self.evidence_thread, "The whole reply tree of an entry's root"),
            ("GET", "/api/alpha/agents", self.agents, "The live agent registry"),
            ("POST", "/api/alpha/agents", self.agents_post, "Register an agent at run time"),
            ("DELETE", "/api/alpha/agents/{id}", self.agents_delete, "Deregister an agent (closes its connection)"),
            ("GET", "/api/alpha/peripherals", self.peripherals, "The peripherals and their envelopes"),
            ("GET", "/api/alpha/sessions", self.sessions, "Peripheral sessions, newest first"),
            ("GET", "/api/alpha/sessions/{id}/audit", self.session_audit, "Replay a session's evidence against the peripheral specs"),
            ("GET", "/api/alpha/audit", self.audit_window, "Audit the sessions started in a time window (admin)"),
            ("GET", "/api/alpha/approvals", self.approvals, "Approvals waiting for a human (admin)"),
            ("POST", "/api/alpha/approvals/{id}", self.approvals_decide, "Approve or deny a pending approval (admin)"),
            ("POST", "/api/alpha/sessions/{id}/interrupt", self.session_interrupt, "Stop a running session at once (admin)"),
            ("POST", "/api/alpha/chat", self.chat, "Say something to a channel, nick or agent (agent route)"),
            ("POST", "/api/alpha/config/reload", self.config_reload, "Re-read the config files, as SIGHUP does"),
            ("GET", "/metrics", self.metrics, "Prometheus metrics, text format 0.0.4"),
            ("GET", "/openapi.json", self.openapi, "This document"),
            ("GET", "/", self.page, "The evidence web page (timeline, threads, agents)"),
            *(("GET", path, self.web_asset, "A script or style of the web page") for path in WEB_ASSETS),
        ]

    # -------------------------------------------------------------- core

    async def health(self, _: web.Request) -> web.Response:
        return ok({"status": "ok", **self.s.health.health(), "version": __version__})

    async def dispatch(self, request: web.Request) -> web.Response:
        body: bodies.DispatchRequest = await read_body(request, bodies.DispatchRequest)
        pipeline = _need(self.s.pipeline, "the dispatch pipeline")
        sender, sender_type = body.sender()
        if request[AGENT]:  # an agent token speaks for its agent only
            sender, sender_type = request[AGENT], "agent"
        elif self._unproven_agent(sender):
            sender, sender_type = HTTP_CALLER, "system"
        to, to_type = body.target()
        # Actions run with the caller's identity: an agent token may run them
        # only as that agent; a caller without one is the admin (the pipeline).
        receipt = await pipeline.dispatch(
            Inbound(msg_id=body.msg_id, sender=sender, to=to, payload=body.payload, transport="http",
                    sender_type=sender_type, admin=not request[AGENT])
        )  # fmt: skip
        return ok(receipt.to_dict(to_type))

    def _unproven_agent(self, name: str) -> bool:
        """``from`` names a registered agent, but the caller did not present
        that agent's token: evidence must not name the agent as the author,
        so the caller is recorded as :data:`HTTP_CALLER` instead. IRC folds
        case and an agent's nick is the agent's: ``CLAUDE-1`` or the agent's
        nick names the agent as much as its id does."""
        return self.s.registry is not None and self.s.registry.owner_of_nick(name) is not None

    async def presence(self, request: web.Request) -> web.Response:
        body: bodies.PresenceRequest = await read_body(request, bodies.PresenceRequest)
        registry = _need(self.s.registry, "the agent registry")
        record = registry.get(body.agent_id)
        if body.metadata.get("ready") is not True:
            raise PermissionDenied("presence needs metadata.ready = true", code="not-ready")
        record.touch()
        return ok(
            {
                "type": "presence",
                "agent_id": {"value": record.id, "type": record.type},
                "ready": True,
                "transport": body.transport,
                "at": _now(),
            }
        )

    async def session(self, request: web.Request) -> web.Response:
        """Live or recorded (it survives a restart): state ``active``,
        ``stopped`` (with ``reason`` and ``fruit``) or ``interrupted``."""
        runner = _need(self.s.runner, "the peripheral runner")
        shown = runner.info(request.match_info["id"]).to_dict()
        if self.s.team_sessions is not None:  # its daemon; active while it runs there
            (shown,) = await self.s.team_sessions.annotate([shown])
        return ok(shown)

    # -------------------------------------------------------------- evidence

    def _store(self) -> EvidenceStore:
        return _need(self.s.store, "the evidence store")

    async def evidence_post(self, request: web.Request) -> web.Response:
        raw = await read_body(request, bodies.RawObject)
        if not isinstance(raw, dict):
            raise ProtocolError("an evidence entry must be a JSON object", code="invalid-entry")
        if request[AGENT]:
            author = raw.get("evidence/author", raw.get("author"))
            if author not in (None, request[AGENT]):
                raise PermissionDenied("an agent may write evidence only as itself", code="forbidden")
            body = raw.get("evidence/body", raw.get("body"))
            if isinstance(body, dict) and body.get("speaker", "agent") != "agent":
                # a user-request hop cites a line a human said (peripherals/hop.py)
                raise PermissionDenied("an agent may not record a line as said by a human", code="forbidden")
        entry = await self._store().append(raw)
        return ok({"ok": True, "evidence/id": entry["evidence/id"], "entry": entry}, status=201)

    async def evidence_query(self, request: web.Request) -> web.Response:
        query = EvidenceQuery.from_params(_query_params(request), strict_keys=True)
        # The stored lines are already JSON: splice them into the answer
        # rather than parse and serialise every entry again.
        lines, cursor = self._store().query_lines(query)
        head = b'{"ok":true,"count":%d,"entries":[' % len(lines)
        tail = b"]" + (b',"next_cursor":' + json.dumps(cursor).encode() if cursor else b"") + b"}"
        return web.Response(body=head + b",".join(lines) + tail, content_type="application/json")

    async def evidence_count(self, request: web.Request) -> web.Response:
        params = {k: v for k, v in _query_params(request).items() if k not in ("limit", "cursor")}
        return ok({"ok": True, "count": self._store().count(EvidenceQuery.from_params(params, strict_keys=True))})

    async def evidence_search(self, request: web.Request) -> web.Response:
        """``q`` plus the query filters; ranked hits with snippets
        (futon.evidence.search). A bad query is invalid-query, never a 500."""
        search = SearchRequest.from_params(_query_params(request), strict_keys=True)
        hits = self._store().search(search)
        return ok({"ok": True, "count": len(hits), "results": [hit.to_dict() for hit in hits]})

    async def session_audit(self, request: web.Request) -> web.Response:
        """Every violation of the specs the session's evidence shows; 404
        session-not-found when the evidence has no such session."""
        runner = _need(self.s.runner, "the peripheral runner")
        report = audit_session(self._store(), runner.peripherals, request.match_info["id"])
        return ok({"ok": True, **report.to_dict()})

    async def audit_window(self, request: web.Request) -> web.Response:
        """Every session with a goal in ``[since, until)``, audited — at most
        :data:`AUDIT_WINDOW_CAP` per call (``more``: narrow the window).
        ``since`` is required; a bad time is invalid-query."""
        params = _query_params(request)
        unknown = sorted(set(params) - {"since", "until"})
        if unknown or not params.get("since"):
            raise ProtocolError("audit takes since (required) and until, ISO-8601 times", code="invalid-query")
        window = EvidenceQuery.from_params(params, strict_keys=True)  # the one parser of times
        runner = _need(self.s.runner, "the peripheral runner")
        report = await audit_window_async(
            self._store(), runner.peripherals, window.since, window.until, cap=AUDIT_WINDOW_CAP
        )
        return ok({"ok": True, **report.to_dict()})

    async def evidence_compact(self, request: web.Request) -> web.Response:
        body: bodies.CompactRequest = await read_body(request, bodies.CompactRequest)
        return ok({"ok": True, **(await self._store().compact_live(body.before))})

    async def evidence_get(self, request: web.Request) -> web.Response:
        return ok({"ok": True, "entry": self._store().get(request.match_info["id"])})

    async def evidence_chain(self, request: web.Request) -> web.Response:
        entry_id = request.match_info["id"]
        return ok({"ok": True, "evidence-id": entry_id, "chain": self._store().chain(entry_id)})

    async def evidence_thread(self, request: web.Request) -> web.Response:
        thread = self._store().thread(request.match_info["id"])
        return ok({"ok": True, **thread.to_dict()})

    async def evidence_stream(self, request: web.Request) -> web.StreamResponse:
        """SSE: the backlog after Last-Event-ID (an entry seq), then live."""
        store = self._store()
        params = _query_params(request)
        params.pop("token", None)  # the page's auth (QUERY_TOKEN_ROUTES), not a filter
        last = request.headers.get("Last-Event-ID") or params.pop("last-event-id", None)
        params.pop("last-event-id", None)
        query = EvidenceQuery.from_params({k: v for k, v in params.items() if k not in ("limit", "cursor")}, strict_keys=True)
        after = _last_event_id(last)
        queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        waiting = 0  # bytes of events in `queue`

        def listener(entry: dict[str, Any]) -> None:
            nonlocal waiting
            if not query.matches(entry):
                return
            event = _sse_event(entry)
            if queue.qsize() >= SSE_QUEUE or waiting + len(event) > SSE_MAX_BYTES:
                cut_off()  # too slow: end the stream; the client resumes with Last-Event-ID
                return
            waiting += len(event)
            queue.put_nowait((entry["evidence/seq"], event))

        def cut_off() -> None:
            nonlocal waiting
            unsubscribe()
            while not queue.empty():
                queue.get_nowait()
            waiting = 0
            queue.put_nowait(None)
            if request.transport is not None:  # a write stuck on a full socket ends now
                request.transport.abort()

        unsubscribe = store.subscribe(listener)
        self._streams.add(queue)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        try:
            await response.prepare(request)
            sent = after
            backlog = replace(query, after_seq=after, limit=SSE_PAGE)
            while True:  # replay everything after Last-Event-ID, a page at a time
                page = store.query(backlog)
                for entry in page.entries:
                    await _write_within(response, _sse_event(entry))
                    sent = entry["evidence/seq"]
                if len(page.entries) < backlog.limit:
                    break
                backlog = replace(backlog, after_seq=sent)
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    await _write_within(response, b": keep-alive\n\n")
                    continue
                if item is None:
                    break
                seq, event = item
                waiting -= len(event)
                if seq > sent:
                    await _write_within(response, event)
                    sent = seq
        except (ConnectionError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            unsubscribe()
            self._streams.discard(queue)
        return response

    async def end_streams(self, _: web.Application) -> None:
        """At shutdown: end every SSE stream now (clients resume elsewhere
        with Last-Event-ID) instead of holding the drain until its timeout."""
        for queue in list(self._streams):
            with contextlib.suppress(asyncio.QueueEmpty):
                if queue.full():
                    queue.get_nowait()
            queue.put_nowait(None)

    # -------------------------------------------------------------- agents

    async def agents(self, _: web.Request) -> web.Response:
        registry = _need(self.s.registry, "the agent registry")
        listed = [record.describe() for record in registry.all()]
        if self.s.team_agents is not None:  # one of a team: where each agent is
            listed = await self.s.team_agents(listed)
        return ok({"ok": True, "agents": listed})

    async def agents_post(self, request: web.Request) -> web.Response:
        body: bodies.RegisterAgentRequest = await read_body(request, bodies.RegisterAgentRequest)
        registry = _need(self.s.registry, "the agent registry")
        if self.s.team_state is not None:  # the id must be free in the whole team
            team = self.s.team_state
            record = await team.register(body.agent_id, body.type, body.token, body.channels)
        else:
            record = registry.register(body.agent_id, body.type, token=body.token, channels=body.channels)
        return ok({"ok": True, "agent_id": record.id}, status=201)

    async def agents_delete(self, request: web.Request) -> web.Response:
        registry = _need(self.s.registry, "the agent registry")
        if self.s.team_state is not None:  # known here if the team knows it; then gone team-wide
            await self.s.team_state.known(request.match_info["id"])
            registry.get(request.match_info["id"])  # agent-not-found, before anything changes
            await self.s.team_state.deregistered(request.match_info["id"])
        record = registry.deregister(request.match_info["id"])
        if record.link is not None:
            await record.link.close(4004, "deregistered")
        if self.s.on_deregister is not None:
            await self.s.on_deregister(record.id)
        return ok({"ok": True, "agent_id": record.id})

    async def peripherals(self, _: web.Request) -> web.Response:
        runner = _need(self.s.runner, "the peripheral runner")
        return ok({"ok": True, "peripherals": [p.describe() for p in runner.peripherals.values()]})

    async def sessions(self, request: web.Request) -> web.Response:
        runner = _need(self.s.runner, "the peripheral runner")
        agent_id = request.query.get("agent-id") or request.query.get("agent_id")
        limit = _sessions_limit(request.query.get("limit"))
        listed = [info.to_dict() for info in runner.infos(agent_id, limit)]
        if self.s.team_sessions is not None:  # each with its daemon; active while it runs there
            listed = await self.s.team_sessions.annotate(listed)
        return ok({"ok": True, "sessions": listed})

    async def approvals(self, _: web.Request) -> web.Response:
        approvals = _need(self.s.approvals, "approvals")
        return ok({"ok": True, "approvals": await approvals.listing()})  # a team: every daemon's

    async def approvals_decide(self, request: web.Request) -> web.Response:
        """The admin token decides (it is always an approver); recorded with
        author ``admin``."""
        body: bodies.ApprovalDecision = await read_body(request, bodies.ApprovalDecision)
        approvals = _need(self.s.approvals, "approvals")
        decided = await approvals.decide(request.match_info["id"], body.decision, "admin", body.reason, admin=True)
        return ok({"ok": True, **decided})

    async def session_interrupt(self, request: web.Request) -> web.Response:
        """Cancel the running step, conclude ``interrupted``, tell the agent."""
        runner = _need(self.s.runner, "the peripheral runner")
        if self.s.team_sessions is not None and not runner.holds(request.match_info["id"]):
            # Held by another daemon: interrupted there (its checks), its answer.
            routed = await self.s.team_sessions.interrupt_session(request.match_info["id"])
            if routed is not None:
                return ok({"ok": True, **routed})
        stopped = await runner.interrupt(request.match_info["id"])
        record = self.s.registry.find(runner.get(stopped.session_id).agent_id) if self.s.registry else None
        if record is not None and self.s.pipeline is not None:
            await self.s.pipeline.push(record, f.Interrupted(session_id=stopped.session_id, by="admin"))
        return ok({"ok": True, "session_id": stopped.session_id, "peripheral_id": stopped.peripheral_id,
                   "reason": stopped.reason, "fruit": stopped.fruit})  # fmt: skip

    async def chat(self, request: web.Request) -> web.Response:
        body: bodies.ChatRequest = await read_body(request, bodies.ChatRequest)
        sender = request[AGENT] or body.from_ or HTTP_CALLER
        if not request[AGENT] and self._unproven_agent(sender):
            sender = HTTP_CALLER  # an agent speaks here only with its own token
        sink = _need(self.s.chat, "chat")
        # Who spoke, for the record: a user-request hop may cite only a human's line.
        speaker: Speaker = "agent" if request[AGENT] else "human"
        said = await sink.say(sender, body.to, body.text, transport="http", speaker=speaker)
        return ok({"ok": True, **said.to_dict()}, status=202)

    async def openapi(self, _: web.Request) -> web.Response:
        return ok(openapi_document(self))

    # -------------------------------------------------------------- operations

    async def config_reload(self, _: web.Request) -> web.Response:
        """200 with what changed; a ConfigError is 400 ``invalid-config``
        with the problem lines in ``context.problems``."""
        reload = _need(self.s.reload, "config reload")
        return ok({"ok": True, **await reload()})

    async def metrics(self, _: web.Request) -> web.Response:
        render = _need(self.s.metrics, "metrics")
        return web.Response(body=render().encode(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    # -------------------------------------------------------------- the web page

    async def page(self, _: web.Request) -> web.Response:
        return _web_file("index.html", "text/html")

    async def web_asset(self, request: web.Request) -> web.Response:
        name, content_type = WEB_ASSETS[request.path]
        return _web_file(name, content_type)


def _web_file(name: str, content_type: str) -> web.Response:
    """A file of the page, read from the package (futon/web/); ``no-cache``
    so a browser picks up the files of an upgraded daemon at once."""
    data = resources.files("futon").joinpath("web", name).read_bytes()
    return web.Response(
        body=data,
        content_type=content_type,
        charset="utf-8",
        headers={
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            # The page loads its own script and style and talks to this origin only.
            "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        },
    )


def _sse_event(entry: dict[str, Any]) -> bytes:
    data = json.dumps(entry, ensure_ascii=False)
    return f"id: {entry['evidence/seq']}\nevent: evidence\ndata: {data}\n\n".encode()


async def _write_within(response: web.StreamResponse, data: bytes) -> None:
    """One SSE write; a client that does not take it within
    :data:`SSE_WRITE_TIMEOUT_S` ends its stream (TimeoutError)."""
    async with asyncio.timeout(SSE_WRITE_TIMEOUT_S):
        await response.write(data)


def _last_event_id(text: str | None) -> int:
    """The seq an SSE client resumes after (0: from now on)."""
    if not text:
        return 0
    try:
        if len(text) > 20:  # no int64 is longer; int() of a huge text is work for nothing
            raise ValueError
        seq = int(text)
        if not 0 <= seq <= MAX_SEQ:
            raise ValueError
    except ValueError:
        message = f"Last-Event-ID must be an entry seq, got {text[:40]!r}"
        raise ProtocolError(message, code="invalid-query") from None
    return seq


# ------------------------------------------------------------------ OpenAPI

_BODY_OF: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/dispatch"): bodies.DispatchRequest,
    ("POST", "/presence"): bodies.PresenceRequest,
    ("POST", "/api/alpha/agents"): bodies.RegisterAgentRequest,
    ("POST", "/api/alpha/chat"): bodies.ChatRequest,
    ("POST", "/api/alpha/evidence/compact"): bodies.CompactRequest,
}
SESSIONS_LIMIT = 100  # sessions listed when ``limit`` is not given (at most 1000)


def _sessions_limit(raw: str | None) -> int:
    if raw is None:
        return SESSIONS_LIMIT
    if not raw.isdigit() or len(raw) > 6 or not 1 <= int(raw) <= 1000:
        raise ProtocolError("'limit' must be a whole number from 1 to 1000", code="invalid-query")
    return int(raw)


_QUERY_KEYS = ("subject-type", "subject-id", "type", "claim-type", "author", "session-id", "pattern-id",
               "tag", "since", "until", "include-ephemeral", "limit", "cursor")  # fmt: skip


def openapi_document(api: HttpApi | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document, generated from the route table and the
    request body models."""
    api = api or HttpApi(Services(health=_NoHealth()))
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for method, path, _, summary in api.routes():
        operation: dict[str, Any] = {"summary": summary, "responses": {"200": {"description": "OK"}, "default": {"description": "A typed error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}
        params = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}] if "{id}" in path else []
        if method == "GET" and path in ("/api/alpha/evidence", "/api/alpha/evidence/count", "/api/alpha/evidence/stream"):
            params += [{"name": key, "in": "query", "required": False, "schema": {"type": "string"}} for key in _QUERY_KEYS]
        if path == "/api/alpha/sessions":
            params.append({"name": "agent-id", "in": "query", "required": False, "schema": {"type": "string"}})
            params.append({"name": "limit", "in": "query", "required": False,
                           "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": SESSIONS_LIMIT}})  # fmt: skip
        if params:
            operation["parameters"] = params
        model = _BODY_OF.get((method, path))
        if model is not None:
            schemas[model.__name__] = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}
        elif method == "POST" and path != "/api/alpha/config/reload":
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
        if path == "/api/alpha/evidence/stream":
            operation["responses"]["200"] = {"description": "text/event-stream of evidence entries", "content": {"text/event-stream": {}}}
            operation["parameters"].append({"name": "token", "in": "query", "required": False, "schema": {"type": "string"},
                                            "description": "the admin token, for clients that cannot send headers (EventSource)"})  # fmt: skip
        if path == "/metrics":
            operation["responses"]["200"] = {"description": "Prometheus text format 0.0.4", "content": {"text/plain": {}}}
        if path == "/" or path in WEB_ASSETS:
            kind = "text/html" if path == "/" else WEB_ASSETS[path][1]
            operation["responses"]["200"] = {"description": "a file of the web page", "content": {kind: {}}}
        paths.setdefault(path, {})[method.lower()] = operation
    for schema in list(schemas.values()):
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
    schemas["Error"] = {
        "type": "object",
        "properties": {k: {"type": "string"} for k in ("code", "message", "component", "at")} | {"error": {"type": "boolean"}},
        "required": ["code", "message"],
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "futon", "version": __version__, "description": "futon's HTTP API (see docs/http-api.md)."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


class _NoHealth:
    def health(self) -> dict[str, Any]:
        return {}


__all__ = ["HttpRunner", "Services", "build_app", "error_response", "malformed_escape", "openapi_document"]
