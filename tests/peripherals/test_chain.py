"""run_chain: a scripted sequence of peripherals in one session; a refused
action anywhere in the chain means nothing runs at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from futon.evidence import EvidenceQuery, MemoryStore
from futon.peripherals.runner import ChainStep
from futon.protocol.errors import FutonError
from tests.peripherals.support import RecordingBackend, make_runner, session_entries


async def test_chain_hops_through_its_steps_in_one_session(workspace: Path) -> None:
    store = MemoryStore()
    backend = RecordingBackend(replies={"read": "text", "edit": {"file": "src/app.py", "replacements": 1}})
    runner = make_runner(workspace, backend, store)
    result = await runner.run_chain(
        "claude-1",
        [
            ChainStep("explore", [{"tool": "read", "args": ["src/app.py"]}], exit_condition="found-target"),
            ChainStep("edit", [{"tool": "edit", "args": ["src/app.py", "a - b", "a + b"]}]),
        ],
    )
    assert backend.tools == ["read", "edit"]
    assert result.peripheral_id == "edit"
    assert result.fruit["changed_files"] == ["src/app.py"]
    kinds = [e["evidence/type"] for e in session_entries(store, result.session_id)]
    assert kinds == ["coordination", "coordination", "mode-transition", "coordination", "coordination"]


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        ([ChainStep("explore", [{"tool": "read", "args": ["src/app.py"]}, {"tool": "write", "args": ["x", "y"]}])], "tool-not-allowed"),
        ([ChainStep("explore", [{"tool": "read", "args": ["src/app.py"]}], "found-target"),
          ChainStep("edit", [{"tool": "edit", "args": ["../outside/secret.txt", "s", "x"]}])], "out-of-scope"),
        ([ChainStep("explore", [{"tool": "read", "args": ["src/app.py"]}], "found-target"),
          ChainStep("deploy", [])], "hop-not-allowed"),
        ([ChainStep("explore", [{"args": ["src/app.py"]}])], "invalid-input"),
        ([ChainStep("warp", [])], "unknown-peripheral"),
    ],
)  # fmt: skip
async def test_a_refused_action_anywhere_means_nothing_runs(workspace: Path, steps: list[ChainStep], code: str) -> None:
    store = MemoryStore()
    backend = RecordingBackend()
    runner = make_runner(workspace, backend, store)
    with pytest.raises(FutonError) as caught:
        await runner.run_chain("codex-1", steps)
    assert caught.value.code == code
    assert backend.calls == []
    assert runner.sessions() == []
    if code != "unknown-peripheral":
        tension = store.query(EvidenceQuery(claim_type="tension")).entries
        assert [t["evidence/body"]["code"] for t in tension] == [code]
        assert tension[0]["evidence/author"] == "codex-1"
