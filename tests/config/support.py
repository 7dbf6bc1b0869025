"""Shared helpers of the config tests (paths of the shipped files, a
subprocess runner)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "futon" / "data" / "config"  # the one copy, shipped as package data
SHIPPED_FILES = ("futon.yaml", "peripherals.yaml", "agents.yaml")


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_futon(*args: str, cwd: Path | None = None) -> Run:
    """Run ``python -m futon ARGS`` as a real subprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("FUTON_DEBUG", None)
    env.pop("FUTON_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "futon", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)
