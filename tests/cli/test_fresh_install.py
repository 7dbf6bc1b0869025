"""A first day from a wheel: build it, install it into a new virtualenv (no
system site-packages, no checkout on the path), ``futon init`` a fresh
folder, serve it, and start every peripheral over WebSocket with one of
its tools answering."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

# One allowed call per shipped peripheral (its first tool, with arguments
# its scope admits); chat has no tools: starting and stopping it is the test.
FIRST_TOOL: dict[str, tuple[str, list[Any]] | None] = {
    "explore": ("read", ["src/app.py"]),
    "edit": ("read", ["src/app.py"]),
    "test": ("read", ["src/app.py"]),
    "deploy": ("bash-git", ["git status"]),
    "reflect": ("musn-log", []),
    "proof": ("read", ["src/app.py"]),
    "discipline": ("psr-search", ["scout"]),
    "chat": None,
    "mission": ("read", ["src/app.py"]),
    "alfworld": ("alfworld-action", ["look"]),
    "mission-control": ("read", ["src/app.py"]),
}


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FUTON_", "PYTHON", "VIRTUAL_ENV"))}
    env.pop("JOURNAL_STREAM", None)
    return env


def check(argv: list[str | Path], cwd: Path | None = None, timeout: float = 600) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd,
                          env=clean_env(), timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a new venv with the futon wheel installed."""
    root = tmp_path_factory.mktemp("fresh")
    wheels = root / "wheels"
    check([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, REPO])
    (wheel,) = wheels.glob("futon-*.whl")
    check(["python3", "-m", "venv", root / "venv"])
    bin_dir = root / "venv" / "bin"
    check([bin_dir / "pip", "install", "--quiet", "--disable-pip-version-check", wheel], timeout=900)
    return bin_dir


def futon(bin_dir: Path, *args: str | Path, cwd: Path) -> str:
    return check([bin_dir / "futon", *args], cwd=cwd, timeout=120)


class Agent:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, http: aiohttp.ClientSession, base: str) -> None:
        self.ws = ws
        self.http = http
        self.base = base  # the daemon's HTTP API (loopback, no admin token: the caller is the admin)
        self.ids = itertools.count(1)

    async def ask(self, frame: dict[str, Any]) -> dict[str, Any]:
        req_id = f"r{next(self.ids)}"
        await self.ws.send_str(json.dumps({**frame, "req_id": req_id}))
        while True:  # pushes (messages, notices) may come first
            reply = json.loads((await self.ws.receive(timeout=60)).data)
            if reply.get("req_id") == req_id:
                return reply
            if reply.get("type") == "approval_pending":  # deploy waits for a human: the admin approves
                url = f"{self.base}/api/alpha/approvals/{reply['approval_id']}"
                async with self.http.post(url, json={"decision": "approve"}) as decided:
                    assert decided.status == 200, await decided.text()


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        if path.exists():
            try:
                return json.loads(path.read_text())
            except ValueError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear")


async def test_a_wheel_installs_inits_serves_and_every_peripheral_answers(
    installed: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    out = futon(installed, "init", "cfg", cwd=home)
    assert "cfg/futon.yaml" in out
    config = home / "cfg" / "futon.yaml"
    workspace = home / "ws"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "app.py").write_text("def add(a, b):\n    return a + b\n")
    check(["git", "init", "-q", workspace])
    for key, value in (("http.port", "0"), ("irc.server.port", "0"), ("data_dir", str(home / "var")),
                       ("workspace", str(workspace))):  # fmt: skip
        futon(installed, "config", "set", key, value, "--config", config, cwd=home)

    procs: list[subprocess.Popen[str]] = []
    try:
        game = subprocess.Popen([installed / "futon", "alfworld", "serve", "--port", "0", "--seed", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())  # fmt: skip
        procs.append(game)
        assert game.stdout is not None
        banner = game.stdout.readline()
        url = re.search(r"http://\S+", banner)
        assert url, (banner, game.stderr.read() if game.poll() is not None and game.stderr else "")
        futon(installed, "config", "set", "peripherals.alfworld.config.alfworld_server", url.group(0).rstrip("/"),
              "--config", config, cwd=home)  # fmt: skip
        futon(installed, "config", "validate", "--config", config, cwd=home)

        daemon = subprocess.Popen([installed / "futon", "serve", "--config", config], cwd=home,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())  # fmt: skip
        procs.append(daemon)
        ports = wait_for(home / "var" / "ports.json", daemon)
        answered: dict[str, Any] = {}
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(f"ws://127.0.0.1:{ports['http']}/agency/ws", max_msg_size=0) as ws:  # fmt: skip
            agent = Agent(ws, http, f"http://127.0.0.1:{ports['http']}")
            assert (await agent.ask({"type": "ready", "agent_id": "claude-1"}))["type"] == "ready_ack"
            for peripheral, call in FIRST_TOOL.items():
                started = await agent.ask({"type": "peripheral_start", "peripheral_id": peripheral})
                assert started["type"] == "peripheral_started", (peripheral, started)
                if call is not None:
                    result = await agent.ask({"type": "tool_action", "tool": call[0], "args": call[1]})
                    assert result["type"] == "tool_result" and result["ok"] is True, (peripheral, result)
                    answered[peripheral] = result["result"]
                stopped = await agent.ask({"type": "peripheral_stop", "reason": "done"})
                assert stopped["type"] == "peripheral_stopped", (peripheral, stopped)
        assert "a + b" in answered["explore"]
        assert answered["discipline"]["candidates"], answered["discipline"]  # the library is there
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
    assert daemon.returncode == 0
