"""The embedded IRC server, in layers (issue 14):

- :mod:`~futon.transports.irc.state` — users, channels, modes, the nick table (plain data);
- :mod:`~futon.transports.irc.handlers` — one handler per command: state in, lines to an
  :mod:`~futon.transports.irc.outbox` out, no sockets (RFC behaviour testable without one);
- :mod:`~futon.transports.irc.virtual` — the daemon's users without a connection (agents);
- :mod:`~futon.transports.irc.server` — sockets: accept, read lines, flood bucket,
  registration and ping deadlines, SendQ, write;
- :mod:`~futon.transports.irc.embedded` — the daemon's glue: the server as one side of the relay.

The wire itself (parsing, rendering, rfc1459 case mapping) is
:mod:`futon.protocol.irc_lines`.
"""

from futon.transports.irc.listener import IrcListener, IrcListenerBase
from futon.transports.irc.options import IrcHome, IrcLimits
from futon.transports.irc.server import IrcServer

__all__ = ["IrcHome", "IrcLimits", "IrcListener", "IrcListenerBase", "IrcServer"]
