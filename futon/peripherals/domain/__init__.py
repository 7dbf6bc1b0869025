"""The domain peripherals: proof and mission (one cycle machine),
discipline, mission-control and alfworld.

Each has two modules: ``<name>_args`` holds its tools' argument models (wire
shapes only, listed in ``futon.peripherals.args.ARGS`` at import, so a schema
never needs a backend) and ``<name>`` (``cycles`` for proof and mission) its
tools, registered on a ``RealBackend`` by :func:`futon.peripherals.domain.
installer.install`.

This package's ``__init__`` imports nothing: the argument registry imports
the ``*_args`` modules through it, and the tools import that registry.
"""
