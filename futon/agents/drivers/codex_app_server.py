"""``codex-app-server``: the real Codex, through its App Server protocol,
using its own shell and patch tools — with every approval answered by the
active peripheral.

One long-lived ``codex app-server`` process (JSON-RPC over stdio,
:mod:`futon.agents.drivers.codex_app.jsonrpc`) serves the agent:

- at start the driver checks ``codex --version`` against the pinned version
  (:data:`~futon.agents.drivers.codex_app.schema.PINNED_VERSION`) and refuses
  another, naming both; then ``initialize``;
- the App Server runs INSIDE futon's bubblewrap sandbox, with a view that
  follows the peripheral (:mod:`futon.agents.drivers.codex_app.walls`):
  the workspace read-only, or only the scope's paths writable for a
  peripheral that writes; futon's hidden paths masked; nothing of /root,
  /home …; ``CODEX_HOME`` writable; a private /tmp; no network but the
  model server, through the egress forwarders
  (:mod:`futon.agents.drivers.codex_app.egress`: a unix socket out here,
  a listener on 127.0.0.1 inside, started before Codex). No
  working bwrap: the driver refuses to start (never unsandboxed). When a
  hop changes the view, the next turn starts a new process in the new view
  and resumes the same thread there (``thread/resume``: Codex keeps its
  threads in ``CODEX_HOME``);
- one futon peripheral session is one Codex thread (``thread/start``, cwd =
  the workspace); the session is opened by the driver at the first message
  and kept between messages, so a hop holds for the next turn; a new one
  (and a new thread) follows a reconnect, an interrupt, or a restarted
  process;
- one message is one turn (``turn/start``), with the policy of the
  session's current peripheral as overrides: the approval policy is always
  ``untrusted`` (Codex asks about every command it does not know to be
  harmless and about every patch); the sandbox is read-only, or
  workspace-write with the scope's paths as writable roots when the
  peripheral has ``write``/``edit`` (Codex's own sandbox nests in futon's
  and confines what Codex runs without asking; what futon admits may run
  outside it, so futon's sandbox is the OS wall);
- every approval request is answered by the daemon (``tool_check``): a
  command by :meth:`~futon.agents.client.AgentClient.check_command` (the
  ``bash -lc`` wrapper Codex adds is taken off first), a file change by
  :meth:`~futon.agents.client.AgentClient.check_file_change` with the paths
  of the item announced in ``item/started``; admitted → ``accept``, refused
  → ``decline`` (the daemon records the tension), an interrupted session →
  ``cancel``. A command approval asking for network access
  (``networkApprovalContext``, network policy amendments) is declined
  without asking (the view has no network to give) and logged as a
  tension; an approval for an item never announced is declined and
  logged; a permissions request gets no extra permission; an unknown
  request method gets JSON-RPC error -32601 and the turn goes on;
- the items Codex reports become evidence in the session's chain
  (``native_item``): agent messages, commands (exit code, an output summary
  of at most 2 KiB), file changes (paths, +/- line counts), plans, and
  reasoning summaries (ephemeral); the turn's last agent message is the
  answer the runtime sends to IRC;
- futon's MCP tools ``futon_hop``, ``futon_reply`` and ``futon_evidence``
  are offered to Codex through ``futon mcp --relay`` onto the agent's own
  connection (:class:`futon.agents.mcp_bridge.Relay`);
- a cancelled turn (the runtime's time budget) sends ``turn/interrupt``;
  the process dying mid-turn ends the turn with a :class:`DriverError` (a
  ``could not`` reply) and the next message starts a new process.

Codex keeps its state in ``CODEX_HOME``: a folder made under ``/var/tmp``
(its sandbox does not work under ``/tmp``) unless ``home`` names one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from futon import __version__
from futon.agents.client import AgentClient, Disconnected
from futon.agents.drivers.base import Driver, DriverError, ModelMessage, ModelTurn, ToolSpec
from futon.agents.drivers.codex_app import models as m
from futon.agents.drivers.codex_app import walls
from futon.agents.drivers.codex_app.egress import TUNNEL, Egress, Route
from futon.agents.drivers.codex_app.jsonrpc import MethodNotFound, RpcError, RpcProcess, ServerGone
from futon.agents.drivers.codex_app.schema import PINNED_VERSION, require_pinned
from futon.agents.drivers.command import MCP_SERVER_NAME, find_cli
from futon.agents.mcp_bridge import Relay
from futon.config.sandbox import SYSTEM_PATH, Sandbox, View
from futon.protocol import frames as f
from futon.protocol.errors import FutonError

log = logging.getLogger("futon.agent.codex_app")

KEY_ENV = "OPENAI_API_KEY"
PROVIDER = "futon-model"
#: The futon MCP tools offered to Codex (its own tools do the work).
MCP_TOOLS = ("futon_hop", "futon_reply", "futon_evidence")
OUTPUT_SUMMARY = 2048  # bytes of a command's output kept in its evidence
TEXT_LIMIT = 8000  # characters of a message or plan kept in evidence
MAX_ITEMS = 2048  # items remembered per turn (for approvals naming them)
GONE_CODES = frozenset({"interrupted", "no-active-peripheral", "session-stopped"})
SHELLS = ("bash", "sh", "zsh")


@dataclass
class _Session:
    """The futon session the thread belongs to."""

    session_id: str
    generation: int
    peripheral: str
    tools: list[str]
    scope: Any
    thread_id: str | None = None
    last_answer: str = ""  # carried into a new thread when one cannot be resumed


@dataclass
class _Turn:
    thread_id: str
    turn_id: str | None = None
    items: dict[str, m.Item] = field(default_factory=dict)
    answer: str = ""
    interrupted_by: str | None = None  # a human's interrupt (issue 17) stopped it


class _HopRelay(Relay):
    """The relay of ``futon mcp``, noting where a ``futon_hop`` took the
    session (the next turn's policy follows it)."""

    def __init__(self, client: AgentClient, path: str, driver: CodexAppServerDriver) -> None:
        super().__init__(client, path)
        self.driver = driver

    async def _answer(self, line: bytes) -> dict[str, Any]:
        answer = await super()._answer(line)
        with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
            if json.loads(line).get("op") == "hop" and answer.get("ok"):
                hopped = answer["result"]
                self.driver.hopped(str(hopped["to"]), list(hopped.get("tools") or []))
        return answer


def provider_config(base_url: str | None) -> list[str]:
    """``-c`` overrides making ``base_url`` a Responses API model provider."""
    if not base_url:
        return []
    provider = f"model_providers.{PROVIDER}"
    return [
        "-c", f"model_provider={json.dumps(PROVIDER)}",
        "-c", f"{provider}.name={json.dumps(PROVIDER)}",
        "-c", f"{provider}.base_url={json.dumps(base_url.rstrip('/'))}",
        "-c", f'{provider}.wire_api="responses"',
        "-c", f"{provider}.env_key={json.dumps(KEY_ENV)}",
    ]  # fmt: skip


def unwrap_shell(command: str) -> str:
    """The command line inside Codex's ``/bin/bash -lc '<line>'`` wrapper
    (what the model asked to run); ``command`` itself when not wrapped."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return command
    if len(argv) == 3 and Path(argv[0]).name in SHELLS and argv[1] in ("-lc", "-c"):
        return argv[2]
    return command


def line_counts(change: m.FileUpdateChange) -> tuple[int, int]:
    """(added, removed) lines of one change: a unified diff for updates,
    the whole content for an added or deleted file."""
    lines = change.diff.splitlines()
    if change.kind.type == "add":
        return len(lines), 0
    if change.kind.type == "delete":
        return 0, len(lines)
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
    return added, removed


def summary(text: str | None, limit: int = OUTPUT_SUMMARY) -> str:
    """At most ``limit`` bytes of ``text``: its head and tail around a mark."""
    if not text:
        return ""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    half = (limit - 40) // 2
    head = data[:half].decode("utf-8", "ignore")
    tail = data[-half:].decode("utf-8", "ignore")
    return f"{head}\n[… {len(data) - 2 * half} bytes cut …]\n{tail}"


class CodexAppServerDriver(Driver):
    name = "codex-app-server"
    uses_tools = False  # Codex brings its own tools; the driver opens the session

    def __init__(
        self,
        *,
        cli: str | None = None,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 300,
        workspace: str | None = None,
        home: str | None = None,
        check_version: bool = True,
        hidden: Sequence[str] = (),
        bwrap: str = "bwrap",
    ) -> None:
        self.binary = find_cli(cli, "codex", "Codex CLI")
        if check_version:
            require_pinned(self.binary)
        if not workspace:
            raise ValueError(
                "the codex-app-server driver needs the daemon's workspace (from --config PATH)"
            )
        self.sandbox = Sandbox(bwrap)
        if not self.sandbox.probe():  # never unsandboxed
            raise ValueError(
                f"the codex-app-server driver runs Codex only inside futon's sandbox: "
                f"{self.sandbox.reason}"
            )
        self.workspace = str(Path(workspace).resolve())
        self.hidden = tuple(Path(os.path.realpath(p)) for p in hidden)
        self.model = model
        self.base_url = base_url
        self.route = Route.of(base_url)  # the App Server's only way out
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.home = home
        self.client: AgentClient | None = None
        self.rpc: RpcProcess | None = None
        self.view: View | None = None  # the sandbox the running App Server is in
        self._loaded: set[str] = set()  # the threads the running App Server has open
        self._own_home: str | None = None
        self._relay: _HopRelay | None = None
        self._relay_dir: str | None = None
        self._egress: Egress | None = None
        self._session: _Session | None = None
        self._turn: _Turn | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def bind(self, client: AgentClient) -> None:
        self.client = client
        client.on_interrupted(self._on_interrupted)

    def _on_interrupted(self, frame: f.Interrupted) -> None:
        """A human interrupted the session (futon's interrupt): the daemon
        concluded it; the running Codex turn gets ``turn/interrupt``, and the
        next message starts a new session and thread."""
        session = self._session
        if session is None or frame.session_id != session.session_id:
            return
        log.info("%s interrupted the session %s", frame.by, frame.session_id)
        self._session = None
        turn, rpc = self._turn, self.rpc
        if turn is not None:
            turn.interrupted_by = frame.by
        if turn is not None and turn.turn_id is not None and rpc is not None:
            # (before Codex names the turn, complete() interrupts it on the answer)
            task = asyncio.ensure_future(self._interrupt(rpc, turn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------- the turn

    async def complete(self, messages: list[ModelMessage], tools: list[ToolSpec]) -> ModelTurn:
        client = self.client
        if client is None:
            raise DriverError("the codex-app-server driver needs the agent's connection (bind)")
        prompt = next((msg.content for msg in reversed(messages) if msg.role == "user"), "")
        system = next((msg.content for msg in messages if msg.role == "system"), "")
        session = await self._ensure_session(client, prompt)
        rpc = await self._ensure_process(client, await self._view(client, session))
        thread_id = await self._ensure_thread(rpc, session, system)
        turn = self._turn = _Turn(thread_id)
        rpc.drain_notifications()
        rpc.reset_garbage()
        params = m.TurnStartParams(
            thread_id=thread_id,
            input=[m.TextInput(text=prompt)],
            approval_policy="untrusted",
            sandbox_policy=self._sandbox(session),
            cwd=self.workspace,
        )
        try:
            started = m.TurnStartResponse.model_validate(
                await self._call(rpc, "turn/start", m.wire(params))
            )
            turn.turn_id = started.turn.id
            if turn.interrupted_by:  # futon's interrupt came before Codex named the turn
                await self._interrupt(rpc, turn)
            answer = await self._follow(rpc, turn)
            session.last_answer = answer
            return ModelTurn(text=answer)
        except asyncio.CancelledError:
            await self._interrupt(rpc, turn)
            raise
        except ServerGone as exc:
            await self._lost(f"{exc}")
            raise DriverError(f"the Codex App Server stopped mid-turn: {exc}") from None
        finally:
            self._turn = None

    async def _follow(self, rpc: RpcProcess, turn: _Turn) -> str:
        """Read notifications until this turn completes; its answer."""
        while True:
            method, params = await rpc.next_notification()
            try:
                done = await self._on_notification(method, params, turn)
            except ValueError as exc:  # a notification not of the schema: skipped
                log.warning("skipping a %s notification futon cannot read: %s", method, exc)
                continue
            if done is not None:
                return done

    def _observe(self, method: str, params: Any) -> None:
        """Note the items a turn announces, as they arrive (the reader calls
        this before it hands on a later approval request naming one)."""
        turn = self._turn
        if method != "item/started" or turn is None or not isinstance(params, dict):
            return
        if params.get("threadId") != turn.thread_id or not isinstance(params.get("item"), dict):
            return
        item = m.parse_item(params["item"])
        if item is not None and len(turn.items) < MAX_ITEMS:
            turn.items[item.id] = item

    async def _on_notification(self, method: str, params: Any, turn: _Turn) -> str | None:
        if method == "item/completed":
            note = m.ItemNotification.model_validate(params)
            item = m.parse_item(note.item)
            if item is not None and note.turn_id == turn.turn_id:
                if item.id in turn.items or len(turn.items) < MAX_ITEMS:
                    turn.items[item.id] = item
                if isinstance(item, m.AgentMessageItem) and item.text.strip():
                    turn.answer = item.text
                await self._record_item(item)
        elif method == "turn/plan/updated":
            plan = m.TurnPlanUpdatedNotification.model_validate(params)
            if plan.turn_id == turn.turn_id:
                await self._record("plan", {
                    "explanation": summary(plan.explanation, TEXT_LIMIT),
                    "plan": [{"step": s.step[:500], "status": s.status} for s in plan.plan[:50]],
                })  # fmt: skip
        elif method == "turn/completed":
            done = m.TurnCompletedNotification.model_validate(params)
            if done.turn.id != turn.turn_id:
                return None
            if done.turn.status == "failed":
                reason = done.turn.error.message if done.turn.error else "no reason given"
                raise DriverError(f"the Codex turn failed: {reason}")
            if done.turn.status == "interrupted":
                if turn.interrupted_by:
                    raise DriverError(f"{turn.interrupted_by} interrupted the session")
                raise DriverError("the Codex turn was interrupted")
            return turn.answer.strip() or "(no answer)"
        elif method == "error":
            log.warning("the App Server reports: %s", json.dumps(params)[:500])
        return None

    # ------------------------------------------------------------- approvals

    async def _on_request(self, method: str, params: Any) -> Any:
        """Answer a request from the App Server (jsonrpc calls this)."""
        if method == "item/commandExecution/requestApproval":
            command = m.CommandExecutionRequestApprovalParams.model_validate(params)
            decision = await self._approve_command(command)
            return m.wire(m.CommandExecutionRequestApprovalResponse(decision=decision))
        if method == "item/fileChange/requestApproval":
            change = m.FileChangeRequestApprovalParams.model_validate(params)
            decision = await self._approve_file_change(change)
            return m.wire(m.FileChangeRequestApprovalResponse(decision=decision))
        if method == "item/permissions/requestApproval":
            asked = m.PermissionsRequestApprovalParams.model_validate(params)
            log.warning(
                "Codex asked for more permissions (%s); futon grants none: the peripheral is the envelope",
                json.dumps(asked.permissions)[:300],
            )
            return m.wire(m.PermissionsRequestApprovalResponse())
        if method == "mcpServer/elicitation/request":
            server = params.get("serverName") if isinstance(params, dict) else None
            log.warning("declining an elicitation from MCP server %r", server)
            return m.wire(m.McpServerElicitationRequestResponse(action="decline"))
        if method == "item/tool/requestUserInput":
            log.warning("Codex asked for user input mid-turn; answering with none")
            return m.wire(m.ToolRequestUserInputResponse())
        raise MethodNotFound(method)

    def _item(self, item_id: str, thread_id: str, turn_id: str) -> m.Item | None:
        turn = self._turn
        if turn is None or turn.thread_id != thread_id or turn.turn_id not in (None, turn_id):
            return None
        return turn.items.get(item_id)

    async def _approve_command(self, asked: m.CommandExecutionRequestApprovalParams) -> m.Decision:
        network = asked.asks_for_network()
        if network is not None:
            # The first wall: no peripheral grants network (the OS wall has
            # none to give); the command line alone must not decide this.
            log.warning(
                "tension: declining a command approval for item %s asking for %s "
                "(futon grants no network to Codex): %.200s",
                asked.item_id, network, asked.command or "",
            )  # fmt: skip
            return "decline"
        item = self._item(asked.item_id, asked.thread_id, asked.turn_id)
        if not isinstance(item, m.CommandExecutionItem):
            log.warning("declining a command approval for item %s, never announced", asked.item_id)
            return "decline"
        command = unwrap_shell(asked.command or item.command)
        source = f"codex:item/commandExecution/requestApproval:{asked.item_id}"
        return await self._check(
            lambda client: client.check_command(
                command, cwd=asked.cwd or item.cwd, source=source, timeout=self.timeout_s
            ),
            f"command {command!r}",
        )

    async def _approve_file_change(self, asked: m.FileChangeRequestApprovalParams) -> m.Decision:
        item = self._item(asked.item_id, asked.thread_id, asked.turn_id)
        if not isinstance(item, m.FileChangeItem):
            log.warning(
                "declining a file change approval for item %s, never announced", asked.item_id
            )
            return "decline"
        paths = [c.path for c in item.changes] + [
            c.kind.move_path for c in item.changes if c.kind.move_path
        ]
        if not paths:
            return "decline"
        source = f"codex:item/fileChange/requestApproval:{asked.item_id}"
        return await self._check(
            lambda client: client.check_file_change(paths, source=source, timeout=self.timeout_s),
            f"file change {paths}",
        )

    async def _check(self, ask: Any, what: str) -> m.Decision:
        client = self.client
        if client is None:
            return "decline"
        try:
            checked = await ask(client)
        except Disconnected:
            log.warning("declining %s: not connected to futon", what)
            return "decline"
        except FutonError as exc:
            log.info("futon refused %s: %s: %s", what, exc.code, exc.message)
            if exc.code in GONE_CODES:
                self._session = None  # the daemon ended it: the turn stops here
                return "cancel"
            return "decline"
        except TimeoutError:
            log.warning("declining %s: futon did not answer in time", what)
            return "decline"
        log.info("futon admits %s (%s)", what, checked.tool)
        return "accept"

    # ------------------------------------------------------------- evidence

    async def _record_item(self, item: m.Item) -> None:
        if isinstance(item, m.AgentMessageItem):
            await self._record(
                "agent_message", {"item": item.id, "text": summary(item.text, TEXT_LIMIT)}
            )
        elif isinstance(item, m.CommandExecutionItem):
            await self._record("command", {
                "item": item.id, "command": summary(unwrap_shell(item.command), TEXT_LIMIT),
                "cwd": item.cwd, "status": item.status, "exit_code": item.exit_code,
                "output": summary(item.aggregated_output), "duration_ms": item.duration_ms,
            })  # fmt: skip
        elif isinstance(item, m.FileChangeItem):
            changes = []
            for change in item.changes[:100]:
                added, removed = line_counts(change)
                changes.append({
                    "path": change.path, "kind": change.kind.type, "added": added, "removed": removed,
                })  # fmt: skip
            await self._record(
                "file_change", {"item": item.id, "status": item.status, "changes": changes}
            )
        elif isinstance(item, m.PlanItem):
            await self._record("plan", {"item": item.id, "text": summary(item.text, TEXT_LIMIT)})
        elif isinstance(item, m.ReasoningItem) and item.summary:
            text = "\n".join(item.summary)
            await self._record("reasoning", {"item": item.id, "summary": summary(text, TEXT_LIMIT)})

    async def _record(self, kind: str, body: dict[str, Any]) -> None:
        client = self.client
        if client is None or self._session is None:
            return
        try:
            await client.record_item(kind, body, timeout=30)
        except (FutonError, TimeoutError) as exc:
            log.warning("the %s item was not recorded: %s", kind, exc)
            if isinstance(exc, FutonError) and exc.code in GONE_CODES:
                self._session = None

    # ------------------------------------------------------------- sessions and threads

    def hopped(self, peripheral: str, tools: list[str]) -> None:
        """A ``futon_hop`` moved the session: the next turn follows it."""
        if self._session is not None:
            self._session.peripheral, self._session.tools = peripheral, tools
            self._session.scope = None  # learned again at the next turn
        log.info("the session hopped to %s", peripheral)

    async def _ensure_session(self, client: AgentClient, prompt: str) -> _Session:
        session = self._session
        if session is not None and session.generation == client.generation:
            if session.scope is None:
                session.scope = await self._scope(client, session.peripheral)
            return session
        try:
            started = await client.start(goal=prompt[:4000], timeout=30)
        except (FutonError, TimeoutError) as exc:
            code = getattr(exc, "code", "timeout")
            raise DriverError(f"could not start a peripheral session ({code}): {exc}") from None
        self._session = _Session(
            started.session_id,
            client.generation,
            started.peripheral_id,
            list(started.tools),
            started.scope,
        )
        return self._session

    async def _scope(self, client: AgentClient, peripheral: str) -> Any:
        """The scope of ``peripheral`` from the daemon's peripheral list
        (``GET /api/alpha/peripherals``); ``"unknown"`` when unreadable."""
        base = client.url.replace("wss://", "https://").replace("ws://", "http://")
        base = base.split("/agency", 1)[0].rstrip("/")
        headers = {"Authorization": f"Bearer {client.token}"} if client.token else {}
        try:
            async with (
                aiohttp.ClientSession(
                    headers=headers, timeout=aiohttp.ClientTimeout(total=15)
                ) as http,
                http.get(f"{base}/api/alpha/peripherals") as response,
            ):
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return "unknown"
        for described in data.get("peripherals", []) if isinstance(data, dict) else []:
            if isinstance(described, dict) and described.get("id") == peripheral:
                return described.get("scope")
        return "unknown"

    def _sandbox(self, session: _Session) -> m.SandboxPolicy:
        """Read-only, or workspace-write for a peripheral that writes (its
        scope's paths as the writable roots)."""
        if not {"write", "edit"} & set(session.tools):
            return m.ReadOnlySandbox()
        roots: list[str] = []
        if isinstance(session.scope, dict) and isinstance(session.scope.get("paths"), list):
            roots = [str((Path(self.workspace) / str(p)).resolve()) for p in session.scope["paths"]]
        return m.WorkspaceWriteSandbox(writable_roots=roots)

    async def _view(self, client: AgentClient, session: _Session) -> View:
        """The sandbox the App Server runs in for ``session``'s peripheral."""
        relay = await self._ensure_relay(client)
        egress = await self._ensure_egress()
        home = self._codex_home()
        workspace = Path(self.workspace)
        return walls.view_for(
            workspace=workspace,
            hidden=self.hidden,
            writable=walls.writable_paths(session.tools, session.scope, workspace),
            home=home,
            read_only=walls.read_only_folders(self.binary, str(Path(relay.path).parent)),
            env=walls.environment(home, self.api_key, KEY_ENV, os.environ),
            hosts=egress.hosts_file,  # https: the model's host name → the inside listener
        )

    def _instructions(self, system: str, carried: str = "") -> str:
        return (
            (system + "\n" if system else "")
            + "You work in futon: every command and patch you run is checked against your "
            "current peripheral, and one it does not allow is declined. Use futon_hop "
            "(the futon MCP server) to move to another peripheral."
            + (
                f"\nYour last answer in this session, before a restart: {carried}"
                if carried
                else ""
            )
        )

    async def _ensure_thread(self, rpc: RpcProcess, session: _Session, system: str) -> str:
        if session.thread_id is not None and session.thread_id in self._loaded:
            return session.thread_id
        try:
            if session.thread_id is not None:  # a new process (a new view): the same thread
                resumed = await self._resume(rpc, session, system)
                if resumed is not None:
                    return resumed
            params = m.ThreadStartParams(
                cwd=self.workspace,
                approval_policy="untrusted",
                sandbox="read-only",
                model=self.model,
                developer_instructions=self._instructions(
                    system, summary(session.last_answer, 1000)
                ),
            )
            started = m.ThreadStartResponse.model_validate(
                await self._call(rpc, "thread/start", m.wire(params))
            )
        except ServerGone as exc:
            await self._lost(str(exc))
            raise DriverError(f"the Codex App Server stopped: {exc}") from None
        session.thread_id = started.thread.id
        self._loaded.add(started.thread.id)
        return session.thread_id

    async def _resume(self, rpc: RpcProcess, session: _Session, system: str) -> str | None:
        """``thread/resume`` of the session's thread in this process; None
        (a new thread follows, carrying the last answer) when Codex cannot."""
        assert session.thread_id is not None
        params = m.ThreadResumeParams(
            thread_id=session.thread_id,
            cwd=self.workspace,
            approval_policy="untrusted",
            sandbox="read-only",
            model=self.model,
            developer_instructions=self._instructions(system),
        )
        try:
            resumed = m.ThreadResumeResponse.model_validate(
                await self._call(rpc, "thread/resume", m.wire(params))
            )
        except (DriverError, ValueError) as exc:
            log.warning(
                "could not resume thread %s (%s); starting a new one", session.thread_id, exc
            )
            return None
        log.info("resumed thread %s in the new view", resumed.thread.id)
        session.thread_id = resumed.thread.id
        self._loaded.add(resumed.thread.id)
        return resumed.thread.id

    # ------------------------------------------------------------- the process

    async def _ensure_process(self, client: AgentClient, view: View) -> RpcProcess:
        if self.rpc is not None and self.rpc.alive and self.view == view:
            return self.rpc
        if self.rpc is not None and self.rpc.alive:
            # A hop changed what the peripheral may write: a new process in
            # the new view; the session's thread resumes there.
            rpc, self.rpc = self.rpc, None
            log.info("the peripheral's view changed: restarting the App Server in it")
            await rpc.close()
        elif self.rpc is not None:
            await self._lost("restarting the App Server")
        relay = await self._ensure_relay(client)
        egress = await self._ensure_egress()
        home = self._codex_home()
        server = f"mcp_servers.{MCP_SERVER_NAME}"
        mcp_args = ["-m", "futon", "mcp", "--agent", client.agent_id, "--relay", relay.path]
        # The inside end of the egress listens before Codex starts, then runs it.
        command = [
            sys.executable, str(TUNNEL),
            "--port", str(self.route.inside_port), "--socket", egress.path, "--",
            self.binary, "app-server",
            "--disable", "plugins", "-c", "analytics.enabled=false",
            "-c", f"{server}.command={json.dumps(sys.executable)}",
            "-c", f"{server}.args={json.dumps(mcp_args)}",
            "-c", f"{server}.required=true",
            "-c", f'{server}.default_tools_approval_mode="approve"',
            "-c", f"{server}.enabled_tools={json.dumps(list(MCP_TOOLS))}",
            *provider_config(self.route.inside_url),
        ]  # fmt: skip
        if self.model:
            command += ["-c", f"model={json.dumps(self.model)}"]
        try:
            argv, fd = self.sandbox.launch(view, command)
        except FutonError as exc:
            raise DriverError(f"could not start the Codex App Server: {exc.message}") from None
        # bwrap itself gets no secret: the App Server's variables travel in the memfd.
        rpc = RpcProcess(
            argv,
            self._on_request,
            env={"PATH": SYSTEM_PATH},
            cwd=self.workspace,
            on_notification=self._observe,
            pass_fds=(fd,),
        )
        try:
            await rpc.start()
            init = m.InitializeParams(client_info=m.ClientInfo(name="futon", version=__version__))
            m.InitializeResponse.model_validate(await self._call(rpc, "initialize", m.wire(init)))
            await rpc.notify("initialized")
        except (ServerGone, RpcError, DriverError, ValueError, TimeoutError) as exc:
            await rpc.close()
            raise DriverError(f"could not start the Codex App Server: {exc}") from None
        finally:
            os.close(fd)
        self.rpc, self.view, self._loaded = rpc, view, set()
        log.info(
            "started %s app-server in futon's sandbox (Codex %s, CODEX_HOME %s, writable: %s)",
            self.binary, PINNED_VERSION, home,
            "the workspace" if view.writable is None
            else ", ".join(str(p) for p in view.writable) or "nothing of the workspace",
        )  # fmt: skip
        return rpc

    async def _call(self, rpc: RpcProcess, method: str, params: dict[str, Any]) -> Any:
        try:
            return await rpc.request(method, params, timeout=60)
        except RpcError as exc:
            raise DriverError(f"the Codex App Server refused {exc}") from None
        except TimeoutError:
            await self._lost(f"{method} got no answer")
            raise DriverError(f"the Codex App Server did not answer {method} within 60 s") from None

    async def _interrupt(self, rpc: RpcProcess, turn: _Turn) -> None:
        """``turn/interrupt`` for a turn futon stopped (bounded; a process
        that does not answer is killed and restarted next time)."""
        if not rpc.alive:
            return
        if turn.turn_id is None:  # cancelled before Codex named the turn: stop it all
            await self._lost("the turn was stopped before it started")
            return
        params = m.TurnInterruptParams(thread_id=turn.thread_id, turn_id=turn.turn_id)
        try:
            await asyncio.shield(rpc.request("turn/interrupt", m.wire(params), timeout=10))
        except (RpcError, ServerGone, TimeoutError, asyncio.CancelledError) as exc:
            log.warning("turn/interrupt: %s; restarting the App Server next time", exc)
            await self._lost("the turn could not be interrupted")

    async def _lost(self, why: str) -> None:
        """Drop the process (a new one, and a new thread, next time)."""
        rpc, self.rpc = self.rpc, None
        if self._session is not None:
            self._session.thread_id = None
        if rpc is not None:
            log.warning("closing the App Server: %s", why)
            await rpc.close()

    async def _ensure_relay(self, client: AgentClient) -> _HopRelay:
        if self._relay is None:
            self._relay_dir = tempfile.mkdtemp(prefix="futon-codex-")
            self._relay = _HopRelay(client, str(Path(self._relay_dir) / "relay.sock"), self)
            await self._relay.__aenter__()
        return self._relay

    async def _ensure_egress(self) -> Egress:
        """The outside end of the App Server's egress (a unix socket next
        to the relay's, in the folder bound into the view)."""
        if self._egress is None:
            assert self._relay_dir is not None  # made by _ensure_relay
            egress = Egress(self.route, self._relay_dir)
            await egress.start()
            self._egress = egress
        return self._egress

    def _codex_home(self) -> str:
        if self.home:
            Path(self.home).mkdir(parents=True, exist_ok=True)
            return self.home
        if self._own_home is None:
            self._own_home = tempfile.mkdtemp(prefix="futon-codex-home-", dir="/var/tmp")
        return self._own_home

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._lost("the agent is stopping")
        if self._egress is not None:
            await self._egress.close()
            self._egress = None
        if self._relay is not None:
            await self._relay.__aexit__(None, None, None)  # also stops the session
            self._relay = None
        for folder in (self._relay_dir, self._own_home):
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
        self._relay_dir = self._own_home = None
