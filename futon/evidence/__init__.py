"""The evidence landscape: typed, append-only, queryable entries.

Public surface: the store interface and its two backends, the query value,
threads, and the entry helpers. See docs/evidence.md.
"""

from futon.evidence.jsonl import JsonlStore, RecoveryReport, open_store
from futon.evidence.model import (
    CLAIM_TYPES,
    ENTRY_TYPES,
    REF_TYPES,
    EntryDict,
    normalise_entry,
)
from futon.evidence.query import EvidenceQuery, Page
from futon.evidence.store import EvidenceStore, MemoryStore
from futon.evidence.threads import Thread

__all__ = [
    "CLAIM_TYPES",
    "ENTRY_TYPES",
    "REF_TYPES",
    "EntryDict",
    "EvidenceQuery",
    "EvidenceStore",
    "JsonlStore",
    "MemoryStore",
    "Page",
    "RecoveryReport",
    "Thread",
    "normalise_entry",
    "open_store",
]
