"""The agents of docs/ws-protocol.md run against a real daemon, so the
page cannot rot: examples/minimal_agent.py (aiohttp only) and
examples/client_agent.py (futon.agents.AgentClient) each answer a human on
the embedded IRC server, lose their socket, and answer the line said while
they were away (resume). The code blocks of the page are the files."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import aiohttp

from futon.daemon.app import Daemon
from futon.evidence import EvidenceQuery
from futon.evidence.jsonl import JsonlStore
from futon.transports.ws import WsHub
from tests.support import REPO, futon_env, until
from tests.transports.irc.kit import RawClient
from tests.transports.kit import running_daemon

EXAMPLES = REPO / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def human(daemon: Daemon) -> RawClient:
    joe = await RawClient.connect(daemon.ports["irc"])
    joe.auto_pong = True
    await joe.register("joe")
    await joe.join("#futon")
    return joe


async def answer_from(joe: RawClient, agent: str) -> str:
    line = await joe.expect(
        "PRIVMSG", "#futon", where=lambda m: (m.source or "").startswith(f"{agent}!"), timeout=10
    )
    return line.params[1]


def hub(daemon: Daemon) -> WsHub:
    assert daemon.ws is not None, "the daemon is running"
    return daemon.ws


def store(daemon: Daemon) -> JsonlStore:
    assert daemon.store is not None, "the daemon is running"
    return daemon.store


def ws_url(daemon: Daemon) -> str:
    return f"ws://127.0.0.1:{daemon.ports['http']}/agency/ws"


async def test_minimal_agent_answers_in_irc_and_resumes_after_a_drop(tmp_path: Path) -> None:
    example = load("minimal_agent")
    async with (
        running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon,
        aiohttp.ClientSession() as http,
    ):
        joe = await human(daemon)
        record = daemon.registry.get("claude-1")
        agent = example.Agent(ws_url(daemon), "claude-1")
        first = asyncio.ensure_future(agent.run_once(http))
        await until(lambda: record.session_id is not None)  # ready → peripheral_start done

        await joe.send("PRIVMSG #futon :claude-1: what does the README say?")
        assert await answer_from(joe, "claude-1") == "joe: README.md begins with 'hello'"

        await hub(daemon).close_all(1012, "service restart")  # the socket drops
        assert await asyncio.wait_for(first, 10) == 1012
        seen = agent.last_seq
        await joe.send("PRIVMSG #futon :claude-1: still there?")  # said while it is away
        await until(lambda: record.seq > seen)  # kept in its replay window

        second = asyncio.ensure_future(agent.run_once(http))  # ready again, then resume
        assert await answer_from(joe, "claude-1") == "joe: README.md begins with 'hello'"
        assert agent.last_seq == record.seq

        steps = (
            store(daemon)
            .query(EvidenceQuery(author="claude-1", claim_type="step", limit=50))
            .entries
        )
        assert sum(1 for e in steps if (e.get("evidence/body") or {}).get("tool") == "read") == 2
        await hub(daemon).close_all(1001, "done")
        assert await asyncio.wait_for(second, 10) == 1001
        await joe.close()


async def test_client_library_agent_answers_and_survives_a_drop(tmp_path: Path) -> None:
    example = load("client_agent")
    async with running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon:
        joe = await human(daemon)
        record = daemon.registry.get("claude-1")
        agent = asyncio.ensure_future(example.run(ws_url(daemon), "claude-1"))
        try:
            await until(lambda: record.session_id is not None)
            await joe.send("PRIVMSG #futon :claude-1: what does the README say?")
            assert await answer_from(joe, "claude-1") == "joe: README.md begins with 'hello'"

            await hub(daemon).close_all(1012, "service restart")
            await joe.send(
                "PRIVMSG #futon :claude-1: still there?"
            )  # before or after its reconnect
            assert await answer_from(joe, "claude-1") == "joe: README.md begins with 'hello'"
        finally:
            agent.cancel()
            await asyncio.gather(agent, return_exceptions=True)
        await joe.close()


def test_the_examples_run_as_scripts() -> None:
    for name in ("minimal_agent", "client_agent"):
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / f"{name}.py"), "--help"],
            capture_output=True, text=True, env=futon_env(), timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "--agent" in done.stdout


def test_the_page_shows_the_example_files_verbatim() -> None:
    page = (REPO / "docs" / "ws-protocol.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    for name in ("minimal_agent", "client_agent"):
        source = (EXAMPLES / f"{name}.py").read_text()
        assert source in blocks, f"docs/ws-protocol.md must show examples/{name}.py verbatim"
