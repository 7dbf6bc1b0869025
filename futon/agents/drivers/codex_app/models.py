"""Typed messages of the Codex App Server protocol (version
:data:`~futon.agents.drivers.codex_app.schema.PINNED_VERSION`), the part
futon uses. Names and fields follow the generated schema (its camelCase is
each field's alias); :data:`SCHEMA_NAMES` says which definition each model
stands for, and a test checks every model against the regenerated schema:
its fields exist there, the required ones are modelled, its literals are in
the schema's enums.

Outgoing messages (params futon sends, answers to approval requests) are
dumped with :func:`wire`. Incoming ones ignore fields futon does not read,
so a notification carrying more than futon needs still parses.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    """Field names are the schema's in snake_case; the wire's camelCase is
    each field's alias."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def wire(model: BaseModel) -> dict[str, Any]:
    """A message as JSON data: wire names, unset optional fields left out."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


# ------------------------------------------------------------------ initialize


class ClientInfo(Wire):
    name: str
    title: str | None = None
    version: str


class InitializeCapabilities(Wire):
    experimental_api: bool | None = None
    opt_out_notification_methods: list[str] | None = None


class InitializeParams(Wire):
    client_info: ClientInfo
    capabilities: InitializeCapabilities | None = None


class InitializeResponse(Wire):
    user_agent: str
    codex_home: str
    platform_family: str
    platform_os: str


# ------------------------------------------------------------------ policy

SandboxMode = Literal["read-only", "workspace-write", "danger-full-access"]
#: futon asks for ``untrusted`` in every peripheral: every command Codex
#: does not know to be harmless, and every patch, comes to futon for approval.
ApprovalPolicy = Literal["untrusted", "on-request", "never"]


class ReadOnlySandbox(Wire):
    type: Literal["readOnly"] = "readOnly"
    network_access: bool = False


class WorkspaceWriteSandbox(Wire):
    """Codex keeps the turn's cwd writable besides ``writable_roots``; futon
    leaves /tmp and $TMPDIR out."""

    type: Literal["workspaceWrite"] = "workspaceWrite"
    writable_roots: list[str] = Field(default_factory=list)
    network_access: bool = False
    exclude_slash_tmp: bool = True
    exclude_tmpdir_env_var: bool = True


SandboxPolicy = ReadOnlySandbox | WorkspaceWriteSandbox


# ------------------------------------------------------------------ threads and turns


class ThreadStartParams(Wire):
    cwd: str | None = None
    approval_policy: ApprovalPolicy | None = None
    sandbox: SandboxMode | None = None
    model: str | None = None
    developer_instructions: str | None = None
    ephemeral: bool | None = None


class ThreadRef(Wire):
    id: str


class ThreadStartResponse(Wire):
    thread: ThreadRef
    model: str
    cwd: str


class ThreadResumeParams(Wire):
    """Resume a thread kept in ``CODEX_HOME`` (by id) in a new App Server
    process: how a hop that changes the OS view keeps the conversation."""

    thread_id: str
    cwd: str | None = None
    approval_policy: ApprovalPolicy | None = None
    sandbox: SandboxMode | None = None
    model: str | None = None
    developer_instructions: str | None = None


class ThreadResumeResponse(Wire):
    thread: ThreadRef
    model: str
    cwd: str


class TextInput(Wire):
    type: Literal["text"] = "text"
    text: str


class TurnStartParams(Wire):
    thread_id: str
    input: list[TextInput]
    approval_policy: ApprovalPolicy | None = None
    sandbox_policy: SandboxPolicy | None = None
    cwd: str | None = None
    model: str | None = None


TurnStatus = Literal["completed", "interrupted", "failed", "inProgress"]


class TurnError(Wire):
    message: str


class Turn(Wire):
    id: str
    status: TurnStatus
    error: TurnError | None = None


class TurnStartResponse(Wire):
    turn: Turn


class TurnInterruptParams(Wire):
    thread_id: str
    turn_id: str


# ------------------------------------------------------------------ items (ThreadItem variants)

ItemStatus = Literal["inProgress", "completed", "failed", "declined"]


class AgentMessageItem(Wire):
    type: Literal["agentMessage"]
    id: str
    text: str


class CommandExecutionItem(Wire):
    type: Literal["commandExecution"]
    id: str
    command: str
    cwd: str
    status: ItemStatus
    exit_code: int | None = None
    aggregated_output: str | None = None
    duration_ms: int | None = None


class PatchChangeKind(Wire):
    type: Literal["add", "delete", "update"]
    move_path: str | None = Field(default=None, alias="move_path")


class FileUpdateChange(Wire):
    path: str
    kind: PatchChangeKind
    diff: str


class FileChangeItem(Wire):
    type: Literal["fileChange"]
    id: str
    changes: list[FileUpdateChange]
    status: ItemStatus


class PlanItem(Wire):
    type: Literal["plan"]
    id: str
    text: str


class ReasoningItem(Wire):
    type: Literal["reasoning"]
    id: str
    summary: list[str] = Field(default_factory=list)


class McpToolCallItem(Wire):
    type: Literal["mcpToolCall"]
    id: str
    server: str
    tool: str
    status: str


Item = (
    AgentMessageItem | CommandExecutionItem | FileChangeItem | PlanItem | ReasoningItem
    | McpToolCallItem
)  # fmt: skip
ITEM_MODELS: dict[str, type[Wire]] = {
    "agentMessage": AgentMessageItem,
    "commandExecution": CommandExecutionItem,
    "fileChange": FileChangeItem,
    "plan": PlanItem,
    "reasoning": ReasoningItem,
    "mcpToolCall": McpToolCallItem,
}


def parse_item(raw: dict[str, Any]) -> Item | None:
    """The typed item for a ThreadItem futon records; None for the other
    variants and for one that does not match its schema."""
    model = ITEM_MODELS.get(str(raw.get("type")))
    if model is None:
        return None
    try:
        item = model.model_validate(raw)
    except ValidationError:
        return None
    assert isinstance(item, Item)
    return item


# ------------------------------------------------------------------ notifications


class ItemNotification(Wire):
    """``item/started`` and ``item/completed``; ``item`` stays raw until
    :func:`parse_item` reads the variants futon records."""

    thread_id: str
    turn_id: str
    item: dict[str, Any]


class TurnCompletedNotification(Wire):
    thread_id: str
    turn: Turn


class AgentMessageDeltaNotification(Wire):
    thread_id: str
    turn_id: str
    item_id: str
    delta: str


class TurnPlanStep(Wire):
    step: str
    status: str


class TurnPlanUpdatedNotification(Wire):
    thread_id: str
    turn_id: str
    explanation: str | None = None
    plan: list[TurnPlanStep]


# ------------------------------------------------------------------ server → client requests


class CommandExecutionRequestApprovalParams(Wire):
    thread_id: str
    turn_id: str
    item_id: str
    approval_id: str | None = None
    command: str | None = None
    cwd: str | None = None
    reason: str | None = None
    kind: str | None = None  # "command", "writeStdin", "humanCommand"
    # Set when Codex asks to let a command reach a host (its managed network).
    network_approval_context: dict[str, Any] | None = None
    proposed_network_policy_amendments: list[Any] | None = None

    def asks_for_network(self) -> str | None:
        """What of this request asks for network access (None: nothing)."""
        if self.network_approval_context is not None:
            context = self.network_approval_context
            return f"network access to {context.get('host')!s:.200} ({context.get('protocol')})"
        if self.proposed_network_policy_amendments:
            return "a network policy amendment"
        return None


Decision = Literal["accept", "decline", "cancel"]


class CommandExecutionRequestApprovalResponse(Wire):
    decision: Decision


class FileChangeRequestApprovalParams(Wire):
    thread_id: str
    turn_id: str
    item_id: str
    reason: str | None = None
    grant_root: str | None = None


class FileChangeRequestApprovalResponse(Wire):
    decision: Decision


class PermissionsRequestApprovalParams(Wire):
    thread_id: str
    turn_id: str
    item_id: str
    cwd: str
    permissions: dict[str, Any]
    reason: str | None = None


class PermissionsRequestApprovalResponse(Wire):
    """futon grants no extra permission: an empty profile, for this turn."""

    permissions: dict[str, Any] = Field(default_factory=dict)
    scope: Literal["turn", "session"] = "turn"


class McpServerElicitationRequestResponse(Wire):
    action: Literal["accept", "decline", "cancel"]


class ToolRequestUserInputResponse(Wire):
    answers: dict[str, Any] = Field(default_factory=dict)


#: Which generated definition each model stands for (checked by a test).
SCHEMA_NAMES: dict[type[Wire], str] = {
    ClientInfo: "ClientInfo",
    InitializeCapabilities: "InitializeCapabilities",
    InitializeParams: "InitializeParams",
    InitializeResponse: "InitializeResponse",
    ThreadStartParams: "ThreadStartParams",
    ThreadStartResponse: "ThreadStartResponse",
    ThreadResumeParams: "ThreadResumeParams",
    ThreadResumeResponse: "ThreadResumeResponse",
    TurnStartParams: "TurnStartParams",
    Turn: "Turn",
    TurnError: "TurnError",
    TurnStartResponse: "TurnStartResponse",
    TurnInterruptParams: "TurnInterruptParams",
    FileUpdateChange: "FileUpdateChange",
    ItemNotification: "ItemCompletedNotification",
    TurnCompletedNotification: "TurnCompletedNotification",
    AgentMessageDeltaNotification: "AgentMessageDeltaNotification",
    TurnPlanStep: "TurnPlanStep",
    TurnPlanUpdatedNotification: "TurnPlanUpdatedNotification",
    CommandExecutionRequestApprovalParams: "CommandExecutionRequestApprovalParams",
    CommandExecutionRequestApprovalResponse: "CommandExecutionRequestApprovalResponse",
    FileChangeRequestApprovalParams: "FileChangeRequestApprovalParams",
    FileChangeRequestApprovalResponse: "FileChangeRequestApprovalResponse",
    PermissionsRequestApprovalParams: "PermissionsRequestApprovalParams",
    PermissionsRequestApprovalResponse: "PermissionsRequestApprovalResponse",
    McpServerElicitationRequestResponse: "McpServerElicitationRequestResponse",
    ToolRequestUserInputResponse: "ToolRequestUserInputResponse",
}
#: Models sent by futon: every property the schema requires must be modelled.
OUTGOING: tuple[type[Wire], ...] = (
    ClientInfo, InitializeParams, ThreadStartParams, ThreadResumeParams, TurnStartParams,
    TurnInterruptParams,
    CommandExecutionRequestApprovalResponse, FileChangeRequestApprovalResponse,
    PermissionsRequestApprovalResponse, McpServerElicitationRequestResponse,
    ToolRequestUserInputResponse,
)  # fmt: skip
