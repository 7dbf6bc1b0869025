"""futon.transports — WebSocket, HTTP and IRC (docs/ws-protocol.md, docs/http-api.md,
docs/irc.md)."""
