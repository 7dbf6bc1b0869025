"""The Codex App Server protocol, as the ``codex-app-server`` driver speaks it.

- :mod:`.schema`: the pinned version, the part of ``codex app-server
  generate-json-schema`` futon relies on (kept in ``schema-0.169.0.json``),
  and the version check a driver makes before it starts;
- :mod:`.models`: typed messages (pydantic) for the requests futon sends,
  the notifications it reads and the approval requests it answers;
- :mod:`.jsonrpc`: a JSON-RPC client over a child process's stdio;
- :mod:`.walls`: the App Server's sandbox (its view of the host);
- :mod:`.egress` and :mod:`.tunnel`: its only way out, to the model server
  (the outside and the inside end of the forwarder).
"""
