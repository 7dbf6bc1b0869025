"""``futon evidence verify``: re-read every shard and check it end to end.

Independent of the index on purpose: it trusts nothing but the bytes. It
checks that every line is JSON and a valid entry, ids are unique, seq
strictly increases (a gap is reported: entries are missing), and each hash
chains to the previous entry's. Problems carry shard and line so a human can
look at the exact place.

The chain alone cannot show that the newest entries were cut off, so the
store's anchor (:mod:`futon.evidence.anchor`) — and an anchor the user kept
elsewhere (``--anchor SEQ:HASH``) — says how far it reached: every entry
between the end of the shards and the anchor is reported missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from futon.evidence import compact as compaction
from futon.evidence.anchor import ANCHOR_NAME, Anchor, lost_anchors, read_anchor
from futon.evidence.jsonl import list_shards
from futon.evidence.model import GENESIS_HASH, STORE_KEYS, chain_hash, normalise_entry
from futon.protocol.errors import ProtocolError

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Problem:
    shard: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.shard}:{self.line}: {self.message}"


@dataclass
class VerifyReport:
    shards: int = 0
    entries: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def total_bytes(directory: Path) -> int:
    return sum(s.path.stat().st_size for s in list_shards(directory))


def verify_store(directory: Path, progress: Progress | None = None, *, anchor: Anchor | None = None) -> VerifyReport:
    """Check every shard under ``directory``; ``progress(n)`` gets bytes
    read. The store's own anchor, and ``anchor`` when given, must be covered
    by the shards with the same hash at their seq."""
    report = VerifyReport()
    anchors: list[tuple[str, Anchor]] = []
    try:
        stored = read_anchor(directory / ANCHOR_NAME)
    except ValueError as exc:
        report.problems.append(Problem(ANCHOR_NAME, 0, str(exc)))
        stored = None
    if stored is not None:
        anchors.append((ANCHOR_NAME, stored))
    if anchor is not None:
        anchors.append(("--anchor", anchor))
    for lost in lost_anchors(directory):
        report.problems.append(
            Problem(lost.name, 0, "at a start-up the anchor was ahead of the shards or did not match them: "
                    "entries were lost or changed (this file keeps the anchor of that time)")
        )  # fmt: skip
    wanted = {a.seq for _, a in anchors}
    hash_at: dict[int, str | None] = {}
    shards = list_shards(directory)
    # Gaps that compaction left are explained by its records (futon.evidence.compact).
    runs = compaction.runs_in([s.path for s in shards])
    for leftover in (compaction.NEW_DIR, compaction.OLD_DIR):
        if (directory / leftover).exists():
            report.problems.append(Problem(leftover, 0, "an interrupted compaction left this folder; its shards "
                                           "may hold entries missing from the store"))  # fmt: skip
    seen_ids: set[str] = set()
    prev_hash: str | None = GENESIS_HASH
    prev_seq = 0
    unreadable = 0  # lines since the last good entry whose seq is unknown
    for shard in shards:
        report.shards += 1
        with open(shard.path, "rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                report.bytes += len(raw)
                if progress is not None:
                    progress(len(raw))

                def problem(message: str, line_no: int = line_no, shard: str = shard.name) -> None:
                    report.problems.append(Problem(shard, line_no, message))

                if not raw.endswith(b"\n"):
                    problem("last line has no newline (torn write)")
                try:
                    entry = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    problem("not valid JSON")
                    prev_hash = None  # the next line's link cannot be checked
                    unreadable += 1
                    continue
                if not isinstance(entry, dict):
                    problem("not a JSON object")
                    prev_hash = None
                    unreadable += 1
                    continue
                seq = entry.get("evidence/seq")
                if not isinstance(seq, int) or isinstance(seq, bool):
                    problem("missing or non-integer evidence/seq")
                    prev_hash = None
                    unreadable += 1
                    continue
                try:
                    normalise_entry({k: v for k, v in entry.items() if k not in STORE_KEYS}, new_id=False)
                except ProtocolError as exc:
                    problem(f"invalid entry: {exc.message}")
                if line_no == 1 and seq != shard.no:
                    problem(f"shard is named for seq {shard.no} but starts at {seq}")
                if seq <= prev_seq:
                    problem(f"seq {seq} does not follow {prev_seq}")
                elif seq != prev_seq + 1 and not unreadable and (
                    bridged := compaction.explained(runs, prev_seq + 1, seq - 1, prev_hash)
                ):
                    prev_hash = bridged  # compaction removed exactly these; the chain goes on
                elif seq != prev_seq + 1:
                    missing = seq - prev_seq - 1 - unreadable  # unreadable lines explain some
                    if missing > 0:
                        problem(f"seq jumps from {prev_seq} to {seq}: {missing} entries missing")
                    prev_hash = None  # the chain cannot be checked across a gap
                entry_id = entry.get("evidence/id")
                if entry_id in seen_ids:
                    problem(f"duplicate id {entry_id!r}")
                elif isinstance(entry_id, str):
                    seen_ids.add(entry_id)
                stored_hash = entry.get("evidence/hash")
                if prev_hash is not None and stored_hash != chain_hash(prev_hash, entry):
                    problem("hash does not chain to the previous entry (edited or reordered)")
                prev_hash = stored_hash if isinstance(stored_hash, str) else None
                if seq in wanted:
                    hash_at[seq] = prev_hash
                prev_seq = max(prev_seq, seq)
                unreadable = 0
                report.entries += 1
    for where, kept in anchors:
        if kept.seq > prev_seq:
            report.problems.append(
                Problem(where, 0, f"the anchor says the store reached seq {kept.seq} but the shards end at "
                        f"{prev_seq}: {kept.seq - prev_seq} entries missing (cut off?)")
            )  # fmt: skip
        elif kept.seq in hash_at and hash_at[kept.seq] != kept.hash:
            report.problems.append(Problem(where, 0, f"entry {kept.seq} is not the one the anchor recorded"))
        elif kept.seq > 0 and kept.seq not in hash_at and not _compacted(runs, kept):
            report.problems.append(Problem(where, 0, f"entry {kept.seq}, which the anchor names, is missing"))
    return report


def _compacted(runs: dict[int, compaction.Run], anchor: Anchor) -> bool:
    """Whether compaction removed the anchored entry (with the anchored hash
    when it ended a run; an entry inside a run left no hash to compare)."""
    for run in runs.values():
        if run.first <= anchor.seq <= run.last:
            return anchor.seq != run.last or run.last_hash == anchor.hash
    return False
