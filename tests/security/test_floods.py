"""Floods and slow peers (issue 13, "bounded everything on the transports").

Every attack runs through real sockets against a daemon in this process:
a WebSocket client that sends and never reads, frames and bodies nested
ten thousand deep, evidence queries with absurd filters, HTTP slowloris,
a client that never finishes its handshake, IRC clients dribbling partial
lines. The walls: every queue and buffer has a bound and the peer past it
is dropped; every handshake has a deadline; bad input is a typed error,
never a 500; and ``/health`` keeps answering within 100 ms meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from futon.daemon.app import Daemon
from futon.transports.ws import CLOSE_UNAUTHORIZED
from tests.security.conftest import Arena, rss_bytes
from tests.support import until
from tests.transports.kit import agent_socket, base_url, connected, running_daemon

MiB = 1024 * 1024


# ------------------------------------------------------------------ helpers


@asynccontextmanager
async def stage(folder: Path, **overrides: Any) -> AsyncIterator[Arena]:
    """A daemon with test-sized limits, wrapped in the arena's helpers
    (``responsive()`` probes /health from its own thread)."""
    async with running_daemon(folder, **overrides) as daemon, aiohttp.ClientSession() as http:
        yield Arena(folder, daemon, http)


def client_frame(text: str) -> bytes:
    """One WebSocket text frame as a client sends it. The mask key is zero
    (legal: the key is the client's choice), so megabytes need no XOR."""
    payload = text.encode()
    if len(payload) < 126:
        head = bytes([0x81, 0x80 | len(payload)])
    elif len(payload) < 1 << 16:
        head = bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(payload))
    else:
        head = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", len(payload))
    return head + b"\0\0\0\0" + payload


async def raw_ws(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket opened by hand: after the 101 nobody reads it again."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /agency/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await writer.drain()
    assert b" 101 " in await reader.readline()
    return reader, writer


async def read_to_eof(reader: asyncio.StreamReader, timeout: float = 10) -> bytes:
    """Everything the server still sends, up to its close (fails if the
    server keeps the connection open past ``timeout``)."""
    chunks = []
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    except ConnectionError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {timeout}s") from None
    return b"".join(chunks)


# ------------------------------------------------------------------ WS: never reads


async def dribble(writer: asyncio.StreamWriter, byte: bytes, *, first: bytes = b"", every: float = 0.05) -> None:
    """A slowloris: ``first``, then one ``byte`` per ``every`` seconds, never
    a line end, until the peer hangs up. The pause between bytes is the
    attack itself, not synchronisation."""
    try:
        writer.write(first)
        while True:
            writer.write(byte)
            await writer.drain()
            await asyncio.sleep(every)
    except (ConnectionError, OSError):
        return


@pytest.mark.parametrize("ready", [False, True], ids=["before-ready", "after-ready"])
async def test_a_ws_client_that_never_reads_is_dropped_and_memory_stays_bounded(
    tmp_path: Path, ready: bool
) -> None:
    """Each ping's pong echoes its 256 KiB req_id: a client that never reads
    would grow the daemon by what it sends. Its outbound queue has a byte
    bound; past it the client is dropped — memory grows < 64 MiB while it
    pushes up to 120 MB, and /health answers within 100 ms throughout."""
    async with stage(tmp_path) as arena:
        daemon = arena.daemon
        _, writer = await raw_ws(daemon.ports["http"])
        if ready:
            writer.write(client_frame(json.dumps({"type": "ready", "agent_id": "codex-1"})))
            await writer.drain()
            await until(lambda: daemon.registry.get("codex-1").link is not None)
        frame = client_frame(json.dumps({"type": "ping", "req_id": "r" * (256 * 1024)}))
        before = peak = rss_bytes()
        sent, dropped = 0, False
        async with arena.responsive():
            while sent < 120 * MiB:
                try:
                    writer.write(frame)
                    await asyncio.wait_for(writer.drain(), 10)
                except TimeoutError:  # (an OSError too): not a drop, the socket is held open
                    raise AssertionError("the daemon stopped reading but kept the socket") from None
                except (ConnectionError, OSError):
                    dropped = True
                    break
                sent += len(frame)
                peak = max(peak, rss_bytes())
        assert dropped, f"the client was never dropped ({sent / MiB:.0f} MiB pushed)"
        assert peak - before < 64 * MiB, f"RSS grew {(peak - before) / MiB:.0f} MiB"
        await until(lambda: not daemon.ws.connections)
        if ready:
            assert daemon.registry.get("codex-1").link is None
        writer.close()


async def test_a_client_that_floods_small_frames_without_reading_is_dropped(tmp_path: Path) -> None:
    """Small frames: the bound on queued frames (not only bytes) drops it."""
    async with stage(tmp_path) as arena:
        _, writer = await raw_ws(arena.daemon.ports["http"])
        frame = client_frame(json.dumps({"type": "ping", "req_id": 1})) * 1000
        dropped = False
        async with arena.responsive():
            for _ in range(2000):
                try:
                    writer.write(frame)
                    await asyncio.wait_for(writer.drain(), 10)
                except TimeoutError:  # (an OSError too): not a drop, the socket is held open
                    raise AssertionError("the daemon stopped reading but kept the socket") from None
                except (ConnectionError, OSError):
                    dropped = True
                    break
        assert dropped
        await until(lambda: not arena.daemon.ws.connections)
        writer.close()


# ------------------------------------------------------------------ WS: ready deadline


async def test_a_ws_client_that_never_sends_ready_is_closed_at_the_deadline(tmp_path: Path) -> None:
    """Pings do not extend the deadline; the close code is 4001 (the socket
    never authenticated) with the reason ``ready timeout``."""
    async with (
        stage(tmp_path, ws__ready_timeout_s=0.5) as arena,
        agent_socket(arena.http, arena.daemon) as agent,
    ):
        assert (await agent.ask({"type": "ping"}))["type"] == "pong"  # usable before ready
        code = await agent.closed_with(timeout=10)
        assert code == CLOSE_UNAUTHORIZED
        assert agent.ws.close_code == CLOSE_UNAUTHORIZED
        await until(lambda: not arena.daemon.ws.connections)


async def test_an_agent_that_said_ready_in_time_stays(tmp_path: Path) -> None:
    async with (
        stage(tmp_path, ws__ready_timeout_s=0.3) as arena,
        connected(arena.http, arena.daemon, "claude-1") as agent,
    ):
        await asyncio.sleep(0.9)  # past the deadline: a ready socket is not closed by it
        assert (await agent.ask({"type": "ping"}))["type"] == "pong"


# ------------------------------------------------------------------ JSON depth


DEEP_LIST = "[" * 10_000 + "]" * 10_000
DEEP_OBJECT = '{"a":' * 10_000 + "1" + "}" * 10_000


async def test_a_deeply_nested_frame_is_invalid_json_and_the_socket_stays_usable(
    arena: Arena,
) -> None:
    async with agent_socket(arena.http, arena.daemon) as agent:  # before ready
        await agent.send('{"type": "ping", "req_id": "deep", "x": ' + DEEP_LIST + "}")
        error = await agent.recv()
        assert (error["type"], error["code"], error.get("req_id")) == (
            "error",
            "invalid-json",
            "deep",
        )
        assert (await agent.ask({"type": "ping"}))["type"] == "pong"
    async with arena.agent("claude-1") as agent:  # after ready
        for deep in (DEEP_LIST, DEEP_OBJECT, "[" * 65 + "]" * 65):
            frame = (
                '{"type": "message", "req_id": 7, "msg_id": "m1", "to": "codex-1", "payload": '
                + deep
                + "}"
            )
            await agent.send(frame)
            error = await agent.reply_to(7)  # type: ignore[arg-type]
            assert (error["type"], error["code"]) == ("error", "invalid-json"), error
        await agent.send(DEEP_LIST)  # no req_id to echo
        error = await agent.recv()
        assert (error["type"], error["code"]) == ("error", "invalid-json")
        assert "req_id" not in error
        assert (await agent.ask({"type": "ping"}))["type"] == "pong"


async def test_json_nested_within_the_bound_is_accepted(arena: Arena) -> None:
    async with arena.agent("claude-1") as agent:
        nested = "[" * 60 + "]" * 60
        reply = await agent.ask(json.loads('{"type": "ping", "x": ' + nested + "}"))
        assert reply["type"] == "pong"


async def test_a_deeply_nested_http_body_is_a_400(arena: Arena) -> None:
    for path in ("/api/alpha/evidence", "/dispatch", "/api/alpha/chat"):
        for deep in (DEEP_LIST, DEEP_OBJECT):
            async with arena.http.post(
                arena.base + path, data=deep, headers={"Content-Type": "application/json"}
            ) as r:
                body = await r.json()
                assert r.status == 400, (path, body)
                assert body["code"] == "invalid-json", body
    async with arena.http.get(arena.base + "/health") as r:
        assert r.status == 200


async def test_an_integer_too_long_to_convert_is_invalid_json(arena: Arena) -> None:
    """Python refuses ints of more than 4300 digits with a bare ValueError."""
    async with agent_socket(arena.http, arena.daemon) as agent:
        await agent.send('{"type": "ping", "x": ' + "9" * 5000 + "}")
        error = await agent.recv()
        assert (error["type"], error["code"]) == ("error", "invalid-json")
    async with arena.http.post(arena.base + "/api/alpha/evidence", data="[" + "9" * 5000 + "]",
                               headers={"Content-Type": "application/json"}) as r:  # fmt: skip
        assert r.status == 400
        assert (await r.json())["code"] == "invalid-json"


# ------------------------------------------------------------------ evidence queries

TAGS_65 = ",".join(f"t{i}" for i in range(65))
BAD_QUERIES: list[dict[str, str]] = [
    {"tag": TAGS_65},
    {"since": "99999-01-01"},
    {"since": "0001-01-01T00:00:00+01:00"},
    {"until": "9999-12-31T23:59:59-05:00"},
    {"since": "NaN"},
    {"until": "9" * 5000},
    {"limit": "9" * 5000},
    {"limit": "NaN"},
    {"subject-id": "x" * 5000},
    {"author": "a" * 5000},
    {"cursor": base64.urlsafe_b64encode(b"seq:" + b"9" * 30).decode()},
]


@pytest.mark.parametrize(
    "params", BAD_QUERIES, ids=lambda p: f"{next(iter(p))}={next(iter(p.values()))[:16]}"
)
async def test_absurd_http_evidence_filters_are_invalid_query(
    arena: Arena, params: dict[str, str]
) -> None:
    for path in ("/api/alpha/evidence", "/api/alpha/evidence/count", "/api/alpha/evidence/stream"):
        if path != "/api/alpha/evidence" and next(iter(params)) in ("limit", "cursor"):
            continue  # count and stream ignore paging keys
        async with arena.http.get(arena.base + path, params=params) as r:
            body = await r.json()
            assert r.status == 400, (path, params, body)
            assert body["code"] == "invalid-query", body
            assert len(json.dumps(body)) < 2000, "the error echoes the whole value"


async def test_64_tags_are_still_a_query(arena: Arena) -> None:
    tags = ",".join(f"t{i}" for i in range(64))
    async with arena.http.get(arena.base + "/api/alpha/evidence", params={"tag": tags}) as r:
        assert r.status == 200
        assert (await r.json())["entries"] == []


async def test_a_huge_last_event_id_is_invalid_query(arena: Arena) -> None:
    async with arena.http.get(
        arena.base + "/api/alpha/evidence/stream", headers={"Last-Event-ID": "9" * 30}
    ) as r:
        assert r.status == 400
        assert (await r.json())["code"] == "invalid-query"


@pytest.mark.parametrize(
    "params", BAD_QUERIES, ids=lambda p: f"{next(iter(p))}={next(iter(p.values()))[:16]}"
)
async def test_absurd_ws_evidence_filters_are_typed_errors(
    arena: Arena, params: dict[str, str]
) -> None:
    async with arena.agent("claude-1") as agent:
        for kind in ("evidence_query", "subscribe"):
            if kind == "subscribe" and next(iter(params)) in ("limit", "cursor"):
                continue
            reply = await agent.ask({"type": kind, "filters": params})
            assert (reply["type"], reply["code"]) == ("error", "invalid-query"), reply
        tags = [f"t{i}" for i in range(65)]
        reply = await agent.ask({"type": "evidence_query", "filters": {"tags": tags}})
        assert (reply["type"], reply["code"]) == ("error", "invalid-query"), reply
        for frame in ({"type": "subscribe", "since_seq": 2**70}, {"type": "resume", "since_seq": 2**70},
                      {"type": "evidence_query", "limit": 10**30, "filters": {}}):  # fmt: skip
            reply = await agent.ask(frame)
            assert reply["type"] in ("error", "evidence_result"), reply
            assert reply.get("code") != "internal-error", reply
        assert (await agent.ask({"type": "ping"}))["type"] == "pong"


# ------------------------------------------------------------------ HTTP: slowloris and caps


async def test_slowloris_headers_are_closed_after_the_header_timeout(tmp_path: Path) -> None:
    """300 sockets each sending a request's headers one byte at a time and
    never finishing: every one is closed after ``http.header_timeout_s``
    (trickling does not extend it), while /health answers within 100 ms."""
    async with stage(
        tmp_path, http__header_timeout_s=0.5, http__max_connections_per_ip=1000
    ) as arena:
        port = arena.daemon.ports["http"]
        sockets = [await asyncio.open_connection("127.0.0.1", port) for _ in range(300)]
        head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "

        async with arena.responsive():
            dribblers = [asyncio.create_task(dribble(w, b"a", first=head, every=0.1)) for _, w in sockets]
            answers = await asyncio.gather(*(read_to_eof(r, timeout=20) for r, _ in sockets))
        for task in dribblers:
            task.cancel()
        assert all(not a or a.startswith(b"HTTP/1.1 408") for a in answers), {
            a[:40] for a in answers
        }
        for _, writer in sockets:
            writer.close()


async def test_a_body_dribbled_a_byte_at_a_time_gets_a_408(tmp_path: Path) -> None:
    async with stage(tmp_path, http__body_timeout_s=0.5) as arena:
        reader, writer = await asyncio.open_connection("127.0.0.1", arena.daemon.ports["http"])
        writer.write(
            b"POST /api/alpha/evidence HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
        )

        task = asyncio.create_task(dribble(writer, b" "))
        answer = await read_to_eof(reader, timeout=30)
        task.cancel()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert b"request-timeout" in answer
        writer.close()


async def test_an_idle_keep_alive_connection_is_closed(tmp_path: Path) -> None:
    async with stage(tmp_path, http__keepalive_timeout_s=0.3) as arena:
        reader, writer = await asyncio.open_connection("127.0.0.1", arena.daemon.ports["http"])
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        answer = await read_to_eof(reader, timeout=10)  # the answer, then the close
        assert answer.startswith(b"HTTP/1.1 200")
        writer.close()


async def test_connections_per_address_are_capped(tmp_path: Path) -> None:
    async with stage(tmp_path, http__max_connections_per_ip=4) as arena:
        daemon: Daemon = arena.daemon
        port = daemon.ports["http"]
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        refused = await read_to_eof(reader)
        assert refused.startswith(b"HTTP/1.1 503"), refused[:80]
        assert b"too-many-connections" in refused
        writer.close()
        held.pop()[1].close()

        async def health_answers() -> bool:
            try:
                async with arena.http.get(base_url(daemon) + "/health") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        for _ in range(100):  # the freed slot is reusable once the server saw the close
            if await health_answers():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("a freed slot was never reusable")
        for _, w in held:
            w.close()


# ------------------------------------------------------------------ SSE: never reads


async def test_an_sse_client_that_never_reads_is_cut_off(tmp_path: Path) -> None:
    async with stage(tmp_path) as arena:
        daemon = arena.daemon
        assert daemon.store is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", daemon.ports["http"])
        writer.write(b"GET /api/alpha/evidence/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        before = peak = rss_bytes()
        big = "x" * 500_000
        async with arena.responsive():
            for n in range(120):  # 60 MB of entries to a client that reads nothing
                entry = {"subject": {"ref/type": "thread", "ref/id": "t"}, "type": "forum-post",
                         "claim-type": "observation", "author": "joe", "body": {"n": n, "text": big}}  # fmt: skip
                async with arena.http.post(arena.base + "/api/alpha/evidence", json=entry) as r:
                    assert r.status == 201, await r.text()
                peak = max(peak, rss_bytes())
        assert peak - before < 64 * MiB, f"RSS grew {(peak - before) / MiB:.0f} MiB"
        await read_to_eof(reader, timeout=20)  # cut off: what was sent, then the close
        writer.close()


# ------------------------------------------------------------------ IRC


IRC = {"irc__server__enabled": True, "irc__server__port": 0}


async def test_an_irc_client_dribbling_a_partial_line_is_dropped_at_the_registration_deadline(
    tmp_path: Path,
) -> None:
    async with stage(tmp_path, **IRC, irc__server__registration_timeout_s=0.5) as arena:
        reader, writer = await asyncio.open_connection("127.0.0.1", arena.irc_port)

        task = asyncio.create_task(dribble(writer, b"i", first=b"NICK al"))
        answer = await read_to_eof(reader, timeout=10)
        task.cancel()
        assert b"ERROR :Closing Link: 127.0.0.1 (Registration timeout)" in answer, answer
        writer.close()


async def test_partial_lines_do_not_count_as_activity_for_the_ping_timeout(tmp_path: Path) -> None:
    async with stage(
        tmp_path, **IRC, irc__server__ping_interval_s=0.2, irc__server__ping_timeout_s=0.8
    ) as arena:
        reader, writer = await asyncio.open_connection("127.0.0.1", arena.irc_port)
        writer.write(b"NICK mallory\r\nUSER m 0 * :M\r\n")
        await writer.drain()
        assert b" 001 mallory " in await reader.readline()

        task = asyncio.create_task(dribble(writer, b"x"))  # never a line end, never a PONG
        answer = await read_to_eof(reader, timeout=10)
        task.cancel()
        assert b"PING" in answer
        assert b"(Ping timeout" in answer, answer[-200:]
        writer.close()


async def test_a_registered_client_that_answers_pings_stays(tmp_path: Path) -> None:
    async with stage(tmp_path, **IRC, irc__server__ping_interval_s=0.2, irc__server__ping_timeout_s=0.8,
                     irc__server__registration_timeout_s=0.3) as arena:  # fmt: skip
        reader, writer = await asyncio.open_connection("127.0.0.1", arena.irc_port)
        writer.write(b"NICK alice\r\nUSER a 0 * :A\r\n")
        await writer.drain()
        pongs = 0
        async with asyncio.timeout(10):
            while pongs < 8:  # ~1.6 s: past both deadlines
                line = await reader.readline()
                assert line, "dropped although it answered every PING"
                if line.startswith(b"PING"):
                    writer.write(b"PONG" + line[4:])
                    await writer.drain()
                    pongs += 1
        writer.close()


async def test_a_client_that_ignores_rate_limit_refusals_is_closed(tmp_path: Path) -> None:
    """Answering every frame of a flood spends the daemon on the attacker:
    past a bucket's worth of refusals in a row the socket is closed (1008),
    and the daemon stays responsive meanwhile."""
    from futon.transports.ws import RATE_IGNORED_AFTER

    async with stage(tmp_path, ws__max_frames_per_s=5, ws__burst=5) as arena:
        async with agent_socket(arena.http, arena.daemon) as agent, arena.responsive():
            for n in range(RATE_IGNORED_AFTER + 50):
                await agent.send({"type": "ping", "req_id": n})
            code = await agent.closed_with(timeout=10)
        assert code == 1008
        assert agent.ws.close_code == 1008
        refused = [p for p in agent.pushes if p.get("code") == "rate-limited"]
        assert 0 < len(refused) <= RATE_IGNORED_AFTER
        await until(lambda: not arena.daemon.ws.connections)
