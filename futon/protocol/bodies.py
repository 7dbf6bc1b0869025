"""HTTP request bodies: one pydantic model each, used to parse requests and
to write the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Addressee(BaseModel):
    model_config = ConfigDict(extra="ignore")
    value: str = Field(min_length=1, max_length=256)
    type: str = "agent"


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
    msg_id: str = Field(min_length=1, max_length=256)
    from_: str | Addressee | None = Field(default=None, alias="from")
    to: str | Addressee
    payload: Any = None

    def sender(self) -> tuple[str, str]:
        return _split(self.from_, "agent")

    def target(self) -> tuple[str, str]:
        return _split(self.to, "agent")


class PresenceRequest(Body):
    agent_id: str = Field(min_length=1, max_length=256)
    transport: str = Field(default="http", pattern="^(websocket|irc|http|peripheral)$")
    metadata: dict[str, Any] = Field(default_factory=dict)


class RegisterAgentRequest(Body):
    agent_id: str = Field(min_length=1, max_length=30)
    type: str = Field(min_length=1, max_length=64)
    token: str | None = Field(default=None, min_length=8, max_length=4096)
    channels: list[str] | None = None


class CompactRequest(Body):
    before: datetime  # ISO-8601; without a zone it is UTC

    @field_validator("before")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ChatRequest(Body):
    to: str = Field(min_length=1, max_length=256)
    text: str = Field(min_length=1, max_length=64 * 1024)
    from_: str | None = Field(default=None, alias="from", max_length=256)
