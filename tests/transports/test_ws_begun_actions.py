"""A peripheral frame with nothing ahead of it starts in the socket's reader
(``Connection._act_now``) and moves to a task at its first wait. What waits
must still behave as under the ordered worker: frames sent behind it answer
after it, in order; ``ping`` and ``interrupt`` are read meanwhile; a socket
closed under it stops the session and kills the step's processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from futon.evidence import EvidenceQuery
from tests.support import until
from tests.transports.kit import AgentClient, connected
from tests.transports.test_humans_in_the_loop import PYTHON, humans_daemon, pids_mentioning, send


async def answer(agent: AgentClient, req_id: str) -> dict[str, Any]:
    """The reply to ``req_id``, also when it came in while another was awaited."""
    for i, frame in enumerate(agent.pushes):
        if frame.get("req_id") == req_id:
            return agent.pushes.pop(i)
    return await agent.reply_to(req_id, timeout=10)


SLOW = f"{PYTHON} -m pytest -q -p no:cacheprovider tests/test_interrupt_me.py"
MARKER = "tests/test_interrupt_me.py"


async def test_frames_behind_a_waiting_action_answer_after_it_in_order(tmp_path: Path) -> None:
    async with (
        humans_daemon(tmp_path) as daemon,
        aiohttp.ClientSession() as http,
        connected(http, daemon, "claude-1") as claude,
    ):
        started = await claude.ask({"type": "peripheral_start", "peripheral_id": "test"})
        await send(claude, {"type": "tool_action", "tool": "bash-test", "args": [SLOW]}, "slow")
        await until(lambda: pids_mentioning(MARKER), 30, "the slow test run")
        for n in range(3):  # queued behind the waiting step
            await send(claude, {"type": "tool_action", "tool": "no-such-tool", "args": []}, f"q{n}")
        pong = await claude.ask({"type": "ping"})  # the reader is free
        assert pong["type"] == "pong"
        stopped = await claude.ask({"type": "interrupt"})  # read while the step waits
        assert (stopped["type"], stopped["session_id"]) == ("interrupted", started["session_id"])
        slow = await answer(claude, "slow")
        assert (slow["ok"], slow["result"]["code"]) == (False, "interrupted")
        queued = [await answer(claude, f"q{n}") for n in range(3)]
        assert [q["code"] for q in queued] == [
            "no-active-peripheral"
        ] * 3  # after the stop, in order
        await until(lambda: not pids_mentioning(MARKER), 10, "the slow run's end")


async def test_closing_the_socket_under_a_waiting_action_stops_its_session_and_process(
    tmp_path: Path,
) -> None:
    async with humans_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http:
        async with connected(http, daemon, "claude-1") as claude:
            started = await claude.ask({"type": "peripheral_start", "peripheral_id": "test"})
            await send(claude, {"type": "tool_action", "tool": "bash-test", "args": [SLOW]}, "slow")
            await until(lambda: pids_mentioning(MARKER), 30, "the slow test run")
        # The socket is closed: the session stops with connection-closed and the run is killed.
        await until(lambda: not pids_mentioning(MARKER), 10, "the slow run killed")
        session_id = started["session_id"]
        assert daemon.runner is not None
        await until(
            lambda: daemon.runner.info(session_id).reason is not None, 10, "the session's end"
        )
        assert daemon.runner.info(session_id).reason == "connection-closed"
        entries = daemon.store.query(EvidenceQuery(session_id=session_id, limit=20)).entries
        assert entries[0]["evidence/claim-type"] == "conclusion"
