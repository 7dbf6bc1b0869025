"""The pinned Codex App Server protocol: which version, and which part of
its generated JSON Schema futon relies on.

``codex app-server generate-json-schema --out DIR`` writes the exact shapes
of the installed version (a few hundred definitions). futon keeps only the
definitions its models stand for (:data:`KEPT`, their text exactly as
generated) in ``schema-<version>.json`` next to this module, with the method
names it sends, reads and answers; ``tests/agents/test_codex_app_server.py``
regenerates the bundle from the pinned binary and checks that the kept part
and the models still match it.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

PINNED_VERSION = "0.169.0"
SCHEMA_FILE = Path(__file__).with_name(f"schema-{PINNED_VERSION}.json")

#: The definitions the models stand for (names as generated; v2 ones first).
KEPT = (
    "InitializeParams", "ClientInfo", "InitializeCapabilities", "InitializeResponse",
    "ThreadStartParams", "ThreadStartResponse", "ThreadResumeParams", "ThreadResumeResponse",
    "SandboxMode", "AskForApproval", "SandboxPolicy",
    "TurnStartParams", "TurnStartResponse", "TurnInterruptParams", "Turn", "TurnStatus",
    "TurnError", "UserInput", "ItemStartedNotification", "ItemCompletedNotification",
    "TurnCompletedNotification", "AgentMessageDeltaNotification",
    "TurnPlanUpdatedNotification", "TurnPlanStep", "ThreadItem", "FileUpdateChange",
    "PatchChangeKind", "CommandExecutionStatus", "PatchApplyStatus",
    "CommandExecutionRequestApprovalParams", "CommandExecutionRequestApprovalResponse",
    "CommandExecutionApprovalDecision", "FileChangeRequestApprovalParams",
    "FileChangeRequestApprovalResponse", "FileChangeApprovalDecision",
    "PermissionsRequestApprovalParams", "PermissionsRequestApprovalResponse",
    "PermissionGrantScope", "McpServerElicitationRequestResponse", "McpServerElicitationAction",
    "ToolRequestUserInputResponse",
)  # fmt: skip

#: The methods futon sends (requests, then the one notification).
CLIENT_REQUESTS = ("initialize", "thread/start", "thread/resume", "turn/start", "turn/interrupt")
CLIENT_NOTIFICATIONS = ("initialized",)
#: The notifications futon reads; every other one is skipped.
NOTIFICATIONS = (
    "item/started", "item/completed", "item/agentMessage/delta", "turn/completed",
    "turn/plan/updated", "error",
)  # fmt: skip


def subset(bundle_dir: Path) -> dict[str, Any]:
    """The part of a generated bundle futon keeps: the :data:`KEPT`
    definitions as generated, the method names, and every server→client
    request method the version has (so a new one shows up in the check)."""
    bundle = json.loads((bundle_dir / "codex_app_server_protocol.schemas.json").read_text())
    top = bundle["definitions"]
    v2 = top.get("v2", {})
    definitions = {}
    for name in KEPT:
        found = v2.get(name, top.get(name))
        if found is None:
            raise KeyError(f"{name} is not in the generated schema")
        definitions[name] = found

    def methods(name: str) -> list[str]:
        return sorted(
            m for variant in top[name]["oneOf"] for m in variant["properties"]["method"]["enum"]
        )

    client_requests = set(methods("ClientRequest"))
    notifications = set(methods("ServerNotification"))
    return {
        "version": PINNED_VERSION,
        "note": (
            "Trimmed: only the definitions futon's models stand for, from `codex app-server "
            "generate-json-schema` of this version (futon/agents/drivers/codex_app/schema.py)."
        ),
        "client_requests": [m for m in CLIENT_REQUESTS if m in client_requests],
        "client_notifications": [
            m for m in CLIENT_NOTIFICATIONS if m in methods("ClientNotification")
        ],
        "notifications": [m for m in NOTIFICATIONS if m in notifications],
        "server_requests": methods("ServerRequest"),
        "definitions": definitions,
    }


@cache
def kept() -> dict[str, Any]:
    """The kept subset shipped with futon (``schema-<version>.json``)."""
    data: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return data


def installed_version(binary: str, timeout_s: float = 30) -> str:
    """The version ``binary --version`` prints (``codex-cli 0.169.0`` →
    ``0.169.0``); ``ValueError`` when it cannot be run or read."""
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ValueError(f"cannot run {binary} --version: {exc}") from None
    found = re.search(r"(\d+\.\d+\.\d+\S*)", done.stdout)
    if done.returncode != 0 or found is None:
        raise ValueError(
            f"{binary} --version did not print a version (exit {done.returncode}): "
            f"{(done.stdout + done.stderr).strip()[:200]!r}"
        )
    return found.group(1)


def require_pinned(binary: str) -> str:
    """The version of ``binary`` when it is the pinned one; otherwise a
    ``ValueError`` naming both (another version's protocol may differ)."""
    version = installed_version(binary)
    if version != PINNED_VERSION:
        raise ValueError(
            f"{binary} is Codex {version}, but the codex-app-server driver speaks the App Server "
            f"protocol of Codex {PINNED_VERSION} (its schema is checked against that version); "
            f"install @openai/codex@{PINNED_VERSION} or name that binary with --cli PATH"
        )
    return version
