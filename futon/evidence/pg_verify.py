"""``futon evidence verify`` for the PostgreSQL store: re-read every stored
line in seq order and check it end to end, as :mod:`futon.evidence.verify`
does for shards — each line is JSON and a valid entry, seq runs 1, 2, 3 …
without a gap, each hash chains to the previous entry's, and the row's
columns (seq, id, hash) agree with its line. A problem names ``postgres``
and the seq (in the place of shard and line).
"""

from __future__ import annotations

import json

from futon.evidence.model import GENESIS_HASH, STORE_KEYS, chain_hash, normalise_entry
from futon.evidence.postgres import PostgresStore
from futon.evidence.verify import Problem, Progress, VerifyReport
from futon.protocol.errors import ProtocolError

WHERE = "postgres"
CHUNK = 2000


def verify_postgres(store: PostgresStore, progress: Progress | None = None) -> VerifyReport:
    report = VerifyReport(shards=1)
    prev_hash: str | None = GENESIS_HASH
    prev_seq = 0
    for seq, entry_id, digest, raw in store.iter_rows(CHUNK):
        report.bytes += len(raw) + 1
        report.entries += 1
        if progress is not None:
            progress(len(raw) + 1)

        def problem(message: str, seq: int = seq) -> None:
            report.problems.append(Problem(WHERE, seq, message))

        if seq != prev_seq + 1:
            problem(f"seq jumps from {prev_seq} to {seq}: {seq - prev_seq - 1} entries missing")
            prev_hash = None
        prev_seq = seq
        try:
            entry = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            problem("not valid JSON")
            prev_hash = None
            continue
        if not isinstance(entry, dict):
            problem("not a JSON object")
            prev_hash = None
            continue
        try:
            normalise_entry({k: v for k, v in entry.items() if k not in STORE_KEYS}, new_id=False)
        except ProtocolError as exc:
            problem(f"invalid entry: {exc.message}")
        if (entry.get("evidence/seq"), entry.get("evidence/id"), entry.get("evidence/hash")) != (
            seq,
            entry_id,
            digest,
        ):
            problem("the row's seq, id or hash differs from its line (edited?)")
        stored_hash = entry.get("evidence/hash")
        if prev_hash is not None and stored_hash != chain_hash(prev_hash, entry):
            problem("hash does not chain to the previous entry (edited or reordered)")
        prev_hash = stored_hash if isinstance(stored_hash, str) else None
    return report
