"""Tokens from the command line: ``futon agent token ID --rotate``,
``futon admin-token``, the exposure refusal that names the commands that
fix it, and ``futon agent add`` telling a running daemon."""

from __future__ import annotations

import asyncio
import hashlib
import shlex
from pathlib import Path

import aiohttp
import pytest

from futon.cli import main
from futon.config.loader import load_config
from futon.daemon.exposure import check_exposure
from futon.protocol.errors import ConfigError
from tests.support import make_config
from tests.transports.kit import connected, running_daemon


@pytest.fixture(autouse=True)
def no_admin_token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FUTON_ADMIN_TOKEN", raising=False)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_agent_token_rotate_prints_once_and_stores_the_digest_keeping_comments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config(tmp_path / "cfg")
    agents = tmp_path / "cfg" / "agents.yaml"
    comments = [line for line in agents.read_text().splitlines() if line.lstrip().startswith("#")]
    code, out, _ = run(capsys, "agent", "token", "codex-1", "--config", str(config))
    assert code == 0 and "has no token" in out
    code, out, err = run(capsys, "agent", "token", "codex-1", "--rotate", "--config", str(config))
    assert code == 0, err
    token = out.strip()
    assert len(out.splitlines()) == 1 and len(token) >= 40  # the token alone on stdout
    assert "shown once" in err
    assert token not in agents.read_text()
    loaded = load_config(config)
    spec = next(a for a in loaded.agents.agents if a.id == "codex-1")
    assert spec.token_sha256 == sha(token)
    assert all(a.token_sha256 is None for a in loaded.agents.agents if a.id != "codex-1")
    assert [line for line in agents.read_text().splitlines() if line.lstrip().startswith("#")] == comments
    code, out, _ = run(capsys, "agent", "token", "codex-1", "--rotate", "--config", str(config))
    assert out.strip() != token  # a new one each time
    code, _, err = run(capsys, "agent", "token", "nobody", "--rotate", "--config", str(config))
    assert code == 2 and "no agent 'nobody'" in err and "Traceback" not in err


def test_admin_token_is_made_once_then_needs_rotate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(tmp_path / "cfg")
    before = config.read_text()
    code, out, err = run(capsys, "admin-token", "--config", str(config))
    assert code == 0, err
    token = out.strip()
    assert load_config(config).daemon.http.admin_token_sha256 == sha(token)
    assert "# sha256 hex of a token for admin routes" in config.read_text()
    assert sum(1 for a, b in zip(before.splitlines(), config.read_text().splitlines(), strict=True) if a != b) == 1
    code, out, err = run(capsys, "admin-token", "--config", str(config))
    assert code == 2 and out == "" and "--rotate" in err
    assert load_config(config).daemon.http.admin_token_sha256 == sha(token)
    code, out, err = run(capsys, "admin-token", "--rotate", "--config", str(config))
    assert code == 0 and load_config(config).daemon.http.admin_token_sha256 == sha(out.strip())


def test_the_exposure_refusal_names_the_commands_that_fix_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config(tmp_path / "cfg", http__host="0.0.0.0")
    with pytest.raises(ConfigError) as refused:
        check_exposure(load_config(config))
    commands = refused.value.problems
    assert f"futon admin-token --config {config}" in commands
    for agent in ("claude-1", "codex-1", "tickle-1"):
        assert f"futon agent token {agent} --rotate --config {config}" in commands
    assert f"futon config set irc_access.default deny --config {config}" in commands
    for command in commands:  # running them, exactly as printed, closes the daemon
        argv = shlex.split(command)
        assert argv[0] == "futon"
        assert run(capsys, *argv[1:])[0] == 0, command
    check_exposure(load_config(config))


async def test_agent_add_reloads_a_running_daemon(
    tmp_path: Path, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_daemon(tmp_path) as daemon:
        config = str(daemon.config.path)
        code = await asyncio.to_thread(main, ["agent", "add", "newbie-1", "--type", "mock", "--config", config])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "reloaded its configuration" in err
        async with connected(http, daemon, "newbie-1", token=out.strip()):
            pass  # the daemon knows the agent and its token without a restart


async def test_agent_add_says_a_reload_is_needed_without_the_admin_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_daemon(tmp_path, http__admin_token_sha256=sha("s3cret")) as daemon:
        config = str(daemon.config.path)
        code = await asyncio.to_thread(main, ["agent", "add", "late-1", "--type", "mock", "--config", config])
        err = capsys.readouterr().err
        assert code == 0
        assert "needs a reload" in err and "FUTON_ADMIN_TOKEN" in err
        assert daemon.registry.find("late-1") is None  # not told: the file alone has it
        monkeypatch.setenv("FUTON_ADMIN_TOKEN", "s3cret")
        code = await asyncio.to_thread(main, ["agent", "add", "late-2", "--type", "mock", "--config", config])
        assert code == 0 and "reloaded its configuration" in capsys.readouterr().err
        assert daemon.registry.find("late-1") is not None  # the reload read both
        assert daemon.registry.find("late-2") is not None


def test_agent_add_without_a_daemon_says_it_will_be_read_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config(tmp_path / "cfg")  # port 0 and no ports.json: nothing runs
    code, out, err = run(capsys, "agent", "add", "solo-1", "--type", "mock", "--config", str(config))
    assert code == 0 and out.strip()
    assert "no daemon is running" in err
