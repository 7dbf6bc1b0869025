"""The agent runtime behind ``futon agent run`` (README.md, "Running a model as an
agent"): the turn loop.

Each ``irc_message``, ``chat_message`` or coordination ``message`` pushed to
the agent becomes a **turn**, handled one at a time in arrival order:

1. start a peripheral session — the routed default, or the ``peripheral``
   a message payload names — or reuse the open one (``keep_session``);
2. ask the model, offering exactly the active peripheral's tools plus
   ``hop`` and ``reply``;
3. run each tool call as a ``tool_action`` and feed the result back as that
   call's result — a refusal as ``{"error": {"code", "message"}}``, invalid
   JSON arguments likewise — until the model answers without a tool call
   (or calls ``reply``), or the step/time budget runs out;
4. send the answer back where the request came from: an IRC channel gets
   ``nick: answer``, a private IRC line and a chat get a reply to the
   sender, a coordination message gets a ``reply`` frame ``{"text": answer}``
   (an IRC or chat answer names the question's ``evidence_id`` as its
   ``in_reply_to``, and the session is started with it as ``request``);
   then stop the session (unless ``keep_session``).

How futon tools look to a model: each tool is a function of its named
parameters (:mod:`futon.agents.tooldefs`, shared with ``futon mcp``;
:func:`futon.peripherals.args.named_schema`): a call to ``read`` looks like
``{"path": "README.md", "offset": 10}``. The call object goes to the daemon
as it is (the older ``{"args": [...]}`` as that array), unchecked here: the
daemon refuses a tool outside the envelope with ``tool-not-allowed`` before
it looks at the arguments, and bad arguments with ``invalid-input`` naming
the parameter; either comes back to the model as the call's result. Tool names are kept as
futon spells them (``bash-readonly``: both OpenAI and Anthropic accept
``[A-Za-z0-9_-]{1,64}``); a name outside that pattern — or one that would
shadow ``hop``/``reply`` — is offered under a safe alias and mapped back.

Failures are visible, never silent: a model error after retries, the time
or step budget running out, a session that cannot start or a lost
connection end the turn with ``[<agent id>] could not …: <reason>`` and a
``tension`` evidence entry. When the conversation passes ``max_context``
(estimated at four characters a token) the earlier turns are replaced by a
summary — the model's own, or a truncation for drivers that cannot
summarise — and a ``compaction`` evidence entry records which turns it
covered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from futon.agents.client import AgentClient, Disconnected, Push
from futon.agents.drivers.base import (
    Driver,
    DriverError,
    ModelMessage,
    ToolCall,
    ToolSpec,
    transcript,
)
from futon.agents.progress import Progress
from futon.agents.tooldefs import (  # the tool definitions, shared with the MCP bridge
    safe_tool_name,
    tool_spec,
    wire_args,
)
from futon.protocol import frames as f
from futon.protocol.errors import FutonError

log = logging.getLogger("futon.agent.runtime")

HOP_TOOL = "hop"
REPLY_TOOL = "reply"
CHARS_PER_TOKEN = 4
MAX_ANSWER_CHARS = 60_000  # under the 64 KiB text limit of chat frames
MAX_GOAL_CHARS = 4000  # of a request sent as a session's goal (the server searches its first words)
# Two agents answering each other's chats would never stop: at most this
# many chat turns per sender within CHAT_WINDOW_S; more are dropped (logged).
CHAT_TURNS_PER_WINDOW = 10
CHAT_WINDOW_S = 60.0

T = TypeVar("T")


@dataclass(frozen=True)
class TurnSettings:
    """The budgets of one turn and the session policy."""

    max_steps: int = 20  # model calls per turn
    max_seconds: float = 300
    max_context: int = 32_000  # estimated tokens before compaction
    keep_session: bool = False
    max_tool_result_chars: int = 20_000  # a longer result is cut before the model sees it


@dataclass(frozen=True)
class Request:
    """What a turn answers: who asked, how, and where the answer goes."""

    kind: Literal["irc", "chat", "message"]
    sender: str
    text: str
    channel: str | None = None  # irc: the channel; None = a private line
    msg_id: str | None = None  # message: what the reply answers
    peripheral: str | None = None  # message: the peripheral the payload asks for
    seq: int = 0
    evidence_id: str | None = None  # irc/chat: the question's line; the answer replies to it

    @property
    def progress_to(self) -> str | None:
        """Where progress lines go: the channel or nick an IRC request came from."""
        if self.kind != "irc":
            return None
        return self.channel or self.sender

    @classmethod
    def from_push(cls, push: Push, agent_id: str) -> Request | None:
        """The request a push carries, or None (evidence, the agent's own lines)."""
        if isinstance(push, f.IrcMessage):
            if push.from_ == agent_id:
                return None
            channel = None if push.private or not push.channel else push.channel
            return cls(
                "irc",
                push.from_,
                push.text,
                channel=channel,
                seq=push.seq,
                evidence_id=push.evidence_id,
            )
        if isinstance(push, f.ChatMessage):
            if push.from_ == agent_id:
                return None
            return cls(
                "chat", push.from_, push.text, seq=push.seq, evidence_id=push.evidence_id
            )
        if isinstance(push, f.PushedMessage):
            if push.from_.value == agent_id:
                return None
            payload = push.payload
            peripheral = None
            if isinstance(payload, dict):
                given = payload.get("text")
                text = given if isinstance(given, str) else json.dumps(payload, ensure_ascii=False)
                if isinstance(payload.get("peripheral"), str) and payload["peripheral"].strip():
                    peripheral = payload["peripheral"].strip().removeprefix(":")
            else:
                text = (
                    payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
                )
            return cls(
                "message",
                push.from_.value,
                text,
                msg_id=push.msg_id,
                peripheral=peripheral,
                seq=push.seq,
            )
        return None

    def prompt(self) -> str:
        """The request as the model reads it."""
        if self.kind == "irc":
            where = f"in {self.channel}" if self.channel else "(private IRC message)"
            return f"{self.sender} {where}: {self.text}"
        if self.kind == "chat":
            return f"{self.sender} (chat): {self.text}"
        return f"{self.sender} (coordination message {self.msg_id}): {self.text}"

    def destination(self) -> str:
        if self.kind == "irc":
            return (
                f"{self.sender} in {self.channel}" if self.channel else f"{self.sender} (privately)"
            )
        return self.sender


@dataclass(frozen=True)
class TurnOutcome:
    answer: str  # what was sent back (a "could not" line on failure)
    ok: bool
    steps: int
    delivered: bool
    reason: str | None = None


class TurnFailed(Exception):
    """A turn that cannot go on: ``could not <what>: <reason>``."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"could not {what}: {reason}")
        self.what = what
        self.reason = reason


# ------------------------------------------------------------------ tools for the model


def hop_spec(targets: list[str] | None = None, exits: list[str] | None = None) -> ToolSpec:
    to: dict[str, Any] = {"type": "string", "description": "the peripheral to move this session to"}
    if targets:
        to["enum"] = targets
    exit_condition: dict[str, Any] = {
        "type": "string",
        "description": "why the current peripheral is done (one of its exit conditions)",
    }
    if exits:
        exit_condition["enum"] = exits
    return ToolSpec(
        HOP_TOOL,
        "Move this session to another peripheral (another tool set and scope); the session and what it found carry over.",
        {
            "type": "object",
            "properties": {
                "to": to,
                "exit_condition": exit_condition,
                "reason": {"type": "string", "description": "one sentence, for the record"},
            },
            "required": ["to", "exit_condition", "reason"],
            "additionalProperties": False,
        },
    )


def reply_spec() -> ToolSpec:
    return ToolSpec(
        REPLY_TOOL,
        "Give your final answer to the request and end the turn (answering without any tool call does the same).",
        {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "the answer"}},
            "required": ["text"],
            "additionalProperties": False,
        },
    )


class Toolbox:
    """The tool definitions offered for one model call, and the way back
    from a (possibly aliased) name to the futon tool."""

    def __init__(
        self,
        tools: list[str],
        *,
        hop_targets: list[str] | None = None,
        exits: list[str] | None = None,
    ) -> None:
        self.tools = list(tools)
        self.futon_name: dict[str, str] = {}
        taken = {HOP_TOOL, REPLY_TOOL}
        self.specs: list[ToolSpec] = []
        for tool in tools:
            name = safe_tool_name(tool, taken)
            taken.add(name)
            self.futon_name[name] = tool
            self.specs.append(tool_spec(tool, name))
        self.specs += [hop_spec(hop_targets, exits), reply_spec()]

    def resolve(self, name: str) -> str:
        """The futon tool a model's call means (an unknown name is passed
        on as is: futon refuses it with a typed error the model can read)."""
        return self.futon_name.get(name, name)


# ------------------------------------------------------------------ the conversation


@dataclass
class _Entry:
    message: ModelMessage
    turn: int
    covers: tuple[int, int] | None = None  # a summary: the turns it stands for


@dataclass
class Conversation:
    """The model-side history of a session: entries tagged with the turn
    they belong to, so compaction can say which turns it covered."""

    entries: list[_Entry] = field(default_factory=list)
    turn: int = 0
    request_index: int = 0  # where the current turn's request sits

    def begin(self, text: str) -> None:
        self.turn += 1
        self.request_index = len(self.entries)
        self.entries.append(_Entry(ModelMessage("user", text), self.turn))

    def add(self, message: ModelMessage) -> None:
        self.entries.append(_Entry(message, self.turn))

    def close_open_calls(self, note: str) -> None:
        """After an interrupted turn: give every call still waiting a result
        and record how the turn ended, so the history stays valid for the
        next turn (APIs refuse a tool call without its result)."""
        waiting: list[str] = []
        for entry in self.entries:
            if entry.message.role == "assistant":
                waiting = [c.id for c in entry.message.tool_calls]
            elif entry.message.role == "tool" and entry.message.tool_call_id in waiting:
                waiting.remove(entry.message.tool_call_id)
        for call_id in waiting:
            self.add(
                ModelMessage(
                    "tool",
                    _refusal("not-run", "the turn ended before this call ran"),
                    tool_call_id=call_id,
                    is_error=True,
                )
            )
        self.add(ModelMessage("assistant", note))

    def messages(self) -> list[ModelMessage]:
        return [e.message for e in self.entries]

    def chars(self) -> int:
        return sum(_chars(e.message) for e in self.entries)

    def compactable(self) -> tuple[list[_Entry], list[_Entry]] | None:
        """(covered, kept): everything before the current request, and the
        current turn's steps but its latest — the request and the latest
        step stay verbatim. None when there is nothing to cover."""
        r = self.request_index
        later = [
            i
            for i in range(r + 1, len(self.entries))
            if self.entries[i].message.role == "assistant"
        ]
        cut = later[-1] if later else len(self.entries)
        covered = self.entries[:r] + self.entries[r + 1 : cut]
        if not covered:
            return None
        return covered, [self.entries[r], *self.entries[cut:]]

    def replace(self, covered: list[_Entry], kept: list[_Entry], summary: str) -> tuple[int, int]:
        first = min(e.covers[0] if e.covers else e.turn for e in covered)
        last = max(e.covers[1] if e.covers else e.turn for e in covered)
        label = f"turn {first}" if first == last else f"turns {first}-{last}"
        note = _Entry(
            ModelMessage("user", f"[Summary of the earlier conversation ({label})]\n{summary}"),
            last,
            (first, last),
        )
        self.entries = [note, *kept]
        self.request_index = 1
        return first, last


def _chars(message: ModelMessage) -> int:
    return len(message.content) + sum(
        len(c.name) + len(c.arguments_json) for c in message.tool_calls
    )


# ------------------------------------------------------------------ the daemon's HTTP side


def endpoints(url: str) -> tuple[str, str]:
    """``(ws_url, http_base)`` from a ws(s):// or http(s):// URL; a URL
    without a path gets ``/agency/ws``."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.netloc:
        raise ValueError(f"not a ws://, wss://, http:// or https:// URL: {url!r}")
    secure = parts.scheme in ("wss", "https")
    path = parts.path if parts.path not in ("", "/") else "/agency/ws"
    ws_url = urlunsplit(("wss" if secure else "ws", parts.netloc, path, parts.query, ""))
    return ws_url, f"{'https' if secure else 'http'}://{parts.netloc}"


class DaemonHttp:
    """The few HTTP routes the runtime uses: it writes evidence (as the
    agent: its token is a bearer token there) and reads the peripherals."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=15)
            )
        return self._session

    async def append_evidence(self, entry: dict[str, Any]) -> str | None:
        """POST an entry; its id, or None (logged) when the daemon refused it."""
        try:
            async with self._http().post(
                f"{self.base_url}/api/alpha/evidence", json=entry
            ) as response:
                data = await response.json(content_type=None)
                if response.status == 201 and isinstance(data, dict):
                    return data.get("evidence/id")
                log.warning("evidence not written (HTTP %s): %s", response.status, data)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("evidence not written: %s", exc)
        return None

    async def peripherals(self) -> dict[str, dict[str, Any]]:
        """``GET /api/alpha/peripherals`` by id; empty when not readable."""
        try:
            async with self._http().get(f"{self.base_url}/api/alpha/peripherals") as response:
                if response.status != 200:
                    return {}
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return {}
        return {
            p["id"]: p for p in data.get("peripherals", []) if isinstance(p, dict) and "id" in p
        }

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# ------------------------------------------------------------------ the runtime


@dataclass
class _Session:
    session_id: str
    peripheral_id: str
    tools: list[str]
    generation: int  # the client's connection generation it was opened under
    related: list[f.RelatedWork] = field(default_factory=list)  # earlier work on the goal (issue 21)


class AgentRuntime:
    """Turns pushes into model turns (see the module docstring)."""

    def __init__(
        self,
        client: AgentClient,
        driver: Driver,
        settings: TurnSettings | None = None,
        *,
        http: DaemonHttp | None = None,
    ) -> None:
        self.client = client
        self.driver = driver
        self.settings = settings or TurnSettings()
        self.http = http
        self.agent_id = client.agent_id
        self.outcomes: list[TurnOutcome] = []
        #: True while a turn runs (answer and evidence included).
        self.busy = False
        self._session: _Session | None = None
        self._conversation: Conversation | None = None
        self._peripherals: dict[str, dict[str, Any]] | None = None
        self._steps = 0
        self._chat_turns: dict[str, deque[float]] = {}
        self.progress = Progress(client)  # agents.yaml progress: notice (the ready_ack says)
        self._request: Request | None = None  # the turn's request (where progress goes)

    async def run(self) -> None:
        """Handle every push until the client closes."""
        async for push in self.client:
            request = Request.from_push(push, self.agent_id)
            if request is None or self._looping(request):
                continue
            self.busy = True
            try:
                await self.handle(request)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad turn must not end the agent
                log.exception("turn for %s failed unexpectedly", request.destination())
            finally:
                self.busy = False

    def _looping(self, request: Request) -> bool:
        """True when ``request`` is one chat too many from its sender (an
        agent answering our answers, most likely); it is dropped."""
        if request.kind != "chat":
            return False
        now = asyncio.get_running_loop().time()
        recent = self._chat_turns.setdefault(request.sender, deque())
        while recent and now - recent[0] > CHAT_WINDOW_S:
            recent.popleft()
        if len(recent) >= CHAT_TURNS_PER_WINDOW:
            log.warning(
                "dropping a chat from %s: %d turns for it in %g s (a loop between agents?)",
                request.sender,
                len(recent),
                CHAT_WINDOW_S,
            )
            return True
        recent.append(now)
        return False

    async def handle(self, request: Request) -> TurnOutcome:
        """One turn: answer ``request`` and send the answer where it came from."""
        log.info("turn: %s", request.prompt()[:200])
        self._steps = 0
        self._request = request
        failure: TurnFailed | None = None
        answer = ""
        try:
            async with asyncio.timeout(self.settings.max_seconds):
                answer = await self._turn(request)
        except TurnFailed as exc:
            failure = exc
        except TimeoutError:
            failure = TurnFailed("finish", f"no answer within {self.settings.max_seconds:g} s")
        except DriverError as exc:
            failure = TurnFailed("get an answer from the model", str(exc))
        except Disconnected:
            failure = TurnFailed("finish", "the connection to futon dropped during the turn")
        except FutonError as exc:
            failure = TurnFailed("finish", f"{exc.code}: {exc.message}")
        session = self._session
        if not self.settings.keep_session:
            await self._stop_session("turn-complete" if failure is None else "turn-failed")
        if failure is not None:
            answer = f"[{self.agent_id}] {failure}"[:2000]
            log.warning("turn failed: %s", failure)
            if self._conversation is not None and self._conversation.turn:
                self._conversation.close_open_calls(f"(this turn ended: {failure})")
        elif not answer:
            answer = f"[{self.agent_id}] (no answer)"
        if len(answer) > MAX_ANSWER_CHARS:
            answer = answer[:MAX_ANSWER_CHARS] + " […]"
        delivered = await self._deliver(request, answer)
        if failure is not None:
            await self._record_tension(request, failure, session)
        outcome = TurnOutcome(
            answer, failure is None, self._steps, delivered, failure.reason if failure else None
        )
        self.outcomes.append(outcome)
        return outcome

    # ------------------------------------------------------------- the loop

    async def _turn(self, request: Request) -> str:
        keep = self.settings.keep_session
        conversation = (
            self._conversation if keep and self._conversation is not None else Conversation()
        )
        self._conversation = conversation
        if self.driver.uses_tools:
            await self._ensure_session(request)
        conversation.begin(request.prompt())
        for step in range(1, self.settings.max_steps + 1):
            self._steps = step
            toolbox = await self._toolbox()
            system = ModelMessage("system", self._system_prompt(request, toolbox))
            await self._maybe_compact(conversation, len(system.content))
            turn = await self.driver.complete(
                [system, *conversation.messages()], toolbox.specs if toolbox else []
            )
            if not turn.tool_calls:
                conversation.add(ModelMessage("assistant", turn.text))
                return turn.text.strip()
            conversation.add(ModelMessage("assistant", turn.text, tool_calls=list(turn.tool_calls)))
            answer: str | None = None
            for call in turn.tool_calls:
                if answer is not None:  # every call needs a result, even after reply
                    content, is_error = (
                        _refusal("not-run", "the turn ended with reply before this call"),
                        True,
                    )
                else:
                    content, is_error, answer = await self._run_call(call, toolbox)
                conversation.add(
                    ModelMessage("tool", content, tool_call_id=call.id, is_error=is_error)
                )
            if answer is not None:
                return answer.strip()
        raise TurnFailed(
            "finish",
            f"the step budget ran out ({self.settings.max_steps} model calls without an answer)",
        )

    async def _run_call(
        self, call: ToolCall, toolbox: Toolbox | None
    ) -> tuple[str, bool, str | None]:
        """Run one call; (content fed back, is_error, the answer if it was ``reply``)."""
        try:
            arguments = json.loads(call.arguments_json) if call.arguments_json.strip() else {}
        except ValueError as exc:
            message = f"the arguments of {call.name} are not valid JSON ({exc}); send a JSON object"
            return _refusal("invalid-json", message), True, None
        if call.name == REPLY_TOOL:
            text = arguments.get("text") if isinstance(arguments, dict) else None
            if not isinstance(text, str):
                return _refusal("invalid-input", 'reply takes {"text": "..."}'), True, None
            return json.dumps({"ok": True, "sent": True}), False, text
        if call.name == HOP_TOOL:
            return (*await self._hop(arguments), None)
        tool = toolbox.resolve(call.name) if toolbox else call.name
        # No argument check here: the daemon checks the tool set first.
        if isinstance(arguments, dict):
            args: list[Any] | dict[str, Any] = wire_args(arguments)
        elif isinstance(arguments, list):
            args = arguments
        elif toolbox is not None and tool not in toolbox.tools:
            # Not even an object, for a tool not offered: say what matters.
            message = f"{call.name} is not one of the tools offered ({', '.join(toolbox.tools)})"
            return _refusal("tool-not-allowed", message), True, None
        else:
            message = f"the arguments of {call.name} must be a JSON object of its parameters"
            return _refusal("invalid-input", message), True, None
        self._check_session()
        try:
            result = await self.client.act(tool, args)
        except Disconnected:
            raise
        except FutonError as exc:  # refused: outside the envelope, out of scope, bad input …
            if exc.code == INTERRUPTED:  # stopped while waiting for an approval
                self._interrupted()
            await self._step_progress(tool, args, refused=exc.code)
            return _refusal(exc.code, exc.message), True, None
        if not result.ok and isinstance(result.result, dict) and result.result.get("code") == INTERRUPTED:
            self._interrupted()
        await self._step_progress(tool, args, ok=result.ok, result=result.result)
        content = json.dumps(
            {"ok": result.ok, "result": result.result}, ensure_ascii=False, default=str
        )
        return self._cap(content), not result.ok, None

    async def _step_progress(
        self, tool: str, args: Any, *, ok: bool = True, result: Any = None, refused: str | None = None
    ) -> None:
        request, session = self._request, self._session
        await self.progress.step(
            request.progress_to if request else None,
            session.peripheral_id if session else None,
            tool,
            args,
            ok=ok,
            result=result,
            refused=refused,
        )

    async def _hop(self, arguments: Any) -> tuple[str, bool]:
        if not isinstance(arguments, dict) or not all(
            isinstance(arguments.get(k), str) for k in ("to", "exit_condition")
        ):
            return _refusal(
                "invalid-input", 'hop takes {"to", "exit_condition", "reason"} (strings)'
            ), True
        self._check_session()
        try:
            hopped = await self.client.hop(
                arguments["to"], arguments["exit_condition"], str(arguments.get("reason") or "")
            )
        except Disconnected:
            raise
        except FutonError as exc:
            await self._step_progress("hop", [arguments["to"]], refused=exc.code)
            return _refusal(exc.code, exc.message), True
        await self._step_progress("hop", [arguments["to"]], result=f"now in {hopped.to}")
        if self._session is not None:
            self._session.peripheral_id, self._session.tools = hopped.to, list(hopped.tools)
        return json.dumps(
            {"ok": True, "peripheral": hopped.to, "tools": hopped.tools, "context": hopped.context},
            default=str,
        ), False

    def _cap(self, content: str) -> str:
        limit = self.settings.max_tool_result_chars
        if len(content) <= limit:
            return content
        return content[:limit] + f" […cut: {len(content) - limit} more characters]"

    # ------------------------------------------------------------- sessions

    async def _ensure_session(self, request: Request) -> _Session:
        session = self._session
        if session is not None and session.generation != self.client.generation:
            session = self._session = None  # the server stopped it when the old socket closed
        if (
            session is not None
            and request.peripheral
            and request.peripheral != session.peripheral_id
        ):
            await self._stop_session("another peripheral requested")
            session = None
        if session is None:
            try:
                started = await self.client.start(
                    request.peripheral, goal=request.text[:MAX_GOAL_CHARS], request=request.evidence_id
                )
            except Disconnected:
                raise
            except FutonError as exc:
                raise TurnFailed(
                    f"start peripheral {request.peripheral or '(default)'}",
                    f"{exc.code}: {exc.message}",
                ) from None
            session = self._session = _Session(
                started.session_id,
                started.peripheral_id,
                list(started.tools),
                self.client.generation,
                list(started.related or []),
            )
        return session

    def _interrupted(self) -> NoReturn:
        """A human stopped the session (issue 17): the daemon concluded it,
        so the turn ends here — its "could not" line says so in the channel
        — and the next turn starts a fresh session."""
        self._session = None
        raise TurnFailed("finish", "a human interrupted the session")

    def _check_session(self) -> None:
        """A reconnect in the middle of a turn ended its session on the
        server; carrying on in a fresh one would lose what it held."""
        session = self._session
        if session is not None and session.generation != self.client.generation:
            raise Disconnected("the session ended with the old connection")

    async def _stop_session(self, reason: str) -> None:
        session, self._session = self._session, None
        if (
            session is None
            or session.generation != self.client.generation
            or not self.client.connected
        ):
            return
        try:
            await self.client.stop(reason, timeout=15)
        except (FutonError, TimeoutError) as exc:
            log.info("stopping session %s: %s", session.session_id, exc)

    async def _toolbox(self) -> Toolbox | None:
        if not self.driver.uses_tools or self._session is None:
            return None
        if self._peripherals is None:
            self._peripherals = await self.http.peripherals() if self.http else {}
        current = self._peripherals.get(self._session.peripheral_id, {})
        permitted = (
            list(self.client.ready.peripherals) if self.client.ready else list(self._peripherals)
        )
        targets = [p for p in permitted if p != self._session.peripheral_id] or None
        return Toolbox(self._session.tools, hop_targets=targets, exits=current.get("exit") or None)

    def _system_prompt(self, request: Request, toolbox: Toolbox | None) -> str:
        who = request.destination()
        if toolbox is None or self._session is None:
            return (
                f"You are {self.agent_id}, an agent in futon, where humans (on IRC) and agents work together. "
                f"Answer the request that follows; your answer is sent to {who}. Be brief."
            ) + (_related_prompt(self._session.related) if self._session else "")
        session = self._session
        scope = (
            self._peripherals.get(session.peripheral_id, {}).get("scope")
            if self._peripherals
            else None
        )
        where = f" (scope: {json.dumps(scope)})" if scope else ""
        return (
            f"You are {self.agent_id}, an agent working through futon. You act only through the tools of your "
            f"current peripheral, {session.peripheral_id!r}{where}: {', '.join(session.tools) or 'none'}.\n"
            "Every futon tool takes named parameters, "
            'for example read takes {"path": "README.md"} or {"path": "README.md", "offset": 10, "limit": 20}.\n'
            "A call futon refuses, or that fails, comes back as that call's result, e.g. "
            '{"error": {"code": "tool-not-allowed", "message": "..."}}; read it and carry on: try another tool, hop, or answer.\n'
            f"Call hop to move this session to another peripheral. Call reply - or simply answer without calling "
            f"a tool - to give your final answer, which is sent to {who}. Be brief."
            + _related_prompt(session.related)
        )

    # ------------------------------------------------------------- compaction

    async def _maybe_compact(self, conversation: Conversation, system_chars: int) -> None:
        estimate = (conversation.chars() + system_chars) // CHARS_PER_TOKEN
        if estimate <= self.settings.max_context:
            return
        plan = conversation.compactable()
        if plan is None:
            return
        covered, kept = plan
        text = transcript([e.message for e in covered])
        summary: str | None = None
        try:
            summary = await self.driver.summarize(text)
        except DriverError as exc:
            log.warning("the model could not summarise (%s); truncating instead", exc)
        method = "summary" if summary else "truncation"
        if not summary:
            budget = max(
                400, self.settings.max_context
            )  # a quarter of the token budget, in characters
            summary = (
                text
                if len(text) <= budget
                else "(earlier conversation truncated; its end follows)\n…" + text[-budget:]
            )
        before = conversation.chars()
        first, last = conversation.replace(covered, kept, summary)
        after = conversation.chars()
        log.info(
            "compacted turns %d-%d by %s: %d → %d characters", first, last, method, before, after
        )
        await self._record(
            "observation",
            ["agent-runtime", "compaction"],
            {
                "covered_turns": [first, last],
                "chars_before": before,
                "chars_after": after,
                "method": method,
            },
            self._session,
        )

    # ------------------------------------------------------------- answers and evidence

    async def _deliver(self, request: Request, text: str) -> bool:
        """Send the answer where the request came from; after a dropped
        socket, wait (a while) for the reconnect and try once more."""
        for _ in range(2):
            try:
                if request.kind == "irc" and request.channel:
                    await self.client.irc_response(
                        f"{request.sender}: {text}",
                        channel=request.channel,
                        in_reply_to=request.evidence_id,
                        timeout=30,
                    )
                elif request.kind == "irc":
                    await self.client.irc_response(
                        text, nick=request.sender, in_reply_to=request.evidence_id, timeout=30
                    )
                elif request.kind == "chat":
                    await self.client.chat(
                        request.sender, text, in_reply_to=request.evidence_id, timeout=30
                    )
                else:
                    assert request.msg_id is not None
                    await self.client.reply(request.msg_id, {"text": text}, timeout=30)
                return True
            except Disconnected:
                with contextlib.suppress(TimeoutError, Disconnected):
                    await self.client.wait_connected(timeout=30)
                    continue
                break
            except (FutonError, TimeoutError) as exc:
                log.warning("could not send the answer to %s: %s", request.destination(), exc)
                return False
        log.warning("could not send the answer to %s: not connected", request.destination())
        return False

    async def _record_tension(
        self, request: Request, failure: TurnFailed, session: _Session | None
    ) -> None:
        body = {
            "what": failure.what,
            "reason": failure.reason,
            "steps": self._steps,
            "driver": self.driver.name,
            "request": {
                "kind": request.kind,
                "from": request.sender,
                "channel": request.channel,
                "msg_id": request.msg_id,
            },
        }
        await self._record("tension", ["agent-runtime", "turn-failed"], body, session)

    async def _record(
        self, claim: str, tags: list[str], body: dict[str, Any], session: _Session | None
    ) -> None:
        if self.http is None:
            return
        entry: dict[str, Any] = {
            "type": "coordination",
            "claim-type": claim,
            "author": self.agent_id,
            "subject": {"ref/type": "session", "ref/id": session.session_id}
            if session
            else {"ref/type": "agent", "ref/id": self.agent_id},
            "tags": tags,
            "body": body,
        }
        if session is not None:
            entry["session-id"] = session.session_id
        await self.http.append_evidence(entry)


def _related_prompt(related: list[f.RelatedWork]) -> str:
    """Earlier work on this session's goal, for the system prompt: so the
    model builds on it instead of redoing it."""
    if not related:
        return ""
    lines = "\n".join(f"- {item.evidence_id}: {item.summary}" for item in related)
    return (
        "\nEarlier sessions (any agent's) concluded or were refused on related work; check it before redoing it "
        f"(evidence-search finds more):\n{lines}"
    )


INTERRUPTED = "interrupted"  # the code of a step a human interrupted (docs/peripherals.md, interrupt)


def _refusal(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False)


async def run_agent(
    agent_id: str,
    url: str | Sequence[str],
    driver: Driver,
    settings: TurnSettings | None = None,
    *,
    token: str | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """``futon agent run``: connect, answer pushes until ``stop`` is set or
    the daemon ends the connection for good; the exit code. Several URLs
    (one team's daemons): the client fails over between them, and the HTTP
    calls follow the daemon it is connected to."""
    urls = [url] if isinstance(url, str) else list(url)
    ws_urls = [endpoints(u)[0] for u in urls]
    http_base = endpoints(urls[0])[1]
    client = AgentClient(ws_urls, agent_id, token)
    http = DaemonHttp(http_base, token)
    client.on_reconnect(lambda _ack: setattr(http, "base_url", endpoints(client.url)[1]))
    driver.bind(client)  # e.g. the command driver's --mcp relay rides this connection
    runtime = AgentRuntime(client, driver, settings, http=http)
    stop = stop or asyncio.Event()
    try:
        ack = await _until_stopped(client.connect(), stop)
        if ack is None:
            return 0
        http.base_url = endpoints(client.url)[1]  # the first URL may have been down
        log.info(
            "%s connected to %s (driver %s; default peripheral %s)",
            agent_id,
            client.url,
            driver.name,
            ack.default_peripheral,
        )
        await _until_stopped(runtime.run(), stop)
        if stop.is_set():
            return 0
        log.error("%s: the daemon ended the connection for good", agent_id)
        return 1
    finally:
        await client.close()
        await http.aclose()
        await driver.aclose()


async def _until_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or None once ``stop`` is set (``work`` is cancelled)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()
