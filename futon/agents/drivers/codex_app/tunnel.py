"""The inside end of the App Server's egress: run INSIDE futon's sandbox, in
its new and empty network namespace, before Codex.

``python tunnel.py --port PORT --socket PATH -- codex app-server …``

- binds ``127.0.0.1:PORT`` in the namespace first (so Codex never finds the
  port closed), then starts the command as its child, stdio inherited (the
  App Server's JSON-RPC channel passes straight through; this program never
  writes to stdout);
- pipes every connection accepted on that port, as raw bytes, to the unix
  socket ``PATH`` (the outside end, :mod:`.egress`, forwards it to the
  model server's host and port: the namespace has no other way out);
- at most :data:`MAX_CONNECTIONS` at once (one more is closed at once),
  each direction at most :data:`RATE_BYTES_S` bytes per second, a
  connection quiet for :data:`IDLE_S` closed;
- exits with the command's status when it ends; when the forwarder itself
  fails it kills the command and exits :data:`FAILED` — the App Server
  gone, the driver ends the turn with a could-not reply instead of Codex
  waiting on a dead port.

Standard library only, run by path with the interpreter running futon:
nothing of futon is imported, so it starts in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import Sequence

MAX_CONNECTIONS = 16  # concurrent connections to the model (Codex opens a few)
RATE_BYTES_S = 16 * 1024 * 1024  # per connection and direction
IDLE_S = 900.0  # a connection with no byte either way for this long is closed
CONNECT_S = 20.0  # opening the next hop
CHUNK = 65536
FAILED = 70  # exit status when the forwarder, not the command, failed


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rate: int) -> None:
    """Copy ``reader`` to ``writer`` until EOF, at most ``rate`` bytes/s
    (the pause is the throttle, not a synchronisation), then half-close."""
    started = time.monotonic()
    total = 0
    while True:
        chunk = await asyncio.wait_for(reader.read(CHUNK), IDLE_S)
        if not chunk:
            break
        writer.write(chunk)
        await writer.drain()
        total += len(chunk)
        ahead = total / rate - (time.monotonic() - started)
        if ahead > 0:
            await asyncio.sleep(ahead)
    if writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()


async def pipe(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    rate: int = RATE_BYTES_S,
) -> None:
    """Bytes both ways between two connections until both directions end
    (or one fails or idles out); both are closed after."""
    tasks = [
        asyncio.ensure_future(_copy(a[0], b[1], rate)),
        asyncio.ensure_future(_copy(b[0], a[1], rate)),
    ]
    try:
        for task in asyncio.as_completed(tasks):
            try:
                await task
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                break  # one side broke: the whole connection ends
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, writer in (a, b):
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class Gate:
    """At most ``limit`` connections at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def enter(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def leave(self) -> None:
        self.open -= 1


async def _forward(
    gate: Gate, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    if not gate.enter():
        writer.close()
        return
    try:
        try:
            onward = await asyncio.wait_for(asyncio.open_unix_connection(path), CONNECT_S)
        except (OSError, TimeoutError) as exc:
            print(f"futon egress: the outside end is unreachable: {exc}", file=sys.stderr)
            writer.close()
            return
        await pipe((reader, writer), onward)
    finally:
        gate.leave()


async def serve(listener: socket.socket, path: str, command: Sequence[str]) -> int:
    """Run ``command`` while forwarding ``listener``'s connections to the
    unix socket ``path``; the command's exit status, or :data:`FAILED`."""
    gate = Gate(MAX_CONNECTIONS)
    child = await asyncio.create_subprocess_exec(*command)  # stdio inherited

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _forward(gate, path, reader, writer)

    server = await asyncio.start_server(handle, sock=listener)
    waiting = asyncio.ensure_future(child.wait())
    serving = asyncio.ensure_future(server.serve_forever())
    await asyncio.wait({waiting, serving}, return_when=asyncio.FIRST_COMPLETED)
    if waiting.done():
        serving.cancel()
        code = waiting.result()
        return code if code >= 0 else 128 - code
    problem = serving.exception() if not serving.cancelled() else None
    print(f"futon egress: the forwarder stopped ({problem}); stopping Codex", file=sys.stderr)
    with contextlib.suppress(ProcessLookupError):
        child.kill()
    await waiting
    return FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tunnel.py", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    try:
        listener = socket.create_server(("127.0.0.1", args.port), backlog=64)
    except OSError as exc:
        print(f"futon egress: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return FAILED
    listener.setblocking(False)
    return asyncio.run(serve(listener, args.socket, args.command))


if __name__ == "__main__":
    sys.exit(main())
