"""The HTTP transport (aiohttp). It renders; it does not decide.

Handlers parse a request into the pipeline's or the store's terms, call
them, and render the answer. Errors of the one error tree become the JSON
bodies of http-api.md (the evidence routes use their own ``{ok: false, err}``
shape); aiohttp's own 404/405/413 become the spec's JSON; a malformed
percent-escape is a 400; nothing unexpected ever leaves as a traceback.

Request bodies are pydantic models (:mod:`futon.transports.bodies`): the
same definitions parse requests and feed ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

from aiohttp import web
from pydantic import BaseModel, ValidationError

from futon import __version__
from futon.agents.registry import AgentRegistry, token_digest
from futon.errors import FutonError, PermissionDenied, ProtocolError
from futon.evidence.model import format_at
from futon.evidence.query import EvidenceQuery
from futon.evidence.store import EvidenceStore
from futon.peripherals.runner import PeripheralRunner
from futon.social.pipeline import Inbound, Pipeline
from futon.transports import bodies

log = logging.getLogger("futon.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AGENT = web.RequestKey("agent", str)  # the agent an agent token speaks for ("" for admin/open)
SSE_QUEUE = 1000  # entries buffered for one slow SSE client before it is cut off


class HealthSource(Protocol):
    """What /health reports; every number is read live on each request."""

    def health(self) -> dict[str, Any]: ...


class ChatSink(Protocol):
    """Where POST /api/alpha/chat goes (the daemon: IRC and/or an agent)."""

    async def chat(self, sender: str, to: str, text: str) -> None: ...


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
    on_deregister: Callable[[str], Awaitable[None]] | None = None
    reload: Callable[[], Awaitable[dict[str, Any]]] | None = None  # POST /api/alpha/config/reload
    metrics: Callable[[], str] | None = None  # GET /metrics: the exposition text


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
    """The evidence routes' own error shape (http-api.md)."""
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

    aiohttp keeps a bad escape literally; the spec wants a 400 instead, both
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


def auth_middleware(services: Services) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """With an admin token configured every route but the open ones needs
    ``Authorization: Bearer``; an agent's own token works on agent routes."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[AGENT] = ""
        admin = services.admin_token_sha256
        route = (request.method, request.path)
        if admin is None or route in OPEN_ROUTES or request.method == "OPTIONS":
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
        agent = services.registry.agent_for_token(token) if services.registry else None
        if agent is None:
            raise PermissionDenied("unknown token", code="unauthorized")
        if route not in AGENT_ROUTES:
            raise PermissionDenied("an agent token may not use this route", code="forbidden")
        request[AGENT] = agent.id
        return await handler(request)

    return middleware


# ------------------------------------------------------------------ helpers


async def read_body(request: web.Request, model: type[bodies.Body]) -> Any:
    """Parse a JSON body into ``model``; typed 400s for everything else."""
    if request.content_type not in ("application/json", "application/octet-stream", "") and not request.content_type.endswith("+json"):
        raise ProtocolError(f"Content-Type must be application/json, not {request.content_type}", code="invalid-json")
    raw = await request.read()
    if not raw.strip():
        raise ProtocolError("empty request body; send a JSON object", code="invalid-json")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"request body is not JSON: {exc}", code="invalid-json") from None
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


def ok(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False, default=str))


def _need(value: Any, what: str) -> Any:
    if value is None:
        raise FutonError(f"{what} is not available in this daemon", code="internal-error")
    return value


def _query_params(request: web.Request) -> dict[str, str]:
    return {key: value for key, value in request.query.items()}


# ------------------------------------------------------------------ the app


def build_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, auth_middleware(services)],
        client_max_size=services.max_body_bytes,
    )
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
        self._streams: set[asyncio.Queue[dict[str, Any] | None]] = set()  # open SSE streams

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
            ("GET", "/api/alpha/evidence/stream", self.evidence_stream, "Server-Sent Events of new evidence"),
            ("GET", "/api/alpha/evidence/{id}", self.evidence_get, "One evidence entry"),
            ("GET", "/api/alpha/evidence/{id}/chain", self.evidence_chain, "Ancestors by in-reply-to, root first"),
            ("GET", "/api/alpha/evidence/{id}/thread", self.evidence_thread, "The whole reply tree of an entry's root"),
            ("GET", "/api/alpha/agents", self.agents, "The live agent registry"),
            ("POST", "/api/alpha/agents", self.agents_post, "Register an agent at run time"),
            ("DELETE", "/api/alpha/agents/{id}", self.agents_delete, "Deregister an agent (closes its connection)"),
            ("GET", "/api/alpha/peripherals", self.peripherals, "The peripherals and their envelopes"),
            ("GET", "/api/alpha/sessions", self.sessions, "Peripheral sessions, newest first"),
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
        to, to_type = body.target()
        receipt = await pipeline.dispatch(
            Inbound(msg_id=body.msg_id, sender=sender, to=to, payload=body.payload, transport="http", sender_type=sender_type)
        )
        return ok(receipt.to_dict(to_type))

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
        runner = _need(self.s.runner, "the peripheral runner")
        session = runner.get(request.match_info["id"])
        return ok({"session_id": session.id, "agent_id": session.agent_id, "state": session.status,
                   "peripheral_id": session.peripheral.id, "at": session.updated_at})  # fmt: skip

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
        entry = await self._store().append(raw)
        return ok({"ok": True, "evidence/id": entry["evidence/id"], "entry": entry}, status=201)

    async def evidence_query(self, request: web.Request) -> web.Response:
        query = EvidenceQuery.from_params(_query_params(request), strict_keys=True)
        page = self._store().query(query)
        data: dict[str, Any] = {"ok": True, "count": len(page.entries), "entries": page.entries}
        if page.next_cursor:
            data["next_cursor"] = page.next_cursor
        return ok(data)

    async def evidence_count(self, request: web.Request) -> web.Response:
        params = {k: v for k, v in _query_params(request).items() if k not in ("limit", "cursor")}
        return ok({"ok": True, "count": self._store().count(EvidenceQuery.from_params(params, strict_keys=True))})

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
        after = 0
        if last:
            try:
                after = int(last)
            except ValueError:
                raise ProtocolError(f"Last-Event-ID must be an entry seq, got {last!r}", code="invalid-query") from None
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=SSE_QUEUE)

        def listener(entry: dict[str, Any]) -> None:
            if query.matches(entry):
                try:
                    queue.put_nowait(entry)
                except asyncio.QueueFull:
                    with contextlib.suppress(asyncio.QueueFull):
                        queue.get_nowait()
                    queue.put_nowait(None)  # too slow: end the stream; the client resumes

        unsubscribe = store.subscribe(listener)
        self._streams.add(queue)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            sent = after
            backlog = replace(query, after_seq=after, limit=1000)
            while True:  # replay everything after Last-Event-ID, a page at a time
                page = store.query(backlog)
                for entry in page.entries:
                    await _sse(response, entry)
                    sent = entry["evidence/seq"]
                if len(page.entries) < backlog.limit:
                    break
                backlog = replace(backlog, after_seq=sent)
            while True:
                try:
                    entry = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if entry is None:
                    break
                if entry["evidence/seq"] > sent:
                    await _sse(response, entry)
                    sent = entry["evidence/seq"]
        except (ConnectionError, asyncio.CancelledError):
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
        return ok({"ok": True, "agents": [record.describe() for record in registry.all()]})

    async def agents_post(self, request: web.Request) -> web.Response:
        body: bodies.RegisterAgentRequest = await read_body(request, bodies.RegisterAgentRequest)
        registry = _need(self.s.registry, "the agent registry")
        record = registry.register(body.agent_id, body.type, token=body.token, channels=body.channels)
        return ok({"ok": True, "agent_id": record.id}, status=201)

    async def agents_delete(self, request: web.Request) -> web.Response:
        registry = _need(self.s.registry, "the agent registry")
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
        return ok({"ok": True, "sessions": [
            {"session_id": s.id, "agent_id": s.agent_id, "peripheral_id": s.peripheral.id, "state": s.status, "at": s.updated_at}
            for s in runner.sessions(agent_id)
        ]})  # fmt: skip

    async def chat(self, request: web.Request) -> web.Response:
        body: bodies.ChatRequest = await read_body(request, bodies.ChatRequest)
        sender = request[AGENT] or body.from_ or "http"
        sink = _need(self.s.chat, "chat")
        await sink.chat(sender, body.to, body.text)
        return ok({"ok": True, "to": body.to}, status=202)

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


async def _sse(response: web.StreamResponse, entry: dict[str, Any]) -> None:
    data = json.dumps(entry, ensure_ascii=False)
    await response.write(f"id: {entry['evidence/seq']}\nevent: evidence\ndata: {data}\n\n".encode())


# ------------------------------------------------------------------ OpenAPI

_BODY_OF: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/dispatch"): bodies.DispatchRequest,
    ("POST", "/presence"): bodies.PresenceRequest,
    ("POST", "/api/alpha/agents"): bodies.RegisterAgentRequest,
    ("POST", "/api/alpha/chat"): bodies.ChatRequest,
}
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
        "info": {"title": "futon", "version": __version__, "description": "futon's HTTP API (see http-api.md)."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


class _NoHealth:
    def health(self) -> dict[str, Any]:
        return {}


__all__ = ["Services", "build_app", "error_response", "malformed_escape", "openapi_document"]
