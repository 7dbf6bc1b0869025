"""Terminal output fits 80 columns: evidence lines, ``tail -f`` with steady
columns, ``futon status`` with ids whole, and every ``--help``."""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from futon.cli import build_parser, main
from futon.evidence import JsonlStore
from tests.support import futon_env, make_config
from tests.transports.kit import connected, running_daemon

WIDTH = 80


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.delenv("FUTON_ADMIN_TOKEN", raising=False)


def assert_fits(text: str) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > WIDTH]
    assert not too_wide, too_wide


SESSION = "sess-5f0c7a35-2f5e-4a70-9a7b-2a1d6f0f6e11"
ENTRIES = [
    {"subject": {"ref/type": "thread", "ref/id": "irc/#futon"}, "type": "forum-post", "claim-type": "question",
     "author": "joe", "body": {"text": "who broke the build? " * 10 + "\x1b[2J[bold]end[/bold]"}},
    {"subject": {"ref/type": "session", "ref/id": SESSION}, "type": "coordination", "claim-type": "step",
     "author": "claude-1", "session-id": SESSION,
     "body": {"tool": "read", "args": ["src/app.py"], "ok": True, "result": {"content": "x" * 500}}},
    {"subject": {"ref/type": "session", "ref/id": SESSION}, "type": "coordination", "claim-type": "tension",
     "author": "claude-1", "session-id": SESSION,
     "body": {"tool": "edit", "args": ["/etc/passwd", "a", "b"], "code": "out-of-scope", "message": "no"}},
    {"subject": {"ref/type": "session", "ref/id": SESSION}, "type": "coordination", "claim-type": "step",
     "author": "claude-1", "session-id": SESSION, "body": {"tool": "bash", "args": ["make"], "ok": False}},
]  # fmt: skip


def fill(folder: Path) -> Path:
    config = make_config(folder)
    with JsonlStore(folder / "var" / "evidence") as store:
        store.append_many_sync(ENTRIES)
    return config


def test_query_prints_one_line_per_entry_within_80_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = fill(tmp_path / "cfg")
    assert main(["evidence", "query", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert_fits(out)
    lines = out.splitlines()
    assert lines[0].split() == ["time", "author", "type/claim", "subject", "summary"]
    assert re.fullmatch(r"-- \d{4}-\d\d-\d\d \(UTC\) --", lines[1])
    body = lines[2:]
    assert len(body) == len(ENTRIES)  # one line each, newest first
    assert "bash failed: make" in body[0]
    assert "edit refused out-of-scope: /e" in body[1]
    assert "read ok: src/app.py" in body[2]
    assert "who broke the build?" in body[3] and body[3].endswith("…")
    assert "\x1b" not in out


def test_wide_and_json_keep_the_full_forms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = fill(tmp_path / "cfg")
    assert main(["evidence", "query", "--config", str(config), "--wide"]) == 0
    assert "evidence/" not in capsys.readouterr().out  # a table, not JSON
    assert main(["evidence", "query", "--config", str(config), "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(ENTRIES)


def test_tail_follow_keeps_its_columns(tmp_path: Path) -> None:
    config = fill(tmp_path / "cfg")
    env = {**futon_env(), "COLUMNS": str(WIDTH)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "futon", "evidence", "tail", "-f", "-n", "2", "--config", str(config),
         "--interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = [proc.stdout.readline() for _ in range(4)]  # header, day, two entries
        with JsonlStore(tmp_path / "cfg" / "var" / "evidence") as writer:
            writer.append_sync({"subject": {"ref/type": "agent", "ref/id": "a-much-longer-agent-id-1"},
                                "type": "presence-event", "claim-type": "observation",
                                "author": "a-much-longer-agent-id-1", "body": {"text": "joined"}})  # fmt: skip
        deadline = time.monotonic() + 30
        followed = ""
        while not followed.strip() and time.monotonic() < deadline:
            followed = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    lines = [line.rstrip("\n") for line in [*first[2:], followed]]
    assert_fits("\n".join(lines))
    assert "joined" in lines[-1]
    # The summary column starts at the same place in every line.
    starts = {line.index(word) for line, word in zip(lines, ["edit", "bash", "joined"], strict=True)}
    assert len(starts) == 1, lines


async def test_status_fits_80_columns_and_never_cuts_ids(
    tmp_path: Path, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_daemon(tmp_path) as daemon, connected(http, daemon, "claude-1") as agent:
        started = await agent.ask({"type": "peripheral_start", "peripheral_id": "mission-control"})
        assert await asyncio.to_thread(main, ["status", "--config", str(daemon.config.path)]) == 0
        out = capsys.readouterr().out
    assert_fits(out)
    assert re.search(rf"(^|\s){re.escape(started['session_id'])}\s+claude-1(\s|$)", out, re.MULTILINE)
    for agent_id in ("claude-1", "codex-1", "tickle-1"):
        assert re.search(rf"^{agent_id}\s", out, re.MULTILINE), agent_id


def parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    found = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        found.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child_name, child in action.choices.items():
                    walk(child, f"{name} {child_name}")

    walk(build_parser(), "futon")
    return found


def is_sentence(text: str | None) -> bool:
    return bool(text) and text[0].isupper() and text.rstrip().endswith(".") and "`" not in text  # type: ignore[index]


def test_every_help_text_is_sentences_without_markup() -> None:
    bad = []
    for name, parser in parsers():
        if not is_sentence(parser.description):
            bad.append((name, "description", parser.description))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                bad += [(name, c.dest, c.help) for c in action._choices_actions if not is_sentence(c.help)]
            elif action.help not in (None, argparse.SUPPRESS) and not is_sentence(action.help):
                bad.append((name, action.dest, action.help))
            if action.help and re.search(r"\[/?[a-z]+\]|\*\*", action.help):
                bad.append((name, action.dest, action.help))
    assert not bad, bad


@pytest.mark.parametrize("name", [name for name, _ in parsers()])
def test_every_help_fits_80_columns(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main([*name.split()[1:], "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ")
    assert_fits(out)
