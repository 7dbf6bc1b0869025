"""A lone surrogate escape (``"\\ud800"``) is valid JSON but no UTF-8 text:
it can never be recorded. Sent in any frame field — tool arguments, an
item's body, the HTTP evidence route — it is a typed refusal at the edge,
never an internal error, and the socket and the store go on working."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from futon.evidence import MemoryStore
from futon.protocol.errors import ProtocolError
from futon.protocol.frames import JsonError, loads_bounded
from tests.transports.kit import base_url, connected, running_daemon

LONE = "\\ud800"


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"tool_action","tool":"read","args":["@"],"req_id":"a1"}'.replace("@", LONE),
        '{"type":"tool_action","tool":"grep","args":{"pattern":"x","path":"@"},"req_id":"a2"}'.replace("@", LONE),
        '{"type":"native_item","kind":"plan","body":{"steps":["@"]},"req_id":"a3"}'.replace("@", LONE),
        '{"type":"tool_check","kind":"command","command":"cat @","req_id":"a4"}'.replace("@", LONE),
    ],
)
async def test_a_lone_surrogate_in_any_frame_is_refused_at_the_edge(tmp_path: Path, raw: str) -> None:
    async with (
        running_daemon(tmp_path) as daemon,
        aiohttp.ClientSession() as http,
        connected(http, daemon, "claude-1") as agent,
    ):
        started = await agent.ask({"type": "peripheral_start", "peripheral": "explore"})
        assert started["type"] == "peripheral_started", started
        await agent.send(raw)
        refused = await agent.reply_to(raw.split('"req_id":"')[1][:2])
        assert (refused["type"], refused["code"]) == ("error", "invalid-json"), refused
        assert "surrogate" in refused["message"]
        # The socket and the session go on: a plain read still works.
        answer = await agent.ask({"type": "tool_action", "tool": "read", "args": ["src/app.py"]})
        assert answer["type"] == "tool_result", answer


async def test_the_http_evidence_route_refuses_it_and_stores_nothing(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http:
        assert daemon.store is not None
        before = daemon.store.last_seq
        body = (
            '{"subject":{"ref/type":"session","ref/id":"s"},"type":"coordination",'
            '"claim-type":"step","author":"claude-1","body":{"t":"@"}}'.replace("@", LONE)
        )
        async with http.post(
            base_url(daemon) + "/api/alpha/evidence", data=body, headers={"Content-Type": "application/json"}
        ) as response:
            answer = await response.json()
        assert response.status == 400 and answer["code"] == "invalid-json", answer
        assert daemon.store.last_seq == before


def test_pairs_still_parse_and_the_store_types_a_lone_one() -> None:
    assert loads_bounded('{"t":"\\ud83d\\ude00"}') == {"t": "\U0001f600"}
    with pytest.raises(JsonError):
        loads_bounded('{"t":"\\udfff x"}')
    store = MemoryStore()
    entry = {
        "subject": {"ref/type": "session", "ref/id": "s"},
        "type": "coordination",
        "claim-type": "step",
        "author": "claude-1",
        "body": {"t": "\ud800"},
    }
    with pytest.raises(ProtocolError) as refused:
        store.append_sync(entry)  # a caller inside the daemon that skipped the edge
    assert refused.value.code == "invalid-entry" and store.last_seq == 0
