"""The daemon's Messenger: how domain tools reach people and agents.

A bulletin (mc-bulletin) and a bell are chat lines and go through the one
chat path (:class:`futon.social.chat.Chat`): IRC where the channel is
carried, the agents it reaches, and the channel's evidence thread. A
whistle is not a chat line but a question that waits for one agent's
answer: it is a coordination message through the pipeline, which delivers
it, waits for the reply and records the dispatch.
"""

from __future__ import annotations

import uuid
from typing import Any

from futon.protocol.errors import FutonError, ProtocolError
from futon.social.chat import Chat, is_channel
from futon.social.pipeline import Inbound, Pipeline


class DaemonMessenger:
    def __init__(self, chat: Chat, pipeline: Pipeline) -> None:
        self.chat = chat
        self.pipeline = pipeline

    async def post(self, channel: str, text: str, *, author: str) -> None:
        """A bulletin in a channel: to IRC when it runs, to the agents it
        mentions, and into the channel's thread. ``invalid-target`` for a
        name that is not a channel, ``no-such-channel`` for one nobody
        carries."""
        if not is_channel(channel):
            raise ProtocolError(f"{channel!r} is not a channel", code="invalid-target")
        await self.chat.say(author, channel, text, transport="bulletin")

    async def ring(self, room: str, text: str, *, author: str) -> list[str]:
        """Bell: every agent in ``room`` (a channel; ``kitchen`` means
        ``#kitchen``) but the ringer gets a ``chat_message``; the line also
        goes to IRC and the room's thread. Returns the agent ids rung."""
        channel = room if is_channel(room) else "#" + room
        said = await self.chat.say(author, channel, text, transport="bell", reach="everyone")
        return list(said.agents)

    async def ask(self, agent_id: str, text: str, *, author: str, timeout_s: float) -> Any:
        """Whistle: a coordination message to one agent; its reply, or
        ``invoke-timeout`` when none comes in time."""
        receipt = await self.pipeline.dispatch(
            Inbound(
                msg_id=f"whistle-{uuid.uuid4()}",
                sender=author,
                to=agent_id,
                payload={"type": "whistle", "text": text, "timeout_s": timeout_s},
                transport="peripheral",
            ),
            reply_timeout_s=timeout_s,
        )
        if receipt.reply is None:
            raise FutonError(
                f"{agent_id} did not answer within {timeout_s:g} s", code="invoke-timeout"
            )
        return receipt.reply
