"""No secret — an agent token, the admin token, a wrong token someone
tried — ever appears in the daemon's log or in the evidence landscape,
whatever the clients do."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
from pathlib import Path

import aiohttp
from ruamel.yaml import YAML

from tests.support import make_config, start_futon, wait_for_ports

AGENT_TOKEN = "agent-token-7f3a9c1e55d2"
ADMIN_TOKEN = "admin-token-b81c44e0aa17"
WRONG_TOKEN = "wrong-token-0d1e2f3a4b5c"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def exercise(base: str) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(base.replace("http", "ws") + "/agency/ws") as ws:
            await ws.send_str(json.dumps({"type": "ready", "agent_id": "claude-1", "token": WRONG_TOKEN}))
            await ws.receive(timeout=10)
        async with http.ws_connect(base.replace("http", "ws") + "/agency/ws") as ws:
            await ws.send_str(json.dumps({"type": "ready", "agent_id": "claude-1", "token": AGENT_TOKEN}))
            assert json.loads((await ws.receive(timeout=10)).data)["type"] == "ready_ack"
            await ws.send_str(json.dumps({"type": "peripheral_start"}))
            await ws.receive(timeout=10)
            await ws.send_str(json.dumps({"type": "tool_action", "tool": "bash-readonly", "args": ["env"]}))
            await ws.receive(timeout=10)
        for token in (WRONG_TOKEN, AGENT_TOKEN):
            async with http.get(base + "/api/alpha/agents", headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status in (401, 403)
        async with http.post(base + "/api/alpha/agents", headers=admin,
                             json={"agent_id": "bot-2", "type": "mock", "token": "runtime-token-99aa11bb"}) as r:  # fmt: skip
            assert r.status == 201
        async with http.post(base + "/dispatch", headers={"Authorization": f"Bearer {AGENT_TOKEN}"},
                             json={"msg_id": "m", "to": "claude-1", "payload": {"actions": [{"tool": "read", "args": ["README.md"]}]}}) as r:  # fmt: skip
            assert r.status == 200


def test_tokens_never_reach_logs_or_evidence(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", http__admin_token_sha256=digest(ADMIN_TOKEN), logging__level="debug")
    agents = tmp_path / "cfg" / "agents.yaml"
    yaml = YAML()
    doc = yaml.load(agents)
    doc["agents"][0]["token_sha256"] = digest(AGENT_TOKEN)
    yaml.dump(doc, agents)
    (tmp_path / "cfg" / "README.md").write_text("hello\n")
    proc = start_futon("serve", "--config", str(config), cwd=tmp_path / "cfg")
    try:
        ports = wait_for_ports(tmp_path / "cfg" / "var", proc)
        asyncio.run(exercise(f"http://127.0.0.1:{ports['http']}"))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    evidence = "".join(p.read_text() for p in (tmp_path / "cfg" / "var" / "evidence").glob("*.jsonl"))
    assert "ready_ack" not in evidence  # sanity: we are reading the right things
    assert "claude-1" in evidence and len(evidence) > 1000
    for secret in (AGENT_TOKEN, ADMIN_TOKEN, WRONG_TOKEN, "runtime-token-99aa11bb"):
        assert secret not in err and secret not in out, f"{secret} leaked into the log"
        assert secret not in evidence, f"{secret} leaked into evidence"
