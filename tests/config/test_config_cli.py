"""`futon config validate|get|set` and `futon agent add`, in-process and as
real subprocesses: exit codes, what goes to stdout and stderr, no traceback."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tests.config.support import SHIPPED, run_futon

POSITION = re.compile(r"^\S+\.yaml:\d+:\d+: ", re.MULTILINE)


def test_validate_shipped_config_is_ok(cli) -> None:
    run = cli("config", "validate", "--config", str(SHIPPED / "futon.yaml"))
    assert run.code == 0
    assert run.out.startswith("ok: ")
    assert "futon.yaml" in run.out and "peripherals.yaml" in run.out and "agents.yaml" in run.out
    assert run.err == ""


def test_validate_invalid_config_prints_problem_lines_and_exits_2(cli, write_config) -> None:
    path = write_config(futon="http:\n  port: 70000\n")
    run = cli("config", "validate", "--config", str(path))
    assert run.code == 2
    assert run.out == ""
    assert f"{path}:2:9: http.port: expected a number <= 65535 (got 70000)\n" in run.err


def test_get_prints_scalars_plain_and_collections_as_yaml(cli, shipped: Path) -> None:
    run = cli("config", "get", "http.port", "--config", str(shipped))
    assert (run.code, run.out) == (0, "7070\n")
    run = cli("config", "get", "workspace", "--config", str(shipped))
    assert run.out == "null\n"
    run = cli("config", "get", "peripherals.edit.scope", "--config", str(shipped))
    assert run.out == "paths:\n  - src/\n  - docs/\n  - scripts/\n"


def test_get_unknown_key_exits_2(cli, shipped: Path) -> None:
    run = cli("config", "get", "http.prot", "--config", str(shipped))
    assert run.code == 2
    assert "http.prot" in run.err and "Traceback" not in run.err


def test_set_prints_old_and_new(cli, shipped: Path) -> None:
    run = cli("config", "set", "http.port", "7071", "--config", str(shipped))
    assert run.code == 0
    assert run.out == f"{shipped}: http.port: 7070 -> 7071\n"
    run = cli(
        "config", "set", "agents.claude-1.channels", "['#futon', '#dev']", "--config", str(shipped)
    )
    assert run.out.endswith(
        "agents.claude-1.channels: ['#futon'] -> ['#futon', '#dev']\n".replace("'", '"')
    )


def test_set_invalid_exits_2_and_leaves_file(cli, shipped: Path) -> None:
    before = shipped.read_bytes()
    run = cli("config", "set", "http.port", "abc", "--config", str(shipped))
    assert run.code == 2
    assert "refusing to set http.port" in run.err
    assert POSITION.search(run.err.replace("  ", ""))
    assert shipped.read_bytes() == before


def test_agent_add_prints_token_once_and_stores_its_hash(cli, shipped: Path) -> None:
    agents = shipped.parent / "agents.yaml"
    comments = [line for line in agents.read_text().splitlines() if line.lstrip().startswith("#")]
    run = cli(
        "agent",
        "add",
        "helper-1",
        "--type",
        "mock",
        "--channels",
        "#futon,#ops",
        "--config",
        str(shipped),
    )
    assert run.code == 0
    token = run.out.strip()
    assert run.out == token + "\n" and len(token) >= 40
    text = agents.read_text()
    assert token not in text
    assert f"token_sha256: {hashlib.sha256(token.encode()).hexdigest()}" in text
    assert 'channels: ["#futon", "#ops"]' in text
    assert [line for line in text.splitlines() if line.lstrip().startswith("#")] == comments
    assert "helper-1" in run.err  # the human explanation goes to stderr


def test_agent_add_duplicate_exits_2(cli, shipped: Path) -> None:
    run = cli("agent", "add", "claude-1", "--type", "claude", "--config", str(shipped))
    assert run.code == 2
    assert "already exists" in run.err
    assert run.out == ""


# -------------------------------------------------------------- subprocesses


def test_subprocess_validate_broken_config_exits_2_without_traceback(write_config) -> None:
    path = write_config(
        futon="http:\n  port: abc\n",
        agents="agents:\n  - id: a-1\n    type: claude\n    rellay: all\nrouting: {default: nowhere}\n",
    )
    run = run_futon("config", "validate", "--config", "futon.yaml", cwd=path.parent)
    assert run.code == 2
    assert "Traceback" not in run.err
    lines = run.err.splitlines()
    assert "futon.yaml:2:9: http.port: expected an integer (got 'abc')" in lines
    assert any(line.startswith("agents.yaml:4:5: agents[0].rellay: unknown key") for line in lines)
    assert any(
        line.startswith("agents.yaml:5:20: routing.default: expected a peripheral")
        for line in lines
    )


def test_subprocess_malformed_yaml_exits_2_with_position(write_config) -> None:
    path = write_config(peripherals="peripherals:\n  explore: {tools: [read}\n")
    run = run_futon("config", "validate", "--config", str(path))
    assert run.code == 2
    assert "Traceback" not in run.err
    assert re.search(r"peripherals\.yaml:2:\d+: invalid YAML", run.err)


def test_subprocess_get_unknown_key_exits_2(shipped: Path) -> None:
    run = run_futon("config", "get", "irc.server.nope", "--config", str(shipped))
    assert run.code == 2
    assert "irc.server.nope" in run.err and "Traceback" not in run.err


def test_subprocess_missing_config_exits_2(tmp_path: Path) -> None:
    run = run_futon("config", "validate", "--config", str(tmp_path / "none.yaml"))
    assert run.code == 2
    assert "not found" in run.err and "Traceback" not in run.err
