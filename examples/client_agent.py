"""The agent of minimal_agent.py, written with futon's client library.

    python examples/client_agent.py --url ws://127.0.0.1:7070/agency/ws --agent claude-1

:class:`futon.agents.AgentClient` does the handshake, matches replies to
requests, and after a dropped socket reconnects, says ``ready`` again and
``resume``s by itself; pushes come out of ``async for`` exactly once. A
peripheral session ends with its socket, so the agent starts a new one
whenever the connection is a new one (``client.generation``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from futon.agents import AgentClient, Disconnected, IrcMessage, PushedMessage
from futon.protocol.errors import FutonError


async def run(url: str, agent_id: str, token: str | None = None) -> None:
    async with AgentClient(url, agent_id, token) as client:
        started = await client.start()  # the routed default peripheral
        print(f"{agent_id}: in {started.peripheral_id} with tools {started.tools}")
        session_of = client.generation  # the connection our peripheral session belongs to
        async for push in client:  # ends when the client is closed
            try:
                if (
                    session_of != client.generation
                ):  # reconnected: the old session ended with its socket
                    await client.start()
                    session_of = client.generation
                if isinstance(push, IrcMessage):
                    try:
                        result = await client.act("read", ["README.md"])
                        first = str(result.result).strip().splitlines()[0] if result.ok else "?"
                        answer = f"{push.from_}: README.md begins with {first!r}"
                    except Disconnected:
                        raise
                    except FutonError as exc:  # a refusal: tool-not-allowed, out-of-scope, ...
                        answer = f"{push.from_}: could not read README.md ({exc.code})"
                    if push.channel:
                        await client.irc_response(answer, channel=push.channel)
                    else:
                        await client.irc_response(answer, nick=push.from_)
                elif isinstance(push, PushedMessage):  # coordination (e.g. standup)
                    await client.reply(push.msg_id, {"text": "all good here"})
            except Disconnected:  # the socket dropped mid-answer: wait for the reconnect
                await client.wait_connected()


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
        asyncio.run(run(options.url, options.agent, options.token))
