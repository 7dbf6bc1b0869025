"""``futon evidence query|tail|chain|verify`` on real shards, with and
without a daemon holding the store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from futon.cli import main
from futon.evidence import JsonlStore
from futon.evidence.jsonl import list_shards
from tests.support import futon_env, make_config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_config(tmp_path / "cfg")


def evidence_dir(config: Path) -> Path:
    return config.parent / "var" / "evidence"


def fill(config: Path) -> None:
    with JsonlStore(evidence_dir(config)) as store:
        store.append_many_sync(
            [
                {"id": "e-root", "subject": {"ref/type": "thread", "ref/id": "irc/#futon"}, "type": "forum-post",
                 "claim-type": "question", "author": "joe", "body": {"text": "[bold]who broke[/bold] the build?"}},
                {"id": "e-a", "subject": {"ref/type": "session", "ref/id": "s1"}, "type": "coordination",
                 "claim-type": "step", "author": "claude-1", "session-id": "s1", "in-reply-to": "e-root",
                 "tags": ["peripheral", "explore"]},
                {"id": "e-b", "subject": {"ref/type": "session", "ref/id": "s1"}, "type": "coordination",
                 "claim-type": "conclusion", "author": "claude-1", "session-id": "s1", "in-reply-to": "e-a",
                 "tags": ["peripheral"]},
                {"id": "e-eph", "subject": {"ref/type": "session", "ref/id": "s1"}, "type": "coordination",
                 "claim-type": "step", "author": "claude-1", "session-id": "s1", "ephemeral?": True},
            ]
        )  # fmt: skip


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_query_filters_newest_first_and_hides_ephemeral(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(config)
    assert main(["evidence", "query", "--config", str(config), "--session-id", "s1", "--json"]) == 0
    assert [e["evidence/id"] for e in json_lines(capsys.readouterr().out)] == ["e-b", "e-a"]
    assert main(["evidence", "query", "--config", str(config), "--tag", "peripheral,explore", "--json"]) == 0
    assert [e["evidence/id"] for e in json_lines(capsys.readouterr().out)] == ["e-a"]
    assert main(["evidence", "query", "--config", str(config), "--include-ephemeral", "--json"]) == 0
    assert len(json_lines(capsys.readouterr().out)) == 4


def test_query_pages_with_a_cursor(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(config)
    assert main(["evidence", "query", "--config", str(config), "--limit", "2", "--json"]) == 0
    captured = capsys.readouterr()
    assert [e["evidence/id"] for e in json_lines(captured.out)] == ["e-b", "e-a"]
    cursor = captured.err.split("--cursor ")[1].strip()
    assert main(["evidence", "query", "--config", str(config), "--limit", "2", "--cursor", cursor, "--json"]) == 0
    assert [e["evidence/id"] for e in json_lines(capsys.readouterr().out)] == ["e-root"]


def test_table_output_prints_entry_text_literally(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(config)
    assert main(["evidence", "query", "--config", str(config), "--author", "joe", "--wide"]) == 0
    out = capsys.readouterr().out
    assert "[bold]who broke" in out and "e-root" in out
    assert main(["evidence", "query", "--config", str(config), "--author", "joe"]) == 0
    assert "[bold]who broke" in capsys.readouterr().out  # one line each, just as literal


def test_bad_filter_is_a_usage_error(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(config)
    assert main(["evidence", "query", "--config", str(config), "--type", "gossip"]) == 2
    assert "unknown type 'gossip'" in capsys.readouterr().err
    assert main(["evidence", "query", "--config", str(config), "--since", "last tuesday"]) == 2


def test_query_on_an_empty_data_dir_says_so(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evidence", "query", "--config", str(config)]) == 0
    assert "no evidence yet" in capsys.readouterr().err


def test_tail_shows_the_newest_in_time_order(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(config)
    assert main(["evidence", "tail", "--config", str(config), "-n", "2", "--json"]) == 0
    assert [e["evidence/id"] for e in json_lines(capsys.readouterr().out)] == ["e-a", "e-b"]


def test_chain_prints_root_first(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(config)
    assert main(["evidence", "chain", "--config", str(config), "e-b", "--json"]) == 0
    assert [e["evidence/id"] for e in json_lines(capsys.readouterr().out)] == ["e-root", "e-a", "e-b"]
    assert main(["evidence", "chain", "--config", str(config), "e-none"]) == 1
    assert "no evidence entry 'e-none'" in capsys.readouterr().err


def test_verify_is_clean_then_names_the_corrupt_line(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(config)
    assert main(["evidence", "verify", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("ok: 4 entries in 1 shard(s)")
    shard = list_shards(evidence_dir(config))[0].path
    lines = shard.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"claude-1"', '"mallory"')
    shard.write_text("".join(lines))
    assert main(["evidence", "verify", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert f"{shard.name}:3: hash does not chain" in out
    assert "1 problem(s)" in out


def test_reading_beside_a_running_writer_uses_its_index(config: Path) -> None:
    """The writer holds the store's lock; the CLI (a separate process) opens
    read-only and sees what the writer has committed."""
    fill(config)
    with JsonlStore(evidence_dir(config)) as writer:
        writer.append_sync({"id": "e-live", "subject": {"ref/type": "agent", "ref/id": "codex-1"},
                            "type": "presence-event", "claim-type": "observation", "author": "codex-1"})  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "futon", "evidence", "query", "--config", str(config), "--author", "codex-1", "--json"],
            capture_output=True, text=True, env=futon_env(), timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [e["evidence/id"] for e in json_lines(done.stdout)] == ["e-live"]


def test_tail_follow_prints_entries_as_they_are_appended(config: Path) -> None:
    fill(config)
    with JsonlStore(evidence_dir(config)) as writer:  # the initial page: one line to wait for
        writer.append_sync({"id": "e-old", "subject": {"ref/type": "agent", "ref/id": "codex-1"},
                            "type": "presence-event", "claim-type": "observation",
                            "author": "codex-1"})  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "futon", "evidence", "tail", "-f", "-n", "1", "--json",
         "--config", str(config), "--author", "codex-1", "--interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=futon_env(),
    )  # fmt: skip
    try:
        # The initial page printed means its last seq is taken: whatever is
        # appended from now on is "new" to the follow, however soon.
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["evidence/id"] == "e-old"
        with JsonlStore(evidence_dir(config)) as writer:
            for n in range(3):
                writer.append_sync({"id": f"e-new-{n}", "subject": {"ref/type": "agent", "ref/id": "codex-1"},
                                    "type": "presence-event", "claim-type": "observation",
                                    "author": "codex-1" if n != 1 else "someone-else"})  # fmt: skip
        seen: list[str] = []
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.strip():
                seen.append(json.loads(line)["evidence/id"])
        assert seen == ["e-new-0", "e-new-2"]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
