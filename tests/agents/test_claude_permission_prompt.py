"""Does Claude Code consult ``--permission-prompt-tool`` for EVERY call of
its own tools that could read outside a peripheral's scope or write? (issue
18: ``--driver claude-code --native`` is offered only if it does.)

The pinned CLI (agents-cli, 2.1.328) runs against the fake Messages server
with a stdio MCP server whose ``approve`` tool logs each prompt
(permission_prompt_server.py). Findings, in docs/agents.md:

- with its default rules, a ``Read`` inside the working directory and a
  read-only ``Bash`` command there (``ls``, ``cat README.md``) run WITHOUT a
  prompt: the prompt is no wall for what a peripheral hides inside the
  workspace (futon's data dir or config, files outside a ``paths`` scope,
  a reflect session's unnamed files, anything in test but its test command);
- with ``permissions.ask`` rules for its tools (``--settings``), every
  ``Read``, ``Bash`` and ``Edit`` call reached the prompt, and the prompt's
  answer decided (an allowed ``Read`` ran, a denied ``touch`` did not).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.fake_models import Answer, FakeMessages, Use

CLAUDE = Path(__file__).resolve().parents[2] / "agents-cli" / "node_modules" / ".bin" / "claude"
SERVER = Path(__file__).with_name("permission_prompt_server.py")


@pytest.fixture
def folder() -> Iterator[Path]:
    """A workspace, a folder beside it, and the CLI's HOME (under /var/tmp,
    as for the other real-CLI tests)."""
    root = Path(tempfile.mkdtemp(prefix="futon-prompt-", dir="/var/tmp"))
    (root / "ws").mkdir()
    (root / "ws" / "README.md").write_text("inside-content\n")
    (root / "outside").mkdir()
    (root / "outside" / "secret.txt").write_text("outside-secret\n")
    (root / "home").mkdir()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def run_claude(
    root: Path, script: list[Any], extra: list[str], allow: str = ""
) -> tuple[list[str], list[tuple[str, dict[str, Any]]], FakeMessages]:
    """One ``claude -p`` turn; the calls' results and the prompts asked."""
    if not os.access(CLAUDE, os.X_OK):
        pytest.fail(
            f"{CLAUDE} is missing: `make test` installs the pinned CLIs (npm ci in agents-cli/)"
        )
    log = root / "prompts.jsonl"
    config = root / "mcp.json"
    server = {
        "command": sys.executable,
        "args": [str(SERVER)],
        "env": {"PROMPT_LOG": str(log), "PROMPT_ALLOW": allow},
    }
    config.write_text(json.dumps({"mcpServers": {"futon": server}}))
    model = await FakeMessages(script).start()
    argv = [str(CLAUDE), "-p", "--bare", "--mcp-config", str(config), "--strict-mcp-config",
            "--permission-prompt-tool", "mcp__futon__approve", "--no-session-persistence", *extra]  # fmt: skip
    nowhere = "http://127.0.0.1:9"  # anything but the fake server fails
    env = {"PATH": os.environ["PATH"], "HOME": str(root / "home"), "ANTHROPIC_BASE_URL": model.root,
           "ANTHROPIC_API_KEY": "fake", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
           "ENABLE_TOOL_SEARCH": "false", "HTTPS_PROXY": nowhere, "HTTP_PROXY": nowhere,
           "NO_PROXY": "127.0.0.1,localhost"}  # fmt: skip
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=root / "ws", env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(b"go"), 150)
    finally:
        await model.close()
    assert process.returncode == 0 and model.problems == [], (
        out[-2000:],
        err[-2000:],
        model.problems,
    )
    assert model.done, model.results
    prompts = (
        [json.loads(line)["arguments"] for line in log.read_text().splitlines()]
        if log.exists()
        else []
    )
    return model.results, [(p["tool_name"], p["input"]) for p in prompts], model


async def test_with_default_rules_reads_inside_the_workspace_never_reach_the_prompt(
    folder: Path,
) -> None:
    ws, secret = folder / "ws", folder / "outside" / "secret.txt"
    script = [
        Use("Read", {"file_path": str(ws / "README.md")}),
        Use("Bash", {"command": "ls"}),
        Use("Bash", {"command": "cat README.md"}),
        Use("Read", {"file_path": str(secret)}),
        Use("Bash", {"command": "touch made-by-bash"}),
        Answer("done"),
    ]
    results, prompts, model = await run_claude(folder, script, [])
    assert model.offered[0][:3] == ["Bash", "Edit", "Read"]  # --bare: its own tools
    read, ls, cat, outside, touch = results
    # Ran with no prompt at all: the file inside, the listing, the cat.
    assert "inside-content" in read and "README.md" in ls and "inside-content" in cat
    assert [name for name, _ in prompts] == ["Read", "Bash"], prompts
    assert (
        prompts[0][1]["file_path"] == str(secret)
        and prompts[1][1]["command"] == "touch made-by-bash"
    )
    assert "denied by the prompt tool" in outside and "denied by the prompt tool" in touch
    assert not (ws / "made-by-bash").exists()


async def test_with_ask_rules_every_call_of_its_tools_reaches_the_prompt(folder: Path) -> None:
    ws = folder / "ws"
    script = [
        Use("Read", {"file_path": str(ws / "README.md")}),
        Use("Bash", {"command": "ls"}),
        Use("Bash", {"command": "cat README.md"}),
        Use(
            "Edit",
            {"file_path": str(ws / "README.md"), "old_string": "inside", "new_string": "changed"},
        ),
        Use("Bash", {"command": "touch made-by-bash"}),
        Answer("done"),
    ]
    ask = {"permissions": {"ask": ["Bash", "Read", "Edit", "Write"]}}
    extra = ["--tools", "Bash,Edit,Read", "--settings", json.dumps(ask)]
    results, prompts, _ = await run_claude(folder, script, extra, allow="Read")
    assert [name for name, _ in prompts] == ["Read", "Bash", "Bash", "Edit", "Bash"], prompts
    read, ls, cat, edit, touch = results
    assert "inside-content" in read  # allowed by the prompt: it ran
    assert all("denied by the prompt tool" in r for r in (ls, cat, edit, touch)), results
    assert (ws / "README.md").read_text() == "inside-content\n"
    assert not (ws / "made-by-bash").exists()
