"""The whole engine on real files and real subprocesses: an agent explores
a project with a failing test, hops to edit and fixes the bug, hops to test
and gets a passing count back — every step within its envelope and on the
record."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from futon.config.models import SandboxSpec
from futon.evidence import JsonlStore, MemoryStore
from futon.evidence.verify import verify_store
from futon.peripherals.spec import Peripheral
from futon.peripherals.tools.backend import RealBackend
from futon.protocol.errors import PermissionDenied
from tests.peripherals.support import make_runner, session_entries


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "src" / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (root / "tests" / "test_calc.py").write_text(
        "import sys, pathlib\n"
        "sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / 'src'))\n"
        "from calc import add\n\n"
        "def test_add():\n    assert add(2, 3) == 5\n\n"
        "def test_add_zero():\n    assert add(0, 0) == 0\n"
    )
    return root


async def test_explore_edit_test_fixes_a_failing_test(project: Path, tmp_path: Path) -> None:
    store = JsonlStore(tmp_path / "evidence", fsync="always")
    python = Path(sys.executable)
    runner = make_runner(project, RealBackend(), store, test_commands=[f"{python} -m pytest -q {{paths}}"])
    # The test peripheral's sandbox must see this interpreter (it lives
    # outside the system folders here); nothing else is widened.
    test = runner.peripherals["test"]
    extras = SandboxSpec(read_only=sorted({sys.prefix, sys.base_prefix}))
    runner.peripherals["test"] = Peripheral("test", test.spec.model_copy(update={"sandbox": extras}))
    session = await runner.start("claude-1", "explore")

    hits = await session.step("grep", ["return a - b", "src"])
    assert hits.ok and hits.result[0]["file"] == "src/calc.py"
    with pytest.raises(PermissionDenied):
        await session.step("edit", ["src/calc.py", "a - b", "a + b"])  # explore cannot edit

    to_edit = await session.hop("edit", "found-target", "the subtraction is the bug")
    assert to_edit.context["target-files"] == ["src/calc.py"]
    edited = await session.step("edit", ["src/calc.py", "a - b", "a + b"])
    assert edited.result == {"file": "src/calc.py", "replacements": 1}
    with pytest.raises(PermissionDenied):
        await session.step("write", ["tests/test_calc.py", "def test_cheat(): pass\n"])  # tests/ is not edit's

    to_test = await session.hop("test", "hop-test", "run the suite")
    assert to_test.context["changed-files"] == ["src/calc.py"]
    run = await session.step("bash-test", [f"{python} -m pytest -q tests"])
    assert run.ok and run.result["exit"] == 0
    fruit = await session.stop("pass")
    assert fruit["result"] == "pass" and fruit["test_count"] == 2

    assert (project / "src" / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    kinds = [(e["evidence/type"], e["evidence/claim-type"]) for e in session_entries(store, session.id)]
    assert kinds.count(("coordination", "tension")) == 2
    assert kinds[-1] == ("coordination", "conclusion")
    await store.aclose()
    assert verify_store(tmp_path / "evidence").ok


async def test_a_failing_run_a_fix_and_a_passing_run_is_a_pass_not_flaky(project: Path, tmp_path: Path) -> None:
    """The test peripheral's verdict is the last run's; flaky needs the same
    command to differ on an unchanged workspace (issue: wrong results)."""
    python = Path(sys.executable)
    runner = make_runner(project, RealBackend(), MemoryStore(), test_commands=[f"{python} -m pytest -q {{paths}}"])
    test = runner.peripherals["test"]
    extras = SandboxSpec(read_only=sorted({sys.prefix, sys.base_prefix}))
    runner.peripherals["test"] = Peripheral("test", test.spec.model_copy(update={"sandbox": extras}))
    command = f"{python} -m pytest -q tests"

    session = await runner.start("claude-1", "test")
    assert (await session.step("bash-test", [command])).result["exit"] != 0
    await session.hop("edit", "hop-edit", "fix the bug")
    await session.step("edit", ["src/calc.py", "a - b", "a + b"])
    await session.hop("test", "hop-test", "run again")
    assert (await session.step("bash-test", [command])).result["exit"] == 0
    fruit = await session.stop("pass")
    assert fruit["result"] == "pass"
    assert [(r["result"], r["failed"], r["passed"]) for r in fruit["per_run"]] == [("fail", 1, 1), ("pass", 0, 2)]

    # Failing twice on an unchanged tree is a fail, not flaky.
    (project / "src" / "calc.py").write_text("def add(a, b):\n    return 0\n")
    again = await runner.start("claude-1", "test")
    assert (await again.step("bash-test", [command])).result["exit"] != 0
    assert (await again.step("bash-test", [command])).result["exit"] != 0
    assert (await again.stop("fail"))["result"] == "fail"

    idle = await runner.start("claude-1", "test")
    assert (await idle.stop("no-tests"))["result"] == "no-tests"
