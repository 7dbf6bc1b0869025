"""Fixtures for the config tests: real files in tmp_path, the CLI run
in-process (the subprocess runner is in ``support``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from futon.cli import main
from tests.config.support import SHIPPED, SHIPPED_FILES, Run


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """A copy of the shipped config/ folder; returns its futon.yaml."""
    folder = tmp_path / "config"
    folder.mkdir()
    for name in SHIPPED_FILES:
        shutil.copyfile(SHIPPED / name, folder / name)
    return folder / "futon.yaml"


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a three-file config into tmp_path/cfg; each argument is one
    file's text (None: the shipped file). Returns the futon.yaml path."""

    def write(
        futon: str | None = None, peripherals: str | None = None, agents: str | None = None
    ) -> Path:
        folder = tmp_path / "cfg"
        folder.mkdir(exist_ok=True)
        for name, text in zip(SHIPPED_FILES, (futon, peripherals, agents), strict=True):
            (folder / name).write_text(text if text is not None else (SHIPPED / name).read_text())
        return folder / "futon.yaml"

    return write


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    """Run ``futon ARGS`` in-process; returns exit code, stdout, stderr."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
