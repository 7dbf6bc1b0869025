"""A complete futon agent in one file, with aiohttp only.

    python examples/minimal_agent.py --url ws://127.0.0.1:7070/agency/ws --agent claude-1

It says ``ready``, starts a peripheral (``peripheral_start``), and then, for
every IRC line that mentions it, runs one tool (``tool_action`` read
README.md) and answers in the channel (``irc_response``). It also answers a
coordination ``message`` (``futon: standup`` in IRC) with a ``reply``. When
the socket drops it reconnects, says ``ready`` again and sends ``resume``
with the ``seq`` of the last push it handled, so the IRC lines said while it
was away arrive after all. docs/ws-protocol.md describes every frame.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
from typing import Any

import aiohttp

FATAL_CLOSE_CODES = {4000, 4001, 4004}  # superseded, unauthorized, unknown agent: do not reconnect


class Agent:
    def __init__(self, url: str, agent_id: str, token: str | None = None) -> None:
        self.url = url
        self.agent_id = agent_id
        self.token = token
        self.last_seq = 0  # seq of the newest push handled; what a reconnect resumes from
        self._ids = itertools.count(1)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._backlog: list[dict[str, Any]] = []  # pushes that arrived while waiting for a reply

    async def run_once(self, http: aiohttp.ClientSession) -> int | None:
        """One connection: handshake, resume, a session, then answer pushes
        until the socket closes. Returns the WebSocket close code."""
        async with http.ws_connect(self.url, heartbeat=20) as ws:
            self._ws, self._backlog = ws, []
            ready: dict[str, Any] = {"type": "ready", "agent_id": self.agent_id}
            if self.token:
                ready["token"] = self.token
            ack = await self.request(ready)
            if ack["type"] == "error":  # agent-not-found, unauthorized, ...: the server closes
                raise RuntimeError(f"ready refused: {ack['code']}: {ack['message']}")
            if self.last_seq:  # pushes we missed while away come back, in order
                await self.send({"type": "resume", "since_seq": self.last_seq, "req_id": "resume"})
            started = await self.request({"type": "peripheral_start"})  # the routed default
            if started["type"] == "error":
                raise RuntimeError(
                    f"peripheral_start refused: {started['code']}: {started['message']}"
                )
            print(f"{self.agent_id}: in {started['peripheral_id']} with tools {started['tools']}")
            while True:
                frame = self._backlog.pop(0) if self._backlog else await self.receive()
                if frame is None:
                    return ws.close_code
                await self.handle(frame)

    async def handle(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "error" and frame.get("req_id") == "resume":
            if frame["code"] == "replay-gap":  # the window moved on: take what is left
                oldest = frame["context"]["oldest_seq"]
                await self.send({"type": "resume", "since_seq": oldest - 1, "req_id": "resume"})
            return
        if "seq" in frame:
            if frame["seq"] <= self.last_seq:
                return  # seen before this reconnect
            self.last_seq = frame["seq"]
        if kind == "irc_message":
            result = await self.request(
                {"type": "tool_action", "tool": "read", "args": ["README.md"]}
            )
            if result["type"] == "tool_result" and result["ok"]:
                text = str(result["result"]).strip().splitlines()[0]
                answer = f"{frame['from']}: README.md begins with {text!r}"
            else:  # a refused tool is an error frame; a failed one is ok: false
                why = result.get("code") or result["result"]
                answer = f"{frame['from']}: could not read README.md ({why})"
            reply: dict[str, Any] = {"type": "irc_response", "text": answer}
            if frame["channel"]:
                reply["channel"] = frame["channel"]
            else:  # a private message: answer the nick
                reply["nick"] = frame["from"]
            await self.send(reply)
        elif kind == "message":
            # a coordination message (e.g. standup): its reply goes back to the sender
            await self.send(
                {"type": "reply", "msg_id": frame["msg_id"], "payload": {"text": "all good here"}}
            )

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send a frame with a fresh req_id and return the frame that answers
        it (a reply or an ``error``); pushes meanwhile wait in the backlog."""
        req_id = f"r{next(self._ids)}"
        await self.send({**frame, "req_id": req_id})
        while True:
            reply = await self.receive()
            if reply is None:
                raise ConnectionError("the socket closed while waiting for a reply")
            if reply.get("req_id") == req_id:
                return reply
            self._backlog.append(reply)

    async def send(self, frame: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_str(json.dumps(frame))

    async def receive(self) -> dict[str, Any] | None:
        """The next frame, or None once the socket has closed."""
        assert self._ws is not None
        msg = await self._ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            return None
        frame: dict[str, Any] = json.loads(msg.data)
        return frame


async def main(url: str, agent_id: str, token: str | None) -> int:
    agent = Agent(url, agent_id, token)
    delay = 0.5
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                code = await agent.run_once(http)
                if code in FATAL_CLOSE_CODES:
                    print(f"connection closed ({code}); not reconnecting")
                    return 1
                print(f"connection closed ({code}); reconnecting")
                delay = 0.5
            except RuntimeError as exc:  # refused: retrying will not help
                print(exc)
                return 1
            except (aiohttp.ClientError, ConnectionError, OSError) as exc:
                print(f"cannot connect: {exc}; retrying in {delay:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="ws://127.0.0.1:7070/agency/ws")
    parser.add_argument("--agent", default="claude-1")
    parser.add_argument(
        "--token", default=None, help="the agent's token, when agents.yaml gives it one"
    )
    options = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(asyncio.run(main(options.url, options.agent, options.token)))
