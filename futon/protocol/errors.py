"""One error tree for the whole daemon.

Every error carries a wire ``code`` taken verbatim from the tables of
docs/http-api.md and docs/ws-protocol.md, so a transport renders any error
without a lookup table of its own: HTTP takes ``status``, WebSocket sends
``{"type": "error", "code", "message", "context"}``, the CLI prints the message
and exits with ``exit_code``.

    FutonError
    ├── ConfigError        configuration files (exit 2, never a traceback)
    ├── ProtocolError      malformed frames, JSON, queries, input
    ├── PermissionDenied   the envelope, auth, readiness
    ├── NotFound           agents, sessions, evidence, routes
    ├── Conflict           duplicates and dangling references
    ├── StoreError         the evidence store could not do what was asked
    └── ToolError          a tool backend failed (data, not a refusal)
"""

from __future__ import annotations

from typing import Any

# Wire code → HTTP status. One table (docs/http-api.md, errors).
STATUS_BY_CODE: dict[str, int] = {
    # 400
    "invalid-message": 400,
    "invalid-json": 400,
    "invalid-frame": 400,
    "invalid-connection": 400,
    "invalid-input": 400,
    "invalid-target": 400,
    "invalid-query": 400,
    "invalid-entry": 400,
    "invalid-config": 400,
    # 401 / 403
    "unauthorized": 401,
    "not-ready": 403,
    "forbidden": 403,
    "tool-not-allowed": 403,
    "out-of-scope": 403,
    "peripheral-not-permitted": 403,
    "hop-not-allowed": 403,
    "phase-tool-not-allowed": 403,
    "identity-locked": 403,
    "rate-limited": 429,
    "replay-gap": 409,
    "unsupported-protocol": 400,
    "peripheral-already-active": 409,
    "no-active-peripheral": 409,
    "session-stopped": 409,
    # Humans in the loop (issue 17; docs/peripherals.md, approvals)
    "approval-denied": 403,  # a human denied the action, or nobody decided in time
    "not-an-approver": 403,  # the decider is not in agents.yaml approvers
    "approval-self": 403,  # an agent may not decide its own request
    "approval-not-found": 404,
    "approval-expired": 409,
    "approval-already-decided": 409,
    "interrupted": 409,  # a human stopped the step (and the session)
    # 404
    "unknown-peripheral": 404,
    "agent-not-found": 404,
    "session-not-found": 404,
    "not-found": 404,
    "evidence-not-found": 404,
    "no-such-channel": 404,  # a chat line to a channel no IRC side carries and no agent sits in
    "unknown-target": 404,  # a chat line to a name that is no agent and no IRC user
    # 409
    "duplicate-registration": 409,
    "duplicate-id": 409,
    "duplicate-msg-id": 409,  # a msg_id reused for another target or payload (pipeline.py)
    "reply-not-found": 409,
    "fork-not-found": 409,
    # 408 / 413
    "request-timeout": 408,
    "payload-too-large": 413,
    # 5xx
    "invoke-failed": 502,
    "peripheral-failed": 502,
    "agent-unreachable": 502,
    "invoke-timeout": 504,
    "store-unavailable": 503,
    "too-many-connections": 503,
    "internal-error": 500,
}


class FutonError(Exception):
    """Base of every error futon raises on purpose.

    ``code`` is the wire code; ``context`` is a JSON-able object with
    details a client may act on (never secrets).
    """

    default_code = "internal-error"
    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.context = context or {}

    @property
    def status(self) -> int:
        return STATUS_BY_CODE.get(self.code, 500)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.context:
            out["context"] = self.context
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class ConfigError(FutonError):
    """A configuration file is unreadable or invalid.

    ``problems`` lists one human line per problem, each naming
    ``file:line:column``, the key path and what was expected.
    """

    default_code = "invalid-config"
    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message, context={"problems": problems or [message]})
        self.problems = problems or [message]

    def __str__(self) -> str:
        if len(self.problems) == 1 and self.problems[0] == self.message:
            return self.message
        return self.message + "\n" + "\n".join(f"  {p}" for p in self.problems)


class ProtocolError(FutonError):
    """Malformed input. On the command line that is a usage error (exit 2)."""

    default_code = "invalid-input"
    exit_code = 2


class PermissionDenied(FutonError):
    default_code = "forbidden"


class NotFound(FutonError):
    default_code = "not-found"


class Conflict(FutonError):
    default_code = "duplicate-id"


class StoreError(FutonError):
    default_code = "store-unavailable"


class ToolError(FutonError):
    default_code = "invoke-failed"


__all__ = [
    "STATUS_BY_CODE",
    "ConfigError",
    "Conflict",
    "FutonError",
    "NotFound",
    "PermissionDenied",
    "ProtocolError",
    "StoreError",
    "ToolError",
]
