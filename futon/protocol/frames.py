"""The agent WebSocket protocol's frames (docs/ws-protocol.md): one definition
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
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from futon.protocol.errors import ProtocolError

PROTOCOL_VERSION = 2
FEATURES = ("hop", "evidence_query", "subscribe", "resume", "chat", "native")  # native: tool_check, native_item
MAX_JSON_DEPTH = 64  # arrays/objects inside each other in one frame or request body
MAX_SEQ = 2**63 - 1  # seqs are SQLite integers: a larger since_seq is refused, not a 500

ReqId = str | int


def _drop_colon(value: Any) -> Any:
    return value[1:] if isinstance(value, str) and value.startswith(":") else value


class Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ClientFrame(Frame):
    if TYPE_CHECKING:
        # For the type checker only: each concrete frame declares `type` as a
        # one-value Literal (the discriminator); no pydantic field here.
        type: str

    req_id: ReqId | None = Field(
        default=None,
        description=(
            "Any string or integer; the server's answer to this frame (reply or error) carries "
            "the same req_id."
        ),
    )


class Addressee(BaseModel):
    """``{value, type}``: an agent id (or channel/nick) and its kind."""

    model_config = ConfigDict(extra="ignore")
    value: str = Field(
        min_length=1, max_length=256, description="An agent id (or a channel or nick)."
    )
    type: str = Field(
        default="agent", description="What value is: agent (default), human, system, ..."
    )


# ------------------------------------------------------------ client → server


class ClientInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(max_length=128, description="The client program's name.")
    version: str | None = Field(
        default=None, max_length=64, description="The client program's version."
    )


class Ready(ClientFrame):
    type: Literal["ready"] = Field(description="The handshake; the first frame of a connection.")
    agent_id: str = Field(
        min_length=1,
        max_length=256,
        description="The agent this socket speaks for (agents.yaml, or registered over HTTP).",
    )
    session_id: str | None = Field(
        default=None,
        max_length=256,
        description=(
            "The client's name for this logical connection; echoed by ready_ack (made up when "
            "absent)."
        ),
    )
    token: str | None = Field(
        default=None,
        max_length=4096,
        description="The agent's token; required when the agent has a token_sha256.",
    )
    admin_token: str | None = Field(
        default=None,
        max_length=4096,
        description=(
            "The daemon's admin token (http.admin_token_sha256): makes this socket an operator "
            "client, which may send approval_decision. Without an admin token configured, any "
            "value from a loopback peer does (as HTTP treats loopback callers as the admin)."
        ),
    )
    protocol_version: int | None = Field(
        default=None,
        description=(
            "The protocol version the client speaks; one above the server's is unsupported-"
            "protocol."
        ),
    )
    capabilities: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Optional features the client supports (informational), and \"resume\": "
        "the client sends resume itself, so the pushes kept while it was offline are not "
        "delivered at connect.",
    )
    client: ClientInfo | None = Field(
        default=None, description="The client program, {name, version} (informational)."
    )


class Message(ClientFrame):
    type: Literal["message"] = Field(
        description="A message into the dispatch path; answered by a receipt."
    )
    msg_id: str = Field(
        min_length=1,
        max_length=256,
        description="The message's id, unique per sender; a reply is matched by it.",
    )
    to: str | Addressee = Field(description="The addressed agent: an id, or {value, type}.")
    payload: Any = Field(
        default=None,
        description=(
            "Any JSON. An object with coordination: true or a coordination type (standup, "
            "handoff, coordination, bell, whistle, page) is delivered to the agent; anything else"
            " is an action (its actions run in the routed peripheral)."
        ),
    )


class PeripheralStart(ClientFrame):
    type: Literal["peripheral_start"] = Field(
        description="Open a peripheral session; answered by peripheral_started."
    )
    peripheral_id: str | None = Field(
        default=None,
        max_length=128,
        description=(
            "The peripheral to start (a leading ':' is dropped); absent: the agent type's routed "
            "default."
        ),
    )
    goal: str | None = Field(
        default=None,
        max_length=64 * 1024,
        description=(
            "What the session is for, in words (a human's request): the answer's related lists "
            "the earlier conclusions and refusals most relevant to it."
        ),
    )
    request: str | None = Field(
        default=None,
        max_length=256,
        description=(
            "The evidence_id of the line this session answers (irc_message or chat_message "
            "evidence_id): "
            "the session's goal entry replies to it. An id the store does not hold is "
            "invalid-input."
        ),
    )

    _colon = field_validator("peripheral_id", mode="before")(_drop_colon)


class ToolAction(ClientFrame):
    type: Literal["tool_action"] = Field(
        description="Run one tool in the active peripheral session; answered by tool_result."
    )
    tool: str = Field(
        min_length=1,
        max_length=128,
        description=(
            "The tool's name (a leading ':' is dropped); it must be in the active peripheral's "
            "tools."
        ),
    )
    args: list[Any] | dict[str, Any] = Field(
        default_factory=list,
        description=(
            "The tool's arguments (docs/tools.md): a JSON array of positional arguments with an "
            'optional options object last (["README.md", {"offset": 10}]), or an object of named '
            'parameters ({"path": "README.md", "offset": 10}). Unknown, missing or wrongly typed '
            "ones are refused with invalid-input naming the parameter, after the tool-set check."
        ),
    )

    @field_validator("tool", mode="before")
    @classmethod
    def _tool(cls, value: Any) -> Any:
        value = _drop_colon(value)
        if isinstance(value, str) and not value.strip():
            raise ValueError("tool must not be blank")
        return value

    @field_validator("args", mode="before")
    @classmethod
    def _array_or_object(cls, value: Any) -> Any:
        # One message naming `args`, not one per branch of the union.
        if not isinstance(value, list | dict):
            raise ValueError("args must be a JSON array (positional) or object (named)")
        return value


class Hop(ClientFrame):
    type: Literal["hop"] = Field(
        description="Move the active session to another peripheral; answered by hopped."
    )
    to: str = Field(
        min_length=1,
        max_length=128,
        description="The target peripheral's id (a leading ':' is dropped).",
    )
    exit_condition: str = Field(
        min_length=1,
        max_length=128,
        description=(
            "The condition the session leaves with; one of the current peripheral's exits "
            "(docs/peripherals.md, hops)."
        ),
    )
    reason: str = Field(
        default="",
        max_length=4096,
        description="Why, in words (recorded in the mode-transition entry).",
    )
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="Context keys to carry into the target, over what the session derived.",
    )

    _colon = field_validator("to", mode="before")(_drop_colon)


class PeripheralStop(ClientFrame):
    type: Literal["peripheral_stop"] = Field(
        description="End the active peripheral session; answered by peripheral_stopped."
    )
    reason: str = Field(
        default="client-requested",
        max_length=4096,
        description="Why the session ends (recorded in its conclusion).",
    )


class IrcResponse(ClientFrame):
    type: Literal["irc_response"] = Field(
        description="Say text as the agent in IRC (no answer on success)."
    )
    channel: str | None = Field(
        default=None, max_length=256, description="The channel to say it in; give this or nick."
    )
    nick: str | None = Field(
        default=None,
        max_length=256,
        description="The nick to say it to privately; give this or channel.",
    )
    text: str = Field(
        max_length=64 * 1024, description="The text; newlines and long lines are split for IRC."
    )
    in_reply_to: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The evidence id of the line this answers (an irc_message's evidence_id); "
        "the answer's evidence entry replies to it. An unknown id is invalid-input.",
    )


class Progress(ClientFrame):
    type: Literal["progress"] = Field(
        description="One short progress line while the agent works, said as a NOTICE from its "
        "nick (only when agents.yaml gives it progress: notice; dropped otherwise). "
        "No answer on success."
    )
    to: str = Field(
        min_length=1,
        max_length=256,
        description="The #channel or IRC nick the work was asked from.",
    )
    text: str = Field(
        min_length=1,
        max_length=400,
        description="The line, e.g. 'claude-1 ▸ test: 3 passed, 1 failed' (one line).",
    )


class Chat(ClientFrame):
    type: Literal["chat"] = Field(
        description="Say text as the agent to a channel, nick or agent (no answer on success)."
    )
    to: str = Field(
        min_length=1,
        max_length=256,
        description="A #channel, a nick, or an agent id (which gets a chat_message push).",
    )
    text: str = Field(max_length=64 * 1024, description="The text.")
    in_reply_to: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The evidence id of the line this answers (a chat_message's evidence_id); "
        "the line's evidence entry replies to it. An unknown id is invalid-input.",
    )


class EvidenceQueryFrame(ClientFrame):
    type: Literal["evidence_query"] = Field(
        description="Query the evidence landscape; answered by evidence_result."
    )
    filters: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "The query keys of docs/evidence.md (subject-type, subject-id, type, claim-type, "
            "author, session-id, pattern-id, tag, since, until, include-ephemeral, cursor)."
        ),
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        description=(
            "At most this many entries (default 100, clamped to 1000; with q: default 20, "
            "clamped to 100)."
        ),
    )
    q: str | None = Field(
        default=None,
        description=(
            "Words to search the entries' text for (full-text search, best first; "
            "docs/evidence.md, search); the filters still apply. At most 2000 characters."
        ),
    )


class Subscribe(ClientFrame):
    type: Literal["subscribe"] = Field(
        description=(
            "Have new evidence entries matching filters pushed as evidence frames; answered by "
            "subscribed. A new subscription replaces the old."
        ),
    )
    filters: dict[str, Any] = Field(
        default_factory=dict, description="The query keys of docs/evidence.md."
    )
    since_seq: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEQ,
        description=(
            "Also push the matching entries after this evidence seq (at most 1000), before the "
            "live ones."
        ),
    )


class Resume(ClientFrame):
    type: Literal["resume"] = Field(
        description=(
            "After a reconnect: re-send the pushes after since_seq still in the replay window (no"
            " answer on success; replay-gap when some fell out)."
        ),
    )
    since_seq: int = Field(
        ge=0, le=MAX_SEQ, description="The seq of the last push the client handled."
    )


class Reply(ClientFrame):
    type: Literal["reply"] = Field(
        description="Answer a pushed coordination message (no answer on success)."
    )
    msg_id: str = Field(
        min_length=1, max_length=256, description="The msg_id of the pushed message being answered."
    )
    payload: Any = Field(
        default=None, description="The answer; it becomes the reply of the sender's receipt."
    )


class Ping(ClientFrame):
    type: Literal["ping"] = Field(description="Answered by pong.")


class Interrupt(ClientFrame):
    type: Literal["interrupt"] = Field(
        description=(
            "Stop the agent's running session at once (its running step returns code interrupted, "
            "its processes are killed; the session concludes with reason interrupted). Answered by "
            "an interrupted push, or error session-stopped / no-active-peripheral."
        )
    )


class ApprovalDecisionFrame(ClientFrame):
    type: Literal["approval_decision"] = Field(
        description=(
            "An operator client (ready with admin_token) approves or denies a pending approval; "
            "recorded with author admin. Answered by approval_decided, or error not-an-approver / "
            "approval-not-found / approval-already-decided / approval-expired."
        )
    )
    approval_id: str = Field(
        min_length=1, max_length=64, description="The approval's short id (approval_pending)."
    )
    decision: Literal["approve", "deny"] = Field(
        description="approve lets the action through; deny refuses it."
    )
    reason: str = Field(
        default="", max_length=4000, description="Why (shown to the agent and recorded)."
    )


NATIVE_ITEM_KINDS = ("agent_message", "command", "file_change", "plan", "reasoning")
NATIVE_ITEM_MAX_BYTES = 16 * 1024  # a native_item's body, as compact JSON (larger: invalid-input)


class ToolCheck(ClientFrame):
    type: Literal["tool_check"] = Field(
        description=(
            "Ask whether the active session would run an action the agent's own (native) tools "
            "are about to run, without running anything (docs/ws-protocol.md, native agents). "
            "Answered by tool_checked, or the error a refused tool_action gets (recorded as a "
            "tension); an ask: tool or approval: human waits for a human first."
        )
    )
    kind: Literal["command", "file_change", "tool"] = Field(
        description=(
            "command: a shell command line; file_change: paths about to be written; tool: a futon "
            "tool call, judged exactly as tool_action would judge it."
        )
    )
    command: str | None = Field(
        default=None,
        min_length=1,
        max_length=64 * 1024,
        description=(
            "kind command: the command line as the native agent would run it (a shell string); "
            "admitted when one of the session's process tools would run it as given."
        ),
    )
    cwd: str | None = Field(
        default=None,
        max_length=4096,
        description=(
            "kind command: the directory it runs in (absolute under the workspace, or "
            "workspace-relative); absent: the workspace."
        ),
    )
    paths: list[Annotated[str, Field(min_length=1, max_length=4096)]] | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description=(
            "kind file_change: every path the change writes (absolute under the workspace, or "
            "workspace-relative); each must be writable in the session."
        ),
    )
    tool: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="kind tool: the futon tool's name (a leading ':' is dropped).",
    )
    args: list[Any] | dict[str, Any] | None = Field(
        default=None,
        description="kind tool: its arguments, as tool_action takes them (absent: none).",
    )
    source: str | None = Field(
        default=None,
        max_length=256,
        description=(
            "Free text naming the native request (e.g. codex:item/fileChange/requestApproval:"
            "item_3); recorded with the step or tension."
        ),
    )

    _colon = field_validator("tool", mode="before")(_drop_colon)

    @model_validator(mode="after")
    def _fields_of_kind(self) -> ToolCheck:
        # One message naming what the kind needs, not a missing-field error per branch.
        needed = {"command": "command", "file_change": "paths", "tool": "tool"}[self.kind]
        if getattr(self, needed) is None:
            raise ValueError(f"a tool_check of kind {self.kind} needs '{needed}'")
        return self


class NativeItem(ClientFrame):
    type: Literal["native_item"] = Field(
        description=(
            "Record something the agent's native tools did (a message, a command's outcome, a "
            "file change, a plan, reasoning) in the active session's chain; answered by recorded."
        )
    )
    kind: Literal["agent_message", "command", "file_change", "plan", "reasoning"] = Field(
        description=(
            "What the item is; reasoning is recorded as an ephemeral entry (dropped by compaction)."
        )
    )
    body: Any = Field(
        description=(
            "A JSON object describing the item (the driver's own shape); at most 16 KiB as "
            "compact JSON. Not an object, or larger: invalid-input."
        )
    )


CLIENT_FRAMES: tuple[type[ClientFrame], ...] = (
    Ready, Message, PeripheralStart, ToolAction, Hop, PeripheralStop, IrcResponse, Progress,
    Chat, EvidenceQueryFrame, Subscribe, Resume, Reply, Ping, Interrupt, ApprovalDecisionFrame,
    ToolCheck, NativeItem,
)  # fmt: skip
AnyClientFrame = Annotated[
    Ready | Message | PeripheralStart | ToolAction | Hop | PeripheralStop | IrcResponse | Progress
    | Chat | EvidenceQueryFrame | Subscribe | Resume | Reply | Ping | Interrupt | ApprovalDecisionFrame
    | ToolCheck | NativeItem,
    Field(discriminator="type"),
]  # fmt: skip
_CLIENT = TypeAdapter(AnyClientFrame)
CLIENT_TYPES = frozenset(frame.model_fields["type"].annotation.__args__[0] for frame in CLIENT_FRAMES)  # type: ignore[union-attr]


# ------------------------------------------------------------ server → client


class ServerFrame(Frame):
    if TYPE_CHECKING:
        type: str  # as on ClientFrame: declared by each concrete frame

    req_id: ReqId | None = Field(
        default=None, description="The req_id of the client frame this answers; absent on pushes."
    )


class ServerInfo(BaseModel):
    name: str = Field(description="The server program (futon).")
    version: str = Field(description="Its version.")


class ReadyAck(ServerFrame):
    type: Literal["ready_ack"] = Field(
        default="ready_ack", description="The answer to a successful ready."
    )
    agent_id: str = Field(description="The agent this socket now speaks for.")
    session_id: str = Field(description="The client's session_id, or one made up (ws-<uuid>).")
    protocol_version: int = Field(
        default=PROTOCOL_VERSION, description="The server's protocol version."
    )
    server: ServerInfo = Field(description="The server program, {name, version}.")
    features: list[str] = Field(
        default_factory=lambda: list(FEATURES),
        description="The optional frames this server implements.",
    )
    peripherals: list[str] = Field(description="The peripheral ids this agent may start.")
    default_peripheral: str = Field(
        description="What peripheral_start without an id starts (routing by agent type)."
    )
    progress: Literal["off", "notice"] = Field(
        default="off",
        description="agents.yaml's progress setting for this agent: with notice, send a "
        "progress frame per step while working on a request.",
    )


class Receipt(ServerFrame):
    type: Literal["receipt"] = Field(default="receipt", description="The answer to a message.")
    msg_id: str = Field(description="The message's id.")
    delivered: bool = Field(description="Whether it was delivered.")
    at: str = Field(description="When (ISO-8601 UTC).")
    route: str | None = Field(
        default=None,
        description="registry/invoke (coordination) or peripheral/run-chain (actions).",
    )
    session_id: str | None = Field(default=None, description="The session the actions ran in.")
    peripheral_id: str | None = Field(
        default=None, description="The peripheral the actions ran in."
    )
    fruit: Any = Field(default=None, description="That session's fruit.")
    reply: Any = Field(
        default=None,
        description="The addressed agent's reply to a coordination message, when it came in time.",
    )


class RelatedWork(BaseModel):
    """One earlier entry relevant to a new session's goal."""

    model_config = ConfigDict(extra="forbid")

    evidence_id: str = Field(description="The entry's evidence id (GET /api/alpha/evidence/{id}).")
    summary: str = Field(description="What it says, one line (at most 200 characters).")


class PeripheralStarted(ServerFrame):
    type: Literal["peripheral_started"] = Field(
        default="peripheral_started", description="The answer to peripheral_start."
    )
    peripheral_id: str = Field(description="The peripheral started.")
    session_id: str = Field(description="The new session's id (sess-<uuid>).")
    tools: list[str] = Field(description="The tools this session may use.")
    scope: Any = Field(description="Its scope: a name, or {paths: [...]}.")
    related: list[RelatedWork] | None = Field(
        default=None,
        description=(
            "Only when the start carried a goal: the few earlier conclusions and refusals (any "
            "agent's) most relevant to it, best first, by evidence search; may be empty."
        ),
    )


class ToolResult(ServerFrame):
    type: Literal["tool_result"] = Field(
        default="tool_result", description="The answer to tool_action: the tool ran."
    )
    tool: str = Field(description="The tool.")
    ok: bool = Field(
        description="false when the tool ran and failed (result is then {error, code})."
    )
    result: Any = Field(
        default=None, description="The tool's result (docs/tools.md); absent when null."
    )


class Hopped(ServerFrame):
    type: Literal["hopped"] = Field(default="hopped", description="The answer to hop.")
    from_: str = Field(alias="from", description="The peripheral the session left.")
    to: str = Field(description="The peripheral it is in now.")
    session_id: str = Field(description="The session's id (unchanged by a hop).")
    context: dict[str, Any] = Field(description="What was carried across.")
    tools: list[str] = Field(description="The tools the session may use now.")


class PeripheralStopped(ServerFrame):
    type: Literal["peripheral_stopped"] = Field(
        default="peripheral_stopped", description="The answer to peripheral_stop."
    )
    peripheral_id: str = Field(description="The peripheral the session ended in.")
    reason: str = Field(description="Why it ended.")
    fruit: Any = Field(
        default=None,
        description="What the session produced (docs/peripherals.md, fruit); absent when null.",
    )


class IrcMessage(ServerFrame):
    type: Literal["irc_message"] = Field(
        default="irc_message", description="Push: a human's IRC line for this agent."
    )
    channel: str | None = Field(description="The channel; null for a private message.")
    from_: str = Field(alias="from", description="The speaker's nick.")
    text: str = Field(description="What was said.")
    transport: str = Field(default="irc", description="Always irc.")
    private: bool | None = Field(
        default=None, description="true for a private message to the agent's nick."
    )
    evidence_id: str | None = Field(
        default=None,
        description="The evidence entry of this line; answer with irc_response.in_reply_to.",
    )
    seq: int = Field(description="The agent's push seq (for resume).")


class ChatMessage(ServerFrame):
    type: Literal["chat_message"] = Field(
        default="chat_message",
        description=(
            "Push: chat addressed to this agent (POST /api/alpha/chat, another agent's chat)."
        ),
    )
    to: str = Field(description="Whom it was said to.")
    from_: str = Field(alias="from", description="Who said it.")
    text: str = Field(description="What was said.")
    transport: str = Field(description="How it came: http or websocket.")
    evidence_id: str | None = Field(
        default=None,
        description="The evidence entry of this line (recorded before the push); answer with "
        "chat.in_reply_to.",
    )
    seq: int = Field(description="The agent's push seq (for resume).")


class PushedMessage(ServerFrame):
    type: Literal["message"] = Field(
        default="message",
        description="Push: a coordination message for this agent; answer it with reply.",
    )
    msg_id: str = Field(description="The message's id; the reply names it.")
    from_: Addressee = Field(alias="from", description="The sender, {value, type}.")
    payload: Any = Field(default=None, description="The message.")
    mode: Literal["coordination"] = Field(
        default="coordination", description="Always coordination."
    )
    seq: int = Field(description="The agent's push seq (for resume).")


class Subscribed(ServerFrame):
    type: Literal["subscribed"] = Field(
        default="subscribed",
        description="The answer to subscribe; every entry appended after it is pushed.",
    )
    filters: dict[str, Any] = Field(description="The subscription's filters.")


class EvidenceResult(ServerFrame):
    type: Literal["evidence_result"] = Field(
        default="evidence_result", description="The answer to evidence_query."
    )
    entries: list[dict[str, Any]] = Field(
        description="Matching entries, newest first (with q: best match first)."
    )
    count: int = Field(description="How many entries are in this answer.")
    results: list[dict[str, Any]] | None = Field(
        default=None,
        description=(
            "Only with q: one {evidence_id, match, score, snippet} per entry, in the same order "
            "(match: phrase, all or any; absent otherwise)."
        ),
    )


class EvidencePush(ServerFrame):
    type: Literal["evidence"] = Field(
        default="evidence", description="Push: an evidence entry matching the subscription."
    )
    entry: dict[str, Any] = Field(description="The entry (its own seq is evidence/seq).")
    seq: int = Field(description="The agent's push seq (for resume).")


class ApprovalPending(ServerFrame):
    type: Literal["approval_pending"] = Field(
        default="approval_pending",
        description="Push: the agent's action waits for a human's approval (docs/peripherals.md, approvals).",
    )
    approval_id: str = Field(description="The approval's short id (futon: approve ID).")
    what: str = Field(description="Exactly what is asked: the peripheral to enter, or the tool and its arguments.")
    session_id: str = Field(description="The session whose action waits.")
    expires_in_s: float = Field(description="Seconds until the request expires (denied).")
    seq: int | None = Field(default=None, description="The agent's push seq (for resume).")


class Interrupted(ServerFrame):
    type: Literal["interrupted"] = Field(
        default="interrupted", description="Push: a human (or the agent's own interrupt) stopped the session."
    )
    session_id: str = Field(description="The session that concluded with reason interrupted.")
    by: str = Field(description="Who interrupted it (an approver's nick, admin, or the agent).")
    seq: int | None = Field(default=None, description="The agent's push seq (for resume).")


class ApprovalDecided(ServerFrame):
    type: Literal["approval_decided"] = Field(
        default="approval_decided", description="The answer to approval_decision: the approval is decided."
    )
    approval_id: str = Field(description="The approval decided.")
    outcome: Literal["approved", "denied"] = Field(description="What the decision made of it.")
    by: str = Field(description="Who decided, as recorded (admin for an operator client).")


class ToolChecked(ServerFrame):
    type: Literal["tool_checked"] = Field(
        default="tool_checked",
        description="The answer to tool_check: the session admits the action (nothing was run).",
    )
    allowed: bool = Field(
        default=True, description="Always true (a refusal is an error frame instead)."
    )
    tool: str = Field(description="The futon tool whose envelope admits it (bash-test, write, ...).")
    evidence_id: str = Field(description="The step entry recorded for it (body native: true).")


class Recorded(ServerFrame):
    type: Literal["recorded"] = Field(
        default="recorded", description="The answer to native_item: the item is in the evidence."
    )
    evidence_id: str = Field(description="The observation entry recorded for it.")


class Pong(ServerFrame):
    type: Literal["pong"] = Field(default="pong", description="The answer to ping.")


class ErrorFrame(ServerFrame):
    type: Literal["error"] = Field(
        default="error",
        description=(
            "A refused frame; the socket stays usable unless it is then closed (4001, 4004)."
        ),
    )
    code: str = Field(description="The wire code (docs/ws-protocol.md, errors).")
    message: str = Field(description="What went wrong, in words.")
    context: dict[str, Any] | None = Field(
        default=None, description="Details a client may act on (a field name, oldest_seq, ...)."
    )


SERVER_FRAMES: tuple[type[ServerFrame], ...] = (
    ReadyAck, Receipt, PeripheralStarted, ToolResult, Hopped, PeripheralStopped, IrcMessage,
    ChatMessage, PushedMessage, Subscribed, EvidenceResult, EvidencePush, Pong, ErrorFrame,
    ApprovalPending, Interrupted, ApprovalDecided, ToolChecked, Recorded,
)  # fmt: skip

AnyServerFrame = Annotated[
    ReadyAck | Receipt | PeripheralStarted | ToolResult | Hopped | PeripheralStopped | IrcMessage
    | ChatMessage | PushedMessage | Subscribed | EvidenceResult | EvidencePush | Pong | ErrorFrame
    | ApprovalPending | Interrupted | ApprovalDecided | ToolChecked | Recorded,
    Field(discriminator="type"),
]  # fmt: skip
_SERVER = TypeAdapter(AnyServerFrame)
SERVER_TYPES = frozenset(frame.model_fields["type"].default for frame in SERVER_FRAMES)

# Fields that are present even when null (docs/ws-protocol.md says so).
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
    if _SURROGATE_ESCAPE.search(data if isinstance(data, str) else data.decode("utf-8", "replace")):
        _refuse_lone_surrogates(value, what)
    return value


# A \uD800–\uDFFF escape: JSON lets one stand alone, but a lone surrogate is
# no character, cannot be written as UTF-8 and so could never be recorded.
# Pairs (an emoji spelt as two escapes) decode to one character and pass.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(value: Any, what: str) -> None:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        req_id = _valid_req_id(value.get("req_id")) if isinstance(value, dict) else None
        raise JsonError(
            f"{what} holds a lone surrogate escape (\\uD800-\\uDFFF without its pair): not UTF-8 text",
            req_id=req_id,
        ) from None


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


def push_fields(frame: ServerFrame) -> dict[str, Any]:
    """A push as the registry stamps it: the model rendered on the wire
    (aliases, the nulls the protocol keeps), without ``seq`` and ``req_id``
    — each agent's push gets its own next seq."""
    fields: dict[str, Any] = json.loads(render(frame))
    fields.pop("seq", None)
    fields.pop("req_id", None)
    return fields


# One encoder for every reply: json.dumps with options builds a new one per call.
_ENCODE = json.JSONEncoder(ensure_ascii=False, default=str).encode


def render(frame: ServerFrame) -> str:
    data = frame.model_dump(by_alias=True, exclude_none=True)
    for key in _KEEP_NULL.get(data["type"], ()):
        data.setdefault(key, None)
    return _ENCODE(data)


def render_tool_result(req_id: ReqId | None, tool: str, ok: bool, result: Any) -> str:
    """``render(ToolResult(...))`` with ``req_id`` set, the same text, from
    a dict built directly: the reply to every ``tool_action`` (no model
    built, validated and dumped again). ``result`` is plain JSON — it was
    just recorded in the step's evidence entry."""
    data: dict[str, Any] = {} if req_id is None else {"req_id": req_id}
    data["type"] = "tool_result"
    data["tool"] = tool
    data["ok"] = ok
    if result is not None:
        data["result"] = result
    return _ENCODE(data)


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
