"""A minimal services server for InspIRCd 3 (server protocol 1205): it
links over a real socket like Atheme or Anope would and does one job —
SASL PLAIN against a dictionary of accounts, logging the user in with
``METADATA accountname`` so InspIRCd announces the account (``900``,
``account-tag``, ``extended-join``). Nothing else of services is here."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time

SID = "42S"
NAME = "services.futon.test"


class FakeServices:
    def __init__(self, port: int, password: str, accounts: dict[str, str]) -> None:
        self.port = port
        self.password = password
        self.accounts = accounts
        self.linked = asyncio.Event()
        self.log: list[str] = []
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._uplink = ""

    async def start(self, timeout: float = 10.0) -> None:
        reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        await self._send("CAPAB START 1205")
        await self._send("CAPAB CAPABILITIES :CASEMAPPING=rfc1459")
        await self._send("CAPAB END")
        await self._send(f"SERVER {NAME} {self.password} 0 {SID} :futon test services")
        self._task = asyncio.create_task(self._read(reader))
        await asyncio.wait_for(self.linked.wait(), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    async def _send(self, line: str) -> None:
        assert self._writer is not None
        self.log.append(">> " + line)
        self._writer.write(line.encode() + b"\r\n")
        await self._writer.drain()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while raw := await reader.readline():
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.log.append("<< " + line)
            await self._handle(line)

    async def _handle(self, line: str) -> None:
        if line.startswith("@"):
            line = line.split(" ", 1)[1]
        source = ""
        if line.startswith(":"):
            source, line = line[1:].split(" ", 1)
        trailing = None
        if " :" in line:
            line, trailing = line.split(" :", 1)
        words = line.split()
        params = words[1:] + ([trailing] if trailing is not None else [])
        command = words[0].upper()
        if command == "SERVER" and not self._uplink:
            self._uplink = params[3]  # SERVER name password hops sid :desc
            await self._send(f":{SID} BURST {int(time.time())}")
            await self._send(f":{SID} ENDBURST")
        elif command == "ENDBURST" and source == self._uplink:
            self.linked.set()
        elif command == "PING":
            await self._send(
                f":{SID} PONG {params[-1]} {source}" if len(params) > 1 else f":{SID} PONG {source}"
            )
        elif command == "ENCAP" and len(params) >= 2 and params[1] == "SASL":
            await self._sasl(params[2:])

    async def _sasl(self, params: list[str]) -> None:
        # SASL <uid> <agent> <mode> <data…>
        uid, mode, data = params[0], params[2], params[3:]
        reply = f":{SID} ENCAP {self._uplink} SASL {SID} {uid}"
        if mode == "S":
            if data and data[0].upper() == "PLAIN":
                await self._send(f"{reply} C +")
            else:
                await self._send(f"{reply} M PLAIN")
                await self._send(f"{reply} D F")
        elif mode == "C":
            try:
                _, account, password = base64.b64decode(data[0]).decode().split("\0")
            except ValueError:
                await self._send(f"{reply} D F")
                return
            if self.accounts.get(account) == password:
                await self._send(f":{SID} METADATA {uid} accountname :{account}")
                await self._send(f"{reply} D S")
            else:
                await self._send(f"{reply} D F")
