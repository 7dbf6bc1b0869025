"""The agent WebSocket protocol's frames (ws-protocol.md): one definition
each, and nothing about sockets.

Every frame is a pydantic model with a literal ``type``. From these models
come parsing (:func:`parse_client_frame`), rendering (:func:`render`) and the
JSON Schemas of ``futon schema`` (:func:`frame_schemas`), so the three cannot
drift apart. Parsing raises ``ProtocolError`` with the wire codes
``invalid-json`` / ``invalid-frame`` and a message naming the field.

Client frames ignore unknown keys (a futon3c bridge may send more than we
read); server frames render only their own fields, dropping ``None``s.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from futon.errors import ProtocolError

PROTOCOL_VERSION = 2
FEATURES = ("hop", "evidence_query", "subscribe", "resume", "chat")

ReqId = str | int


def _drop_colon(value: Any) -> Any:
    return value[1:] if isinstance(value, str) and value.startswith(":") else value


class Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ClientFrame(Frame):
    req_id: ReqId | None = None


class Addressee(BaseModel):
    """``{value, type}``: an agent id (or channel/nick) and its kind."""

    model_config = ConfigDict(extra="ignore")
    value: str = Field(min_length=1, max_length=256)
    type: str = "agent"


# ------------------------------------------------------------ client → server


class ClientInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(max_length=128)
    version: str | None = Field(default=None, max_length=64)


class Ready(ClientFrame):
    type: Literal["ready"]
    agent_id: str = Field(min_length=1, max_length=256)
    session_id: str | None = Field(default=None, max_length=256)
    token: str | None = Field(default=None, max_length=4096)
    protocol_version: int | None = None
    capabilities: list[str] = Field(default_factory=list, max_length=64)
    client: ClientInfo | None = None


class Message(ClientFrame):
    type: Literal["message"]
    msg_id: str = Field(min_length=1, max_length=256)
    to: str | Addressee
    payload: Any = None


class PeripheralStart(ClientFrame):
    type: Literal["peripheral_start"]
    peripheral_id: str | None = Field(default=None, max_length=128)

    _colon = field_validator("peripheral_id", mode="before")(_drop_colon)


class ToolAction(ClientFrame):
    type: Literal["tool_action"]
    tool: str = Field(min_length=1, max_length=128)
    args: list[Any] = Field(default_factory=list)

    @field_validator("tool", mode="before")
    @classmethod
    def _tool(cls, value: Any) -> Any:
        value = _drop_colon(value)
        if isinstance(value, str) and not value.strip():
            raise ValueError("tool must not be blank")
        return value


class Hop(ClientFrame):
    type: Literal["hop"]
    to: str = Field(min_length=1, max_length=128)
    exit_condition: str = Field(min_length=1, max_length=128)
    reason: str = Field(default="", max_length=4096)
    context: dict[str, Any] = Field(default_factory=dict)

    _colon = field_validator("to", mode="before")(_drop_colon)


class PeripheralStop(ClientFrame):
    type: Literal["peripheral_stop"]
    reason: str = Field(default="client-requested", max_length=4096)


class IrcResponse(ClientFrame):
    type: Literal["irc_response"]
    channel: str | None = Field(default=None, max_length=256)
    nick: str | None = Field(default=None, max_length=256)
    text: str = Field(max_length=64 * 1024)


class Chat(ClientFrame):
    type: Literal["chat"]
    to: str = Field(min_length=1, max_length=256)
    text: str = Field(max_length=64 * 1024)


class EvidenceQueryFrame(ClientFrame):
    type: Literal["evidence_query"]
    filters: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(default=None, ge=1)


class Subscribe(ClientFrame):
    type: Literal["subscribe"]
    filters: dict[str, Any] = Field(default_factory=dict)
    since_seq: int | None = Field(default=None, ge=0)


class Resume(ClientFrame):
    type: Literal["resume"]
    since_seq: int = Field(ge=0)


class Reply(ClientFrame):
    type: Literal["reply"]
    msg_id: str = Field(min_length=1, max_length=256)
    payload: Any = None


class Ping(ClientFrame):
    type: Literal["ping"]


CLIENT_FRAMES: tuple[type[ClientFrame], ...] = (
    Ready, Message, PeripheralStart, ToolAction, Hop, PeripheralStop, IrcResponse,
    Chat, EvidenceQueryFrame, Subscribe, Resume, Reply, Ping,
)  # fmt: skip
AnyClientFrame = Annotated[
    Ready | Message | PeripheralStart | ToolAction | Hop | PeripheralStop | IrcResponse
    | Chat | EvidenceQueryFrame | Subscribe | Resume | Reply | Ping,
    Field(discriminator="type"),
]  # fmt: skip
_CLIENT = TypeAdapter(AnyClientFrame)
CLIENT_TYPES = frozenset(frame.model_fields["type"].annotation.__args__[0] for frame in CLIENT_FRAMES)  # type: ignore[union-attr]


# ------------------------------------------------------------ server → client


class ServerFrame(Frame):
    req_id: ReqId | None = None


class ServerInfo(BaseModel):
    name: str
    version: str


class ReadyAck(ServerFrame):
    type: Literal["ready_ack"] = "ready_ack"
    agent_id: str
    session_id: str
    protocol_version: int = PROTOCOL_VERSION
    server: ServerInfo
    features: list[str] = Field(default_factory=lambda: list(FEATURES))
    peripherals: list[str]
    default_peripheral: str


class Receipt(ServerFrame):
    type: Literal["receipt"] = "receipt"
    msg_id: str
    delivered: bool
    at: str
    route: str | None = None
    session_id: str | None = None
    peripheral_id: str | None = None
    fruit: Any = None
    reply: Any = None


class PeripheralStarted(ServerFrame):
    type: Literal["peripheral_started"] = "peripheral_started"
    peripheral_id: str
    session_id: str
    tools: list[str]
    scope: Any


class ToolResult(ServerFrame):
    type: Literal["tool_result"] = "tool_result"
    tool: str
    ok: bool
    result: Any = None


class Hopped(ServerFrame):
    type: Literal["hopped"] = "hopped"
    from_: str = Field(alias="from")
    to: str
    session_id: str
    context: dict[str, Any]
    tools: list[str]


class PeripheralStopped(ServerFrame):
    type: Literal["peripheral_stopped"] = "peripheral_stopped"
    peripheral_id: str
    reason: str
    fruit: Any = None


class IrcMessage(ServerFrame):
    type: Literal["irc_message"] = "irc_message"
    channel: str | None
    from_: str = Field(alias="from")
    text: str
    transport: str = "irc"
    private: bool | None = None
    seq: int


class ChatMessage(ServerFrame):
    type: Literal["chat_message"] = "chat_message"
    to: str
    from_: str = Field(alias="from")
    text: str
    transport: str
    seq: int


class PushedMessage(ServerFrame):
    type: Literal["message"] = "message"
    msg_id: str
    from_: Addressee = Field(alias="from")
    payload: Any = None
    mode: Literal["coordination"] = "coordination"
    seq: int


class Subscribed(ServerFrame):
    type: Literal["subscribed"] = "subscribed"
    filters: dict[str, Any]


class EvidenceResult(ServerFrame):
    type: Literal["evidence_result"] = "evidence_result"
    entries: list[dict[str, Any]]
    count: int


class EvidencePush(ServerFrame):
    type: Literal["evidence"] = "evidence"
    entry: dict[str, Any]
    seq: int


class Pong(ServerFrame):
    type: Literal["pong"] = "pong"


class ErrorFrame(ServerFrame):
    type: Literal["error"] = "error"
    code: str
    message: str
    context: dict[str, Any] | None = None


SERVER_FRAMES: tuple[type[ServerFrame], ...] = (
    ReadyAck, Receipt, PeripheralStarted, ToolResult, Hopped, PeripheralStopped, IrcMessage,
    ChatMessage, PushedMessage, Subscribed, EvidenceResult, EvidencePush, Pong, ErrorFrame,
)  # fmt: skip

AnyServerFrame = Annotated[
    ReadyAck | Receipt | PeripheralStarted | ToolResult | Hopped | PeripheralStopped | IrcMessage
    | ChatMessage | PushedMessage | Subscribed | EvidenceResult | EvidencePush | Pong | ErrorFrame,
    Field(discriminator="type"),
]  # fmt: skip
_SERVER = TypeAdapter(AnyServerFrame)
SERVER_TYPES = frozenset(frame.model_fields["type"].default for frame in SERVER_FRAMES)

# Fields that are present even when null (the spec's shapes say so).
_KEEP_NULL = {"irc_message": {"channel"}}


# ------------------------------------------------------------------ codec


def parse_client_frame(data: str | bytes) -> ClientFrame:
    """Parse one text message into its frame, or raise a typed error."""
    if isinstance(data, bytes):
        raise ProtocolError("binary frames are not accepted; send JSON text", code="invalid-json")
    if not data.strip():
        raise ProtocolError("empty frame", code="invalid-json")
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise ProtocolError(f"frame is not JSON: {exc.msg} at position {exc.pos}", code="invalid-json") from None
    return frame_from_object(raw)


def frame_from_object(raw: Any) -> ClientFrame:
    if not isinstance(raw, dict):
        raise ProtocolError(f"a frame must be a JSON object, got {type(raw).__name__}", code="invalid-frame")
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("frame has no string 'type'", code="invalid-frame")
    if kind not in CLIENT_TYPES:
        raise ProtocolError(f"unknown frame type {kind!r}", code="invalid-frame", context={"type": kind})
    try:
        return _CLIENT.validate_python(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = [str(p) for p in error["loc"][1:]]  # drop the union tag
        field = ".".join(loc) or "frame"
        if error["type"] == "missing":
            message = f"{kind}: missing required field {field!r}"
        else:
            message = f"{kind}: field {field!r}: {error['msg']}"
        raise ProtocolError(message, code="invalid-frame", context={"field": field}) from None


def parse_server_frame(data: str | bytes) -> ServerFrame:
    """Parse one server message into its frame (the client side of the
    codec); unknown keys are ignored, so a newer server stays readable.
    Raises ``ProtocolError`` (``invalid-json`` / ``invalid-frame``)."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise ProtocolError(f"server frame is not JSON: {exc}", code="invalid-json") from None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in SERVER_TYPES:
        raise ProtocolError(
            f"unknown server frame type {kind!r}", code="invalid-frame", context={"type": str(kind)}
        )
    try:
        return _SERVER.validate_python(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in error["loc"][1:]) or "frame"
        message = f"{kind}: field {field!r}: {error['msg']}"
        raise ProtocolError(message, code="invalid-frame", context={"field": field}) from None


def req_id_of(raw: str | bytes) -> ReqId | None:
    """Best effort: the req_id of a frame that failed to parse, so even an
    error reply can be matched to its request."""
    try:
        value = json.loads(raw).get("req_id")
    except (ValueError, AttributeError, TypeError):
        return None
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def render(frame: ServerFrame) -> str:
    data = frame.model_dump(by_alias=True, exclude_none=True)
    for key in _KEEP_NULL.get(data["type"], ()):
        data.setdefault(key, None)
    return json.dumps(data, ensure_ascii=False, default=str)


def frame_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema per frame, keyed ``client.<type>`` / ``server.<type>``."""
    out: dict[str, dict[str, Any]] = {}
    for direction, frames in (("client", CLIENT_FRAMES), ("server", SERVER_FRAMES)):
        for frame in frames:
            schema = frame.model_json_schema(by_alias=True)
            kind = frame.model_fields["type"]
            name = kind.default if isinstance(kind.default, str) else kind.annotation.__args__[0]  # type: ignore[union-attr]
            out[f"{direction}.{name}"] = schema
    return out
