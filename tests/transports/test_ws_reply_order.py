"""The ``tool_action`` reply path: a small reply of the ordered worker goes
straight to the socket (no writer-task hop) and its text is rendered without
the frame model — yet replies keep their order whatever their size and
whether the socket compresses (a large compressed reply is compressed off
the loop, which a straight send must never overtake)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from futon.protocol import frames as f
from futon.transports.ws import DIRECT_SEND_MAX_CHARS
from tests.transports.kit import AgentClient, base_url, running_daemon


@pytest.mark.parametrize(
    ("req_id", "tool", "ok", "result"),
    [
        (3, "read", True, "hello\n"),
        ("r-1", "read", True, {"a": None, "b": [None, {"c": None}], "text": "é\u2028\"\\"}),
        (None, "grep", True, None),
        (0, "write", False, {"error": "no", "code": "outside-workspace"}),
        ("x", "glob", True, [1, 2.5, "s", True, None]),
        (7, "read", True, ""),
    ],
)
def test_a_tool_result_is_rendered_as_the_frame_model_renders_it(
    req_id: f.ReqId | None, tool: str, ok: bool, result: Any
) -> None:
    model = f.ToolResult(tool=tool, ok=ok, result=result)
    model.req_id = req_id
    assert f.render_tool_result(req_id, tool, ok, result) == f.render(model)


@pytest.mark.parametrize("compress", [0, 15])
async def test_pipelined_small_and_large_replies_arrive_in_request_order(
    tmp_path: Path, http: aiohttp.ClientSession, compress: int
) -> None:
    async with running_daemon(tmp_path) as daemon:
        big = "".join(f"line {n} of a file larger than one compressed chunk\n" for n in range(1500))
        assert len(big) > 4 * DIRECT_SEND_MAX_CHARS  # compressed in aiohttp's executor, when compressing
        (daemon.config.workspace / "big.txt").write_text(big)
        url = base_url(daemon) + "/agency/ws"
        async with http.ws_connect(url, max_msg_size=0, compress=compress) as ws:
            agent = AgentClient(ws)
            assert (await agent.ask({"type": "ready", "agent_id": "claude-1"}))["type"] == "ready_ack"
            assert (await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"}))["type"] == "peripheral_started"
            files = ["big.txt" if n % 3 == 0 else "README.md" for n in range(30)]
            # All at once, pings between them: the reader answers those at
            # once, the ordered worker the actions one by one.
            for n, name in enumerate(files):
                await agent.send({"type": "tool_action", "tool": "read", "args": [name], "req_id": n})
                await agent.send({"type": "ping", "req_id": f"p{n}"})
            replies: list[dict[str, Any]] = []
            while len(replies) < len(files):
                frame = await agent.recv()
                if frame["type"] != "pong":
                    replies.append(frame)
    assert [r["req_id"] for r in replies] == list(range(len(files)))
    assert [r["result"] for r in replies] == [big if name == "big.txt" else "hello\n" for name in files]
    assert all(r["type"] == "tool_result" and r["ok"] is True for r in replies), json.dumps(replies)[:300]
