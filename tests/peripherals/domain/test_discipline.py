"""discipline on the real engine: the shipped pattern library, a runner
with RealBackend and a JSONL store, and the PSR → PUR → pivot → PAR chain
in the evidence."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from futon.config.models import ToolsSection
from futon.evidence import EvidenceQuery, JsonlStore, MemoryStore
from futon.evidence.store import EvidenceStore
from futon.evidence.verify import verify_store
from futon.peripherals.domain import discipline
from futon.peripherals.runner import PeripheralRunner
from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.protocol.errors import ProtocolError, ToolError
from tests.peripherals.support import REPO, session_entries, shipped_peripherals

SHIPPED = REPO / "futon" / "data" / "config" / "patterns"


def make_runner(workspace: Path, store: EvidenceStore, **options: Any) -> PeripheralRunner:
    backend = RealBackend()
    discipline.install(backend, **options)
    return PeripheralRunner(shipped_peripherals(), backend, store, ToolsSection(), workspace)


def write_pattern(folder: Path, pattern_id: str, title: str, hotwords: str, rationale: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{pattern_id}.md").write_text(
        f"---\nid: {pattern_id}\ntitle: {title}\nhotwords: {hotwords}\n---\n{rationale}\n"
    )


def ctx_for(
    workspace: Path, store: EvidenceStore | None = None, config: dict[str, Any] | None = None
) -> ToolContext:
    return ToolContext(
        workspace=workspace,
        settings=ToolsSection(),
        session_id="sess-t",
        agent_id="claude-1",
        store=store,
        peripheral_config=config or {},
    )


# ----------------------------------------------------------------- the library


def test_shipped_library_has_twelve_valid_patterns() -> None:
    library = discipline.load_library(SHIPPED)
    assert library.broken == ()
    assert len(library.patterns) == 12
    for pattern in library.patterns.values():
        assert len(pattern.hotwords) >= 5
        assert len(pattern.rationale.split()) >= 50, pattern.id  # a real paragraph


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("my traceback shows an exception I do not understand", "read-the-error"),
        ("the envelope refused my write, I am stuck", "hop-when-blocked"),
        ("the requirement is ambiguous, who decides?", "ask-a-human-early"),
        ("a flaky bug report I cannot reproduce", "reproduce-first"),
        ("the suite went red after my change, roll back?", "revert-on-red"),
        ("about to claim the task is done", "verify-before-claiming"),
    ],
)
def test_search_ranks_the_fitting_pattern_first(query: str, best: str) -> None:
    ranked = discipline.load_library(SHIPPED).search(query)
    assert ranked[0][0].id == best


def test_score_follows_the_documented_rule(tmp_path: Path) -> None:
    write_pattern(
        tmp_path, "read-the-trace", "Read the trace", "[stack trace, crash]",
        "Errors come with context. Read it all.",
    )  # fmt: skip
    pattern = discipline.load_library(tmp_path).patterns["read-the-trace"]
    # hotwords "stack trace" (3) and "crash" (3); content words: "trace" is
    # in the title (2), "errors" meets "Errors" in the rationale (1), "stack"
    # and "crash" are in neither (0); "the", "of", "a" are stop words.
    assert discipline.score_pattern(pattern, "the stack trace of a crash: errors") == 3 + 3 + 2 + 1
    # A phrase hotword needs its words in order and adjacent.
    assert discipline.score_pattern(pattern, "trace the stack") == 2
    assert discipline.score_pattern(pattern, "nothing relevant here") == 0


def test_search_is_deterministic_and_breaks_ties_by_id(tmp_path: Path) -> None:
    for pid in ("b-pattern", "a-pattern", "c-pattern"):
        write_pattern(tmp_path, pid, "Same", "[widget]", "Identical text.")
    library = discipline.load_library(tmp_path)
    ranked = [p.id for p, _ in library.search("widget", top_k=2)]
    assert ranked == ["a-pattern", "b-pattern"]
    assert [p.id for p, _ in library.search("widget", top_k=2)] == ranked


def test_malformed_pattern_files_are_skipped_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lib = tmp_path / "lib"
    write_pattern(lib, "good", "A good pattern", "[widget]", "Widgets need care.")
    (lib / "no-front.md").write_text("# Just a heading\nno front matter\n")
    (lib / "bad-yaml.md").write_text("---\nid: bad-yaml\ntitle: [unclosed\n---\ntext\n")
    (lib / "wrong-id.md").write_text("---\nid: other\ntitle: T\nhotwords: [x]\n---\ntext\n")
    (lib / "no-hotwords.md").write_text("---\nid: no-hotwords\ntitle: T\nhotwords: []\n---\ntext\n")
    (lib / "empty-body.md").write_text("---\nid: empty-body\ntitle: T\nhotwords: [x]\n---\n\n   \n")
    (lib / "binary.md").write_bytes(b"---\x00\xff\xfe")
    (lib / "README.md").write_text("not a pattern, not an error\n")
    with caplog.at_level(logging.WARNING, logger="futon.peripherals.discipline"):
        library = discipline.load_library(lib)
    assert list(library.patterns) == ["good"]
    reasons = {b.file: b.reason for b in library.broken}
    assert set(reasons) == {
        "no-front.md",
        "bad-yaml.md",
        "wrong-id.md",
        "no-hotwords.md",
        "empty-body.md",
        "binary.md",
    }
    assert "no front matter" in reasons["no-front.md"]
    assert "not valid YAML" in reasons["bad-yaml.md"]
    assert "does not match the file name" in reasons["wrong-id.md"]
    assert "hotwords" in reasons["no-hotwords.md"]
    assert "no rationale" in reasons["empty-body.md"]
    assert "binary" in reasons["binary.md"]
    assert "skipping bad-yaml.md" in caplog.text


async def test_search_result_names_broken_files(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    write_pattern(lib, "good", "A good pattern", "[widget]", "Widgets need care.")
    (lib / "broken.md").write_text("no front matter\n")
    tools = discipline.DisciplineTools(lib)
    result = await tools.psr_search(discipline.PsrSearchArgs(query="widget"), ctx_for(tmp_path))
    assert [c["pattern_id"] for c in result["candidates"]] == ["good"]
    assert result["skipped"] == [{"file": "broken.md", "reason": result["skipped"][0]["reason"]}]
    assert "front matter" in result["skipped"][0]["reason"]


async def test_library_is_reread_when_a_file_changes(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    write_pattern(lib, "first", "First", "[alpha]", "Alpha text.")
    tools = discipline.DisciplineTools(lib)
    ctx = ctx_for(tmp_path)
    assert (await tools.psr_search(discipline.PsrSearchArgs(query="beta"), ctx))["candidates"] == []
    write_pattern(lib, "second", "Second", "[beta]", "Beta text.")
    found = await tools.psr_search(discipline.PsrSearchArgs(query="beta"), ctx)
    assert [c["pattern_id"] for c in found["candidates"]] == ["second"]


async def test_patterns_dir_resolution(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write_pattern(ws / "config" / "patterns", "local", "Local", "[x]", "Local text.")
    write_pattern(ws / "mine", "mine", "Mine", "[x]", "Mine text.")
    plain = tmp_path / "plain"
    plain.mkdir()
    # no option, no config: the workspace's config/patterns, else the shipped library
    assert discipline.resolve_patterns_dir(ctx_for(ws)) == ws / "config" / "patterns"
    assert discipline.resolve_patterns_dir(ctx_for(plain)) == SHIPPED
    # the install option, relative to the workspace; the config block wins over it
    assert discipline.resolve_patterns_dir(ctx_for(ws), Path("mine")) == ws / "mine"
    assert (
        discipline.resolve_patterns_dir(
            ctx_for(ws, config={"patterns_dir": "config/patterns"}), Path("mine")
        )
        == ws / "config" / "patterns"
    )
    with pytest.raises(ToolError, match="no pattern library at"):
        await discipline.DisciplineTools(Path("nowhere")).library(ctx_for(ws))


# ----------------------------------------------------------------- a session


async def test_discipline_session_writes_the_psr_pur_par_chain(tmp_path: Path) -> None:
    """The whole mechanism: tools through the dispatcher and RealBackend,
    records in a real JSONL store, replies linking PUR to PSR."""
    ws = tmp_path / "ws"
    ws.mkdir()
    store = JsonlStore(tmp_path / "evidence", fsync="always")
    runner = make_runner(ws, store)  # default library: the shipped one
    session = await runner.start("claude-1", "discipline")

    found = await session.step(
        "psr-search", ["the tests are failing after my edit and I am stuck", {"top_k": 3}]
    )
    assert found.ok and 1 <= len(found.result["candidates"]) <= 3
    assert "skipped" not in found.result
    scores = [c["score"] for c in found.result["candidates"]]
    assert scores == sorted(scores, reverse=True)
    assert set(found.result["candidates"][0]) == {"pattern_id", "score", "title", "rationale"}

    psr = await session.step(
        "psr-select", ["smallest-failing-test", {"rationale": "pin the bug first"}]
    )
    assert psr.ok and psr.result["pattern_id"] == "smallest-failing-test"
    pur = await session.step(
        "pur-update", ["smallest-failing-test", "partial", {"notes": "test written, still red"}]
    )
    assert pur.ok
    await session.step(
        "pur-mark-pivot",
        ["smallest-failing-test", "the failure is in the environment, not the code"],
    )
    psr2 = await session.step("psr-select", ["reproduce-first"])
    pur2 = await session.step("pur-update", ["reproduce-first", "pass"])
    par = await session.step(
        "par-punctuate", ["reproduced in a clean venv; the test now pins the env bug"]
    )
    assert par.ok and par.result["par_id"].startswith("e-")
    assert session.state.context["pattern-id"] == "reproduce-first"
    fruit = discipline.discipline_fruit(session.state.context)
    await session.stop("par-generated")

    psr_entry = store.get(psr.result["psr_id"])
    assert psr_entry["evidence/type"] == "pattern-selection"
    assert psr_entry["evidence/claim-type"] == "goal"
    assert psr_entry["evidence/subject"] == {
        "ref/type": "pattern",
        "ref/id": "smallest-failing-test",
    }
    assert psr_entry["evidence/pattern-id"] == "smallest-failing-test"
    assert psr_entry["evidence/session-id"] == session.id
    assert psr_entry["evidence/author"] == "claude-1"
    assert psr_entry["evidence/body"]["rationale"] == "pin the bug first"

    pur_entry = store.get(pur.result["pur_id"])
    assert (pur_entry["evidence/type"], pur_entry["evidence/claim-type"]) == (
        "pattern-outcome",
        "evidence",
    )
    assert pur_entry["evidence/in-reply-to"] == psr.result["psr_id"]
    assert pur_entry["evidence/body"]["outcome"] == "partial"
    assert store.get(pur2.result["pur_id"])["evidence/in-reply-to"] == psr2.result["psr_id"]

    pivots = store.query(EvidenceQuery(session_id=session.id, type="correction")).entries
    assert len(pivots) == 1 and pivots[0]["evidence/claim-type"] == "correction"
    assert pivots[0]["evidence/in-reply-to"] == pur.result["pur_id"]  # the pattern's latest record

    par_entry = store.get(par.result["par_id"])
    assert (par_entry["evidence/type"], par_entry["evidence/claim-type"]) == (
        "reflection",
        "observation",
    )
    assert par_entry["evidence/subject"] == {"ref/type": "pattern", "ref/id": "reproduce-first"}
    assert par_entry["evidence/in-reply-to"] == pur2.result["pur_id"]
    assert par_entry["evidence/body"]["outcomes"] == {
        "smallest-failing-test": "partial",
        "reproduce-first": "pass",
    }
    assert [e["evidence/id"] for e in store.chain(par.result["par_id"])] == [
        psr2.result["psr_id"], pur2.result["pur_id"], par.result["par_id"],
    ]  # fmt: skip

    kinds = [
        (e["evidence/type"], e["evidence/claim-type"]) for e in session_entries(store, session.id)
    ]
    assert kinds[0] == ("coordination", "goal") and kinds[-1] == ("coordination", "conclusion")
    assert kinds.count(("coordination", "step")) == 7
    assert kinds.count(("pattern-selection", "goal")) == 2
    assert kinds.count(("pattern-outcome", "evidence")) == 2

    assert fruit["selected_pattern"] == "reproduce-first"
    assert [r["kind"] for r in fruit["records"]] == ["psr", "pur", "pivot", "psr", "pur", "par"]
    assert "2 selection(s)" in fruit["summary"] and "reproduce-first: pass" in fruit["summary"]
    await store.aclose()
    assert verify_store(tmp_path / "evidence").ok


async def test_unknown_pattern_id_lists_close_matches(tmp_path: Path) -> None:
    runner = make_runner(tmp_path, MemoryStore(), patterns_dir=SHIPPED)
    session = await runner.start("claude-1", "discipline")
    typo = await session.step("psr-select", ["scout-before-edits"])
    assert not typo.ok and typo.result["code"] == "not-found"
    assert "scout-before-edit" in typo.result["error"]
    unrelated = await session.step("pur-update", ["revert-on-green", "pass"])
    assert not unrelated.ok and "revert-on-red" in unrelated.result["error"]
    assert "pattern-id" not in session.state.context


async def test_outcome_without_a_selection_is_refused(tmp_path: Path) -> None:
    store = MemoryStore()
    runner = make_runner(tmp_path, store, patterns_dir=SHIPPED)
    session = await runner.start("claude-1", "discipline")
    early = await session.step("pur-update", ["read-the-error", "pass"])
    assert not early.ok and "was not selected in this session" in early.result["error"]
    pivot = await session.step("pur-mark-pivot", ["read-the-error", "changed my mind"])
    assert not pivot.ok and "psr-select it" in pivot.result["error"]
    assert store.query(EvidenceQuery(type="pattern-outcome")).entries == []
    # another session's PSR does not count
    await session.step("psr-select", ["read-the-error"])
    other = await runner.start("claude-1", "discipline")
    elsewhere = await other.step("pur-update", ["read-the-error", "pass"])
    assert not elsewhere.ok


async def test_bad_arguments_are_refused_before_the_backend(tmp_path: Path) -> None:
    store = MemoryStore()
    runner = make_runner(tmp_path, store, patterns_dir=SHIPPED)
    session = await runner.start("claude-1", "discipline")
    for tool, args in [
        ("psr-select", ["Scout Before Edit"]),  # not an id
        ("pur-update", ["read-the-error", "won"]),  # not an outcome
        ("psr-search", ["x", {"top_k": 0}]),
        ("par-punctuate", []),
        ("psr-select", ["read-the-error", {"reason": "wrong option name"}]),
    ]:
        with pytest.raises(ProtocolError) as refused:
            await session.step(tool, args)
        assert refused.value.code == "invalid-input"
    tensions = [
        e for e in session_entries(store, session.id) if e["evidence/claim-type"] == "tension"
    ]
    assert len(tensions) == 5


async def test_par_without_a_selection_is_about_the_session(tmp_path: Path) -> None:
    store = MemoryStore()
    runner = make_runner(tmp_path, store, patterns_dir=SHIPPED)
    session = await runner.start("claude-1", "discipline")
    par = await session.step("par-punctuate", ["nothing fitted; noted for the library"])
    entry = store.get(par.result["par_id"])
    assert entry["evidence/subject"] == {"ref/type": "session", "ref/id": session.id}
    assert "evidence/in-reply-to" not in entry and "evidence/pattern-id" not in entry


async def test_records_need_a_store(tmp_path: Path) -> None:
    tools = discipline.DisciplineTools(SHIPPED)
    with pytest.raises(ToolError, match="evidence store"):
        await tools.psr_select(
            discipline.PsrSelectArgs(pattern_id="read-the-error"), ctx_for(tmp_path)
        )


def test_install_without_options_and_fruit_of_an_empty_session() -> None:
    backend = RealBackend()
    discipline.install(backend)
    assert {
        "psr-search",
        "psr-select",
        "pur-update",
        "pur-mark-pivot",
        "par-punctuate",
    } <= backend.tools()
    assert discipline.discipline_fruit({}) == {
        "selected_pattern": None,
        "records": [],
        "summary": "no pattern was selected or reviewed in this session",
    }
