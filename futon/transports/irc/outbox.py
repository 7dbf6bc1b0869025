"""Where handlers put what clients must see and what the daemon must hear.

Handlers never touch a socket: they append ``(client, message)`` to an
:class:`Outbox`, plus ``(client, None)`` for "hang up after what was queued
before", and queue listener hooks. The server drains both after each
command — lines first, then hooks, in order — so a test can run the same
handlers with no server at all and read the outbox.
"""

from __future__ import annotations

from collections import deque

from futon.protocol.irc_lines import Message, render
from futon.transports.irc.state import Client

Item = tuple[Client, Message | None]
"""A line for a client, or ``None``: close its connection after its earlier lines."""
Hook = tuple[str, tuple[object, ...], dict[str, object]]
"""A listener call: method name, positional and keyword arguments."""


class Outbox:
    """Ordered output of the handlers. Unbounded by design but never long:
    the server drains it after every command, every keepalive round and
    every call of its virtual-user API."""

    def __init__(self) -> None:
        self.items: deque[Item] = deque()
        self.hooks: deque[Hook] = deque()

    def send(self, client: Client, message: Message) -> None:
        """Queue ``message`` for ``client`` unless it is being dropped."""
        if not client.closing:
            self.items.append((client, message))

    def broadcast(self, clients: list[Client], message: Message, *, skip: Client | None = None) -> None:
        """Queue ``message`` for each of ``clients`` but ``skip`` (the sender
        of a channel line), as :meth:`send` would one by one: a channel
        line to 150 members was two calls a member on the hot path."""
        self.items.extend((c, message) for c in clients if c is not skip and not c.closing)

    def last_words(self, client: Client, message: Message) -> None:
        """Queue ``message`` even to a closing client (its ``ERROR`` line)."""
        self.items.append((client, message))

    def hang_up(self, client: Client) -> None:
        self.items.append((client, None))

    def hook(self, name: str, *args: object, **kwargs: object) -> None:
        self.hooks.append((name, args, kwargs))

    def discard(self, client: Client) -> None:
        """Forget what is still queued for ``client`` (it is being dropped
        because it does not read: what it was owed will never arrive)."""
        kept = [item for item in self.items if item[0] is not client]
        self.items.clear()
        self.items.extend(kept)

    def drain(self) -> list[Item]:
        """Everything queued so far, oldest first; the queue is left empty."""
        items = list(self.items)
        self.items.clear()
        return items

    def lines_for(self, client: Client) -> list[str]:
        """What ``client`` would read, rendered (no tags), draining only its
        items. For tests and debugging."""
        mine = [item for item in self.items if item[0] is client]
        self.discard(client)
        return [
            render(Message(m.command, m.params, m.source, {}, m.trailing))
            if m is not None
            else "<hang up>"
            for _, m in mine
        ]


__all__ = ["Hook", "Item", "Outbox"]
