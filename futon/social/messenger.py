"""The daemon's Messenger: how domain tools (mc-bulletin, bell, whistle)
reach people and agents — through the same pipeline and pushes as
everything else, and into evidence."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from futon.evidence.store import EvidenceStore
from futon.protocol.errors import FutonError
from futon.social.pipeline import Inbound, Pipeline
from futon.social.registry import AgentRegistry


class ChannelPoster(Protocol):
    """The IRC side (embedded server and/or bot mode)."""

    async def post(self, channel: str, text: str, *, author: str) -> None: ...


class DaemonMessenger:
    def __init__(
        self,
        registry: AgentRegistry,
        pipeline: Pipeline,
        store: EvidenceStore,
        irc: ChannelPoster | None = None,
    ) -> None:
        self.registry = registry
        self.pipeline = pipeline
        self.store = store
        self.irc = irc

    async def post(self, channel: str, text: str, *, author: str) -> None:
        """A bulletin in a channel: to IRC when it runs, to the agents
        sitting in the channel, and into the channel's thread."""
        if not channel.startswith("#"):
            raise FutonError(f"{channel!r} is not a channel", code="invalid-target")
        if self.irc is not None:
            await self.irc.post(channel, text, author=author)
        else:
            await self.store.append(
                {
                    "subject": {"ref/type": "thread", "ref/id": f"irc/{channel}"},
                    "type": "forum-post",
                    "claim-type": "observation",
                    "author": author,
                    "body": {"text": text, "channel": channel, "transport": "ws-relay", "network": None},
                }
            )

    async def ring(self, room: str, text: str, *, author: str) -> list[str]:
        """Bell: every agent in ``room`` (a channel) gets a chat_message."""
        rung = []
        for record in self.registry.in_channel(room):
            if record.id == author:
                continue
            await self.pipeline.push(
                record, {"type": "chat_message", "to": room, "from": author, "text": text, "transport": "bell"}
            )
            rung.append(record.id)
        return rung

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
            raise FutonError(f"{agent_id} did not answer within {timeout_s:g} s", code="invoke-timeout")
        return receipt.reply
