"""Threads: a reply tree as one value (pure functions over entries)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from futon.evidence.model import EntryDict


@dataclass(frozen=True)
class Thread:
    """Every entry that replies (transitively) to ``root``, oldest first.

    ``forks`` maps each entry carrying ``fork-of`` to the ids of its branch
    (itself and everything below it); ``status`` is ``closed`` once a
    ``conclusion`` replies into the thread.
    """

    root: str
    entries: list[EntryDict]
    forks: dict[str, list[str]] = field(default_factory=dict)
    participants: list[str] = field(default_factory=list)
    status: Literal["open", "closed"] = "open"
    conjectures: list[str] = field(default_factory=list)
    patterns: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "entries": self.entries,
            "forks": self.forks,
            "participants": self.participants,
            "status": self.status,
            "conjectures": self.conjectures,
            "patterns": self.patterns,
        }


def build_thread(root: str, entries: list[EntryDict]) -> Thread:
    """Assemble a Thread from the root's descendants (any order)."""
    entries = sorted(entries, key=lambda e: e["evidence/seq"])
    children: dict[str, list[str]] = {}
    for entry in entries:
        parent = entry.get("evidence/in-reply-to") or entry.get("evidence/fork-of")
        if parent:
            children.setdefault(parent, []).append(entry["evidence/id"])

    def branch(start: str) -> list[str]:
        out, stack = [], [start]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(children.get(node, [])))
        return out

    forks = {e["evidence/id"]: branch(e["evidence/id"]) for e in entries if e.get("evidence/fork-of")}
    participants: list[str] = []
    for entry in entries:
        if entry["evidence/author"] not in participants:
            participants.append(entry["evidence/author"])
    closed = any(
        e["evidence/claim-type"] == "conclusion" and e["evidence/id"] != root for e in entries
    )
    conjectures = [
        e["evidence/id"]
        for e in entries
        if e.get("evidence/conjecture?") or e["evidence/type"] == "conjecture"
    ]
    patterns = Counter(e["evidence/pattern-id"] for e in entries if e.get("evidence/pattern-id"))
    return Thread(
        root=root,
        entries=entries,
        forks=forks,
        participants=participants,
        status="closed" if closed else "open",
        conjectures=conjectures,
        patterns=dict(patterns),
    )
