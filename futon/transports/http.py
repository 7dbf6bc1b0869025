"""The HTTP transport (aiohttp). It renders; it does not decide.

Routes read live state from the daemon's ``HealthSource``; errors of the one
error tree become the JSON error body of http-api.md, and aiohttp's own 404 /
405 become the spec's JSON (with ``Allow`` kept). A malformed percent-escape
is a 400, and nothing unexpected ever leaves as a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web

from futon import __version__
from futon.errors import FutonError

log = logging.getLogger("futon.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HealthSource(Protocol):
    """What /health reports; every number is read live on each request."""

    def health(self) -> dict[str, Any]: ...


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def error_response(error: FutonError, component: str = "http") -> web.Response:
    body = {
        "error": True,
        "code": error.code,
        "message": error.message,
        "component": component,
        "at": _now(),
    }
    if error.context:
        body["context"] = error.context
    return web.json_response(body, status=error.status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        # Touching the decoded path and query surfaces bad escapes here.
        _ = request.path, request.query
        return await handler(request)
    except FutonError as error:
        return error_response(error)
    except web.HTTPMethodNotAllowed as exc:
        allow = ", ".join(sorted(exc.allowed_methods))
        response = error_response(
            FutonError(f"Method not allowed: {request.method} {request.path}", code="invalid-message")
        )
        response.set_status(405)
        response.headers["Allow"] = allow
        return response
    except web.HTTPNotFound:
        return error_response(FutonError(f"Unknown endpoint: {request.method} {request.path}", code="not-found"))
    except web.HTTPException:
        raise
    except UnicodeDecodeError:
        return error_response(FutonError("malformed percent-escape in the request", code="invalid-input"))
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.rel_url)
        return error_response(FutonError("internal error", code="internal-error"))


def build_app(source: HealthSource) -> web.Application:
    app = web.Application(middlewares=[errors_middleware])

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **source.health(), "version": __version__})

    app.router.add_get("/health", health)
    return app
