"""The anchor's fixed-size record, written after every append: the same
bytes as ``json.dumps`` of its fields (padded to one 256-byte line), and
read back as written — ``at`` included, whatever it holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from futon.evidence.anchor import Anchor, AnchorWriter, read_anchor


@pytest.mark.parametrize(
    "anchor",
    [
        Anchor(1, "ab" * 32, "2026-12-07T06:40:00.123Z"),
        Anchor(0, "0" * 64, ""),
        Anchor(123_456_789, "f" * 64, 'a "quoted"\\ at\n with é'),
    ],
)
def test_the_record_is_the_json_of_its_fields_and_reads_back(tmp_path: Path, anchor: Anchor) -> None:
    record = anchor.record()
    fields = {"seq": anchor.seq, "hash": anchor.hash, "at": anchor.at}
    assert record == json.dumps(fields).encode().ljust(255) + b"\n"
    assert len(record) == 256
    writer = AnchorWriter(tmp_path / "anchor.json")
    try:
        writer.write(Anchor(99, "9" * 64, "a longer earlier record " * 4))
        writer.write(anchor)  # in place, over a longer one
    finally:
        writer.close()
    assert read_anchor(tmp_path / "anchor.json") == anchor
