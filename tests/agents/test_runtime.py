"""The turn loop with the script and command drivers: where answers go,
sessions (default, requested, kept, hopped), compaction by truncation, a
real subprocess per turn, and ``futon agent run`` as a process."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from futon.agents.client import AgentClient
from futon.agents.drivers import make_driver
from futon.agents.drivers.command import CommandDriver
from futon.agents.drivers.script import ScriptDriver
from futon.agents.runtime import AgentRuntime, Request, Toolbox, endpoints, tool_spec
from futon.cli.agent_cmd import DEFAULT_URL, default_url
from futon.daemon.app import Daemon
from futon.peripherals.args import args_schema, named_schema
from futon.protocol.errors import FutonError
from futon.protocol.frames import IrcMessage
from tests.agents.conftest import ask_by_chat, entries, running_agent, ws_url
from tests.support import futon_env, make_config, until
from tests.transports.irc.kit import RawClient
from tests.transports.kit import connected, running_daemon


def read(path: str) -> dict[str, object]:
    return {"name": "read", "arguments": {"args": [path]}}


async def test_script_driver_runs_a_turn_and_sees_each_result(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    driver = ScriptDriver([{"tool_calls": [read("README.md")]}, {"text": "it says hello"}])
    async with running_agent(daemon, driver):
        assert await ask_by_chat(http, daemon, "README?") == "it says hello"
    messages, tools = driver.requests[1]
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool"]
    assert json.loads(messages[-1].content)["ok"] is True
    assert {t.name for t in tools} >= {"read", "hop", "reply"}


async def test_an_irc_channel_line_is_answered_in_the_channel_to_the_nick(tmp_path: Path) -> None:
    driver = ScriptDriver(
        [
            {"text": "hi alice"},
            {"tool_calls": [{"name": "reply", "arguments": {"text": "privately hi"}}]},
        ]
    )
    # alice is a real IRC user: a private answer to a nick nobody holds is
    # refused (unknown-target), not recorded.
    async with running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon:
        alice = await RawClient.connect(daemon.ports["irc"])
        alice.auto_pong = True
        await alice.register("alice")
        try:
            await _answered_in_the_channel_to_the_nick(daemon, driver)
        finally:
            await alice.close()


async def _answered_in_the_channel_to_the_nick(daemon: Daemon, driver: ScriptDriver) -> None:
    assert daemon.pipeline is not None
    record = daemon.registry.get("claude-1")
    async with running_agent(daemon, driver) as runtime:
        await daemon.pipeline.push(
            record,
            IrcMessage.model_validate(
                {"channel": "#futon", "from": "alice", "text": "claude-1: hi", "transport": "irc", "seq": 0}
            ),
        )
        await daemon.pipeline.push(
            record,
            IrcMessage.model_validate(
                {"channel": None, "from": "alice", "text": "psst", "transport": "irc", "private": True, "seq": 0}
            ),
        )
        await until(lambda: len(runtime.outcomes) == 2)
        assert [o.ok for o in runtime.outcomes] == [True, True]
    said = await entries(daemon, type="forum-post", author="claude-1")
    by_text = {e["evidence/body"]["text"]: e for e in said}
    assert by_text["alice: hi alice"]["evidence/subject"]["ref/id"] == "irc/#futon"
    assert "privately hi" in by_text  # a private line is answered to the nick, without a prefix
    assert "alice in #futon: claude-1: hi" in driver.requests[0][0][-1].content


async def test_keep_session_reuses_the_session_and_the_conversation(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    driver = ScriptDriver([{"text": "first"}, {"text": "second"}])
    async with running_agent(daemon, driver, keep_session=True):
        assert await ask_by_chat(http, daemon, "one") == "first"
        assert await ask_by_chat(http, daemon, "two") == "second"
        assert daemon.runner is not None
        sessions = daemon.runner.sessions("claude-1")
        assert [s.active for s in sessions] == [True]
    contents = [m.content for m in driver.requests[1][0]]
    assert contents[1:] == ["codex-1 (chat): one", "first", "codex-1 (chat): two"]


async def test_keep_session_compacts_earlier_turns_by_truncation(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    driver = ScriptDriver(
        [{"tool_calls": [read("README.md")]}, {"text": "first"}, {"text": "second"}]
    )
    async with running_agent(daemon, driver, keep_session=True, max_context=50):
        await ask_by_chat(http, daemon, "one")
        assert await ask_by_chat(http, daemon, "two") == "second"
    messages = driver.requests[2][0]
    assert messages[1].content.startswith("[Summary of the earlier conversation (turn 1)]")
    assert messages[2].content == "codex-1 (chat): two"
    (entry,) = await entries(daemon, tag="compaction")
    assert entry["evidence/body"]["covered_turns"] == [1, 1]
    assert entry["evidence/body"]["method"] == "truncation"
    assert entry["evidence/author"] == "claude-1"


async def test_a_hop_changes_the_tools_offered_next(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    hop = {
        "name": "hop",
        "arguments": {"to": "edit", "exit_condition": "ready-to-edit", "reason": "found it"},
    }
    driver = ScriptDriver([{"tool_calls": [hop]}, {"text": "now in edit"}])
    async with running_agent(daemon, driver):
        assert await ask_by_chat(http, daemon, "fix it") == "now in edit"
    before = {t.name for t in driver.requests[0][1]}
    after = {t.name for t in driver.requests[1][1]}
    assert "edit" not in before and {"edit", "write", "bash"} <= after
    hop_tool = next(t for t in driver.requests[0][1] if t.name == "hop")
    assert "ready-to-edit" in hop_tool.parameters["properties"]["exit_condition"]["enum"]
    assert json.loads(driver.requests[1][0][-1].content)["peripheral"] == "edit"


async def test_a_peripheral_that_cannot_start_ends_the_turn_with_could_not(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    driver = ScriptDriver([])
    async with running_agent(daemon, driver), connected(http, daemon, "codex-1") as asker:
        payload = {"coordination": True, "text": "go", "peripheral": "nowhere"}
        receipt = await asker.ask(
            {"type": "message", "msg_id": "m-2", "to": "claude-1", "payload": payload}
        )
    assert receipt["reply"]["text"].startswith(
        "[claude-1] could not start peripheral nowhere: unknown-peripheral"
    )
    assert driver.requests == []
    (tension,) = await entries(daemon, claim_type="tension")
    assert tension["evidence/body"]["request"]["msg_id"] == "m-2"


async def test_command_driver_pipes_the_prompt_to_a_real_process(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    code = "import sys; p = sys.stdin.read(); print('heard:', p.strip().splitlines()[-1])"
    driver = CommandDriver(shlex.join([sys.executable, "-c", code]))
    async with running_agent(daemon, driver):
        assert await ask_by_chat(http, daemon, "ping me") == "heard: codex-1 (chat): ping me"
    assert (
        daemon.runner is not None and daemon.runner.sessions("claude-1") == []
    )  # brings its own tools


async def test_command_driver_kills_a_process_past_the_time_budget(
    daemon: Daemon, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    # a model process that outlasts the 1 s budget: time is what is under test
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(30)"
    driver = CommandDriver([sys.executable, "-c", code], timeout_s=30)
    async with running_agent(daemon, driver, max_seconds=1):
        answer = await ask_by_chat(http, daemon, "take your time")
    assert answer == "[claude-1] could not finish: no answer within 1 s"
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_futon_agent_run_as_a_process_with_the_script_driver(
    daemon: Daemon, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(
        "- tool_calls: [{name: read, arguments: {args: [README.md]}}]\n- text: from the script\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "futon", "agent", "run", "claude-1", "--driver", "script", "--script", str(script),
        "--url", ws_url(daemon), "--max-steps", "5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=futon_env(),
    )  # fmt: skip
    try:
        record = daemon.registry.get("claude-1")
        await until(lambda: record.connected, what="the agent process connecting")
        assert record.connected, "the agent process did not connect"
        assert await ask_by_chat(http, daemon, "hello?") == "from the script"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, err.decode()


async def test_the_cli_names_a_missing_option() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "futon", "agent", "run", "claude-1", "--driver", "command",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=futon_env(),
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 2 and "--cmd is required" in err.decode()


def test_requests_know_where_their_answer_goes() -> None:
    from futon.protocol.frames import parse_server_frame

    push = parse_server_frame(
        '{"type": "message", "msg_id": "m", "from": {"value": "x", "type": "agent"}, "payload": {"text": "t", "peripheral": ":edit"}, "seq": 4}'
    )
    request = Request.from_push(push, "claude-1")  # type: ignore[arg-type]
    assert request is not None and (request.kind, request.peripheral, request.msg_id) == (
        "message",
        "edit",
        "m",
    )
    own = parse_server_frame(
        '{"type": "chat_message", "to": "claude-1", "from": "claude-1", "text": "me", "transport": "websocket", "seq": 5}'
    )
    assert Request.from_push(own, "claude-1") is None  # type: ignore[arg-type]


def test_tools_are_functions_of_named_parameters_with_nested_models_inlined() -> None:
    spec = tool_spec("failed-route-add")
    schema = named_schema("failed-route-add")  # one source
    assert spec.description == schema.pop("description") and spec.parameters == schema
    assert list(spec.parameters["properties"]) == ["id", "record"]
    assert spec.parameters["required"] == ["id", "record"]
    record = spec.parameters["properties"]["record"]
    # The nested model is inlined: no $ref to resolve, no $defs, no prefixItems.
    assert record["type"] == "object" and "blocker_id" in record["properties"]
    assert "$defs" not in spec.parameters and "$ref" not in json.dumps(spec.parameters)
    assert "prefixItems" not in json.dumps(spec.parameters)
    # Its positional items are the same argument model (one source of truth).
    positional = args_schema("failed-route-add")["prefixItems"]
    assert len(positional) == len(spec.parameters["properties"])
    box = Toolbox(["read", "odd.tool", "reply"])
    names = [s.name for s in box.specs]
    assert names == ["read", "odd_tool", "reply_2", "hop", "reply"]
    assert (box.resolve("odd_tool"), box.resolve("reply_2"), box.resolve("made-up")) == (
        "odd.tool",
        "reply",
        "made-up",
    )


def test_endpoints_accept_ws_and_http_urls() -> None:
    assert endpoints("ws://h:1/agency/ws") == ("ws://h:1/agency/ws", "http://h:1")
    assert endpoints("https://h") == ("wss://h/agency/ws", "https://h")
    with pytest.raises(ValueError):
        endpoints("h:1")


async def test_a_daemon_restart_mid_turn_ends_the_turn_visibly_and_the_next_turn_works(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The model is thinking when the daemon restarts: its tool call must not
    run in a session that no longer exists; the asker hears `could not`
    through the new daemon, and the agent answers the next request."""
    driver = ScriptDriver(
        [{"delay_s": 1.0, "tool_calls": [read("README.md")]}, {"text": "second answer"}]
    )
    async with running_daemon(tmp_path) as first:
        port = first.ports["http"]
        agent = running_agent(first, driver)
        runtime = await agent.__aenter__()
        try:
            async with connected(http, first, "codex-1") as asker:
                await asker.send({"type": "chat", "to": "claude-1", "text": "first"})
                # the model is thinking (inside its delay_s) when the daemon goes
                await until(lambda: driver.requests, what="the first model turn")
        except BaseException:
            await agent.__aexit__(None, None, None)
            raise
    try:
        async with running_daemon(tmp_path, http__port=port) as second:
            async with connected(http, second, "codex-1") as asker:
                await asker.send({"type": "resume", "since_seq": 0})
                failed = await asker.push_of("chat_message", timeout=10)
            assert (
                failed["text"]
                == "[claude-1] could not finish: the connection to futon dropped during the turn"
            )
            assert await ask_by_chat(http, second, "again") == "second answer"
            assert [o.ok for o in runtime.outcomes] == [False, True]
    finally:
        await agent.__aexit__(None, None, None)


async def test_a_turn_cut_off_by_the_clock_leaves_a_valid_history_for_the_next(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    sleep = {"name": "bash-readonly", "arguments": {"args": ["sleep 3"]}}
    driver = ScriptDriver([{"tool_calls": [sleep]}, {"text": "after"}])
    async with running_agent(daemon, driver, keep_session=True, max_seconds=1):
        assert (
            await ask_by_chat(http, daemon, "slow")
            == "[claude-1] could not finish: no answer within 1 s"
        )
        assert await ask_by_chat(http, daemon, "again") == "after"
    roles = [(m.role, m.content[:40]) for m in driver.requests[1][0][1:]]
    assert roles[1][0] == "assistant" and roles[2][0] == "tool" and '"not-run"' in roles[2][1]
    assert roles[3] == ("assistant", "(this turn ended: could not finish: no a")
    assert roles[4] == ("user", "codex-1 (chat): again")


async def test_chats_from_one_sender_beyond_the_window_are_dropped() -> None:
    runtime = AgentRuntime(AgentClient("ws://127.0.0.1:9/agency/ws", "claude-1"), ScriptDriver([]))
    chat = Request("chat", "codex-1", "ping")
    dropped = [runtime._looping(chat) for _ in range(12)]
    assert dropped == [False] * 10 + [True, True]
    assert runtime._looping(Request("irc", "alice", "hi", channel="#futon")) is False


def test_the_default_url_comes_from_the_config(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", http__port=7171)
    assert default_url(str(config)) == "ws://127.0.0.1:7171/agency/ws"
    config = make_config(tmp_path / "cfg0", http__port=0)
    assert default_url(str(config)) == DEFAULT_URL  # no daemon has written ports.json
    (tmp_path / "cfg0" / "var").mkdir()
    (tmp_path / "cfg0" / "var" / "ports.json").write_text('{"http": 43210}\n')
    assert default_url(str(config)) == "ws://127.0.0.1:43210/agency/ws"


def test_make_driver_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--model is required"):
        make_driver("openai")
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        make_driver("anthropic", model="m", env={})
    with pytest.raises(ValueError, match="MY_KEY"):
        make_driver("openai", model="m", api_key_env="MY_KEY", env={})
    assert make_driver("openai", model="m", env={}).api_key is None  # local servers need none
    keyed = make_driver("anthropic", model="m", api_key_env="MY_KEY", env={"MY_KEY": "k"})
    assert keyed.api_key == "k"  # type: ignore[attr-defined]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {nonsense: 1}\n")
    with pytest.raises(ValueError, match="script turn 0"):
        make_driver("script", script=str(bad))


def test_server_frames_parse_back_into_the_models_they_were_rendered_from() -> None:
    from futon.protocol import frames as f

    samples = [
        f.IrcMessage(channel=None, **{"from": "alice"}, text="hi", seq=3),
        f.Hopped(
            **{"from": "explore"},
            to="edit",
            session_id="s",
            context={},
            tools=["read"],
            req_id="c1",
        ),
        f.ErrorFrame(code="tool-not-allowed", message="no", req_id=7),
    ]
    for frame in samples:
        assert f.parse_server_frame(f.render(frame)) == frame
    with pytest.raises(FutonError):
        f.parse_server_frame('{"type": "ready"}')  # a client frame
