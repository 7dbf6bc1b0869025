"""What a session asks of a human before it acts (issue 17, approvals).

A peripheral with ``approval: human`` is entered (start or hop) only once a
human approves; a tool a peripheral lists in ``ask`` runs only once a human
approves that call. The session asks through an :class:`Approver` — a
protocol, so peripherals never import the social layer that posts the
request in the channel and hears the decision
(:class:`futon.social.approvals.Approvals` is the daemon's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class ApprovalRequest:
    """One action waiting for a human: entering ``peripheral_id`` (``kind``
    ``enter``, with the hop's reason) or calling ``tool`` with ``args``
    (``kind`` ``tool``)."""

    agent_id: str
    session_id: str
    kind: Literal["enter", "tool"]
    peripheral_id: str
    reason: str = ""
    tool: str | None = None
    args: Any = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def what(self) -> str:
        """One line saying exactly what is asked (posted in the channel)."""
        if self.kind == "tool":
            return f"run {self.tool} {_short(self.args)} in {self.peripheral_id}"
        return f"enter {self.peripheral_id}" + (f" ({self.reason})" if self.reason else "")


class Approver(Protocol):
    """Decides :class:`ApprovalRequest` s. ``approve`` returns once a human
    approved; it raises ``PermissionDenied`` with code ``approval-denied``
    when one denied, or nobody decided in time. Cancelling the call (the
    session stopped or was interrupted) withdraws the request."""

    async def approve(self, request: ApprovalRequest) -> None: ...


def _short(args: Any, limit: int = 200) -> str:
    text = " ".join(str(a) for a in args) if isinstance(args, list) else str(args)
    return text if len(text) <= limit else text[: limit - 1] + "…"
