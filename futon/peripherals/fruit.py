"""Fruit: what a peripheral session hands back when it stops, computed from
what the session did (its :class:`~futon.peripherals.state.SessionState`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)\b")
_CARGO = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed")
_FAILED = re.compile(r"^FAILED (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class RunSummary:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    parsed: bool = False

    @property
    def count(self) -> int:
        return self.passed + self.failed + self.errors


def parse_test_output(out: str) -> RunSummary:
    """Counts from the runner's own summary line (pytest's ``N passed, M
    failed in Xs``, cargo's ``test result``); ``parsed`` says whether one was
    found. The last summary line wins (pytest prints it last)."""
    cargo = _CARGO.findall(out)
    if cargo:
        passed = sum(int(p) for p, _ in cargo)
        failed = sum(int(f) for _, f in cargo)
        return RunSummary(passed=passed, failed=failed, failures=_FAILED.findall(out), parsed=True)
    lines = [line for line in out.splitlines() if _COUNT.search(line) and re.search(r" in [\d.]+s", line)]
    if not lines:
        return RunSummary(failures=_FAILED.findall(out))
    counts: dict[str, int] = {}
    for number, word in _COUNT.findall(lines[-1]):
        key = "errors" if word.startswith("error") else word
        counts[key] = counts.get(key, 0) + int(number)
    return RunSummary(
        passed=counts.get("passed", 0),
        failed=counts.get("failed", 0),
        errors=counts.get("errors", 0),
        skipped=counts.get("skipped", 0),
        failures=_FAILED.findall(out),
        parsed=True,
    )


def fruit_of_tests(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """``{result: pass|fail|flaky, test_count, failures}`` from the session's
    test runs (each ``{command, exit, summary}``). ``flaky`` when the same
    command both passed and failed within the session."""
    if not runs:
        return {"result": "fail", "test_count": 0, "failures": [], "runs": 0}
    outcomes: dict[str, set[bool]] = {}
    for run in runs:
        summary: RunSummary = run["summary"]
        passed = run["exit"] == 0 and summary.failed == 0 and summary.errors == 0
        outcomes.setdefault(run["command"], set()).add(passed)
    last = runs[-1]
    summary = last["summary"]
    last_passed = last["exit"] == 0 and summary.failed == 0 and summary.errors == 0
    flaky = any(len(seen) > 1 for seen in outcomes.values())
    return {
        "result": "flaky" if flaky else ("pass" if last_passed else "fail"),
        "test_count": summary.count if summary.parsed else None,
        "failures": summary.failures,
        "runs": len(runs),
    }
