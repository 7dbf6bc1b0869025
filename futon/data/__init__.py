"""The files futon ships: the three configuration files and the pattern
library, installed with the package (``futon init`` copies them out).

This folder is the one copy: ``make run`` and the tests read it in place,
and a wheel carries it as package data (pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_CONFIG = Path(__file__).resolve().parent / "config"
"""futon.yaml, peripherals.yaml, agents.yaml and patterns/."""

CONFIG_FILES = ("futon.yaml", "peripherals.yaml", "agents.yaml")
"""The three configuration files, futon.yaml first."""

SHIPPED_PATTERNS = SHIPPED_CONFIG / "patterns"
"""The pattern library of the discipline peripheral."""
