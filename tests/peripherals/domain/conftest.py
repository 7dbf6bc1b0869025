from __future__ import annotations

from collections.abc import Iterator

import pytest

from futon.peripherals.args import ARGS


@pytest.fixture(autouse=True)
def _restore_tool_args() -> Iterator[None]:
    """Every tool's argument model is in the global table at import; a test
    that registers one of its own (register_args) must not leak it, so the
    table is put back as it was found."""
    saved = dict(ARGS)
    yield
    ARGS.clear()
    ARGS.update(saved)
