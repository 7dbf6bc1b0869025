"""The real Claude Code and Codex CLIs (the versions pinned in
agents-cli/package-lock.json, installed by `make test`) driven by
`futon agent run --driver claude-code|codex-cli` against streaming fake
model servers (tests/agents/fake_models.py).

The story, for each CLI: a human on the embedded IRC server asks the agent
to fix a failing test. The scripted model greps and reads in explore, asks
for the CLI's own shell/write tool (it does not run: no file appears),
calls `edit` while still in explore (`tool-not-allowed`, nothing written),
hops to edit, edits, hops to test, runs the suite and answers with the
count pytest printed. The human sees that line; the evidence holds every
step with the agent as author. The CLIs reach nothing but the fake server
and `futon mcp`: a fake API key, a private HOME under /var/tmp, and every
proxy variable pointing at a listener that fails the test when a CLI
connects anywhere else (the presets' own flags keep them off the network).
A CLI stuck mid-turn is killed after `--max-seconds`, with a `could not`
line in the channel and a `tension` entry; one whose model stream breaks
exits non-zero mid-turn, with the same. Bad tool calls (a tool the CLI does
not offer, wrong-typed or missing arguments, a path outside the workspace)
come back to the model as refusals naming their code, and nothing is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from futon.config.models import SandboxSpec
from futon.daemon.app import Daemon
from futon.evidence import EvidenceQuery
from futon.peripherals.spec import Peripheral
from futon.protocol.irc_lines import Message
from tests.agents.fake_models import (
    Answer,
    Drop,
    FakeMessages,
    FakeModel,
    FakeResponses,
    Hang,
    Step,
    Use,
)
from tests.mcp.kit import ws_url
from tests.support import futon_env, until
from tests.transports.irc.kit import RawClient
from tests.transports.kit import running_daemon

AGENTS_CLI = Path(__file__).resolve().parents[2] / "agents-cli"
PYTEST = f"{sys.executable} -m pytest"
STRAY = "made-by-the-cli.txt"  # what the CLI's own tools are asked to create


@dataclass(frozen=True)
class Cli:
    """One real CLI: its binary, driver preset, fake server and own tools."""

    driver: str
    binary: str
    agent: str
    own_tools: tuple[Use, ...]  # the CLI's own shell/write tools, which must not run
    no_such_tool: str  # how the CLI answers a call to a tool it does not offer

    def path(self) -> Path:
        return AGENTS_CLI / "node_modules" / ".bin" / self.binary

    def fake(self, script: list[Step]) -> FakeModel:
        return FakeMessages(script) if self.driver == "claude-code" else FakeResponses(script)

    def base_url(self, model: FakeModel) -> str:
        return model.root if self.driver == "claude-code" else model.root + "/v1"


CLAUDE = Cli("claude-code", "claude", "claude-1", (
    Use("Bash", {"command": f"touch {STRAY}"}),
    Use("Write", {"file_path": STRAY, "content": "x"}),
), "No such tool available")  # fmt: skip
CODEX = Cli("codex-cli", "codex", "codex-1", (
    Use("exec_command", {"cmd": f"touch {STRAY}"}),
    Use("apply_patch", {"input": f"*** Begin Patch\n*** Add File: {STRAY}\n+x\n*** End Patch\n"}),
), "unsupported call")  # fmt: skip


@pytest.fixture
def private_home() -> Iterator[Path]:
    """A HOME for the CLI, under /var/tmp (Codex's sandbox refuses a home
    under /tmp), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="futon-cli-home-", dir="/var/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def files(folder: Path) -> dict[Path, bytes]:
    return {
        p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }


def passed_line(results: list[str]) -> str:
    found = re.search(r"(\d+) passed", results[-1] if results else "")
    return f"fixed src/calc.py; tests: {found.group(1) if found else '?'} passed"


def script(cli: Cli) -> list[Step]:
    return [
        Use("grep", {"pattern": "return a - b", "path": "src"}, ["return a - b", "src"]),
        Use("read", {"path": "src/calc.py"}, ["src/calc.py"]),
        *cli.own_tools,
        Use("edit", {"path": "src/calc.py", "old": "return a - b", "new": "return a + b"},
            ["src/calc.py", "return a - b", "return a + b"]),
        Use("futon_hop", {"to": "edit", "exit_condition": "found-target", "reason": "add subtracts"}),
        Use("edit", {"path": "src/calc.py", "old": "return a - b", "new": "return a + b"},
            ["src/calc.py", "return a - b", "return a + b"]),
        Use("futon_hop", {"to": "test", "exit_condition": "hop-test", "reason": "run the suite"}),
        Use("bash-test", {"command": f"{PYTEST} -q -p no:cacheprovider tests"},
            [f"{PYTEST} -q -p no:cacheprovider tests"]),
        Answer(passed_line),
    ]  # fmt: skip


async def ask_in_irc(
    cli: Cli,
    daemon: Daemon,
    model: FakeModel,
    home: Path,
    *,
    max_seconds: float,
    settled: Callable[[], object] = lambda: True,
    extra_env: dict[str, str] | None = None,
) -> tuple[Message, str]:
    """joe asks the agent in #futon, run by ``futon agent run --driver
    <cli>`` as a user would; the channel line it answers with and the end of
    the runner's log. The runner is stopped once ``settled()`` holds (what it
    records after answering). Every proxy variable points at a listener that
    records and refuses: a CLI reaching for anything beyond 127.0.0.1 fails
    the test."""
    scratch = home / "cwd"  # the CLI's working folder: not the workspace
    scratch.mkdir()
    (home / ".codex").mkdir()
    outbound: list[bytes] = []

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            outbound.append(await asyncio.wait_for(reader.readline(), 5))
        writer.close()

    proxy = await asyncio.start_server(refuse, "127.0.0.1", 0)
    proxy_url = f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
    env = {
        **futon_env(),
        "HOME": str(home),
        "CODEX_HOME": str(home / ".codex"),
        "ANTHROPIC_API_KEY": "sk-fake-for-tests",
        "OPENAI_API_KEY": "sk-fake-for-tests",
        **{
            name: proxy_url
            for name in (
                "HTTP_PROXY",
                "HTTPS_PROXY",
                "ALL_PROXY",
                "http_proxy",
                "https_proxy",
                "all_proxy",
            )
        },
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        **(extra_env or {}),
    }
    joe = await RawClient.connect(daemon.ports["irc"])
    joe.auto_pong = True
    await joe.register("joe")
    await joe.join("#futon")
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "futon", "agent", "run", cli.agent, "--driver", cli.driver,
        "--cli", str(cli.path()), "--base-url", cli.base_url(model), "--model", "fake-model",
        "--url", ws_url(daemon), "--max-seconds", str(max_seconds),
        env=env, cwd=scratch, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    err = b""
    try:
        await until(
            lambda: daemon.ws is not None and daemon.ws.count,
            timeout=30,
            what="the agent connected",
        )
        await joe.send(f"PRIVMSG #futon :{cli.agent}: tests/test_calc.py fails, please fix it")
        answer = await joe.expect("PRIVMSG", timeout=max_seconds + 10)
        await until(settled, timeout=30, what="the runner's last records")
    finally:
        agent.terminate()
        _, err = await asyncio.wait_for(agent.communicate(), 15)
        await model.close()
        await joe.close()
        proxy.close()
        await proxy.wait_closed()
    assert outbound == [], f"a CLI reached beyond 127.0.0.1: {outbound}"
    return answer, err.decode("utf-8", "replace")[-3000:]


def require(cli: Cli) -> None:
    if not os.access(cli.path(), os.X_OK):
        pytest.fail(
            f"{cli.path()} is missing: `make test` installs the pinned CLIs (npm ci in agents-cli/)"
        )


@pytest.mark.parametrize("cli", [CLAUDE, CODEX], ids=["claude-code", "codex-cli"])
async def test_a_real_cli_fixes_a_failing_test_inside_the_envelope(
    cli: Cli, tmp_path: Path, private_home: Path
) -> None:
    require(cli)
    async with running_daemon(
        tmp_path, irc__server__enabled=True, irc__server__port=0,
        tools__test_commands=[f"{PYTEST} -q -p no:cacheprovider {{paths}}"],
    ) as daemon:  # fmt: skip
        workspace = daemon.config.workspace
        # The story starts in explore for both (the shipped routing sends codex to edit).
        daemon.registry.routing["codex"] = "explore"
        # The test step runs this interpreter, outside the system folders here.
        test = daemon.runner.peripherals["test"]
        extras = SandboxSpec(read_only=sorted({sys.prefix, sys.base_prefix}))
        daemon.runner.peripherals["test"] = Peripheral(
            "test", test.spec.model_copy(update={"sandbox": extras})
        )
        (workspace / "src" / "calc.py").write_text("def add(a, b):\n    return a - b\n")
        (workspace / "tests").mkdir(exist_ok=True)
        (workspace / "tests" / "test_calc.py").write_text(
            "import pathlib, sys\nsys.path.insert(0, str(pathlib.Path(__file__).parent.parent / 'src'))\n"
            "from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n\ndef test_zero():\n    assert add(0, 0) == 0\n"
        )
        before = files(workspace)
        model = await cli.fake(script(cli)).start()
        answer, log = await ask_in_irc(cli, daemon, model, private_home, max_seconds=150)
        store = daemon.store
        assert store is not None
        mine = list(reversed(store.query(EvidenceQuery(author=cli.agent, limit=200)).entries))

    assert model.problems == [], log
    assert answer.source.startswith(f"{cli.agent}!"), log
    assert answer.params == ["#futon", "joe: fixed src/calc.py; tests: 2 passed"], (
        model.results,
        log,
    )

    own = len(cli.own_tools)
    grep, read, *refused_own, early_edit, hop_edit, _edit, _hop_test, run = model.results
    assert len(refused_own) == own
    assert all(cli.no_such_tool in result for result in refused_own), refused_own
    assert "return a - b" in grep and "def add" in read
    # The CLI's own shell/write tools are not there: nothing they were asked for exists.
    assert not any(p.name == STRAY for p in private_home.rglob("*")), refused_own
    assert not (workspace / STRAY).exists() and not Path(STRAY).exists()
    # edit in explore: refused by the envelope, the file untouched until the hop.
    assert "tool-not-allowed" in early_edit, early_edit
    assert '"ok": true' in hop_edit.replace("'", '"').lower() or "edit" in hop_edit, hop_edit
    assert "2 passed" in run, run
    assert (workspace / "src" / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    after = files(workspace)
    assert set(after) == set(before)  # the one edit, no new file (pytest's own bytecode aside)
    assert {p for p in after if after[p] != before[p]} == {workspace / "src" / "calc.py"}

    # Evidence: every step in one session chain, the agent as author.
    session = next(
        e["evidence/session-id"] for e in mine if e["evidence/body"].get("tool") == "grep"
    )
    story = [e for e in mine if e.get("evidence/session-id") == session]
    assert all(e["evidence/author"] == cli.agent for e in story)
    steps = [e["evidence/body"].get("tool") or e["evidence/body"].get("to") for e in story
             if e["evidence/type"] in ("coordination", "mode-transition")]  # fmt: skip
    steps = [s for s in steps if s]
    assert steps[:2] == ["grep", "read"], steps
    assert [s for s in steps[2:] if s in ("edit", "test", "bash-test")] == [
        "edit",
        "edit",
        "edit",
        "test",
        "bash-test",
    ], steps
    refusals = [e["evidence/body"] for e in story if e.get("evidence/claim-type") == "tension"]
    assert [(r["tool"], r["code"]) for r in refusals] == [("edit", "tool-not-allowed")], refusals


@pytest.mark.parametrize("cli", [CLAUDE, CODEX], ids=["claude-code", "codex-cli"])
async def test_a_cli_stuck_mid_turn_is_killed_after_its_budget_with_a_could_not_reply(
    cli: Cli, tmp_path: Path, private_home: Path
) -> None:
    require(cli)
    async with running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon:
        daemon.registry.routing["codex"] = "explore"
        model = await cli.fake([Use("read", {"path": "README.md"}, ["README.md"]), Hang()]).start()
        store = daemon.store
        assert store is not None
        tension = EvidenceQuery(author=cli.agent, claim_type="tension")
        answer, log = await ask_in_irc(
            cli, daemon, model, private_home, max_seconds=8,
            settled=lambda: bool(store.query(tension).entries),
        )  # fmt: skip
        reasons = [e["evidence/body"].get("reason") for e in store.query(tension).entries]
    assert model.problems == [] and model.results and "hello" in model.results[0], log
    assert answer.source.startswith(f"{cli.agent}!"), log
    assert answer.params == ["#futon", f"joe: [{cli.agent}] could not finish: no answer within 8 s"]
    assert reasons == ["no answer within 8 s"], reasons
    # The CLI was killed with its process group, and the MCP server it started
    # ends with its stdin: no process is left with this test's HOME.
    await until(
        lambda: _processes_with(f"HOME={private_home}") == [],
        timeout=30,
        what="the CLI and its MCP server gone",
    )


@pytest.mark.parametrize("cli", [CLAUDE, CODEX], ids=["claude-code", "codex-cli"])
async def test_bad_tool_calls_come_back_to_the_model_as_typed_refusals(
    cli: Cli, tmp_path: Path, private_home: Path
) -> None:
    require(cli)
    async with running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon:
        daemon.registry.routing["codex"] = "explore"
        workspace = daemon.config.workspace
        secret = workspace.parent / "outside" / "secret"
        secret.parent.mkdir()
        secret.write_text("sentinel\n")
        before = files(workspace)
        model = await cli.fake([
            # Not a futon tool: the CLI does not offer it, so it refuses the call itself.
            Use("mcp__futon__frobnicate", {"path": "README.md"}, expect=cli.no_such_tool),
            Use("read", {"path": 42}, expect="invalid-input"),
            Use("read", {}, expect="invalid-input"),
            Use("read", {"path": "../outside/secret"}, expect="out-of-scope"),
            Use("futon_hop", {"to": "edit", "exit_condition": "found-target", "reason": "write"}),
            Use("write", {"path": "../outside/secret", "content": "overwritten"},
                expect="out-of-scope"),
            Use("write", {"path": "../outside/new.txt", "content": "x"}, expect="out-of-scope"),
            Answer("could not do it"),
        ]).start()  # fmt: skip
        answer, log = await ask_in_irc(cli, daemon, model, private_home, max_seconds=120)
        store = daemon.store
        assert store is not None
        mine = list(reversed(store.query(EvidenceQuery(author=cli.agent, limit=200)).entries))
    assert model.problems == [], (model.results, log)
    assert answer.params == ["#futon", "joe: could not do it"], (model.results, log)
    assert len(model.results) == 7, model.results
    # Nothing written: the workspace as it was, the outside sentinel untouched.
    assert files(workspace) == before
    assert secret.read_text() == "sentinel\n"
    assert sorted(p.name for p in secret.parent.iterdir()) == ["secret"]
    # The unknown tool never reached futon; the others are refused with their codes.
    tools = [e["evidence/body"].get("tool") for e in mine]
    assert "frobnicate" not in tools and "mcp__futon__frobnicate" not in tools, tools
    refusals = [e["evidence/body"] for e in mine if e.get("evidence/claim-type") == "tension"]
    codes = [(r.get("tool"), r.get("code")) for r in refusals]
    assert codes == [
        ("read", "invalid-input"),
        ("read", "invalid-input"),
        ("read", "out-of-scope"),
        ("write", "out-of-scope"),
        ("write", "out-of-scope"),
    ], codes


@pytest.mark.parametrize("cli", [CLAUDE, CODEX], ids=["claude-code", "codex-cli"])
async def test_a_cli_that_exits_mid_turn_concludes_with_a_could_not_reply(
    cli: Cli, tmp_path: Path, private_home: Path
) -> None:
    require(cli)
    async with running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon:
        daemon.registry.routing["codex"] = "explore"
        model = await cli.fake([Use("read", {"path": "README.md"}, expect="hello"), Drop()]).start()
        store = daemon.store
        assert store is not None
        tension = EvidenceQuery(author=cli.agent, claim_type="tension")
        answer, log = await ask_in_irc(
            cli, daemon, model, private_home, max_seconds=120,
            settled=lambda: bool(store.query(tension).entries),
            extra_env={"CLAUDE_CODE_MAX_RETRIES": "0"},  # the stream breaks every time
        )  # fmt: skip
        reasons = [e["evidence/body"].get("reason") for e in store.query(tension).entries]
    assert model.problems == [] and model.dropping, (model.results, log)
    assert (answer.source or "").startswith(f"{cli.agent}!"), log
    prefix = f"joe: [{cli.agent}] could not get an answer from the model: "
    assert answer.params[0] == "#futon" and answer.params[1].startswith(prefix), answer.params
    assert "exited with" in answer.params[1], answer.params
    assert len(reasons) == 1 and "exited with" in str(reasons[0]), reasons
    await until(
        lambda: _processes_with(f"HOME={private_home}") == [],
        timeout=30,
        what="the CLI and its MCP server gone",
    )


def _processes_with(variable: str) -> list[str]:
    """The command lines of the processes whose environment holds ``variable``."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if variable.encode() in (proc / "environ").read_bytes().split(b"\0"):
                    found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return found


def test_the_presets_switch_the_clis_own_tools_off_and_name_a_missing_binary() -> None:
    from futon.agents.drivers import make_driver
    from futon.agents.drivers.claude_code import ClaudeCodeDriver
    from futon.agents.drivers.codex_cli import CodexCliDriver

    claude = make_driver(
        "claude-code",
        cli="/opt/claude",
        model="m",
        base_url="http://h:1/",
        env={"ANTHROPIC_API_KEY": "k"},
    )
    assert isinstance(claude, ClaudeCodeDriver) and claude.mcp
    argv = claude.argv
    assert argv[:2] == ["/opt/claude", "-p"] and argv[argv.index("--tools") + 1] == ""
    assert "--strict-mcp-config" in argv and argv[argv.index("--mcp-config") + 1] == "{mcp_config}"
    assert argv[argv.index("--allowedTools") + 1] == "mcp__futon" and argv[-2:] == ["--model", "m"]
    assert (
        claude.env["ANTHROPIC_BASE_URL"] == "http://h:1" and claude.env["ANTHROPIC_API_KEY"] == "k"
    )
    assert claude.env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"

    codex = make_driver("codex-cli", cli="/opt/codex", base_url="http://h:1/v1", env={})
    assert isinstance(codex, CodexCliDriver) and codex.mcp and codex.argv[-1] == "-"
    assert codex.argv[codex.argv.index("--sandbox") + 1] == "read-only"
    assert {"shell_tool", "unified_exec", "plugins"} <= {
        codex.argv[i + 1] for i, a in enumerate(codex.argv) if a == "--disable"
    }
    assert 'model_providers.futon-model.base_url="http://h:1/v1"' in codex.argv

    with pytest.raises(ValueError, match="--api-key-env NOPE"):
        make_driver("codex-cli", cli="/opt/codex", api_key_env="NOPE", env={})
    for name, binary in (("claude-code", "claude"), ("codex-cli", "codex")):
        if shutil.which(binary) is None:
            with pytest.raises(ValueError, match="--cli PATH"):
                make_driver(name, env={})
