"""Tamper evidence for the end of the chain: cutting the last lines of a
shard leaves a valid but shorter chain, which ``verify`` reports through the
store's anchor, and through an anchor the user kept (``--anchor``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from futon.cli import main
from futon.evidence import JsonlStore
from futon.evidence.anchor import ANCHOR_NAME, Anchor, lost_anchors, read_anchor
from futon.evidence.jsonl import list_shards
from futon.evidence.verify import verify_store
from tests.support import make_config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_config(tmp_path / "cfg")


def evidence_dir(config: Path) -> Path:
    return config.parent / "var" / "evidence"


def append(config: Path, count: int, start: int = 0) -> None:
    with JsonlStore(evidence_dir(config), fsync="always") as store:
        for n in range(start, start + count):
            store.append_sync({"id": f"e-{n}", "subject": {"ref/type": "session", "ref/id": "s"},
                               "type": "coordination", "claim-type": "step", "author": "a"})  # fmt: skip


def cut_last_lines(config: Path, count: int) -> None:
    shard = list_shards(evidence_dir(config))[-1].path
    lines = shard.read_bytes().splitlines(keepends=True)
    shard.write_bytes(b"".join(lines[:-count]))


def test_the_anchor_follows_the_head(config: Path) -> None:
    append(config, 5)
    anchor = read_anchor(evidence_dir(config) / ANCHOR_NAME)
    with JsonlStore(evidence_dir(config), read_only=True) as store:
        newest = store.get("e-4")
    assert anchor is not None and (anchor.seq, anchor.hash) == (5, newest["evidence/hash"])
    assert verify_store(evidence_dir(config)).ok


def test_verify_reports_entries_cut_from_the_end(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    append(config, 6)
    cut_last_lines(config, 2)
    assert main(["evidence", "verify", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "reached seq 6 but the shards end at 4: 2 entries missing" in out


def test_a_kept_anchor_catches_a_rewritten_store_anchor(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    append(config, 4)
    assert main(["evidence", "anchor", "--config", str(config)]) == 0
    kept = capsys.readouterr().out.strip()
    assert Anchor.parse(kept).seq == 4
    # Someone cuts the shard and rewrites the store's anchor to match.
    cut_last_lines(config, 1)
    directory = evidence_dir(config)
    (directory / ANCHOR_NAME).unlink()
    assert main(["evidence", "verify", "--config", str(config)]) == 0  # the store alone is fooled
    capsys.readouterr()
    assert main(["evidence", "verify", "--config", str(config), "--anchor", kept]) == 1
    assert "--anchor:0: the anchor says the store reached seq 4 but the shards end at 3" in capsys.readouterr().out
    # With an intact store the same anchor checks out.
    append(config, 1, start=10)
    assert main(["evidence", "verify", "--config", str(config), "--anchor", kept]) == 1  # seq 4 is another entry now
    assert "entry 4 is not the one the anchor recorded" in capsys.readouterr().out


def test_the_anchor_command_prints_json_and_checks_its_input(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evidence", "anchor", "--config", str(config)]) == 1  # nothing yet
    capsys.readouterr()
    append(config, 2)
    assert main(["evidence", "anchor", "--config", str(config), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["seq"] == 2 and len(data["hash"]) == 64
    for bad in ("nonsense", "2:xyz", ":" + "a" * 64, "2:" + "A" * 64):
        assert main(["evidence", "verify", "--config", str(config), "--anchor", bad]) == 2
        assert "SEQ:HASH" in capsys.readouterr().err


def test_a_restart_after_a_cut_keeps_the_loss_on_record(config: Path) -> None:
    append(config, 5)
    cut_last_lines(config, 2)
    with JsonlStore(evidence_dir(config)) as store:  # the daemon starting again
        assert store.report.lost_anchor is not None and store.report.lost_anchor.seq == 5
        store.append_sync({"id": "after", "subject": {"ref/type": "session", "ref/id": "s"},
                           "type": "coordination", "claim-type": "step", "author": "a"})  # fmt: skip
    assert len(lost_anchors(evidence_dir(config))) == 1
    report = verify_store(evidence_dir(config))
    assert [p.shard for p in report.problems] == [lost_anchors(evidence_dir(config))[0].name]
