"""Baseline servers for the HTTP evidence benches, run as their own process
(``python bench/baseline_servers.py KIND DATA_DIR``; prints its port):

- ``memory``: loads every entry of DATA_DIR's shards into dicts (by session,
  by tag) and answers ``GET /api/alpha/evidence`` (``session-id`` or one
  ``tag``, newest first, ``limit``) and ``/count`` — the cost of answering
  with no store, no index and no validation at all;
- ``append``: ``POST /api/alpha/evidence`` appends the body as one line to a
  file (``fsync`` per request when DATA_DIR ends in ``+fsync``) and answers
  201 — the cost of a durable write with no validation, chain or index;
- ``ws``: ``GET /ws``, a WebSocket that answers each ``tool_action`` with
  ``tool: read`` by reading the named file under DATA_DIR (opened and read
  per request, as the daemon does) and sending a ``tool_result`` frame;
  any other frame gets ``{"type": <its type>, "req_id": …, "ok": true}`` —
  the cost of the socket and the file with no envelope, session or evidence.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiohttp import web


def load(directory: Path) -> list[dict[str, Any]]:
    entries = []
    for shard in sorted(directory.glob("*.jsonl")):
        with open(shard, "rb") as handle:
            entries.extend(json.loads(line) for line in handle)
    return entries


def memory_app(directory: Path) -> web.Application:
    entries = load(directory)
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_tag: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        if entry.get("evidence/session-id"):
            by_session[entry["evidence/session-id"]].append(entry)
        for tag in entry.get("evidence/tags") or ():
            by_tag[tag].append(entry)

    def pick(request: web.Request) -> list[dict[str, Any]]:
        if "session-id" in request.query:
            return by_session.get(request.query["session-id"], [])
        if "tag" in request.query:
            return by_tag.get(request.query["tag"], [])
        return entries

    async def query(request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "50"))
        page = pick(request)[::-1][:limit]
        return web.json_response({"ok": True, "count": len(page), "entries": page})

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "count": len(pick(request))})

    app = web.Application()
    app.router.add_get("/api/alpha/evidence", query)
    app.router.add_get("/api/alpha/evidence/count", count)
    return app


def append_app(target: Path, fsync: bool) -> web.Application:
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def append(request: web.Request) -> web.Response:
        body = await request.read()
        os.write(fd, body.replace(b"\n", b" ") + b"\n")
        if fsync:
            os.fdatasync(fd)
        return web.json_response({"ok": True}, status=201)

    app = web.Application()
    app.router.add_post("/api/alpha/evidence", append)
    return app


def ws_app(root: Path) -> web.Application:
    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != web.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            if frame.get("type") == "tool_action" and frame.get("tool") == "read":
                with open(root / frame["args"][0], encoding="utf-8") as handle:
                    text = handle.read()
                reply = {"type": "tool_result", "req_id": frame.get("req_id"), "tool": "read",
                         "ok": True, "result": text}  # fmt: skip
            else:
                reply = {"type": frame.get("type"), "req_id": frame.get("req_id"), "ok": True}
            await ws.send_str(json.dumps(reply))
        return ws

    app = web.Application()
    app.router.add_get("/ws", socket)
    return app


async def serve(app: web.Application) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(runner.addresses[0][1], flush=True)  # the bench reads the port
    await asyncio.Event().wait()


def main() -> None:
    kind, where = sys.argv[1], sys.argv[2]
    if kind == "memory":
        app = memory_app(Path(where))
    elif kind == "ws":
        app = ws_app(Path(where))
    else:
        app = append_app(Path(where.removesuffix("+fsync")), where.endswith("+fsync"))
    asyncio.run(serve(app))


if __name__ == "__main__":
    main()
