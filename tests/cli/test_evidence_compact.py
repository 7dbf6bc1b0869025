"""``futon evidence compact --before``: old ephemeral entries leave the
shards, everything else stays byte for byte, and the chain still verifies —
while an edit or a deletion that no compaction recorded is still caught."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from futon.cli import main
from futon.evidence import EvidenceQuery, JsonlStore
from futon.evidence.anchor import Anchor
from futon.evidence.jsonl import list_shards
from futon.evidence.verify import verify_store
from tests.support import make_config

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_config(tmp_path / "cfg")


def evidence_dir(config: Path) -> Path:
    return config.parent / "var" / "evidence"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def entry(entry_id: str, ephemeral: bool) -> dict:
    return {"id": entry_id, "subject": {"ref/type": "session", "ref/id": "s"}, "type": "coordination",
            "claim-type": "step", "author": "a", "ephemeral?": ephemeral}  # fmt: skip


def build(config: Path) -> list[str]:
    """e1 kept, e2-e4 old ephemeral, e5 kept, e6-e7 old ephemeral (the old
    head), then a day later e8 ephemeral (too new to go). Returns the
    pre-compaction anchor of e7 as text."""
    clock = Clock()
    with JsonlStore(evidence_dir(config), fsync="always", clock=clock) as store:
        for entry_id, ephemeral in [("e1", False), ("e2", True), ("e3", True), ("e4", True), ("e5", False),
                                    ("e6", True), ("e7", True)]:  # fmt: skip
            store.append_sync(entry(entry_id, ephemeral))
        e7 = store.get("e7")
        clock.now = T0 + timedelta(days=1)
        store.append_sync(entry("e8", True))
    return [str(Anchor(e7["evidence/seq"], e7["evidence/hash"]))]


def run_compact(config: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    before = (T0 + timedelta(hours=1)).isoformat()
    assert main(["evidence", "compact", "--config", str(config), "--before", before, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_compaction_drops_old_ephemeral_entries_and_the_chain_verifies(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kept_anchor = build(config)[0]
    before_bytes = {e: None for e in ("e1", "e5", "e8")}
    result = run_compact(config, capsys)
    assert result["removed"] == 5 and result["kept"] == 3
    assert [(r["from-seq"], r["to-seq"], r["count"]) for r in result["runs"]] == [(2, 4, 3), (6, 7, 2)]

    report = verify_store(evidence_dir(config))
    assert report.ok, [str(p) for p in report.problems]
    assert report.entries == 4  # e1, e5, e8 and the compaction record
    # An anchor kept before compaction, of a removed entry that ended a run, still checks out.
    assert main(["evidence", "verify", "--config", str(config), "--anchor", kept_anchor]) == 0
    capsys.readouterr()

    with JsonlStore(evidence_dir(config)) as store:
        ids = [e["evidence/id"] for e in store.query(EvidenceQuery(include_ephemeral=True, limit=50)).entries]
        assert set(before_bytes) <= set(ids) and not {"e2", "e3", "e4", "e6", "e7"} & set(ids)
        record = store.get(result["entry"])
        assert record["evidence/seq"] == 9 and "compaction" in record["evidence/tags"]
        assert record["evidence/body"]["compaction"]["removed"] == 5
        # The numbering goes on after the old head; nothing is reused.
        assert store.append_sync(entry("e10", False))["evidence/seq"] == 10
    assert verify_store(evidence_dir(config)).ok


def test_nothing_to_remove_changes_nothing(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with JsonlStore(evidence_dir(config)) as store:
        store.append_sync(entry("only", False))
    shard = list_shards(evidence_dir(config))[0].path
    content = shard.read_bytes()
    result = run_compact(config, capsys)
    assert result == {"removed": 0, "kept": 1, "runs": [], "entry": None}
    assert shard.read_bytes() == content


def test_an_edit_or_an_unrecorded_deletion_after_compaction_is_still_caught(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build(config)
    run_compact(config, capsys)
    shard = list_shards(evidence_dir(config))[0].path
    lines = shard.read_bytes().splitlines(keepends=True)
    # Delete e5, which no compaction removed.
    shard.write_bytes(b"".join(line for line in lines if b'"e5"' not in line))
    problems = [str(p) for p in verify_store(evidence_dir(config)).problems]
    assert any("entries missing" in p for p in problems), problems
    # Put it back edited.
    edited = [line.replace(b'/author":"a"', b'/author":"x"') if b'"e5"' in line else line for line in lines]
    shard.write_bytes(b"".join(edited))
    problems = [str(p) for p in verify_store(evidence_dir(config)).problems]
    assert any("hash does not chain" in p for p in problems), problems


def test_a_bad_cutoff_is_a_usage_error(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evidence", "compact", "--config", str(config), "--before", "yesterday"]) == 2
    assert "ISO-8601" in capsys.readouterr().err


async def test_a_running_daemon_compacts_between_appends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI finds the store held by a daemon and asks it over HTTP."""
    import asyncio

    import aiohttp

    from tests.transports.kit import base_url, running_daemon

    async with running_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http:
        base = base_url(daemon)
        for n, ephemeral in enumerate([True, True, False, True]):
            async with http.post(base + "/api/alpha/evidence", json=entry(f"d{n}", ephemeral)) as resp:
                assert resp.status == 201
        config = tmp_path / "cfg" / "futon.yaml"
        later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        code = await asyncio.to_thread(
            main, ["evidence", "compact", "--config", str(config), "--before", later, "--url", base, "--json"]
        )
        assert code == 0
        result = json.loads(capsys.readouterr().out)
        assert result["removed"] == 3
        async with http.get(base + "/api/alpha/evidence/d2") as resp:
            assert resp.status == 200
        async with http.get(base + "/api/alpha/evidence/d0") as resp:
            assert resp.status == 404
        async with http.post(base + "/api/alpha/evidence", json=entry("d9", False)) as resp:
            assert resp.status == 201
        async with http.post(base + "/api/alpha/evidence/compact", json={"before": "not a time"}) as resp:
            assert resp.status == 400
        await daemon.store.flush()
        assert verify_store(Path(daemon.store.directory)).ok
