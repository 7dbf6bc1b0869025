"""The envelope is a wall: every tool tried against every shipped
peripheral reaches the backend exactly when the peripheral's tool set
allows it, and every refusal is a tension entry in the session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from futon.errors import PermissionDenied
from futon.evidence import MemoryStore
from futon.peripherals.catalog import KNOWN_TOOLS
from tests.peripherals.support import (
    RecordingBackend,
    make_runner,
    session_entries,
    shipped_peripherals,
)

# In-scope arguments for each tool, so that only the tool set decides.
SAMPLE_ARGS: dict[str, list[Any]] = {
    "read": ["src/app.py"],
    "glob": ["**/*.py", "src"],
    "grep": ["def", "src"],
    "edit": ["src/app.py", "a - b", "a + b"],
    "write": ["src/new.py", "x = 1\n"],
    "bash": ["true"],
    "bash-test": ["pytest -q"],
    "bash-git": ["git status"],
    "bash-deploy": ["./deploy.sh"],
    "bash-readonly": ["ls"],
    "web-fetch": ["https://example.org/"],
    "musn-log": [],
}

PERIPHERALS = shipped_peripherals()


@pytest.mark.parametrize("peripheral_id", sorted(PERIPHERALS))
async def test_backend_is_reached_exactly_for_allowed_tools(workspace: Path, peripheral_id: str) -> None:
    """Every known tool against this peripheral: allowed → the backend ran
    it once; not allowed → tool-not-allowed, the backend untouched, and a
    tension entry naming the tool."""
    backend = RecordingBackend()
    store = MemoryStore()
    runner = make_runner(workspace, backend, store, deploy_commands=["./deploy.sh"])
    # reflect reads only files its session's evidence names: name one.
    session = await runner.start("claude-1", peripheral_id, context={"target-files": ["src/app.py"]})
    reached, refused = [], []
    for tool in sorted(KNOWN_TOOLS):
        before = len(backend.calls)
        try:
            result = await session.step(tool, SAMPLE_ARGS.get(tool, []))
        except PermissionDenied as exc:
            assert exc.code == "tool-not-allowed", (tool, exc)
            assert len(backend.calls) == before, f"{tool} was refused but reached the backend"
            tension = session_entries(store, session.id)[-1]
            assert (tension["evidence/claim-type"], tension["evidence/body"]["tool"]) == ("tension", tool)
            refused.append(tool)
        else:
            assert result.ok and backend.tools[before:] == [tool], tool
            reached.append(tool)
    assert set(reached) == PERIPHERALS[peripheral_id].tools
    assert set(refused) == KNOWN_TOOLS - PERIPHERALS[peripheral_id].tools


def test_the_shipped_envelopes_match_the_spec_table() -> None:
    """peripherals.md, the eleven: tool sets as the table gives them."""
    expected = {
        "explore": "read glob grep bash-readonly web-fetch",
        "edit": "read edit write bash",
        "test": "read bash-test",
        "deploy": "bash-git bash-deploy",
        "reflect": "read musn-log",
        "chat": "",
        "discipline": "psr-search psr-select pur-update pur-mark-pivot par-punctuate",
        "alfworld": "alfworld-action bell whistle",
    }
    for pid, tools in expected.items():
        assert PERIPHERALS[pid].tools == frozenset(tools.split()), pid


async def test_an_action_in_chat_is_refused_because_chat_only_talks(workspace: Path) -> None:
    runner = make_runner(workspace)
    session = await runner.start("claude-1", "chat")
    with pytest.raises(PermissionDenied, match="only talks"):
        await session.step("read", ["README.md"])
