"""Baseline servers for the HTTP evidence benches, run as their own process
(``python bench/baseline_servers.py KIND DATA_DIR``; prints its port):

- ``memory``: loads every entry of DATA_DIR's shards into dicts (by session,
  by tag) and answers ``GET /api/alpha/evidence`` (``session-id`` or one
  ``tag``, newest first, ``limit``) and ``/count`` — the cost of answering
  with no store, no index and no validation at all;
- ``append``: ``POST /api/alpha/evidence`` appends the body as one line to a
  file (``fsync`` per request when DATA_DIR ends in ``+fsync``) and answers
  201 — the cost of a durable write with no validation, chain or index.
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
    else:
        app = append_app(Path(where.removesuffix("+fsync")), where.endswith("+fsync"))
    asyncio.run(serve(app))


if __name__ == "__main__":
    main()
