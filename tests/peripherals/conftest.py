from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A small project: src/, docs/, tests/, a file outside the workspace
    and a symlink pointing at it."""
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "tests").mkdir()
    (root / "src" / "app.py").write_text("def add(a, b):\n    return a - b\n")
    (root / "docs" / "guide.md").write_text("# Guide\n")
    (root / "README.md").write_text("hello\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    (root / "src" / "escape").symlink_to(outside)
    (root / "src" / "leak.txt").symlink_to(outside / "secret.txt")
    return root
