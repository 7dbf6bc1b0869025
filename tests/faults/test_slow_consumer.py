"""A WebSocket agent that stops reading never delays the others: its
outbound queue is bounded, and once it is full the slow peer is closed —
it can reconnect and resume — while a reading agent keeps getting its
pushes. The slow peer is a raw socket that completes the WebSocket
handshake, says `ready`, and then never reads again."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct

import aiohttp

from futon.daemon.app import Daemon
from futon.transports.ws import OUTBOUND_LIMIT
from tests.support import until
from tests.transports.kit import base_url, connected


def masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81, 0x80 | len(payload)]) if len(payload) < 126 else bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(payload))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def never_reading_agent(port: int, agent_id: str) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /agency/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await writer.drain()
    assert b"101" in await reader.readline()
    writer.write(masked_text_frame(json.dumps({"type": "ready", "agent_id": agent_id})))
    await writer.drain()
    return writer  # …and nobody reads `reader` again


async def test_a_slow_reader_is_cut_off_and_others_are_not_delayed(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    big = "x" * 60_000  # large pushes, so socket buffers fill and the queue grows
    slow = await never_reading_agent(daemon.ports["http"], "codex-1")
    await until(lambda: daemon.registry.get("codex-1").link is not None, what="codex-1 linked")
    async with connected(http, daemon, "tickle-1") as reader:
        url = base_url(daemon) + "/api/alpha/chat"
        cut_off_after = None
        for n in range(OUTBOUND_LIMIT + 3000):
            async with http.post(url, json={"to": "codex-1", "text": f"{n} {big}", "from": "joe"}) as r:
                assert r.status == 202
            if n % 250 == 0:
                async with http.post(url, json={"to": "tickle-1", "text": f"still there? {n}", "from": "joe"}) as r:
                    assert r.status == 202
                assert (await reader.push_of("chat_message", timeout=5))["text"] == f"still there? {n}"
            if daemon.registry.get("codex-1").link is None:
                cut_off_after = n
                break
        assert cut_off_after is not None, "the slow peer was never cut off"
        assert daemon.registry.get("tickle-1").link is not None
    assert daemon.registry.get("codex-1").seq == cut_off_after + 1  # every push kept for resume
    slow.close()
