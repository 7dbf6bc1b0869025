"""``futon evidence verify``: re-read every shard and check it end to end.

Independent of the index on purpose: it trusts nothing but the bytes. It
checks that every line is JSON and a valid entry, ids are unique, seq
strictly increases (a gap is reported: entries are missing), and each hash
chains to the previous entry's. Problems carry shard and line so a human can
look at the exact place.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from futon.errors import ProtocolError
from futon.evidence.jsonl import list_shards
from futon.evidence.model import GENESIS_HASH, STORE_KEYS, chain_hash, normalise_entry

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


def verify_store(directory: Path, progress: Progress | None = None) -> VerifyReport:
    """Check every shard under ``directory``; ``progress(n)`` gets bytes read."""
    report = VerifyReport()
    seen_ids: set[str] = set()
    prev_hash: str | None = GENESIS_HASH
    prev_seq = 0
    unreadable = 0  # lines since the last good entry whose seq is unknown
    for shard in list_shards(directory):
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
                prev_seq = max(prev_seq, seq)
                unreadable = 0
                report.entries += 1
    return report
