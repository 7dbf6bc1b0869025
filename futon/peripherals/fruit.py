"""Fruit: what a peripheral session hands back when it stops, computed from
what the session did (its :class:`~futon.peripherals.state.SessionState`)."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
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


def _passed(run: dict[str, Any]) -> bool:
    summary: RunSummary = run["summary"]
    return run["exit"] == 0 and summary.failed == 0 and summary.errors == 0


def fruit_of_tests(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """``{result, test_count, failures, runs, per_run}`` from the session's
    test runs (each ``{command, exit, summary, workspace}``, ``workspace``
    being a fingerprint of the files the run saw).

    ``result`` is the last run's (``pass``/``fail``), or ``no-tests`` when
    nothing ran; ``flaky`` only when one command gave different results with
    no change to the workspace in between (same fingerprint) — a failing run,
    a fix, and a passing run is a pass."""
    if not runs:
        return {"result": "no-tests", "test_count": 0, "failures": [], "runs": 0, "per_run": []}
    flaky = False
    previous: dict[str, tuple[object, bool]] = {}  # command → (fingerprint, passed) of its last run
    for run in runs:
        passed = _passed(run)
        seen = previous.get(run["command"])
        if seen is not None and seen[0] == run.get("workspace") and seen[1] != passed:
            flaky = True
        previous[run["command"]] = (run.get("workspace"), passed)
    last = runs[-1]
    summary: RunSummary = last["summary"]
    per_run = [
        {
            "command": run["command"],
            "result": "pass" if _passed(run) else "fail",
            "passed": run["summary"].passed,
            "failed": run["summary"].failed,
            "errors": run["summary"].errors,
            "skipped": run["summary"].skipped,
        }
        for run in runs[-50:]  # bounded: a long session keeps its newest runs
    ]
    return {
        "result": "flaky" if flaky else ("pass" if _passed(last) else "fail"),
        "test_count": summary.count if summary.parsed else None,
        "failures": summary.failures,
        "runs": len(runs),
        "per_run": per_run,
    }


# Folders whose changes say nothing about the code under test: version
# control internals and the caches a test run itself writes.
_FINGERPRINT_SKIP = frozenset({".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_FINGERPRINT_MAX_FILES = 200_000


def workspace_fingerprint(root: Path) -> str | None:
    """A digest of every file's path, size and modification time under
    ``root`` (symlinks not followed); None when the tree is too large to
    walk cheaply (then no two runs are known to have seen the same tree)."""
    digest = hashlib.sha256()
    count = 0
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in _FINGERPRINT_SKIP:
                    stack.append(Path(entry.path))
                continue
            count += 1
            if count > _FINGERPRINT_MAX_FILES:
                return None
            digest.update(f"{entry.path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()
