"""``futon evidence search``: ranked hits in 80 columns, filters, --json,
and bad queries as a clean error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from futon.cli import main
from futon.evidence import JsonlStore
from tests.support import make_config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    config = make_config(tmp_path / "cfg")
    with JsonlStore(config.parent / "var" / "evidence", fsync="never") as store:
        for n, (author, text) in enumerate(
            [
                ("ann", "retry later; the logic lives elsewhere"),
                (
                    "bob",
                    "the retry logic backs off far too quickly under load, see src/net/backoff.py line 42",
                ),
                ("ann", "unrelated note"),
            ]
        ):
            store.append_sync({"id": f"e-{n}", "subject": {"ref/type": "session", "ref/id": "sess-1"},
                               "type": "coordination", "claim-type": "conclusion", "author": author,
                               "body": {"text": text}})  # fmt: skip
    return config


def test_search_prints_one_line_per_hit_best_first(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["evidence", "search", "retry", "logic", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["day", "author"]
    assert len(lines) == 3 and all(len(line) <= 80 for line in lines)
    assert "bob" in lines[1] and "«retry logic»" in lines[1] and "ann" in lines[2]


def test_search_json_and_filters(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["evidence", "search", "retry", "--author", "ann", "--json", "--config", str(config)])
        == 0
    )
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [h["entry"]["evidence/id"] for h in hits] == ["e-0"] and hits[0]["match"] == "all"


def test_search_without_hits_and_bad_queries(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evidence", "search", "zeppelin", "--config", str(config)]) == 0
    assert "no entry holds these words" in capsys.readouterr().err
    assert main(["evidence", "search", "?!", "--config", str(config)]) != 0
    err = capsys.readouterr().err
    assert "no words" in err and "Traceback" not in err
