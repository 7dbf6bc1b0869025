"""Test fruit comes from the runner's own summary line."""

from __future__ import annotations

from futon.peripherals.fruit import fruit_of_tests, parse_test_output

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


def run(command: str, exit_code: int, out: str) -> dict:
    return {"command": command, "exit": exit_code, "summary": parse_test_output(out)}


def test_result_pass_fail_and_flaky() -> None:
    assert fruit_of_tests([run("pytest", 0, PYTEST_QUIET_PASS)]) == {
        "result": "pass", "test_count": 4, "failures": [], "runs": 1,
    }  # fmt: skip
    failed = fruit_of_tests([run("pytest", 1, PYTEST_FAIL)])
    assert (failed["result"], failed["test_count"], failed["failures"]) == ("fail", 3, ["tests/test_app.py::test_add"])
    flaky = fruit_of_tests([run("pytest", 1, PYTEST_FAIL), run("pytest", 0, PYTEST_QUIET_PASS)])
    assert flaky["result"] == "flaky"
    fixed = fruit_of_tests([run("pytest -x", 1, PYTEST_FAIL), run("pytest", 0, PYTEST_QUIET_PASS)])
    assert fixed["result"] == "pass"
    assert fruit_of_tests([])["result"] == "fail"
