"""`make demo`: a human's request in IRC becomes explore → hop → edit → hop →
test, done by a scripted Claude inside futon's envelopes, with no API key.

Starts the daemon (embedded IRC on a free port, a small project with a
failing test as the workspace), a scripted Claude and a scripted Codex
(`futon agent run --driver script`), and a tiny IRC client for the human;
prints the conversation and then the evidence thread of Claude's session.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import futon_env, make_config, wait_for_ports  # noqa: E402

PROJECT = {
    "src/calc.py": "def add(a, b):\n    return a - b\n",
    "tests/test_calc.py": (
        "import pathlib, sys\n"
        "sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / 'src'))\n"
        "from calc import add\n\n\n"
        "def test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_add_zero():\n    assert add(0, 0) == 0\n"
    ),
}


def say(text: str) -> None:
    print(text, flush=True)


async def human(port: int, lines: list[str], wait_for: dict[str, int]) -> list[str]:
    """Joe joins #futon, says his lines, and waits for the agents' answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    def send(line: str) -> None:
        writer.write((line + "\r\n").encode())

    send("NICK joe")
    send("USER joe 0 * :Joe Human")
    send("JOIN #futon")
    seen: list[str] = []
    pending = dict(wait_for)
    sent = False
    deadline = asyncio.get_running_loop().time() + 120
    while pending and asyncio.get_running_loop().time() < deadline:
        raw = await asyncio.wait_for(reader.readline(), timeout=120)
        line = raw.decode(errors="replace").rstrip("\r\n")
        if line.startswith("PING"):
            send("PONG" + line[4:])
            continue
        parts = line.split(" ", 3)
        if len(parts) >= 2 and parts[1] == "366" and not sent:  # end of NAMES: we are in
            for text in lines:
                say(f"<joe> {text}")
                send(f"PRIVMSG #futon :{text}")
                await asyncio.sleep(0.2)
            sent = True
        if len(parts) == 4 and parts[1] == "PRIVMSG" and parts[2] == "#futon":
            nick = parts[0][1:].split("!", 1)[0]
            text = parts[3][1:]
            say(f"<{nick}> {text}")
            seen.append(f"{nick}: {text}")
            if nick in pending:
                pending[nick] -= 1
                if pending[nick] <= 0:
                    del pending[nick]
    send("QUIT :thanks")
    writer.close()
    return seen


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def environment() -> dict[str, str]:
    """The venv first on PATH, so `python3 -m pytest` in the scripted test
    step is the venv's Python, which has pytest."""
    env = futon_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def widen_test_sandbox(peripherals: Path) -> None:
    """Tool processes run in a sandbox that sees only the system folders and
    the workspace; the scripted test step needs this Python (and its
    pytest), which may live elsewhere: show its folders read-only."""
    from ruamel.yaml import YAML

    yaml = YAML()
    doc = yaml.load(peripherals)
    doc["peripherals"]["test"]["sandbox"] = {"read_only": sorted({sys.prefix, sys.base_prefix})}
    yaml.dump(doc, peripherals)


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="futon-demo-"))
    procs: list[subprocess.Popen[str]] = []
    try:
        workspace = root / "project"
        for name, text in PROJECT.items():
            (workspace / name).parent.mkdir(parents=True, exist_ok=True)
            (workspace / name).write_text(text)
        config = make_config(root / "cfg", workspace=str(workspace), irc__server__enabled=True, irc__server__port=0)
        widen_test_sandbox(config.parent / "peripherals.yaml")
        futon = [sys.executable, "-m", "futon"]
        daemon = subprocess.Popen([*futon, "serve", "--config", str(config)], env=environment(), text=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        procs.append(daemon)
        ports = wait_for_ports(root / "cfg" / "var", daemon)
        base = f"http://127.0.0.1:{ports['http']}"
        say(f"daemon up: http {ports['http']}, irc {ports['irc']} — workspace {workspace}")
        for agent, script in (("claude-1", "claude.yaml"), ("codex-1", "codex.yaml")):
            procs.append(subprocess.Popen(
                [*futon, "agent", "run", agent, "--driver", "script", "--script", str(REPO / "demo" / script),
                 "--url", f"ws://127.0.0.1:{ports['http']}/agency/ws", "--config", str(config)],
                env=environment(), text=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        for _ in range(100):
            if {a["agent_id"] for a in get(base + "/api/alpha/agents")["agents"] if a["connected"]} >= {"claude-1", "codex-1"}:
                break
            asyncio.run(asyncio.sleep(0.1))
        say("claude-1 and codex-1 connected\n")
        asyncio.run(human(ports["irc"], ["claude-1: tests/test_calc.py fails — can you fix it?", "codex-1: can you review claude's fix?"],
                          {"claude-1": 1, "codex-1": 1}))  # fmt: skip
        say("")
        sessions = get(base + "/api/alpha/sessions?agent-id=claude-1")["sessions"]
        if not sessions:
            say("no session was recorded for claude-1")
            return 1
        session = sessions[-1]["session_id"]
        entries = get(base + f"/api/alpha/evidence?session-id={session}&limit=100")["entries"]
        say(f"evidence thread of {session} (oldest first):")
        for entry in reversed(entries):
            body = entry.get("evidence/body") or {}
            what = body.get("tool") or (f"{body.get('from')} → {body.get('to')}" if entry["evidence/type"] == "mode-transition" else body.get("peripheral", ""))
            result = body.get("result")
            detail = ""
            if isinstance(result, dict) and "out" in result:
                detail = result["out"].strip().splitlines()[-1] if result["out"].strip() else ""
            elif "fruit" in body:
                detail = json.dumps(body["fruit"])[:100]
            say(f"  {entry['evidence/seq']:>4}  {entry['evidence/type']:<16} {entry['evidence/claim-type']:<11} {what:<16} {detail}")
        say(f"\nthe file now reads: {(workspace / 'src' / 'calc.py').read_text().splitlines()[1].strip()}")
        return 0
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
