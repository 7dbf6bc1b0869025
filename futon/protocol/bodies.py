"""HTTP request bodies: one pydantic model each, used to parse requests and
to write the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from futon.protocol.frames import Addressee  # one definition per wire shape


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    error_code: ClassVar[str] = "invalid-input"


class RawObject(Body):
    """Any JSON value; the route validates it itself (evidence entries)."""


def _split(value: str | Addressee | None, default_type: str) -> tuple[str, str]:
    if value is None:
        return "http", "system"
    if isinstance(value, str):
        return value, default_type
    return value.value, value.type


class DispatchRequest(Body):
    error_code: ClassVar[str] = "invalid-message"
    msg_id: str = Field(min_length=1, max_length=256, description="The message's id.")
    from_: str | Addressee | None = Field(
        default=None,
        alias="from",
        description=(
            "The sender: an id or {value, type}; an agent token's agent wins, and a registered "
            "agent's id without its token is recorded as http."
        ),
    )
    to: str | Addressee = Field(description="The addressed agent: an id or {value, type}.")
    payload: Any = Field(
        default=None,
        description=(
            "Coordination (an object with coordination: true or a coordination type) or an action"
            " ({actions: [{tool, args}], peripheral?}); docs/http-api.md."
        ),
    )

    def sender(self) -> tuple[str, str]:
        return _split(self.from_, "agent")

    def target(self) -> tuple[str, str]:
        return _split(self.to, "agent")


class PresenceRequest(Body):
    agent_id: str = Field(min_length=1, max_length=256, description="The agent.")
    transport: str = Field(
        default="http",
        pattern="^(websocket|irc|http|peripheral)$",
        description="How it is present.",
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Must hold ready: true.")


class RegisterAgentRequest(Body):
    agent_id: str = Field(
        min_length=1, max_length=30, description="The new agent's id, usable as an IRC nick."
    )
    type: str = Field(
        min_length=1, max_length=64, description="Its type (chooses its routed default peripheral)."
    )
    token: str | None = Field(
        default=None,
        min_length=8,
        max_length=4096,
        description="Its token (only the sha256 is kept); absent: none.",
    )
    channels: list[str] | None = Field(
        default=None, description="IRC channels it sits in (default #futon)."
    )


class CompactRequest(Body):
    before: datetime = Field(  # ISO-8601; without a zone it is UTC
        description="ISO-8601; ephemeral entries older than this are dropped. Without a zone it is UTC.",
    )

    @field_validator("before")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ChatRequest(Body):
    to: str = Field(min_length=1, max_length=256, description="A #channel, a nick or an agent id.")
    text: str = Field(min_length=1, max_length=64 * 1024, description="What to say.")
    from_: str | None = Field(
        default=None,
        alias="from",
        max_length=256,
        description=(
            "Who says it (an agent token's agent wins; a registered agent's id without its token "
            "is recorded as http)."
        ),
    )


class ApprovalDecision(Body):
    """POST /api/alpha/approvals/{id} (admin): decide a pending approval."""

    decision: Literal["approve", "deny"] = Field(description="approve lets the action through; deny refuses it.")
    reason: str = Field(default="", max_length=4000, description="Why (shown to the agent and recorded).")
