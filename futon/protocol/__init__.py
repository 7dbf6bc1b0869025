"""The wire: every shape futon and its clients exchange, and the error tree
whose codes are the wire's error codes.

This package is the bottom layer. It imports nothing else of futon, so the
daemon (transports, pipeline), the client library (``futon.agents``) and
tests build and parse the same models:

- :mod:`futon.protocol.errors` — ``FutonError`` and its subclasses; each
  carries the wire ``code`` and the HTTP status it maps to.
- :mod:`futon.protocol.frames` — WebSocket frames (one pydantic model per
  frame), the codec and its bounds.
- :mod:`futon.protocol.bodies` — HTTP request bodies.
- :mod:`futon.protocol.irc_lines` — IRC line parsing and formatting.
"""
