"""Fixtures for the real tool backend: a workspace of real files under
tmp_path, a context over it, and a ``call`` that goes through argument
parsing the way the dispatcher does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from futon.config.models import ToolsSection
from futon.peripherals.args import parse_args
from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.peripherals.tools.limits import ProcessLimiter

Call = Callable[..., Awaitable[Any]]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A small project; the path is real (no symlinks), as ToolContext wants."""
    root = (tmp_path / "ws").resolve()
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "app.py").write_text("def add(a, b):\n    return a - b\n")
    (root / "src" / "pkg" / "mod.py").write_text("import os\nVALUE = 1\n")
    (root / "docs").mkdir()
    (root / "docs" / "guide.md").write_text("# Guide\nSee add().\n")
    (root / ".hidden").write_text("secret-ish but inside\n")
    (root / "README.md").write_text("hello\nworld\n")
    return root


def make_ctx(workspace: Path, **settings: Any) -> ToolContext:
    writable = settings.pop("writable", None)
    store = settings.pop("store", None)
    session_id = settings.pop("session_id", "sess-1")
    return ToolContext(
        workspace=workspace,
        settings=ToolsSection(**settings),
        session_id=session_id,
        agent_id="agent-1",
        writable=writable,
        store=store,
    )


@pytest.fixture
def ctx(ws: Path) -> ToolContext:
    return make_ctx(ws)


@pytest.fixture(scope="session")
def backend() -> RealBackend:
    # A small pids limit keeps any runaway test cheap.
    return RealBackend(limiter=ProcessLimiter(pids_max=64))


@pytest.fixture
def call(backend: RealBackend) -> Call:
    async def run(
        tool: str, args: list[Any], ctx: ToolContext, *, using: RealBackend | None = None
    ) -> Any:
        return await (using or backend).call(tool, parse_args(tool, args), ctx)

    return run
