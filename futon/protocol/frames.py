"""The agent WebSocket protocol's frames (ws-protocol.md): one definition
each, and nothing about sockets.

Every frame is a pydantic model with a literal ``type``. From these models
come parsing (:func:`parse_client_frame`), rendering (:func:`render`) and the
JSON Schemas of ``futon schema`` (:func:`frame_schemas`), so the three cannot
drift apart. Parsing raises ``ProtocolError`` with the wire codes
``invalid-json`` / ``invalid-frame`` and a message naming the field.

Client frames ignore unknown keys (a futon3c bridge may send more than we
read); server frames render only their own fields, dropping ``None``s.

JSON from a peer is read with :func:`loads_bounded`: nesting deeper than
:data:`MAX_JSON_DEPTH` is ``invalid-json`` (the HTTP bodies use it too), so
no peer can make a parser recurse into a 500.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from futon.protocol.errors import ProtocolError

PROTOCOL_VERSION = 2
FEATURES = ("hop", "evidence_query", "subscribe", "resume", "chat")
MAX_JSON_DEPTH = 64  # arrays/objects inside each other in one frame or request body
MAX_SEQ = 2**63 - 1  # seqs are SQLite integers: a larger since_seq is refused, not a 500

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
    since_seq: int | None = Field(default=None, ge=0, le=MAX_SEQ)


class Resume(ClientFrame):
    type: Literal["resume"]
    since_seq: int = Field(ge=0, le=MAX_SEQ)


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


class JsonError(ProtocolError):
    """``invalid-json``, with the ``req_id`` of the refused text when it
    could still be read (so even this error matches its request)."""

    def __init__(
        self, message: str, *, req_id: ReqId | None = None, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, code="invalid-json", context=context)
        self.req_id = req_id


def loads_bounded(data: str | bytes, *, what: str = "frame", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses nesting deeper than ``max_depth`` levels.

    Every failure is a :class:`JsonError` (``invalid-json``), never a
    RecursionError or a bare ValueError. Cost: one C-speed parse; a text
    with more than ``max_depth`` brackets also gets one walk over its
    containers (bounded by the text's size, which the transport caps)."""
    try:
        value = json.loads(data, parse_constant=_not_json)
    except RecursionError:  # far too deep for the C parser's recursion guard
        raise _too_deep(what, max_depth, _scan_req_id(data)) from None
    except json.JSONDecodeError as exc:
        raise JsonError(f"{what} is not JSON: {exc.msg} at position {exc.pos}") from None
    except ValueError as exc:  # bad UTF-8, an integer of more than 4300 digits
        raise JsonError(f"{what} is not JSON: {str(exc)[:120]}") from None
    if _brackets(data) > max_depth and _deeper_than(value, max_depth):
        req_id = _valid_req_id(value.get("req_id")) if isinstance(value, dict) else None
        raise _too_deep(what, max_depth, req_id)
    return value


def _not_json(word: str) -> Any:
    # Python's json reads NaN and Infinity; JSON has no such numbers, and
    # stored, they would make the evidence shards unreadable to others.
    raise ValueError(f"{word} is not a JSON number")


def _too_deep(what: str, max_depth: int, req_id: ReqId | None) -> JsonError:
    message = f"{what} nests deeper than {max_depth} levels"
    return JsonError(message, req_id=req_id, context={"max_depth": max_depth})


def _brackets(data: str | bytes) -> int:
    """Opening brackets anywhere (strings included): an upper bound of the
    depth that costs two C-speed counts."""
    if isinstance(data, str):
        return data.count("[") + data.count("{")
    return data.count(b"[") + data.count(b"{")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests more than ``limit`` containers deep
    (iterative: the check itself cannot recurse)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_REQ_ID_VALUE = re.compile(r'\s*:\s*("[^"\\]*(?:\\.[^"\\]*)*"|-?\d{1,18}(?![\d.eE]))')
_SCAN_TOKENS = 4096  # how far a too-deep text is searched for its req_id


def _scan_req_id(data: str | bytes) -> ReqId | None:
    """The top-level ``req_id`` of a text too deep to parse, found by a
    bounded scan of its first tokens (strings and brackets); None if it is
    not among them."""
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    depth = 0
    for n, token in enumerate(_TOKEN.finditer(text)):
        word = token.group()
        if n >= _SCAN_TOKENS:
            return None
        if word in ("[", "{"):
            depth += 1
        elif word in ("]", "}"):
            depth -= 1
        elif depth == 1 and word == '"req_id"':
            match = _REQ_ID_VALUE.match(text, token.end())
            try:
                return _valid_req_id(json.loads(match.group(1))) if match else None
            except ValueError:  # a string with a bad escape
                return None
    return None


def _valid_req_id(value: Any) -> ReqId | None:
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def parse_client_frame(data: str | bytes) -> ClientFrame:
    """Parse one text message into its frame, or raise a typed error
    (:class:`JsonError` when the text is not JSON or nests too deep)."""
    return frame_from_object(load_client_text(data))


def load_client_text(data: str | bytes) -> Any:
    """The JSON value of one client text message (step one of parsing)."""
    if isinstance(data, bytes):
        raise JsonError("binary frames are not accepted; send JSON text")
    if not data.strip():
        raise JsonError("empty frame")
    return loads_bounded(data)


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
    raw = loads_bounded(data, what="server frame")
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


def req_id_of(raw: str | bytes | Any) -> ReqId | None:
    """Best effort: the req_id of a frame that failed to parse (its text,
    or its already parsed JSON value), so even an error reply can be
    matched to its request."""
    if isinstance(raw, str | bytes):
        try:
            raw = loads_bounded(raw)
        except JsonError as exc:
            return exc.req_id
    return _valid_req_id(raw.get("req_id")) if isinstance(raw, dict) else None


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
