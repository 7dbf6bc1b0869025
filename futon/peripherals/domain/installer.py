"""Wiring the domain peripherals into a backend: :func:`install` registers
every domain tool's implementation on a ``RealBackend`` and returns the
cycle peripherals' phase gate and each domain peripheral's fruit, so domain
tools go through the same dispatcher and session as the core tools — no
bypass of the envelope. (Their argument models need no wiring: they are in
``futon.peripherals.args.ARGS`` at import.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from futon.peripherals.dispatch import PhaseGate
from futon.peripherals.domain import alfworld, cycles, discipline, mission_control
from futon.peripherals.session import FruitFn, FruitInput
from futon.peripherals.tools.backend import RealBackend


@dataclass(frozen=True)
class Installed:
    phase_gate: PhaseGate
    fruits: dict[str, FruitFn]


def install(
    backend: RealBackend,
    *,
    patterns_dir: Path | None = None,
    repos: list[Path] | None = None,
) -> Installed:
    """Register every domain tool on ``backend``; return the cycle
    peripherals' phase gate and each domain peripheral's fruit."""
    discipline.install(backend, patterns_dir=patterns_dir)
    mission_control.install(backend, repos=repos)
    alfworld.install(backend)
    gate = cycles.install(backend)

    def cycle(given: FruitInput) -> dict[str, Any]:
        return cycles.cycle_fruit(
            given.session_context, given.data_dir, given.peripheral_id, given.steps
        )

    fruits: dict[str, FruitFn] = {
        "proof": cycle,
        "mission": cycle,
        "discipline": lambda given: discipline.discipline_fruit(given.session_context),
        "mission-control": lambda given: mission_control.mission_control_fruit(
            given.session_context, given.steps
        ),
        "alfworld": lambda given: alfworld.alfworld_fruit(given.session_context, given.steps),
    }
    return Installed(gate, fruits)
