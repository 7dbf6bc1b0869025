"""The head anchor: the seq and hash of the newest entry, kept beside the
shards so that a store cut short is caught.

The hash chain shows an edited or reordered entry, but deleting the last
lines of a shard leaves a shorter chain that is still perfectly valid. The
anchor says how far the chain reached: the JSONL store rewrites it after
every group commit (after the batch's lines are written, and synced under
``fsync: always``, so it never claims more than the shards hold), and
``futon evidence verify`` reports every entry between the shards' end and
the anchor as missing. Because a person with write access to the data
directory can rewrite the anchor too, ``futon evidence anchor`` prints it
as ``SEQ:HASH`` for keeping somewhere outside futon, and
``verify --anchor SEQ:HASH`` checks the shards against that copy.

The file is one fixed-size record rewritten in place with a single
``pwrite`` (no rename per batch): small, and never left half old, half new.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ANCHOR_NAME = "anchor.json"
# Anchors found ahead of the shards at start-up are kept under this prefix,
# so the loss stays on record after the store has moved on.
LOST_PREFIX = "anchor.lost-"
_RECORD_BYTES = 256
_TEXT = re.compile(r"^(\d+):([0-9a-f]{64})$")
# Text that JSON writes as it is (a hex hash, a stored timestamp): no escaping needed.
_PLAIN = re.compile(r"[0-9A-Za-z:.+\-]*\Z")


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    at: str = ""

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """``SEQ:HASH`` as ``futon evidence anchor`` prints it."""
        found = _TEXT.match(text.strip())
        if found is None:
            raise ValueError(f"an anchor is SEQ:HASH (a number, a colon, 64 hex digits), not {text.strip()[:80]!r}")
        return cls(int(found.group(1)), found.group(2))

    def record(self) -> bytes:
        # What json.dumps of {"seq", "hash", "at"} writes, spelt out: this
        # runs after every append (only ``at`` can hold text to escape).
        text = f'{{"seq": {int(self.seq)}, "hash": "{self.hash}", "at": "{self.at}"}}'
        if not (_PLAIN.match(self.hash) and _PLAIN.match(self.at)):  # never for the store's own values
            text = f'{{"seq": {int(self.seq)}, "hash": {json.dumps(self.hash)}, "at": {json.dumps(self.at)}}}'
        data = text.encode()
        return data.ljust(_RECORD_BYTES - 1) + b"\n"


def read_anchor(path: Path) -> Anchor | None:
    """The anchor in ``path``; None when there is none. ``ValueError`` when
    the file exists but does not hold one."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        seq, digest = data["seq"], data["hash"]
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(digest, str):
            raise TypeError
        return Anchor(seq, digest, str(data.get("at", "")))
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path.name} does not hold an anchor") from None


class AnchorWriter:
    """Rewrites the anchor file in place. Not thread-safe: the store calls
    it under its write lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def write(self, anchor: Anchor) -> None:
        os.pwrite(self._fd, anchor.record(), 0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def keep_lost(path: Path, anchor: Anchor) -> Path:
    """Move an anchor that was ahead of the shards aside, stamped."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{LOST_PREFIX}{anchor.seq}-{stamp}.json")
    os.replace(path, target)
    return target


def head_of_shards(shard: Path) -> Anchor | None:
    """The anchor of the last complete entry in ``shard`` (the newest
    shard), read backwards from its end; None when it holds none."""
    with open(shard, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        tail = b""
        while end > 0:
            start = max(0, end - 65536)
            handle.seek(start)
            tail = handle.read(end - start) + tail
            lines = tail.split(b"\n")
            # lines[-1] is what follows the last newline (a torn write or "").
            for raw in reversed(lines[1:-1] if start > 0 else lines[:-1]):
                try:
                    entry = json.loads(raw)
                    return Anchor(int(entry["evidence/seq"]), str(entry["evidence/hash"]), str(entry.get("evidence/at", "")))
                except (ValueError, KeyError, TypeError):
                    continue
            tail = lines[0] if start > 0 else b""
            end = start
    return None


def lost_anchors(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{LOST_PREFIX}*.json"))
