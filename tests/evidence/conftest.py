from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from futon.evidence import EvidenceStore, JsonlStore, MemoryStore


def entry(**overrides: Any) -> dict[str, Any]:
    """A valid compact-spelling entry; keyword overrides replace fields."""
    base: dict[str, Any] = {
        "subject": {"ref/type": "session", "ref/id": "sess-1"},
        "type": "coordination",
        "claim-type": "step",
        "author": "claude-1",
    }
    base.update(overrides)
    return base


@pytest.fixture(params=["memory", "jsonl", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EvidenceStore]:
    """Every backend: every behaviour test runs against each (postgres on a
    fresh database of the session's throwaway cluster)."""
    s: EvidenceStore
    if request.param == "postgres":
        from futon.evidence.postgres import PostgresStore

        s = PostgresStore(request.getfixturevalue("pg_dsn"))
    else:
        s = MemoryStore() if request.param == "memory" else JsonlStore(tmp_path / "ev", fsync="never")
    yield s
    s.close()
