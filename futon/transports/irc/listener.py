"""What the embedded IRC server tells the daemon: the listener hooks."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class IrcListener(Protocol):
    """What the daemon hears from the embedded server.

    ``on_message`` is called, in order and awaited, for every PRIVMSG and
    NOTICE a real client sends to a channel (``private=False``, ``target``
    is the channel's name as created) or to a virtual user
    (``private=True``, ``target`` is that user's nick). Messages between
    two real clients are not reported. An exception raised by the listener
    is logged and never reaches the client. The optional hooks
    (``on_join``, ``on_part``, ``on_quit``, ``on_nick``; see
    :class:`IrcListenerBase`) are looked up by name and skipped when absent.
    """

    async def on_message(
        self, sender_nick: str, target: str, text: str, *, private: bool, notice: bool
    ) -> None: ...


class IrcListenerBase:
    """An :class:`IrcListener` whose every hook is a no-op; subclass and
    override what you need.

    ``on_join``/``on_part``/``on_quit``/``on_nick`` report real clients.
    A KICK is reported as ``on_part`` of the kicked user, real or virtual
    (reason ``"kicked by <op>: <reason>"``), so the daemon learns when one
    of its agents was thrown out.
    """

    async def on_message(
        self, sender_nick: str, target: str, text: str, *, private: bool, notice: bool
    ) -> None:
        return None

    async def on_join(self, nick: str, channel: str) -> None:
        return None

    async def on_part(self, nick: str, channel: str, reason: str | None) -> None:
        return None

    async def on_quit(self, nick: str, reason: str) -> None:
        return None

    async def on_nick(self, old: str, new: str) -> None:
        return None

    def nick_reserved(self, nick: str) -> bool:
        """Whether ``nick`` belongs to the daemon (an agent, the daemon's
        own nick) even while no virtual user holds it: a real client that
        asks for it gets 433. Synchronous: asked on every NICK."""
        return False


__all__ = ["IrcListener", "IrcListenerBase"]
