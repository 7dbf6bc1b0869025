from __future__ import annotations

from collections.abc import Iterator

import pytest

from futon.peripherals.args import ARGS


@pytest.fixture(autouse=True)
def _restore_tool_args() -> Iterator[None]:
    """install() adds argument models to the engine's global table; put the
    table back so later test modules see the engine as they found it."""
    saved = dict(ARGS)
    yield
    ARGS.clear()
    ARGS.update(saved)
