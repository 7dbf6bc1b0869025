"""Humans in the loop (issue 17), with a real IRC client on the embedded
server and a real WebSocket agent: a hop to deploy waits for an approver,
a non-approver is told they cannot, deny and expiry refuse — each on the
record; a user-request hop must cite a human's message; ``futon: stop``
kills a long test run at once and the evidence says interrupted."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from ruamel.yaml import YAML

from futon.daemon.app import Daemon
from futon.evidence import EvidenceQuery
from tests.support import make_config
from tests.transports.irc.kit import RawClient
from tests.transports.kit import AgentClient, base_url, connected, daemon_of

PYTHON = Path(sys.executable)
SLOW_TEST = "import time\n\n\ndef test_slow():\n    time.sleep(120)\n"
OK_TEST = "def test_ok():\n    assert 1 + 1 == 2\n"


@asynccontextmanager
async def humans_daemon(folder: Path) -> AsyncIterator[Daemon]:
    """The shipped config, joe an approver, the test peripheral able to run
    this interpreter's pytest; a workspace with a quick and a slow test."""
    workspace = folder / "ws"
    (workspace / "tests").mkdir(parents=True)
    (workspace / "tests" / "test_ok.py").write_text(OK_TEST)
    (workspace / "tests" / "test_interrupt_me.py").write_text(SLOW_TEST)
    config = make_config(
        folder / "cfg", workspace=str(workspace), evidence__fsync="never", irc__server__enabled=True,
        irc__server__port=0, tools__test_commands=[f"{PYTHON} -m pytest -q -p no:cacheprovider {{paths}}"],
    )  # fmt: skip
    yaml = YAML()
    agents = yaml.load(config.parent / "agents.yaml")
    agents["approvers"] = ["joe"]
    yaml.dump(agents, config.parent / "agents.yaml")
    peripherals = yaml.load(config.parent / "peripherals.yaml")
    peripherals["peripherals"]["test"]["sandbox"] = {"read_only": sorted({sys.prefix, sys.base_prefix})}
    yaml.dump(peripherals, config.parent / "peripherals.yaml")
    async with daemon_of(config) as daemon:
        yield daemon


async def human(daemon: Daemon, nick: str) -> RawClient:
    client = await RawClient.connect(daemon.ports["irc"])
    client.auto_pong = True
    await client.register(nick)
    await client.join("#futon")
    return client


async def said_by_futon(client: RawClient, containing: str) -> str:
    """The next line the daemon's nick says in #futon that contains ``containing``."""
    while True:
        line = await client.expect("PRIVMSG")
        if line.source.startswith("futon!") and containing in line.params[1]:
            return line.params[1]


async def send(agent: AgentClient, frame: dict[str, Any], req_id: str) -> None:
    await agent.send({**frame, "req_id": req_id})


def approval_entries(daemon: Daemon, approval_id: str) -> list[dict[str, Any]]:
    entries = daemon.store.query(EvidenceQuery(tags=["approval"], limit=100)).entries
    return [e for e in reversed(entries) if e["evidence/body"].get("approval_id") == approval_id]


async def passing_tests(agent: AgentClient) -> None:
    started = await agent.ask({"type": "peripheral_start", "peripheral_id": "test"})
    assert started["type"] == "peripheral_started", started
    ran = await agent.ask({"type": "tool_action", "tool": "bash-test", "args": [f"{PYTHON} -m pytest -q -p no:cacheprovider tests/test_ok.py"]}, timeout=60)
    assert ran["type"] == "tool_result" and ran["result"]["exit"] == 0, ran


async def test_a_hop_to_deploy_waits_for_an_approver(tmp_path: Path) -> None:
    async with humans_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http:
        joe, mallory = await human(daemon, "joe"), await human(daemon, "mallory")
        async with connected(http, daemon, "claude-1") as claude:
            await passing_tests(claude)
            await send(claude, {"type": "hop", "to": "deploy", "exit_condition": "hop-deploy", "reason": "ship"}, "h1")
            pending = await claude.push_of("approval_pending")
            approval_id = pending["approval_id"]
            assert pending["what"] == "enter deploy (ship)"
            asked = await said_by_futon(joe, f"approval {approval_id}")
            assert "claude-1 asks to enter deploy" in asked

            await mallory.send(f"PRIVMSG #futon :futon: approve {approval_id}")
            refused = await said_by_futon(mallory, "not-an-approver")
            assert refused.startswith("mallory:")
            assert daemon.approvals is not None and [p.id for p in daemon.approvals.pending()] == [approval_id]

            await joe.send(f"PRIVMSG #futon :futon: approve {approval_id}")
            hopped = await claude.reply_to("h1")
            assert (hopped["type"], hopped["to"]) == ("hopped", "deploy")
            await mallory.send(f"PRIVMSG #futon :futon: approve {approval_id}")  # too late, and not theirs
            assert "approval-already-decided" in await said_by_futon(mallory, "approval-already-decided")

        request, decision = approval_entries(daemon, approval_id)
        assert (request["evidence/type"], request["evidence/claim-type"]) == ("coordination", "question")
        assert (decision["evidence/claim-type"], decision["evidence/author"]) == ("evidence", "joe")
        assert decision["evidence/in-reply-to"] == request["evidence/id"]
        for client in (joe, mallory):
            await client.close()


async def test_deny_and_expiry_refuse_on_the_record(tmp_path: Path) -> None:
    async with humans_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http:
        joe = await human(daemon, "joe")
        async with connected(http, daemon, "claude-1") as claude:
            await send(claude, {"type": "peripheral_start", "peripheral_id": "deploy"}, "s1")
            approval_id = (await claude.push_of("approval_pending"))["approval_id"]
            await joe.send(f"PRIVMSG #futon :futon: deny {approval_id} not today")
            denied = await claude.reply_to("s1")
            assert (denied["type"], denied["code"]) == ("error", "approval-denied")
            assert "not today" in denied["message"]

            assert daemon.approvals is not None
            daemon.approvals.timeout_s = 0.2  # nobody will answer the next one
            await send(claude, {"type": "peripheral_start", "peripheral_id": "deploy"}, "s2")
            expiring = (await claude.push_of("approval_pending"))["approval_id"]
            expired = await claude.reply_to("s2")
            assert (expired["code"], expired["context"]["outcome"]) == ("approval-denied", "expired")
            await joe.send(f"PRIVMSG #futon :futon: approve {expiring}")
            assert "approval-expired" in await said_by_futon(joe, "approval-expired")
            await joe.send("PRIVMSG #futon :futon: approve nope")
            assert "approval-not-found" in await said_by_futon(joe, "approval-not-found")

        assert [e["evidence/body"].get("outcome") for e in approval_entries(daemon, approval_id)] == [None, "denied"]
        assert [e["evidence/body"].get("outcome") for e in approval_entries(daemon, expiring)] == [None, "expired"]
        sessions = daemon.runner.infos("claude-1") if daemon.runner else []
        assert [s.reason for s in sessions[:2]] == ["approval-denied", "approval-denied"]
        await joe.close()


async def test_a_user_request_hop_must_cite_a_human_message(tmp_path: Path) -> None:
    async with humans_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http:
        joe = await human(daemon, "joe")
        async with connected(http, daemon, "claude-1") as claude:
            started = await claude.ask({"type": "peripheral_start", "peripheral_id": "explore"})
            assert started["type"] == "peripheral_started"
            hop = {"type": "hop", "to": "edit", "exit_condition": "user-request", "reason": "asked"}
            uncited = await claude.ask(hop)
            assert (uncited["code"], uncited["context"]["fact"]) == ("hop-not-allowed", "user-request")
            forged = await claude.ask({**hop, "context": {"request": started["session_id"]}})
            assert forged["code"] == "hop-not-allowed"

            await joe.send("PRIVMSG #futon :claude-1: please fix add")
            await claude.push_of("irc_message")
            (line,) = daemon.store.query(
                EvidenceQuery(subject_type="thread", subject_id="irc/#futon", author="joe", limit=1)
            ).entries
            cited = await claude.ask({**hop, "context": {"request": line["evidence/id"]}})
            assert (cited["type"], cited["to"]) == ("hopped", "edit"), cited
        await joe.close()


def pids_mentioning(marker: str) -> list[int]:
    """Pids whose command line mentions ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if marker.encode() in cmdline.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


async def test_futon_stop_kills_a_long_test_run_at_once(tmp_path: Path) -> None:
    async with humans_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http:
        joe, mallory = await human(daemon, "joe"), await human(daemon, "mallory")
        async with connected(http, daemon, "claude-1") as claude:
            started = await claude.ask({"type": "peripheral_start", "peripheral_id": "test"})
            session_id = started["session_id"]
            await send(claude, {"type": "tool_action", "tool": "bash-test", "args": [f"{PYTHON} -m pytest -q -p no:cacheprovider tests/test_interrupt_me.py"]}, "t1")
            marker = "tests/test_interrupt_me.py"
            deadline = time.monotonic() + 30
            while not pids_mentioning(marker):  # the run has started (its process is visible)
                assert time.monotonic() < deadline, "the slow test never started"
                await asyncio.sleep(0.05)

            await mallory.send("PRIVMSG #futon :futon: stop claude-1")
            assert "not-an-approver" in await said_by_futon(mallory, "not-an-approver")
            asked = time.monotonic()
            await joe.send("PRIVMSG #futon :futon: stop claude-1")
            result = await claude.reply_to("t1", timeout=10)
            took = time.monotonic() - asked
            assert (result["ok"], result["result"]["code"]) == (False, "interrupted")
            assert took < 5, f"the interrupted step took {took:.1f}s to return"  # the sleep is 120s
            told = await claude.push_of("interrupted")
            assert (told["session_id"], told["by"]) == (session_id, "joe")
            assert "interrupted by joe" in await said_by_futon(joe, "interrupted by joe")
            assert pids_mentioning(marker) == []

            again = await claude.ask({"type": "interrupt"})
            assert again["code"] == "no-active-peripheral"
            async with http.post(f"{base_url(daemon)}/api/alpha/sessions/{session_id}/interrupt") as ended:
                assert ended.status == 409 and (await ended.json())["code"] == "session-stopped"

        entries = daemon.store.query(EvidenceQuery(session_id=session_id, limit=20)).entries
        conclusion = entries[0]
        assert conclusion["evidence/claim-type"] == "conclusion"
        assert conclusion["evidence/body"]["reason"] == "interrupted"
        step = entries[1]
        assert step["evidence/body"]["result"]["code"] == "interrupted"
        for client in (joe, mallory):
            await client.close()


async def test_futon_stop_with_nothing_running_says_so_and_changes_nothing(tmp_path: Path) -> None:
    async with humans_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http:
        joe = await human(daemon, "joe")
        async with connected(http, daemon, "claude-1") as claude:
            started = await claude.ask({"type": "peripheral_start", "peripheral_id": "explore"})
            stopped = await claude.ask({"type": "peripheral_stop", "reason": "done"})
            assert stopped["type"] == "peripheral_stopped", stopped
            await joe.send("PRIVMSG #futon :futon: stop claude-1")
            assert await said_by_futon(joe, "no running session") == "joe: claude-1 has no running session"
            await joe.send("PRIVMSG #futon :futon: stop ghost")
            assert "agent-not-found" in await said_by_futon(joe, "agent-not-found")
            assert not [p for p in claude.pushes if p["type"] == "interrupted"]
        info = daemon.runner.info(started["session_id"]) if daemon.runner else None
        assert info is not None and info.reason == "done"  # the ended session keeps its conclusion
        await joe.close()


async def test_http_admin_lists_and_decides_and_the_agent_may_interrupt_itself(tmp_path: Path) -> None:
    async with (
        humans_daemon(tmp_path) as daemon,
        aiohttp.ClientSession() as http,
        connected(http, daemon, "claude-1") as claude,
    ):
        await send(claude, {"type": "peripheral_start", "peripheral_id": "deploy"}, "s1")
        approval_id = (await claude.push_of("approval_pending"))["approval_id"]
        async with http.get(f"{base_url(daemon)}/api/alpha/approvals") as listed:
            (shown,) = (await listed.json())["approvals"]
            assert (shown["approval_id"], shown["agent_id"], shown["what"]) == (approval_id, "claude-1", "enter deploy (start)")
        url = f"{base_url(daemon)}/api/alpha/approvals/{approval_id}"
        async with http.post(url, json={"decision": "perhaps"}) as bad:
            assert bad.status == 400
        async with http.post(url, json={"decision": "approve"}) as approved:
            assert approved.status == 200 and (await approved.json())["outcome"] == "approved"
        started = await claude.reply_to("s1")
        assert started["type"] == "peripheral_started" and started["peripheral_id"] == "deploy"
        async with http.post(url, json={"decision": "deny"}) as twice:
            assert twice.status == 409 and (await twice.json())["code"] == "approval-already-decided"
        async with http.post(f"{base_url(daemon)}/api/alpha/approvals/none", json={"decision": "deny"}) as unknown:
            assert unknown.status == 404

        stopped = await claude.ask({"type": "interrupt"})
        assert (stopped["type"], stopped["session_id"]) == ("interrupted", started["session_id"])
        info = daemon.runner.info(started["session_id"]) if daemon.runner else None
        assert info is not None and info.reason == "interrupted"
