"""The domain peripherals: proof and mission (one cycle machine),
discipline, mission-control and alfworld.

Each module registers its tools' argument models (``futon.peripherals.args.
register_args``) and implementations (``RealBackend.register``) in its
``install(backend)``, so domain tools go through the same dispatcher and
session as the core tools — no bypass of the envelope.
"""

from __future__ import annotations

from futon.peripherals.dispatch import PhaseGate
from futon.peripherals.tools.backend import RealBackend


def install(backend: RealBackend) -> PhaseGate:
    """Register every domain tool on ``backend``; return the phase gate of
    the cycle peripherals for the dispatcher."""
    from futon.peripherals.domain import alfworld, cycles, discipline, mission_control

    discipline.install(backend)
    mission_control.install(backend)
    alfworld.install(backend)
    return cycles.install(backend)
