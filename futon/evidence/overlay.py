"""Reading through a degraded index: the on-disk index plus a memory
overlay of the acknowledged entries it lost.

The index commits its changes late (:data:`~futon.evidence.store.INDEX_COMMIT_S`)
and SQLite rolls a transaction back when a write to it fails (a full disk,
an I/O error). The entries of that transaction are already in the shards and
already acknowledged, so they must stay readable: the store puts them (and
every entry appended while the index cannot be written) into an in-memory
:class:`~futon.evidence.index.Index` and reads through :class:`LayeredIndex`
until the on-disk index has caught up from the shards.

Every entry in the overlay is newer than every entry in the on-disk index
(the overlay holds a tail of the seq order), which keeps merging simple: a
reply in the overlay may point into the disk index, never the other way.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from futon.evidence.index import Index, Location, TextHit
from futon.evidence.query import EvidenceQuery
from futon.evidence.search import TIERS


class LayeredIndex:
    """The read side of :class:`Index` over ``disk`` and ``tail``."""

    def __init__(self, disk: Index, tail: Index) -> None:
        self.disk = disk
        self.tail = tail

    # ------------------------------------------------------------- lookups

    def last(self) -> tuple[int, str, str] | None:
        return self.tail.last() or self.disk.last()

    def count_all(self) -> int:
        return self.disk.count_all() + self.tail.count_all()

    def has_id(self, entry_id: str) -> bool:
        return self.tail.has_id(entry_id) or self.disk.has_id(entry_id)

    def existing(self, ids: Iterable[str]) -> dict[str, int]:
        ids = list(ids)
        found = self.disk.existing(ids)
        found.update(self.tail.existing(ids))
        return found

    def locate(self, entry_id: str) -> Location | None:
        return self.tail.locate(entry_id) or self.disk.locate(entry_id)

    # ------------------------------------------------------------- queries

    def search(self, query: EvidenceQuery, *, limit: int | None = None) -> list[Location]:
        wanted = limit if limit is not None else query.limit
        ascending = query.after_seq is not None
        both = (self.disk.search(query, limit=wanted), self.tail.search(query, limit=wanted))
        key = (lambda loc: loc.seq) if ascending else (lambda loc: -loc.seq)
        return list(heapq.merge(*both, key=key))[:wanted]

    def count(self, query: EvidenceQuery) -> int:
        return self.disk.count(query) + self.tail.count(query)

    def search_text(self, words: tuple[str, ...], query: EvidenceQuery, limit: int) -> list[TextHit]:
        """Both layers' hits merged by tier, then score. Each layer scores
        against its own word statistics, so while degraded the order within
        a tier is approximate; the tiers (phrase above scattered words) hold."""
        both = self.disk.search_text(words, query, limit) + self.tail.search_text(words, query, limit)
        both.sort(key=lambda hit: (TIERS.index(hit.tier), hit.score))
        return both[:limit]

    # ------------------------------------------------------------- threads

    def _links(self, entry_id: str) -> tuple[Location, str | None, str | None] | None:
        for index in (self.tail, self.disk):
            found = index.links(entry_id)
            if found is not None:
                return found
        return None

    def ancestors(self, entry_id: str) -> list[Location]:
        """The entry and its in-reply-to ancestors, root first."""
        if not self.tail.has_id(entry_id):
            return self.disk.ancestors(entry_id)
        out: list[Location] = []
        seen: set[str] = set()
        current: str | None = entry_id
        while current is not None and current not in seen:
            seen.add(current)
            if not self.tail.has_id(current):
                # Below the overlay, the disk index walks the rest at once.
                out.extend(reversed(self.disk.ancestors(current)))
                break
            found = self._links(current)
            if found is None:
                break
            location, reply_to, _ = found
            out.append(location)
            current = reply_to
        out.reverse()
        return out

    def thread_root(self, entry_id: str) -> str:
        current = entry_id
        seen: set[str] = set()
        while current not in seen:
            seen.add(current)
            if not self.tail.has_id(current):
                return self.disk.thread_root(current)
            found = self._links(current)
            parent = (found[1] or found[2]) if found else None
            if parent is None or not self.has_id(parent):
                return current
            current = parent
        return current

    def descendants(self, root_id: str) -> list[Location]:
        """The root and every entry replying to or forking from it,
        transitively, oldest first."""
        below = self.disk.descendants(root_id) if self.disk.has_id(root_id) else []
        members = {root_id} if not below else set(self.disk.ids_of(below))
        extra: list[Location] = []
        # Overlay entries come in seq order and point only backwards, so
        # one pass finds every descendant among them.
        for location, entry_id, reply_to, fork_of in self.tail.links_in_order():
            if entry_id == root_id or reply_to in members or fork_of in members:
                members.add(entry_id)
                extra.append(location)
        return below + extra
