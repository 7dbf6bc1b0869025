"""The envelope is a wall: every tool tried against every shipped
peripheral reaches the backend exactly when the peripheral's tool set
allows it, and every refusal is a tension entry in the session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from futon.config.catalog import KNOWN_TOOLS
from futon.evidence import MemoryStore
from futon.peripherals.domain.installer import install as install_domain
from futon.peripherals.tools.backend import RealBackend
from futon.protocol.errors import PermissionDenied
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
    "evidence-search": ["retry logic"],
    # domain tools
    "proof-load": ["P1"], "proof-save": ["P1"], "ledger-query": ["P1"], "ledger-upsert": ["P1", "L1", {}],
    "mission-load": ["M1"], "mission-save": ["M1"], "obligation-query": ["M1"], "obligation-upsert": ["M1", "O1", {}],
    "dag-check": ["P1"], "dag-impact": ["P1"], "canonical-get": ["P1"], "canonical-update": ["P1", "text", "why"],
    "mission-spec-get": ["M1"], "mission-spec-update": ["M1", "text", "why"], "cycle-begin": ["P1", "L1"],
    "cycle-advance": ["P1", "c-1", {"observations": "x"}], "cycle-get": ["P1", "c-1"], "cycle-list": ["P1"],
    "failed-route-add": ["P1", {"blocker_id": "L1", "approach": "a", "structural_obstruction": "", "failure_reason": "r"}],
    "failed-approach-add": ["M1", {"blocker_id": "O1", "approach": "a", "structural_obstruction": "", "failure_reason": "r"}],
    "status-validate": ["open", "partial"], "gate-check": ["P1", "c-1"], "corpus-check": ["query"],
    "evidence-query": [{}], "psr-search": ["scout"], "psr-select": ["scout-before-edit"],
    "pur-update": ["scout-before-edit", "pass"], "pur-mark-pivot": ["scout-before-edit", "wrong"],
    "par-punctuate": ["done"], "mc-inventory": [], "mc-devmaps": [], "mc-coverage": [], "mc-mana": [],
    "mc-review": [], "mc-bulletin": ["hello"], "alfworld-action": ["look"], "bell": ["#futon", "hi"],
    "whistle": ["codex-1", "hi"],
}  # fmt: skip

# Every domain tool's argument model is registered, whatever ran before.
install_domain(RealBackend())

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
    assert set(SAMPLE_ARGS) == KNOWN_TOOLS
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
        "explore": "read glob grep bash-readonly web-fetch evidence-search",
        "edit": "read edit write bash",
        "test": "read bash-test",
        "deploy": "bash-git bash-deploy",
        "reflect": "read musn-log evidence-search",
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


def test_a_read_only_peripheral_refuses_writes_even_if_it_lists_them(tmp_path: Path) -> None:
    """``read_only`` is a wall in the dispatcher too, not only for bash; the
    config refuses such a peripheral, so this builds one past validation."""
    from futon.config.models import PeripheralSpec, ToolsSection
    from futon.peripherals.dispatch import Dispatcher, Envelope
    from futon.peripherals.spec import Peripheral
    from futon.protocol.errors import PermissionDenied

    with pytest.raises(ValueError, match="read_only is true"):
        PeripheralSpec(tools=["read", "write"], scope="full-codebase", read_only=True, entry=["default"], exit=["done"])
    spec = PeripheralSpec.model_construct(
        tools=["read", "write", "edit"], scope="full-codebase", read_only=True, entry=["default"], exit=["done"],
        context=["session-id"], config={},
    )  # fmt: skip
    envelope = Envelope(Peripheral("peek", spec), tmp_path.resolve(), "s1")
    for tool, args in (("write", ["a.txt", "x"]), ("edit", ["a.txt", "x", "y"])):
        with pytest.raises(PermissionDenied) as refused:
            Dispatcher(ToolsSection()).admit(envelope, tool, args)
        assert refused.value.code == "out-of-scope"
    assert not (tmp_path / "a.txt").exists()
