"""Peripherals: capability envelopes and the engine that enforces them.

- ``catalog`` — every tool and scope name a spec may use;
- ``spec`` — peripherals at run time; ``args`` — typed tool arguments;
- ``dispatch`` — the one place that admits or refuses an action;
- ``scope`` — path and command scope checks; ``hop`` — the hop protocol;
- ``session`` / ``runner`` — sessions (start → step* → stop), chains;
- ``fruit`` — what a session hands back; ``tools`` — the backend.
"""
