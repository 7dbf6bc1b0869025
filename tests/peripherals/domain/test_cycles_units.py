"""The cycle machine's parts on their own: status rules, the DAG, the state
files, the corpus search, the phase table and the fruit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from futon.peripherals.args import args_schema, parse_args
from futon.peripherals.domain import cycle_corpus, cycle_dag, cycles
from futon.peripherals.domain.cycle_phases import (
    PHASE_TOOLS,
    REQUIRED_OUTPUTS,
    missing_outputs,
    next_phase,
)
from futon.peripherals.domain.cycle_state import (
    MISSION,
    PROOF,
    ProofState,
    StateFiles,
    atomic_write,
)
from futon.peripherals.domain.cycle_status import validate_transition
from futon.protocol.errors import ProtocolError, ToolError
from tests.peripherals.support import shipped_peripherals

# ------------------------------------------------------------------ statuses


@pytest.mark.parametrize(
    ("from_", "to", "evidence", "valid"),
    [
        ("open", "partial", None, True),
        (None, "open", None, True),
        ("partial", "proved", "proof", True),
        ("open", "proved", "numerical", False),
        ("open", "proved", "Numerical + simulation", False),
        ("open", "proved", "numerical+proof", True),
        ("open", "proved", None, False),
        ("open", "numerically-verified", "numerical", True),
        ("open", "numerically-verified", "proof", False),
        ("false", "open", "proof", False),
        ("false", "proved", "proof", False),
        ("false", "false", None, True),
        ("proved", "open", None, True),
        ("open", "done", None, False),
        ("maybe", "open", None, False),
    ],
)
def test_status_transitions(from_: str | None, to: str, evidence: str | None, valid: bool) -> None:
    verdict = validate_transition(from_, to, evidence)
    assert verdict.valid is valid and verdict.reason


# ----------------------------------------------------------------------- DAG


def test_cycle_nodes_finds_every_cycle_and_self_loops() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"], "e": ["e"], "f": ["g"], "g": []}
    assert cycle_dag.cycle_nodes(graph) == ["a", "b", "c", "e"]
    assert cycle_dag.check({"a": ["b"], "b": []}) == {
        "acyclic": True,
        "cycle_nodes": [],
        "dangling": [],
    }


def test_cycle_nodes_handles_deep_chains_without_recursion() -> None:
    graph = {f"n{i}": [f"n{i + 1}"] for i in range(5000)} | {"n5000": ["n0"]}
    assert len(cycle_dag.cycle_nodes(graph)) == 5001


def test_closing_path_names_the_cycle() -> None:
    assert cycle_dag.closing_path({"a": ["b"], "b": ["c"], "c": ["a"]}, "a") == ["a", "b", "c", "a"]
    assert cycle_dag.closing_path({"a": ["a"]}, "a") == ["a", "a"]
    assert cycle_dag.closing_path({"a": ["b"], "b": []}, "a") is None


def test_impact_ranks_by_transitive_unlocks() -> None:
    graph = {
        "base": [],
        "mid": ["base"],
        "top": ["mid"],
        "side": ["base"],
        "done": [],
        "uses_done": ["done"],
    }
    statuses = {
        "base": "open",
        "mid": "partial",
        "top": "open",
        "side": "proved",
        "done": "proved",
        "uses_done": "open",
    }
    assert cycle_dag.impact(graph, statuses) == [
        {"item_id": "base", "score": 2, "unlocks": ["mid", "top"]},
        {"item_id": "mid", "score": 1, "unlocks": ["top"]},
    ]


# -------------------------------------------------------------- state files


def test_fresh_state_then_saves_bump_the_version(tmp_path: Path) -> None:
    files = StateFiles(tmp_path)
    state = files.load(PROOF, "P1")
    assert state.version == 0 and not files.path(PROOF, "P1").exists()
    assert files.save(state) == 1 and files.save(state) == 2
    assert json.loads(files.path(PROOF, "P1").read_text())["version"] == 2
    assert files.load(PROOF, "P1").version == 2
    assert files.path(MISSION, "M1") == tmp_path / "mission" / "M1.json"


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"[1, 2]", "expected a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"id": "P1", "kind": "proof", "created_at": "x", "ledger": {"L1": {"id": "L1", "status": "maybe", '
         b'"created_at": "x", "updated_at": "x"}}}', "ledger.L1.status"),
        (b'{"id": "P2", "kind": "proof", "created_at": "x"}', "it holds id 'P2'"),
        (b'{"id": "P1", "kind": "proof", "created_at": "x", "canonical": {"versions": [{"version": 1, "text": "a", '
         b'"reason": "r", "at": "x", "sha256": "0"}]}}', "sha256 of version 1"),
    ],
)  # fmt: skip
def test_corrupt_files_are_named_and_kept(tmp_path: Path, content: bytes, detail: str) -> None:
    files = StateFiles(tmp_path)
    path = files.path(PROOF, "P1")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(ToolError, match="corrupt") as failed:
        files.load(PROOF, "P1")
    assert detail in failed.value.message
    assert path.read_bytes() == content


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "f.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two" and [p.name for p in target.parent.iterdir()] == ["f.json"]


def test_no_data_dir_is_a_clear_tool_error() -> None:
    with pytest.raises(ToolError, match="no data_dir"):
        StateFiles(None)


# -------------------------------------------------------------------- corpus


def test_corpus_search_ranks_passages(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(
        "alpha beta\n\ngamma delta gamma\n\n" + "filler " * 200 + "gamma\n"
    )
    (tmp_path / "b.txt").write_text("nothing here\n")
    (tmp_path / "c.jsonl").write_text('{"k": ["gamma", {"x": "epsilon"}]}\n\n{"n": 1}\n')
    (tmp_path / "skip.py").write_text("gamma gamma gamma\n")
    hits = cycle_corpus.search(tmp_path, "Gamma epsilon", top_k=5)
    assert hits[0]["source"] == "c.jsonl:1"
    assert {h["source"] for h in hits} == {"a.md:3", "a.md:5", "c.jsonl:1"}
    long_hit = next(h for h in hits if h["source"] == "a.md:5")
    assert (
        len(long_hit["excerpt"]) <= cycle_corpus.EXCERPT_CHARS + 2
        and "gamma" in long_hit["excerpt"]
    )
    assert cycle_corpus.search(tmp_path, "?!", top_k=5) == []
    assert len(cycle_corpus.search(tmp_path, "gamma", top_k=1)) == 1


# ----------------------------------------------------------- phases and args


def test_phase_table_covers_the_spec() -> None:
    proof_tools = set(shipped_peripherals()["proof"].spec.tools)
    mission_tools = set(shipped_peripherals()["mission"].spec.tools)
    every = set().union(*PHASE_TOOLS.values())
    assert proof_tools | mission_tools <= every  # no tool of theirs is unusable in every phase
    assert PHASE_TOOLS["setup"] >= {"proof-load", "ledger-upsert", "dag-check", "canonical-update", "cycle-begin",
                                    "failed-route-add", "read", "bash-readonly"}  # fmt: skip
    assert not PHASE_TOOLS["setup"] & {
        "write",
        "bash",
        "cycle-advance",
        "gate-check",
        "corpus-check",
    }
    assert all("cycle-advance" in PHASE_TOOLS[p] for p in REQUIRED_OUTPUTS)
    assert "gate-check" in PHASE_TOOLS["gate-review"] and "write" in PHASE_TOOLS["execute"]
    assert next_phase("gate-review") == "completed"
    assert missing_outputs("observe", {"observations": ""}) == ["observations"]


def test_every_cycle_tool_has_an_args_model() -> None:
    from futon.config.catalog import CYCLE_TOOLS

    for tool in CYCLE_TOOLS:
        assert args_schema(tool)["type"] == "array"
    with pytest.raises(ProtocolError, match="phase_data"):
        parse_args("cycle-advance", ["P1", "c-1", {"observations": "x" * (300 * 1024)}])
    with pytest.raises(ProtocolError, match="unknown filter"):
        parse_args("evidence-query", [{"nope": 1}])
    with pytest.raises(ProtocolError, match=r"changes\.colour"):
        parse_args("ledger-upsert", ["P1", "L1", {"colour": "red"}])
    with pytest.raises(ProtocolError):
        parse_args("ledger-query", ["P1", {"status": "maybe"}])


def test_cycle_tools_register_once_per_backend() -> None:
    from futon.config.catalog import CYCLE_TOOLS
    from futon.peripherals.tools.backend import RealBackend

    backend = RealBackend()
    cycles.install(backend)
    assert backend.tools() >= CYCLE_TOOLS
    with pytest.raises(ValueError, match="already registered"):
        cycles.install(backend)


# --------------------------------------------------------------------- fruit


def test_cycle_fruit(tmp_path: Path) -> None:
    assert cycles.cycle_fruit({}, tmp_path, "proof", 0) == {
        "problem_id": None, "cycles_completed": 0, "steps_taken": 0, "final_phase": "setup"
    }  # fmt: skip
    files = StateFiles(tmp_path)
    state = files.load(PROOF, "P1")
    assert isinstance(state, ProofState)
    state.cycles.append(cycles.Cycle(id="c-1", blocker_id="L1", phase="validate", started_at="t"))
    files.save(state)
    context = {
        "problem-id": "P1",
        "cycle-id": "c-1",
        "cycle-phase": "observe",
        "cycles-completed": ["mission/M/c-1"],
    }
    assert cycles.cycle_fruit(context, tmp_path, "proof", 7) == {
        "problem_id": "P1", "cycles_completed": 0, "steps_taken": 7, "final_phase": "validate"
    }  # fmt: skip
    # Without a readable state the context's account stands; a forged id never reaches the filesystem.
    forged = {"problem-id": "../../etc/passwd", "cycle-id": "c-1", "cycle-phase": "commit"}
    assert cycles.cycle_fruit(forged, tmp_path, "proof", 1)["final_phase"] == "commit"
    mission = {
        "mission-id": "M1",
        "cycle-id": "c-2",
        "cycle-phase": "completed",
        "cycles-completed": ["mission/M1/c-1", "mission/M1/c-2"],
    }
    assert cycles.cycle_fruit(mission, None, "mission", 3) == {
        "mission_id": "M1", "cycles_completed": 2, "steps_taken": 3, "final_phase": "completed"
    }  # fmt: skip
