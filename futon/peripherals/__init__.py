"""Peripherals: capability envelopes and the engine that enforces them.

- ``spec`` — peripherals at run time (the names a spec may use are in
  ``futon.config.catalog``); ``args`` — every tool's typed arguments
  (``argtypes`` their building blocks, ``domain/*_args`` the domain tools');
- ``dispatch`` — the one place that admits or refuses an action;
- ``scope`` — path and command scope checks; ``hop`` — the hop protocol;
- ``session`` / ``runner`` — sessions (start → step* → stop), chains;
- ``fruit`` — what a session hands back; ``tools`` — the backend.
"""
