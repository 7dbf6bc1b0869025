"""The start-up log says where to connect, and each address it gives works:
the web page, the agents' WebSocket, the IRC server and its channel."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
import urllib.request
from pathlib import Path

import aiohttp

from tests.support import make_config, start_futon, wait_for_ports


def irc_join(host: str, port: int, channel: str) -> list[str]:
    """Register as a human and join ``channel``; the server's lines up to
    the end of the NAMES list."""
    lines: list[str] = []
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"NICK ada\r\nUSER ada 0 * :Ada\r\nJOIN {channel}\r\n".encode())
        buffer = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(" 366 " in line for line in lines):
            data = sock.recv(4096)
            if not data:
                break
            buffer += data
            *complete, buffer = buffer.split(b"\r\n")
            lines += [line.decode() for line in complete]
    return lines


async def test_the_log_says_where_to_connect_and_every_address_answers(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", irc__server__enabled=True, irc__server__port=0)
    proc = start_futon("serve", "--config", str(config))
    try:
        wait_for_ports(tmp_path / "cfg" / "var", proc)
        assert proc.stderr is not None
        log: list[str] = []
        while not any("humans join IRC" in line for line in log):
            log.append(proc.stderr.readline())  # logged before ports.json is written
        text = "".join(log)
        page = re.search(r"web page: (http://\S+/)", text)
        ws = re.search(r"agents connect to (ws://\S+/agency/ws)", text)
        irc = re.search(r"humans join IRC at ([\d.]+):(\d+), channel (#\S+) \(irc://\S+\)", text)
        assert page and ws and irc, text

        with urllib.request.urlopen(page.group(1), timeout=10) as response:
            assert response.status == 200 and response.headers["Content-Type"].startswith("text/html")
        async with aiohttp.ClientSession() as http, http.ws_connect(ws.group(1)) as socket_:
            await socket_.send_str(json.dumps({"type": "ready", "agent_id": "claude-1"}))
            ack = json.loads((await socket_.receive(timeout=10)).data)
            assert ack["type"] == "ready_ack", ack
        lines = irc_join(irc.group(1), int(irc.group(2)), irc.group(3).rstrip(","))
        assert any(f" 366 ada {irc.group(3).rstrip(',')} " in line for line in lines), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0
