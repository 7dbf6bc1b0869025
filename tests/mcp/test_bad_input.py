"""``futon mcp`` under bad input: the daemon going away mid-call, unknown
tools, arguments that do not fit the schema, a client that never reads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

import aiohttp

from tests.mcp.kit import futon_mcp, text, ws_url
from tests.support import futon_env, until
from tests.transports.kit import base_url, connected, running_daemon


class Proxy:
    """A TCP proxy in front of the daemon that can drop every connection
    and refuse new ones: the daemon "going away" as the bridge sees it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.up = True
        self.holding = False
        self.held = 0  # chunks swallowed while holding: the request reached the proxy
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> Proxy:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/agency/ws"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, hold: bool) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    if hold and self.holding:
                        self.held += 1
                    while hold and self.holding:  # swallow: the request never arrives
                        await asyncio.sleep(0.01)
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    def cut(self) -> None:
        self.up, self.holding = False, False
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


async def test_the_daemon_going_away_mid_call_is_an_mcp_error_and_the_next_call_works(
    tmp_path: Path,
) -> None:
    async with running_daemon(tmp_path) as daemon:
        proxy = await Proxy(daemon.ports["http"]).start()
        try:
            async with futon_mcp(
                "claude-1", proxy.url, "--start", "explore", "--reconnect-wait", "10"
            ) as mcp:
                assert (await mcp.ok("read", {"args": ["README.md"]}))["ok"] is True
                proxy.holding = True
                call = asyncio.ensure_future(mcp.call("read", {"args": ["README.md"]}))
                await until(lambda: proxy.held, what="the call reaching the proxy")
                assert not call.done()  # in flight
                proxy.cut()
                failed = await asyncio.wait_for(call, 10)
                assert failed.is_error and text(failed).startswith("agent-unreachable: "), text(
                    failed
                )
                proxy.up = True
                # The next call waits for the reconnect; the session ended with the
                # old socket, so --start opens a new one and the list is re-announced.
                before = len(mcp.notifications)
                again = await mcp.ok("read", {"args": ["README.md"]})
                assert again["ok"] is True and "hello" in again["result"]
                assert len(mcp.notifications) > before
                assert "read" in await mcp.tool_names()
        finally:
            await proxy.close()


async def test_unknown_tools_and_arguments_that_do_not_fit_are_mcp_errors(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon, futon_mcp("claude-1", ws_url(daemon)) as mcp:
        nothing = await mcp.call("read", {"args": ["README.md"]})
        assert nothing.is_error and text(nothing).startswith("no-active-peripheral: ")
        await mcp.ok("futon_start", {})
        unknown = await mcp.call("no-such-tool", {"args": []})
        assert unknown.is_error and text(unknown).startswith("tool-not-allowed: ")
        for bad in (
            {},
            {"args": "README.md"},
            {"path": 42},
            {"args": ["README.md"], "x": 1},
        ):
            result = await mcp.call("read", bad)
            assert result.is_error and text(result).startswith("invalid-input: "), (
                bad,
                text(result),
            )
        typed = await mcp.call("read", {"args": [42]})  # the daemon's own argument check
        assert typed.is_error and text(typed).startswith("invalid-input: "), text(typed)
        hop = await mcp.call("futon_hop", {"exit_condition": "found-target"})
        assert hop.is_error and text(hop).startswith("invalid-input: ")
        missing = await mcp.call("futon_start", {"peripheral": "nowhere"})
        assert missing.is_error and text(missing).split(":")[0] in (
            "peripheral-already-active",
            "unknown-peripheral",
        )
        evidence = await mcp.call("futon_evidence", {"filters": "all"})
        assert evidence.is_error and text(evidence).startswith("invalid-input: ")
        # The server is still fine after all that.
        assert (await mcp.ok("read", {"args": ["README.md"]}))["ok"] is True


async def test_a_client_that_never_reads_does_not_hold_up_the_daemon(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        (daemon.config.workspace / "big.txt").write_text(
            "x" * 4000 + "\n"
        )  # 400 answers: far past a pipe buffer
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "futon", "mcp", "--agent", "claude-1", "--url", ws_url(daemon), "--start",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            env=futon_env(),
        )  # fmt: skip
        assert process.stdin is not None and process.stdout is not None
        try:
            lines = [
                {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "mute", "version": "0"}}},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
            ] + [
                {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "read", "arguments": {"args": ["big.txt"]}}}
                for i in range(1, 400)
            ]  # fmt: skip
            process.stdin.write("".join(json.dumps(line) + "\n" for line in lines).encode())
            with contextlib.suppress(ConnectionError):
                await asyncio.wait_for(process.stdin.drain(), 5)
            # Time, not synchronisation: nothing announces "the bridge is blocked on
            # a full stdout pipe", and the checks below must hold at every moment,
            # so give the 400 answers a span in which to pile up.
            await asyncio.sleep(2)
            async with aiohttp.ClientSession() as http:
                for _ in range(3):
                    async with http.get(
                        base_url(daemon) + "/health", timeout=aiohttp.ClientTimeout(total=2)
                    ) as response:
                        assert response.status == 200
            assert process.returncode is None  # blocked on its output, not dead
            # Another agent still gets served at once.
            async with aiohttp.ClientSession() as http, connected(http, daemon, "codex-1") as other:
                assert (await other.ask({"type": "ping"}, timeout=3))["type"] == "pong"
        finally:
            process.stdin.close()
            process.stdout.feed_eof()
            process._transport.get_pipe_transport(1).close()  # type: ignore[attr-defined]  # the reader leaves for good
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 15)
            if process.returncode is None:
                process.kill()
                await process.wait()
                raise AssertionError("futon mcp did not exit after its client went away")
