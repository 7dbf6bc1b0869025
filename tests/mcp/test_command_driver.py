"""``futon agent run --driver command --mcp`` end to end: an IRC line, a
``claude``-like MCP client as the command (tests/mcp/fake_claude.py), a tool
call through the envelope, and the answer back in the channel."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path

from futon.evidence import EvidenceQuery
from tests.mcp.kit import ws_url
from tests.support import futon_env, until
from tests.transports.irc.kit import RawClient
from tests.transports.kit import running_daemon

FAKE_CLAUDE = Path(__file__).with_name("fake_claude.py")


async def test_an_irc_line_answered_by_a_command_that_uses_the_envelope_over_mcp(
    tmp_path: Path,
) -> None:
    async with running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon:
        joe = await RawClient.connect(daemon.ports["irc"])
        joe.auto_pong = True
        await joe.register("joe")
        await joe.join("#futon")
        command = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_CLAUDE))} -p --mcp-config {{mcp_config}}"
        agent = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "futon", "agent", "run", "claude-1", "--driver", "command", "--mcp",
            "--cmd", command, "--url", ws_url(daemon), "--max-seconds", "60",
            env=futon_env(), stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            store = daemon.store
            assert store is not None
            await until(lambda: daemon.ws is not None and daemon.ws.count, what="the agent connected")
            await joe.send("PRIVMSG #futon :claude-1: what does the README say?")
            answer = await joe.expect("PRIVMSG", timeout=30)
        finally:
            agent.terminate()
            _, err = await asyncio.wait_for(agent.communicate(), 10)
        await joe.close()
        reads = store.query(EvidenceQuery(author="claude-1", limit=100)).entries
    assert answer.source.startswith("claude-1!"), err.decode()[-2000:]
    assert answer.params == ["#futon", "joe: README says: hello"], err.decode()[-2000:]
    bodies = [e["evidence/body"] for e in reversed(reads)]
    read = [b for b in bodies if b.get("tool") == "read"]
    assert read and read[0]["args"] == ["README.md"] and read[0]["ok"] is True
    session = next(
        e["evidence/session-id"] for e in reads if e["evidence/body"].get("tool") == "read"
    )
    stopped = [
        e
        for e in reads
        if e.get("evidence/session-id") == session
        and e["evidence/body"].get("reason") == "turn-ended"
    ]
    assert stopped, "the session the command opened is stopped at the end of the turn"
