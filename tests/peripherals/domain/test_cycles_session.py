"""Proof and mission sessions through the real runner: real state files
under tmp_path, the real backend with the cycle tools installed, the phase
gate in the dispatcher, and the evidence each session leaves."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from futon.config.models import ToolsSection
from futon.evidence import JsonlStore, MemoryStore
from futon.evidence.store import EvidenceStore
from futon.peripherals.args import ToolArgs
from futon.peripherals.domain import cycles
from futon.peripherals.runner import PeripheralRunner
from futon.peripherals.session import Session
from futon.peripherals.spec import Peripheral
from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.protocol.errors import PermissionDenied, ProtocolError
from tests.peripherals.support import session_entries, shipped_peripherals

# Phase → the outputs cycle-advance demands (plus a little extra, recorded too).
OUTPUTS: list[tuple[str, dict[str, Any]]] = [
    ("observe", {"observations": ["L2 needs a bound on the tail"], "extra": 1}),
    ("propose", {"proposal": {"approach": "dominated convergence"}}),
    ("execute", {"actions": ["wrote notes/L2.md", "upserted L2"]}),
    ("validate", {"validation": "bound checked line by line"}),
    ("classify", {"classification": "success"}),
    ("integrate", {"integration": "L2 proved; L3 unblocked"}),
    ("commit", {"commit": "ledger v-next"}),
    ("gate-review", {"gate_results": "all six gates pass"}),
]


class RecordingRealBackend(RealBackend):
    """The real backend, noting which tools reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.reached: list[str] = []

    async def call(self, tool: str, args: ToolArgs, ctx: ToolContext) -> Any:
        self.reached.append(tool)
        return await super().call(tool, args, ctx)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = (tmp_path / "ws").resolve()
    (root / "corpus" / "deep").mkdir(parents=True)
    (root / "corpus" / "notes.md").write_text(
        "# Notes\n\nThe tail bound follows from dominated convergence.\n\nUnrelated paragraph about cats.\n"
    )
    (root / "corpus" / "deep" / "facts.jsonl").write_text(
        json.dumps({"title": "Tail bound", "text": "a tail bound for the series"})
        + "\nnot json but tail words\n"
    )
    (root / "corpus" / ".hidden.md").write_text("tail tail tail bound bound\n")
    return root


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def build(
    workspace: Path,
    data_dir: Path,
    store: EvidenceStore | None = None,
    *,
    mission_config: dict[str, Any] | None = None,
) -> tuple[PeripheralRunner, RecordingRealBackend]:
    peripherals = shipped_peripherals()
    if mission_config is not None:
        spec = peripherals["mission"].spec.model_copy(update={"config": mission_config})
        peripherals["mission"] = Peripheral("mission", spec)
    backend = RecordingRealBackend()
    gate = cycles.install(backend)
    runner = PeripheralRunner(
        peripherals,
        backend,
        store or MemoryStore(),
        ToolsSection(),
        workspace,
        phase_gate=gate,
        data_dir=data_dir,
    )
    return runner, backend


async def ok(session: Session, tool: str, args: list[Any]) -> Any:
    result = await session.step(tool, args)
    assert result.ok, result.result
    return result.result


async def failed(session: Session, tool: str, args: list[Any]) -> str:
    result = await session.step(tool, args)
    assert not result.ok, result.result
    return str(result.result["error"])


def stored(data_dir: Path, kind: str, state_id: str) -> dict[str, Any]:
    return json.loads((data_dir / kind / f"{state_id}.json").read_text())


async def seed_ledger(session: Session, state_id: str = "P1") -> None:
    await ok(
        session,
        "ledger-upsert",
        [state_id, "L1", {"statement": "lemma 1", "status": "proved", "evidence_type": "proof"}],
    )
    await ok(
        session,
        "ledger-upsert",
        [state_id, "L2", {"statement": "tail bound", "depends_on": ["L1"]}],
    )
    await ok(
        session,
        "ledger-upsert",
        [state_id, "L3", {"statement": "main theorem", "depends_on": ["L2", "L1"]}],
    )


# ====================================================================== proof


async def test_proof_session_runs_one_cycle_end_to_end(
    workspace: Path, data_dir: Path, tmp_path: Path
) -> None:
    """The whole machine: setup tools, every phase with its outputs, the
    gates, the state file on disk and the session's evidence chain."""
    store = JsonlStore(tmp_path / "evidence", fsync="never")
    runner, _ = build(workspace, data_dir, store)
    session = await runner.start("claude-1", "proof")

    fresh = await ok(session, "proof-load", ["P1"])
    assert (fresh["id"], fresh["version"], fresh["ledger"], fresh["cycles"]) == ("P1", 0, {}, [])
    assert session.state.context["problem-id"] == "P1"
    await seed_ledger(session)
    assert await ok(session, "dag-check", ["P1"]) == {
        "acyclic": True,
        "cycle_nodes": [],
        "dangling": [],
    }
    assert await ok(session, "dag-impact", ["P1"]) == [
        {"item_id": "L2", "score": 1, "unlocks": ["L3"]}
    ]
    statement = "For every x, the series converges."
    version = await ok(session, "canonical-update", ["P1", statement, "first statement"])
    assert (
        version["version"] == 1
        and version["sha256"] == hashlib.sha256(statement.encode()).hexdigest()
    )

    assert await ok(session, "cycle-begin", ["P1", "L2"]) == {"cycle_id": "c-1", "phase": "observe"}
    assert session.state.context["cycle-id"] == "c-1"
    phases_seen = []
    for phase, outputs in OUTPUTS:
        if phase == "observe":
            assert (await ok(session, "canonical-get", ["P1"]))["text"] == statement
        if phase == "propose":
            verdict = await ok(session, "status-validate", ["open", "proved", "numerical"])
            assert verdict["valid"] is False
        if phase == "execute":
            await ok(session, "write", ["notes/L2.md", "tail bound by dominated convergence\n"])
            await ok(session, "ledger-upsert", ["P1", "L2", {"status": "partial"}])
        if phase == "classify":
            await ok(
                session,
                "ledger-upsert",
                [
                    "P1",
                    "L2",
                    {"status": "proved", "evidence_type": "proof", "evidence": "notes/L2.md"},
                ],
            )
        if phase == "gate-review":
            gates = await ok(session, "gate-check", ["P1", "c-1"])
            assert gates["all_passed"], gates
            assert [g["gate"] for g in gates["gates"]] == [
                "G5-scope", "G4-proposal", "G3-execution", "G2-validation", "G1-integration", "G0-commit"
            ]  # fmt: skip
        advanced = await ok(session, "cycle-advance", ["P1", "c-1", outputs])
        phases_seen.append(advanced["phase"])
    assert phases_seen == [
        "propose",
        "execute",
        "validate",
        "classify",
        "integrate",
        "commit",
        "gate-review",
        "completed",
    ]
    saved = await ok(session, "proof-save", ["P1"])
    fruit = await session.stop("cycle-completed")
    assert fruit["steps_taken"] == session.state.steps

    # The state file: every save bumped the version (3 upserts, canonical,
    # begin, 8 advances, 2 upserts mid-cycle, the final save).
    document = stored(data_dir, "proof", "P1")
    assert saved == {"id": "P1", "version": 16} and document["version"] == 16
    [cycle] = document["cycles"]
    assert cycle["phase"] == "completed" and cycle["completed_at"] and cycle["blocker_id"] == "L2"
    assert [r["phase"] for r in cycle["history"]] == [p for p, _ in OUTPUTS]
    assert cycle["history"][0]["data"] == OUTPUTS[0][1] and all(
        r["at"].endswith("Z") for r in cycle["history"]
    )
    [current] = document["canonical"]["versions"]
    assert (
        current["sha256"] == hashlib.sha256(statement.encode()).hexdigest()
        and current["reason"] == "first statement"
    )
    l2 = document["ledger"]["L2"]
    assert l2["status"] == "proved" and [(h["from_status"], h["to_status"]) for h in l2["history"]] == [
        (None, "open"), ("open", "partial"), ("partial", "proved")
    ]  # fmt: skip
    assert l2["history"][-1]["cycle_id"] == "c-1"
    assert (workspace / "notes" / "L2.md").exists()
    assert not [
        p for p in (data_dir / "proof").iterdir() if p.name != "P1.json"
    ]  # no temp files left

    assert cycles.cycle_fruit(session.state.context, data_dir, "proof", session.state.steps) == {
        "problem_id": "P1", "cycles_completed": 1, "steps_taken": session.state.steps, "final_phase": "completed"
    }  # fmt: skip

    entries = session_entries(store, session.id)
    claims = [e["evidence/claim-type"] for e in entries]
    assert claims[0] == "goal" and claims[-1] == "conclusion" and set(claims[1:-1]) == {"step"}
    tools = [e["evidence/body"]["tool"] for e in entries if e["evidence/claim-type"] == "step"]
    for tool in (
        "proof-load",
        "ledger-upsert",
        "canonical-update",
        "cycle-begin",
        "cycle-advance",
        "gate-check",
        "proof-save",
    ):
        assert tool in tools
    assert tools.count("cycle-advance") == 8
    for previous, entry in itertools.pairwise(entries):
        assert entry["evidence/in-reply-to"] == previous["evidence/id"]
    await store.aclose()


async def test_setup_refuses_phase_tools_in_the_dispatcher(workspace: Path, data_dir: Path) -> None:
    """Before cycle-begin a proof session is in setup: tools of later phases
    are refused by the dispatcher (phase-tool-not-allowed), never reach the
    backend, and leave a tension entry."""
    store = MemoryStore()
    runner, backend = build(workspace, data_dir, store)
    session = await runner.start("claude-1", "proof")
    for tool, args in [
        ("write", ["x.txt", "nope"]),
        ("bash", ["touch y.txt"]),
        ("cycle-advance", ["P1", "c-1", {"observations": "x"}]),
        ("gate-check", ["P1", "c-1"]),
        ("status-validate", ["open", "partial"]),
    ]:
        with pytest.raises(PermissionDenied) as refused:
            await session.step(tool, args)
        assert refused.value.code == "phase-tool-not-allowed"
        assert "'setup'" in refused.value.message
    assert backend.reached == []
    assert not (workspace / "x.txt").exists() and not (workspace / "y.txt").exists()
    tensions = [
        e for e in session_entries(store, session.id) if e["evidence/claim-type"] == "tension"
    ]
    assert [t["evidence/body"]["code"] for t in tensions] == ["phase-tool-not-allowed"] * 5

    # Setup tools do run.
    await ok(session, "ledger-upsert", ["P1", "L1", {"statement": "s"}])
    assert backend.reached == ["ledger-upsert"]


async def test_each_phase_allows_only_its_tools(workspace: Path, data_dir: Path) -> None:
    runner, _ = build(workspace, data_dir)
    session = await runner.start("claude-1", "proof")
    await seed_ledger(session)
    await ok(session, "cycle-begin", ["P1", "L2"])
    with pytest.raises(PermissionDenied, match="phase 'observe' of cycle c-1"):
        await session.step("write", ["x.txt", "not yet"])
    with pytest.raises(PermissionDenied):
        await session.step("ledger-upsert", ["P1", "L2", {"status": "partial"}])
    await ok(session, "cycle-advance", ["P1", "c-1", OUTPUTS[0][1]])
    with pytest.raises(PermissionDenied):
        await session.step("bash", ["true"])  # propose only looks
    await ok(session, "cycle-advance", ["P1", "c-1", OUTPUTS[1][1]])
    await ok(session, "write", ["x.txt", "now\n"])  # execute may change files
    await ok(session, "cycle-advance", ["P1", "c-1", OUTPUTS[2][1]])
    with pytest.raises(PermissionDenied) as refused:
        await session.step("write", ["x.txt", "again"])  # validate may not
    assert refused.value.context["phase"] == "validate"


async def test_a_forged_context_does_not_open_a_phase(workspace: Path, data_dir: Path) -> None:
    """The gate reads the phase from the state file of the cycle the tools
    registered, never from what a client put in the starting context."""
    runner, _ = build(workspace, data_dir)
    forged = {"problem-id": "P1", "cycle-id": "c-1", "cycle-phase": "execute"}
    session = await runner.start("claude-1", "proof", context=forged)
    with pytest.raises(PermissionDenied) as refused:
        await session.step("write", ["x.txt", "sneak"])
    assert refused.value.context["phase"] == "setup"


async def test_advancing_needs_the_phase_outputs(workspace: Path, data_dir: Path) -> None:
    runner, _ = build(workspace, data_dir)
    session = await runner.start("claude-1", "proof")
    await seed_ledger(session)
    await ok(session, "cycle-begin", ["P1", "L2"])
    before = (data_dir / "proof" / "P1.json").read_bytes()
    error = await failed(session, "cycle-advance", ["P1", "c-1", {"notes": "forgot"}])
    assert "'observations'" in error and "nothing saved" in error
    error = await failed(session, "cycle-advance", ["P1", "c-1", {"observations": []}])
    assert "'observations'" in error
    assert (data_dir / "proof" / "P1.json").read_bytes() == before
    assert (await ok(session, "cycle-get", ["P1", "c-1"]))["phase"] == "observe"


async def test_a_cycle_cannot_begin_while_one_is_open(workspace: Path, data_dir: Path) -> None:
    runner, _ = build(workspace, data_dir)
    first = await runner.start("claude-1", "proof")
    await seed_ledger(first)
    await ok(first, "cycle-begin", ["P1", "L2"])
    with pytest.raises(PermissionDenied):  # mid-cycle, cycle-begin is not even a phase tool
        await first.step("cycle-begin", ["P1", "L3"])

    second = await runner.start("codex-1", "proof")
    error = await failed(second, "cycle-begin", ["P1", "L3"])
    assert "cycle c-1 is still in phase 'observe'" in error
    # Loading resumes the open cycle in the second session: its phase is observe now.
    await ok(second, "proof-load", ["P1"])
    assert second.state.context["cycle-id"] == "c-1"
    await ok(second, "cycle-advance", ["P1", "c-1", OUTPUTS[0][1]])
    # The first session follows the file: it is in propose too.
    with pytest.raises(PermissionDenied) as refused:
        await first.step("write", ["x.txt", "no"])
    assert refused.value.context["phase"] == "propose"
    assert len(stored(data_dir, "proof", "P1")["cycles"]) == 1


async def test_gate_review_cannot_complete_with_failed_gates(
    workspace: Path, data_dir: Path
) -> None:
    runner, _ = build(workspace, data_dir)
    session = await runner.start("claude-1", "proof")
    await seed_ledger(session)
    await ok(session, "failed-route-add", ["P1", {
        "blocker_id": "L9", "approach": "Dominated  convergence", "structural_obstruction": "no dominating function",
        "failure_reason": "the tail is not integrable",
    }])  # fmt: skip
    await ok(session, "cycle-begin", ["P1", "L9"])  # L9 is not in the ledger
    for _, outputs in OUTPUTS[:-1]:
        await ok(session, "cycle-advance", ["P1", "c-1", outputs])
    gates = await ok(session, "gate-check", ["P1", "c-1"])
    failed_gates = {g["gate"]: g["reason"] for g in gates["gates"] if not g["passed"]}
    assert gates["all_passed"] is False and set(failed_gates) == {"G5-scope", "G4-proposal"}
    assert "'L9' is not a ledger item" in failed_gates["G5-scope"]
    assert "repeats failed route fr-1" in failed_gates["G4-proposal"]
    error = await failed(session, "cycle-advance", ["P1", "c-1", OUTPUTS[-1][1]])
    assert "cannot complete" in error and "G5-scope failed" in error
    assert stored(data_dir, "proof", "P1")["cycles"][0]["phase"] == "gate-review"


async def test_status_rules_hold_for_upserts(workspace: Path, data_dir: Path) -> None:
    runner, _ = build(workspace, data_dir)
    session = await runner.start("claude-1", "proof")
    await ok(session, "ledger-upsert", ["P1", "L1", {"statement": "refuted", "status": "false"}])
    before = (data_dir / "proof" / "P1.json").read_bytes()
    assert "nothing leaves 'false'" in await failed(
        session, "ledger-upsert", ["P1", "L1", {"status": "open"}]
    )
    error = await failed(
        session, "ledger-upsert", ["P1", "L2", {"status": "proved", "evidence_type": "numerical"}]
    )
    assert "numerical evidence alone" in error
    assert "needs evidence" in await failed(
        session, "ledger-upsert", ["P1", "L2", {"status": "proved"}]
    )
    assert "unknown status" in await failed(
        session, "ledger-upsert", ["P1", "L2", {"status": "maybe"}]
    )
    assert (data_dir / "proof" / "P1.json").read_bytes() == before
    await ok(
        session,
        "ledger-upsert",
        ["P1", "L2", {"status": "numerically-verified", "evidence_type": "numerical"}],
    )
    # Changing only the evidence of a proved claim to numerical is the same move.
    await ok(session, "ledger-upsert", ["P1", "L3", {"status": "proved", "evidence_type": "proof"}])
    assert "numerical evidence alone" in await failed(
        session, "ledger-upsert", ["P1", "L3", {"evidence_type": "numerical"}]
    )
    assert [i["id"] for i in await ok(session, "ledger-query", ["P1", {"status": "proved"}])] == [
        "L3"
    ]


async def test_cyclic_dag_edits_are_refused(workspace: Path, data_dir: Path) -> None:
    runner, _ = build(workspace, data_dir)
    session = await runner.start("claude-1", "proof")
    await seed_ledger(session)
    before = (data_dir / "proof" / "P1.json").read_bytes()
    error = await failed(session, "ledger-upsert", ["P1", "L1", {"depends_on": ["L3"]}])
    assert (
        "would close a cycle L1 → L3 → L2 → L1" in error
        or "would close a cycle L1 → L3 → L1" in error
    )
    assert "cycle L4 → L4" in await failed(
        session, "ledger-upsert", ["P1", "L4", {"depends_on": ["L4"]}]
    )
    assert (data_dir / "proof" / "P1.json").read_bytes() == before


async def test_dag_check_reports_dangling_dependencies(workspace: Path, data_dir: Path) -> None:
    runner, _ = build(workspace, data_dir)
    session = await runner.start("claude-1", "proof")
    await ok(session, "ledger-upsert", ["P1", "L1", {"depends_on": ["L9", "L8"]}])
    await ok(session, "ledger-upsert", ["P1", "L2", {"depends_on": ["L1"]}])
    assert await ok(session, "dag-check", ["P1"]) == {
        "acyclic": True, "cycle_nodes": [], "dangling": [{"item_id": "L1", "missing": ["L8", "L9"]}]
    }  # fmt: skip


async def test_a_corrupt_state_file_is_reported_and_never_overwritten(
    workspace: Path, data_dir: Path
) -> None:
    runner, _ = build(workspace, data_dir)
    session = await runner.start("claude-1", "proof")
    path = data_dir / "proof" / "P1.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"id": "P1", "kind": "proof", "version": 3,\n oops')
    error = await failed(session, "proof-load", ["P1"])
    assert (
        "proof state 'P1' is corrupt (proof/P1.json: line 2" in error
        and "will not be overwritten" in error
    )
    for tool, args in [
        ("proof-save", ["P1"]),
        ("proof-save", ["P1", {"ledger": {}}]),
        ("ledger-upsert", ["P1", "L1", {"statement": "x"}]),
        ("canonical-update", ["P1", "text", "why"]),
        ("cycle-begin", ["P1", "L1"]),
        (
            "failed-route-add",
            [
                "P1",
                {
                    "blocker_id": "L1",
                    "approach": "a",
                    "structural_obstruction": "",
                    "failure_reason": "r",
                },
            ],
        ),
    ]:
        assert "is corrupt" in await failed(session, tool, args)
    assert path.read_bytes() == b'{"id": "P1", "kind": "proof", "version": 3,\n oops'
    assert sorted(p.name for p in path.parent.iterdir()) == ["P1.json"]


@pytest.mark.parametrize("bad", ["../x", "", "a" * 129, ".hidden", "a/b", "x\n"])
async def test_bad_ids_are_invalid_input(workspace: Path, data_dir: Path, bad: str) -> None:
    runner, backend = build(workspace, data_dir)
    session = await runner.start("claude-1", "proof")
    with pytest.raises(ProtocolError) as refused:
        await session.step("proof-load", [bad])
    assert refused.value.code == "invalid-input" and "'id'" in refused.value.message
    with pytest.raises(ProtocolError):
        await session.step("ledger-upsert", ["P1", bad, {}])
    assert backend.reached == [] and not data_dir.exists()


async def test_save_with_a_state_applies_item_edits_under_the_rules(
    workspace: Path, data_dir: Path
) -> None:
    runner, _ = build(workspace, data_dir)
    session = await runner.start("claude-1", "proof")
    await seed_ledger(session)
    state = await ok(session, "proof-load", ["P1"])
    state["ledger"]["L2"]["statement"] = "tail bound, sharpened"
    state["ledger"]["L4"] = {"statement": "corollary", "depends_on": ["L3"]}
    state["notes"] = {"todo": "L3"}
    assert await ok(session, "proof-save", ["P1", state]) == {"id": "P1", "version": 4}
    document = stored(data_dir, "proof", "P1")
    assert document["ledger"]["L2"]["statement"] == "tail bound, sharpened"
    assert document["ledger"]["L4"]["status"] == "open" and document["notes"] == {"todo": "L3"}
    assert (
        document["ledger"]["L1"]["updated_at"] == state["ledger"]["L1"]["updated_at"]
    )  # untouched

    assert "stale" in await failed(session, "proof-save", ["P1", state])  # still says version 3
    fresh = await ok(session, "proof-load", ["P1"])
    fresh["ledger"]["L1"]["status"] = "open"
    fresh["ledger"]["L1"]["depends_on"] = ["L4"]
    assert "would close a cycle through L1, L2, L3, L4" in await failed(
        session, "proof-save", ["P1", fresh]
    )
    # Reversing an edge within one save is fine: the DAG is judged as a whole.
    fresh = await ok(session, "proof-load", ["P1"])
    fresh["ledger"]["L4"]["depends_on"] = []
    fresh["ledger"]["L3"]["depends_on"] = ["L2", "L1", "L4"]
    assert "L3" in [r["item_id"] for r in await ok(session, "dag-impact", ["P1"])]
    assert (await ok(session, "proof-save", ["P1", fresh]))["version"] == 5
    assert stored(data_dir, "proof", "P1")["ledger"]["L3"]["depends_on"] == ["L2", "L1", "L4"]
    fresh = await ok(session, "proof-load", ["P1"])
    fresh["cycles"] = [{"id": "c-1"}]
    assert "'cycles' is changed only by cycle-begin" in await failed(
        session, "proof-save", ["P1", fresh]
    )
    fresh = await ok(session, "proof-load", ["P1"])
    del fresh["ledger"]["L4"]
    assert "cannot be removed (L4)" in await failed(session, "proof-save", ["P1", fresh])
    assert stored(data_dir, "proof", "P1")["version"] == 5


# ==================================================================== mission


async def test_mission_session_with_corpus_and_evidence(workspace: Path, data_dir: Path) -> None:
    store = MemoryStore()
    runner, _ = build(workspace, data_dir, store, mission_config={"corpus_dir": "corpus"})
    session = await runner.start("claude-1", "mission")
    with pytest.raises(PermissionDenied) as refused:
        await session.step("corpus-check", ["tail bound"])  # not a setup tool
    assert refused.value.code == "phase-tool-not-allowed"
    with pytest.raises(PermissionDenied) as refused:
        await session.step("ledger-upsert", ["M1", "O1", {}])  # proof's tool, not mission's
    assert refused.value.code == "tool-not-allowed"

    await ok(session, "mission-load", ["M1"])
    assert session.state.context["mission-id"] == "M1"
    await ok(
        session,
        "obligation-upsert",
        ["M1", "O1", {"statement": "ship the parser", "status": "partial"}],
    )
    await ok(
        session,
        "obligation-upsert",
        ["M1", "O2", {"statement": "document it", "depends_on": ["O1"]}],
    )
    spec = await ok(
        session, "mission-spec-update", ["M1", "Parse and document the format.", "kick-off"]
    )
    assert spec["version"] == 1
    assert "already this text" in await failed(
        session, "mission-spec-update", ["M1", "Parse and document the format.", "again"]
    )
    await ok(session, "failed-approach-add", ["M1", {
        "blocker_id": "O1", "approach": "regex parser", "structural_obstruction": "nested brackets",
        "failure_reason": "not a regular language",
    }])  # fmt: skip
    await ok(session, "cycle-begin", ["M1", "O1"])

    found = await ok(session, "corpus-check", ["tail bound"])
    sources = [hit["source"] for hit in found["hits"]]
    assert sources and all(not s.startswith(".") for s in sources)
    assert {"notes.md:3", "deep/facts.jsonl:1", "deep/facts.jsonl:2"} <= set(sources)
    assert all(hit["score"] > 0 and hit["excerpt"] for hit in found["hits"])
    assert [h["score"] for h in found["hits"]] == sorted(
        (h["score"] for h in found["hits"]), reverse=True
    )
    landscape = await ok(
        session, "evidence-query", [{"session-id": session.id, "claim-type": "step"}]
    )
    assert landscape["entries"] and {e["evidence/body"]["tool"] for e in landscape["entries"]} >= {
        "mission-load",
        "cycle-begin",
    }
    with pytest.raises(ProtocolError):
        await session.step("evidence-query", [{"colour": "blue"}])

    for _phase, outputs in OUTPUTS:
        if _phase == "classify":
            await ok(
                session,
                "obligation-upsert",
                ["M1", "O1", {"status": "proved", "evidence_type": "tests+review"}],
            )
        await ok(session, "cycle-advance", ["M1", "c-1", outputs])
    await ok(session, "mission-save", ["M1"])
    await session.stop("cycle-completed")

    document = stored(data_dir, "mission", "M1")
    assert set(document) >= {"obligations", "spec", "failed_approaches", "cycles"}
    assert (
        document["failed_approaches"][0]["id"] == "fa-1"
        and document["cycles"][0]["phase"] == "completed"
    )
    assert (
        document["spec"]["versions"][0]["sha256"]
        == hashlib.sha256(b"Parse and document the format.").hexdigest()
    )
    assert cycles.cycle_fruit(session.state.context, data_dir, "mission", session.state.steps) == {
        "mission_id": "M1", "cycles_completed": 1, "steps_taken": session.state.steps, "final_phase": "completed"
    }  # fmt: skip
    steps = [e for e in session_entries(store, session.id) if e["evidence/claim-type"] == "step"]
    assert {"corpus-check", "evidence-query", "obligation-upsert", "mission-spec-update"} <= {
        e["evidence/body"]["tool"] for e in steps
    }


async def test_corpus_check_without_a_corpus_says_so(workspace: Path, data_dir: Path) -> None:
    runner, _ = build(workspace, data_dir)
    session = await runner.start("claude-1", "mission")
    await ok(session, "cycle-begin", ["M1", "O1"])
    assert await ok(session, "corpus-check", ["anything"]) == {
        "hits": [], "note": "no corpus configured (peripherals.yaml mission.config.corpus_dir)"
    }  # fmt: skip


async def test_corpus_check_with_a_missing_folder_fails(workspace: Path, data_dir: Path) -> None:
    runner, _ = build(workspace, data_dir, mission_config={"corpus_dir": "nowhere"})
    session = await runner.start("claude-1", "mission")
    await ok(session, "cycle-begin", ["M1", "O1"])
    assert "'nowhere'" in await failed(session, "corpus-check", ["anything"])


async def test_the_gate_leaves_other_peripherals_alone(workspace: Path, data_dir: Path) -> None:
    runner, backend = build(workspace, data_dir)
    session = await runner.start("claude-1", "explore")
    await ok(session, "glob", ["**/*.md"])
    assert backend.reached == ["glob"]
