"""``futon status`` against a daemon on real sockets, and without one."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import aiohttp
import pytest

from futon.cli import main
from tests.support import make_config, refused_port
from tests.transports.kit import connected, running_daemon


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps table cells at 80 columns otherwise
    monkeypatch.delenv("FUTON_ADMIN_TOKEN", raising=False)


async def test_status_shows_agents_sessions_and_transports_from_the_config_address(
    tmp_path: Path, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_daemon(tmp_path) as daemon, connected(http, daemon, "claude-1") as agent:
        started = await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"})
        config = str(daemon.config.path)  # port 0: the address comes from ports.json
        port = daemon.ports["http"]
        assert await asyncio.to_thread(main, ["status", "--config", config]) == 0
        out = capsys.readouterr().out
        assert await asyncio.to_thread(main, ["status", "--config", config, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
    assert "3 agents (1 connected), 1 active sessions" in out
    assert "connections ws 1 irc 0" in out
    claude = next(line for line in out.splitlines() if "claude-1" in line)
    assert "claude" in claude and "yes" in claude and "websocket" in claude and "explore" in claude
    assert "codex-1" in out and "never" in out
    assert started["session_id"] in out and "active" in out
    assert "Transports" in out and f"port {port}" in out
    assert (
        data["health"]["status"] == "ok"
        and data["sessions"][0]["session_id"] == started["session_id"]
    )


async def test_status_needs_the_admin_token_when_one_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = hashlib.sha256(b"s3cret").hexdigest()
    async with running_daemon(tmp_path, http__admin_token_sha256=digest) as daemon:
        url = f"http://127.0.0.1:{daemon.ports['http']}"
        assert await asyncio.to_thread(main, ["status", "--url", url]) == 1
        err = capsys.readouterr().err
        assert "needs its admin token" in err and "FUTON_ADMIN_TOKEN" in err
        monkeypatch.setenv("FUTON_ADMIN_TOKEN", "s3cret")
        assert await asyncio.to_thread(main, ["status", "--url", url]) == 0
        assert "claude-1" in capsys.readouterr().out
        assert await asyncio.to_thread(main, ["status", "--url", url, "--token", "wrong"]) == 1
        assert "the token was refused" in capsys.readouterr().err


def test_a_daemon_that_is_not_running_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with refused_port() as port:  # held while status knocks: nothing listens there
        assert main(["status", "--url", f"http://127.0.0.1:{port}"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        captured.err.count("\n") == 1
        and f"the daemon is not running at http://127.0.0.1:{port}" in captured.err
    )

    config = make_config(tmp_path / "cfg")  # port 0 and no ports.json
    assert main(["status", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the daemon is not running" in err and "ports.json" in err
