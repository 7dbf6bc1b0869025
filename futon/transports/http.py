"""The HTTP transport (aiohttp). It renders; it does not decide.

Routes read live state from the daemon's ``HealthSource``; errors of the one
error tree become the JSON error body of http-api.md, and aiohttp's own 404 /
405 become the spec's JSON (with ``Allow`` kept). A malformed percent-escape
is a 400, and nothing unexpected ever leaves as a traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

from aiohttp import web

from futon import __version__
from futon.errors import FutonError
from futon.evidence.model import format_at

log = logging.getLogger("futon.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HealthSource(Protocol):
    """What /health reports; every number is read live on each request."""

    def health(self) -> dict[str, Any]: ...


def _now() -> str:
    return format_at(datetime.now(UTC))


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
    bad = malformed_escape(request.raw_path)
    if bad is not None:
        return error_response(FutonError(f"malformed percent-escape in the request target: {bad}", code="invalid-input"))
    try:
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
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.rel_url)
        return error_response(FutonError("internal error", code="internal-error"))


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


def build_app(source: HealthSource) -> web.Application:
    app = web.Application(middlewares=[errors_middleware])

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **source.health(), "version": __version__})

    app.router.add_get("/health", health)
    return app
