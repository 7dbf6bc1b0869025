"""``futon evidence compact --before TIMESTAMP``: drop old ephemeral entries
from the shards, keeping the chain verifiable.

Ephemeral entries (``ephemeral?``: a session's intermediate steps, stream
chatter) are hidden from queries by default; past a while they only cost
disk. Compaction writes new shards without the ephemeral entries older than
the cutoff; every other line is copied byte for byte, so its hash is
unchanged. The chain then has gaps, and each gap is explained by a
*compaction entry* appended at the end (seq after the old head, chained to
the old head's hash, tag ``compaction``) whose body lists every removed run:
its seq range, how many entries, the hash the run chained from and the hash
of its last entry — the one the next kept entry chains from. ``verify``
accepts a gap exactly when such a run covers it with matching hashes, so
editing a kept entry, or removing one without the record, is still caught.

The rewrite happens beside the old shards (``.compact-new/``) and is synced
before the old shards are moved out (``.compact-old/``) and the new ones in;
the old ones are deleted last. A crash in between leaves both folders, and
``verify`` says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from futon.evidence.model import GENESIS_HASH, format_at

NEW_DIR = ".compact-new"
OLD_DIR = ".compact-old"
TAG = "compaction"


@dataclass
class Run:
    """Consecutive removed entries."""

    first: int
    last: int
    count: int
    chained_from: str  # the hash the first removed entry chained from
    last_hash: str  # the hash of the last removed entry

    def to_dict(self) -> dict[str, Any]:
        return {"from-seq": self.first, "to-seq": self.last, "count": self.count,
                "chained-from": self.chained_from, "last-hash": self.last_hash}  # fmt: skip


@dataclass
class Rewrite:
    """What a rewrite produced: the new shard files (in order) and the runs."""

    shards: list[Path] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    kept: int = 0

    @property
    def removed(self) -> int:
        return sum(run.count for run in self.runs)


def removable(raw: bytes, cutoff: str) -> dict[str, Any] | None:
    """The entry on ``raw`` when compaction drops it (ephemeral and older
    than ``cutoff``, an ISO time in the store's format), else None. Lines
    that do not parse are kept: verify must still see them."""
    if b'"evidence/ephemeral?":true' not in raw:
        return None
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(entry, dict) or entry.get("evidence/ephemeral?") is not True:
        return None
    at = entry.get("evidence/at")
    return entry if isinstance(at, str) and at < cutoff else None


def rewrite(shards: list[tuple[Path, str]], work: Path, before: datetime) -> Rewrite:
    """Write the kept lines of ``shards`` (path, UTC day) into ``work``, one
    new shard per old one that keeps anything, named by its new first seq.
    Nothing is written when nothing would be removed."""
    cutoff = format_at(before)
    result = Rewrite()
    current: Run | None = None
    prev_hash = GENESIS_HASH
    plans: list[tuple[str, list[bytes]]] = []
    for path, day in shards:
        kept: list[bytes] = []
        with open(path, "rb") as handle:
            for raw in handle:
                entry = removable(raw, cutoff)
                if entry is not None:
                    seq, digest = int(entry["evidence/seq"]), str(entry["evidence/hash"])
                    if current is not None and current.last == seq - 1:
                        current.last, current.count, current.last_hash = seq, current.count + 1, digest
                    else:
                        current = Run(seq, seq, 1, prev_hash, digest)
                        result.runs.append(current)
                    prev_hash = digest
                    continue
                current = None
                kept.append(raw)
                prev_hash = _hash_of(raw) or prev_hash
        plans.append((day, kept))
    if not result.runs:
        return result
    work.mkdir(exist_ok=True)
    for day, lines in plans:
        if not lines:
            continue
        first = _seq_of(lines[0])
        target = work / f"{first:012d}-{day}.jsonl"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            data = b"".join(lines)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        result.shards.append(target)
        result.kept += len(lines)
    return result


def _hash_of(raw: bytes) -> str | None:
    try:
        value = json.loads(raw).get("evidence/hash")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _seq_of(raw: bytes) -> int:
    try:
        seq = json.loads(raw).get("evidence/seq")
    except (ValueError, AttributeError):
        seq = None
    # A shard starting with an unreadable line keeps a name verify questions.
    return seq if isinstance(seq, int) else 0


def runs_in(directory_shards: list[Path]) -> dict[int, Run]:
    """Every removed run recorded by compaction entries in these shards,
    keyed by its first seq (a cheap byte test picks the candidate lines)."""
    runs: dict[int, Run] = {}
    for path in directory_shards:
        with open(path, "rb") as handle:
            for raw in handle:
                if b'"compaction"' not in raw:
                    continue
                try:
                    entry = json.loads(raw)
                    if TAG not in (entry.get("evidence/tags") or ()):
                        continue
                    for item in entry["evidence/body"]["compaction"]["runs"]:
                        run = Run(int(item["from-seq"]), int(item["to-seq"]), int(item["count"]),
                                  str(item["chained-from"]), str(item["last-hash"]))  # fmt: skip
                        runs[run.first] = run
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue  # not a compaction record: verify judges the line itself
    return runs


def explained(runs: dict[int, Run], first: int, last: int, chained_from: str | None) -> str | None:
    """When compaction runs cover seqs ``first..last`` exactly, each chaining
    from the one before, the hash the next entry must chain from; else None."""
    current, digest = first, chained_from
    while current <= last:
        run = runs.get(current)
        if run is None or (digest is not None and run.chained_from != digest):
            return None
        current, digest = run.last + 1, run.last_hash
    return digest if current == last + 1 else None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
