"""``futon serve`` under a service manager, end to end: a real notify
socket, a WebSocket agent and a raw IRC client through start, a SIGHUP
reload, a refused reload, and a SIGTERM shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from ruamel.yaml import YAML

from futon.evidence.jsonl import open_for_reading
from futon.evidence.query import EvidenceQuery
from tests.daemon.kit import NotifySocket, start_serve
from tests.support import futon_env, make_config
from tests.transports.irc.kit import RawClient
from tests.transports.kit import AgentClient


def add_agent(agents_file: Path, agent_id: str) -> None:
    yaml = YAML()
    doc = yaml.load(agents_file)
    doc["agents"].append({"id": agent_id, "type": "mock", "channels": ["#futon"]})
    yaml.dump(doc, agents_file)


async def test_notify_reload_and_shutdown_keep_connections_and_every_acknowledged_entry(
    tmp_path: Path,
) -> None:
    """Pins serve(): READY=1 once all transports listen; SIGHUP → RELOADING=1
    (+MONOTONIC_USEC) → READY=1 with connections kept and the new agent
    live; an invalid reload is a 400 and changes nothing; SIGTERM →
    STOPPING=1, IRC ERROR, WS 1001, sessions stopped as `shutdown`, exit 0
    and every acknowledged entry on disk."""
    folder = tmp_path / "cfg"
    config = make_config(
        folder, irc__server__enabled=True, irc__server__port=0, workspace=str(tmp_path)
    )
    notify = NotifySocket()
    proc = start_serve(config, notify)
    try:
        ready = await notify.wait_for("READY")
        assert ready["READY"] == "1" and "listening on http" in ready["STATUS"]
        ports = json.loads((folder / "var" / "ports.json").read_text())  # written before READY
        base = f"http://127.0.0.1:{ports['http']}"

        async with aiohttp.ClientSession() as http, http.ws_connect(base + "/agency/ws") as ws:
            agent = AgentClient(ws)
            assert (await agent.ask({"type": "ready", "agent_id": "claude-1"}))[
                "type"
            ] == "ready_ack"
            started = await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"})
            assert started["type"] == "peripheral_started", started
            irc = await RawClient.connect(ports["irc"])
            await irc.register("alice")
            await irc.join("#futon")

            # SIGHUP: a new agent in agents.yaml
            add_agent(folder / "agents.yaml", "newbie")
            proc.send_signal(signal.SIGHUP)
            reloading = await notify.wait_for("RELOADING")
            now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            assert now_usec - 60_000_000 < int(reloading["MONOTONIC_USEC"]) <= now_usec
            assert "reloaded: agents +newbie" in (await notify.wait_for("READY"))["STATUS"]

            assert (await agent.ask({"type": "ping"}))[
                "type"
            ] == "pong"  # still connected, still served
            await irc.ping("after-reload")
            assert any(
                m.command == "JOIN" and (m.source or "").startswith("newbie!") for m in irc.history
            )
            async with http.ws_connect(base + "/agency/ws") as ws2:
                assert (await AgentClient(ws2).ask({"type": "ready", "agent_id": "newbie"}))[
                    "type"
                ] == "ready_ack"

            # an invalid config is refused; the old one stays in force
            agents_yaml = folder / "agents.yaml"
            valid = agents_yaml.read_text()
            agents_yaml.write_text(valid.replace("type: mock", "type: Not A Type"))
            async with http.post(base + "/api/alpha/config/reload") as response:
                body = await response.json()
                assert response.status == 400, body
            assert body["code"] == "invalid-config"
            assert any(
                "agents.yaml" in line and "type" in line for line in body["context"]["problems"]
            )
            await notify.wait_for("RELOADING")
            assert "reload refused" in (await notify.wait_for("READY"))["STATUS"]
            async with http.get(base + "/api/alpha/agents") as response:
                agents = {a["agent_id"]: a for a in (await response.json())["agents"]}
            assert {"claude-1", "newbie"} <= set(agents) and agents["claude-1"]["connected"]
            agents_yaml.write_text(valid)

            # acknowledged appends, then SIGTERM
            async def post(i: int) -> str:
                entry = {"subject": {"ref/type": "thread", "ref/id": "t-shutdown"}, "type": "forum-post",
                         "claim-type": "observation", "author": "tester", "body": {"text": f"entry {i}"}}  # fmt: skip
                async with http.post(base + "/api/alpha/evidence", json=entry) as response:
                    assert response.status == 201
                    return (await response.json())["evidence/id"]

            ids = await asyncio.gather(*(post(i) for i in range(25)))
            proc.send_signal(signal.SIGTERM)
            await notify.wait_for("STOPPING")
            error = await irc.expect("ERROR", timeout=10)
            assert error.text == "Server shutting down"
            assert await agent.closed_with(timeout=10) == 1001
            await irc.close()
        _, err = await asyncio.to_thread(proc.communicate, timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        notify.close()
    assert proc.returncode == 0, err
    assert "config reload refused" in err and "Traceback" not in err

    verify = subprocess.run(
        [sys.executable, "-m", "futon", "evidence", "verify", "--config", str(config), "--no-progress"],
        capture_output=True, text=True, env=futon_env(), timeout=60,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    store = open_for_reading(folder / "var" / "evidence")
    try:
        assert all(store.exists(entry_id) for entry_id in ids)
        query = EvidenceQuery.from_params(
            {"session-id": started["session_id"], "claim-type": "conclusion"}
        )
        assert [e["evidence/body"]["reason"] for e in store.query(query).entries] == ["shutdown"]
    finally:
        store.close()
