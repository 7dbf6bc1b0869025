"""Test fruit comes from the runner's own summary line."""

from __future__ import annotations

import subprocess
from pathlib import Path

from futon.peripherals.fruit import fruit_of_tests, parse_test_output, workspace_fingerprint
from futon.peripherals.session import head_commit

PYTEST_FAIL = """\
============================= test session starts ==============================
collected 4 items

tests/test_app.py .F.s                                                   [100%]

=================================== FAILURES ===================================
___________________________________ test_add ___________________________________
=========================== short test summary info ============================
FAILED tests/test_app.py::test_add - assert -1 == 3
=================== 1 failed, 2 passed, 1 skipped in 0.05s ====================
"""
PYTEST_QUIET_PASS = "....                                                                     [100%]\n4 passed in 0.01s\n"
PYTEST_ERRORS = "==== 1 passed, 2 errors in 0.30s ====\nERROR tests/test_x.py\n"
CARGO = "running 3 tests\ntest a ... ok\n\ntest result: ok. 3 passed; 0 failed; 0 ignored; 0 measured\n"


def test_pytest_summary_counts_and_failures() -> None:
    summary = parse_test_output(PYTEST_FAIL)
    assert (summary.passed, summary.failed, summary.skipped, summary.count) == (2, 1, 1, 3)
    assert summary.failures == ["tests/test_app.py::test_add"]
    assert parse_test_output(PYTEST_QUIET_PASS).count == 4
    errors = parse_test_output(PYTEST_ERRORS)
    assert (errors.passed, errors.errors, errors.count) == (1, 2, 3)


def test_cargo_summary() -> None:
    summary = parse_test_output(CARGO)
    assert (summary.passed, summary.failed, summary.parsed) == (3, 0, True)


def test_output_without_a_summary_is_not_parsed() -> None:
    assert not parse_test_output("ok\n").parsed


def run(command: str, exit_code: int, out: str, workspace: str = "tree-1") -> dict:
    return {"command": command, "exit": exit_code, "summary": parse_test_output(out), "workspace": workspace}


def test_result_pass_fail_and_flaky() -> None:
    passed = fruit_of_tests([run("pytest", 0, PYTEST_QUIET_PASS)])
    assert {k: passed[k] for k in ("result", "test_count", "failures", "runs")} == {
        "result": "pass", "test_count": 4, "failures": [], "runs": 1,
    }  # fmt: skip
    failed = fruit_of_tests([run("pytest", 1, PYTEST_FAIL)])
    assert (failed["result"], failed["test_count"], failed["failures"]) == ("fail", 3, ["tests/test_app.py::test_add"])
    flaky = fruit_of_tests([run("pytest", 1, PYTEST_FAIL), run("pytest", 0, PYTEST_QUIET_PASS)])
    assert flaky["result"] == "flaky"
    fixed = fruit_of_tests([run("pytest -x", 1, PYTEST_FAIL), run("pytest", 0, PYTEST_QUIET_PASS)])
    assert fixed["result"] == "pass"
    assert fruit_of_tests([])["result"] == "no-tests"


def test_a_fix_between_a_failing_and_a_passing_run_is_a_pass_not_flaky() -> None:
    fixed = fruit_of_tests([run("pytest", 1, PYTEST_FAIL, "before"), run("pytest", 0, PYTEST_QUIET_PASS, "after")])
    assert fixed["result"] == "pass"
    assert [r["result"] for r in fixed["per_run"]] == ["fail", "pass"]
    assert (fixed["per_run"][0]["failed"], fixed["per_run"][1]["passed"]) == (1, 4)
    # The last run decides: pass then a change that breaks it is a fail.
    broke = fruit_of_tests([run("pytest", 0, PYTEST_QUIET_PASS, "a"), run("pytest", 1, PYTEST_FAIL, "b")])
    assert broke["result"] == "fail"


def test_flaky_only_when_nothing_changed_between_different_results() -> None:
    same = fruit_of_tests([run("pytest", 0, PYTEST_QUIET_PASS, "t"), run("pytest", 1, PYTEST_FAIL, "t")])
    assert same["result"] == "flaky"
    steady = fruit_of_tests([run("pytest", 1, PYTEST_FAIL, "t"), run("pytest", 1, PYTEST_FAIL, "t")])
    assert steady["result"] == "fail"


def test_the_fingerprint_changes_with_a_file_and_ignores_caches(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("x = 1\n")
    first = workspace_fingerprint(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "app.pyc").write_bytes(b"cache")
    (tmp_path / ".pytest_cache").mkdir()
    assert workspace_fingerprint(tmp_path) == first
    (tmp_path / "src" / "app.py").write_text("x = 22\n")
    assert workspace_fingerprint(tmp_path) != first


def _git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}  # fmt: skip
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout.strip()


def test_deploy_fruit_reads_head_from_git_files_without_running_git(tmp_path: Path) -> None:
    assert head_commit(tmp_path) is None  # no repository
    _git(tmp_path, "init", "-q", "-b", "main")
    assert head_commit(tmp_path) is None  # no commit yet
    (tmp_path / "a.txt").write_text("a\n")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-q", "-m", "one")
    assert head_commit(tmp_path) == _git(tmp_path, "rev-parse", "HEAD")
    _git(tmp_path, "pack-refs", "--all")  # the ref now lives in packed-refs only
    assert not (tmp_path / ".git" / "refs" / "heads" / "main").exists()
    assert head_commit(tmp_path) == _git(tmp_path, "rev-parse", "HEAD")
    _git(tmp_path, "checkout", "-q", "--detach")
    assert head_commit(tmp_path) == _git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/../../../etc/passwd\n")
    assert head_commit(tmp_path) is None
