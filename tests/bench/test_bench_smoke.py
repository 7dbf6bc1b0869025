"""Every bench runs in quick mode through bench/run_all.py and reports what
the report is made of: a section per bench, no failure, and for issue 19's
benches goal-table rows whose figures are numbers (and profile summaries
where the bench profiles). Smoke only: no timing is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run_all import BENCHES, RESULT_COLUMNS, profiles_of, results_of

REPO = Path(__file__).resolve().parents[2]
ISSUE_19 = {"ws_roundtrip.py": 2, "evidence_http.py": 6, "irc_fanout.py": 2, "load.py": 1}
PROFILED = {"ws_roundtrip.py", "irc_fanout.py", "load.py"}
NUMBER = re.compile(r"\d[\d,]*(\.\d+)?")

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("script", [script for script, _, _ in BENCHES])
def test_each_bench_runs_in_quick_mode(script: str, tmp_path: Path) -> None:
    out = tmp_path / "REPORT.md"
    done = subprocess.run(
        [sys.executable, "bench/run_all.py", "--quick", "--only", script, "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    section = report.split(f"## `{script}`", 1)
    assert len(section) == 2, report[:2000]
    body = section[1]
    assert "FAILED" not in body, body[-3000:]
    goal_lines = [line for line in body.splitlines() if line.startswith("goal:")]
    assert goal_lines, body[-2000:]
    for line in goal_lines:
        assert "—" in line and NUMBER.search(line.split("—", 1)[1]), (
            line
        )  # the figure follows the dash
        assert line.rstrip().endswith(("→ met", "→ NOT met")), line
    rows = results_of(body)
    assert len(rows) == ISSUE_19.get(script, 0), rows
    for row in rows:
        assert len(row) == len(RESULT_COLUMNS)
        _, futon, baseline, ratio, _, met = row
        assert NUMBER.match(futon) and NUMBER.match(baseline), row
        assert re.fullmatch(r"\d+\.\d\d×", ratio), row
        assert met in ("met", "NOT met"), row
    # The goal table on top carries the same rows.
    table = report.split("## Goals of issue 19", 1)[1].split("###", 1)[0]
    assert table.count("\n| ") == len(rows) + 1  # + the header row
    if script in PROFILED:
        blocks = profiles_of(body)
        assert blocks, body[-2000:]
        for block in blocks:
            lines = block.splitlines()[1:]
            assert lines, block
            for line in lines:
                assert re.match(r"\s+\d+\.\d\d s cum", line), line
