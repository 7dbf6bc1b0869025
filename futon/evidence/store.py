"""The evidence store: one interface, two backends.

``EvidenceStore`` holds everything that does not depend on where bytes go —
validation against what is already stored, seq and hash-chain assignment,
group commit, queries through the :class:`~futon.evidence.index.Index`,
chains, threads and live listeners. A backend supplies only ``_write`` (make
a batch of lines durable, return where they went) and ``_read`` (fetch
entries by location). ``MemoryStore`` keeps entries in a dict for fast unit
tests; ``JsonlStore`` (``futon.evidence.jsonl``) keeps them in shards.
``PostgresStore`` (``futon.evidence.postgres``) is the exception: its head
lives in the database, so it seals each batch inside its own transaction
with :func:`seal_batch` (the one chain rule) and answers reads in SQL.

Contract for callers:
- ``await append(raw)`` returns the stored entry only after the backend has
  written it (and, under ``fsync: always``, synced it). Concurrent appends
  are committed in batches: one write and one sync serve the whole batch.
- An append that fails validation raises ``ProtocolError`` (``invalid-entry``)
  or ``Conflict`` (``duplicate-id``, ``reply-not-found``, ``fork-not-found``)
  and changes nothing. A write failure (disk full…) raises ``StoreError``
  and changes nothing; reads keep working.
- An acknowledged entry stays readable by every read path whatever happens
  to the index afterwards: when an index write fails (SQLite then drops
  the uncommitted part of the index), the entries it lost and every later
  one are served from a memory overlay (:mod:`futon.evidence.overlay`) and
  ``index_state`` is ``"degraded"`` until the index has caught up from the
  shards, which the store retries by itself.
- Entries returned are the caller's to keep; the store holds no reference
  to them. Listeners share one dict per entry and must not mutate it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from futon.evidence.index import Index, Location, ShardRecord
from futon.evidence.model import (
    CLAIM_TYPES,
    ENTRY_TYPES,
    GENESIS_HASH,
    MAX_ENTRY_BYTES,
    REF_TYPES,
    EntryDict,
    EntryModel,
    format_at,
    new_entry_id,
    normalise_entry,
    seal,
)
from futon.evidence.overlay import LayeredIndex
from futon.evidence.query import EvidenceQuery, Page, encode_cursor
from futon.evidence.search import SearchHit, SearchRequest
from futon.evidence.threads import Thread, build_thread
from futon.protocol.errors import Conflict, NotFound, ProtocolError, StoreError

log = logging.getLogger("futon.evidence")

Listener = Callable[[EntryDict], None]
INDEX_COMMIT_S = 0.1  # how stale another process's view of the index may be
CATCH_UP_S = 1.0  # while degraded, how often the index tries to catch up
# Entries a degraded store keeps in its memory overlay; past this, appends
# are refused (store-unavailable) until the index has caught up.
OVERLAY_MAX = 100_000
# Group commit (``_gather``): at most this many turns of the loop spent
# letting appends join a batch, and no more gathering past this many.
GATHER_TURNS = 4
GATHER_MAX = 256
# Appends written inline in one turn of the loop before the rest of the
# turn's appends are batched (``_note_turn``).
INLINE_PER_TURN = 8
_REFERENCES = {"evidence/in-reply-to": "reply-not-found", "evidence/fork-of": "fork-not-found"}
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Sealed:
    """An entry that passed validation and got its seq, time and hash."""

    entry: EntryDict
    line: bytes
    known: dict[str, int] = field(default_factory=dict)  # ids this batch references → their seq


@dataclass
class _Head:
    """The chain's head: what the next entry continues from."""

    seq: int = 0
    hash: str = GENESIS_HASH
    at: str = ""


def referenced_ids(entries: list[EntryDict], generated: frozenset[str] = frozenset()) -> set[str]:
    """The ids a batch must be checked against: its own and those it names.
    ``generated``: ids the store made itself (``e-<uuid4>``), which cannot
    already be stored — looking them up would cost a query per append."""
    wanted = {e["evidence/id"] for e in entries} - generated
    wanted.update(e[k] for e in entries for k in _REFERENCES if e.get(k) is not None)
    return wanted


# The keys of an entry in canonical form, as the entry model names them.
_CANONICAL_KEYS = frozenset(f.alias for f in EntryModel.model_fields.values() if f.alias)
_ENTRY_TYPES = frozenset(ENTRY_TYPES)
_CLAIM_TYPES = frozenset(CLAIM_TYPES)
_REF_TYPES = frozenset(REF_TYPES)


def own_entry(entry: EntryDict) -> EntryDict:
    """A copy of ``entry`` — one the daemon built itself, in canonical form
    (``evidence/…`` keys, no id) — with a fresh id, after a check of its
    shape only (known keys, type, claim-type and subject from their lists,
    body a dict, tags a list). What :func:`normalise_entry` would return for
    it, without the model round trip. Copies the entry, its subject, tags
    and body, as the model does, so the caller may change its own
    containers afterwards (what they hold is shared, as with the model). A wrong
    shape is a bug in the caller: ``invalid-entry``."""
    subject = entry.get("evidence/subject")
    body = entry.get("evidence/body")
    if (
        not _CANONICAL_KEYS.issuperset(entry)
        or "evidence/id" in entry
        or entry.get("evidence/type") not in _ENTRY_TYPES
        or entry.get("evidence/claim-type") not in _CLAIM_TYPES
        or not isinstance(entry.get("evidence/author"), str)
        or not isinstance(subject, dict)
        or subject.keys() != {"ref/type", "ref/id"}
        or subject["ref/type"] not in _REF_TYPES
        or not isinstance(subject["ref/id"], str)
        or not isinstance(entry.get("evidence/tags", []), list)
        or not (body is None or isinstance(body, dict))
    ):
        raise ProtocolError(
            f"not an entry in canonical form: {sorted(entry)}", code="invalid-entry"
        )
    out = {"evidence/id": new_entry_id(), **entry}
    out["evidence/subject"] = {"ref/type": subject["ref/type"], "ref/id": subject["ref/id"]}
    out["evidence/tags"] = list(entry.get("evidence/tags", ()))
    if body is not None:
        out["evidence/body"] = dict(body)
    return out


def _generates_id(raw: Any) -> bool:
    """Whether :func:`normalise_entry` gives ``raw`` a fresh id (it names none)."""
    return isinstance(raw, dict) and raw.get("evidence/id") is None and raw.get("id") is None


def seal_batch(
    entries: list[EntryDict], head: _Head, existing: dict[str, int], now: str
) -> tuple[list[Sealed], list[tuple[int, Exception]], _Head]:
    """Seal a batch after ``head``: each entry is checked against
    ``existing`` (ids already stored → seq) and the batch so far, and the
    good ones get seq, time and hash. Returns them, the failures with their
    index in ``entries``, and the new head. Shared by every backend, so the
    chain is built one way whether the head lives in memory or in a
    database row locked for the transaction."""
    sealed: list[Sealed] = []
    failures: list[tuple[int, Exception]] = []
    batch_ids: set[str] = set()
    for position, entry in enumerate(entries):
        try:
            EvidenceStore._check_references(entry, batch_ids, existing)
            seq = head.seq + 1
            # Time never runs backwards in the store, so `since`/`until`
            # and seq order agree even if the wall clock steps back.
            at = max(now, head.at)
            stored, line = seal(entry, seq=seq, at=at, prev_hash=head.hash)
            if len(line) > MAX_ENTRY_BYTES:
                raise ProtocolError(f"entry is {len(line)} bytes; the limit is {MAX_ENTRY_BYTES}", code="invalid-entry")
        except (ProtocolError, Conflict) as error:
            failures.append((position, error))
            continue
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 line can hold it
            failures.append((position, ProtocolError("entry holds text that is not UTF-8 (a lone surrogate)", code="invalid-entry")))
            continue
        batch_ids.add(stored["evidence/id"])
        head = _Head(seq, stored["evidence/hash"], at)
        sealed.append(Sealed(stored, line, existing))
    return sealed, failures, head


class EvidenceStore(ABC):
    def __init__(self, index: Index, *, clock: Clock = utc_now) -> None:
        self._index = index
        # What reads go through: the index, or (degraded) the index plus a
        # memory overlay of the acknowledged entries it does not hold.
        self._view: Index | LayeredIndex = index
        self._overlay: Index | None = None
        # Rows in the index's open (uncommitted) transaction: lost from it if
        # a write fails, so kept until the commit succeeds.
        self._deferred: list[tuple[EntryDict, Location]] = []
        self._commit_wanted = False  # rows were deferred since the index was last asked to commit
        # Ids of pending entries the store generated (no lookup needed); each
        # backend's _drain takes those of the batch it seals.
        self._fresh: set[str] = set()
        self._turn_inline = 0  # appends committed inline in this turn of the loop
        self._catch_up_timer: asyncio.TimerHandle | None = None
        self._clock = clock
        self._head = _Head()
        self._listeners: list[Listener] = []
        self._pending: list[tuple[EntryDict, asyncio.Future[EntryDict]]] = []
        self._drain_task: asyncio.Task[None] | None = None
        self._commit_timer: asyncio.TimerHandle | None = None
        self._closed = False

    def _load_head(self) -> None:
        try:
            last = self._view.last()
        except sqlite3.Error as exc:
            if self._overlay is not None or self._closed:
                raise
            # The index could not write rows it held (its writer thread
            # failed, or this retry did): the same cue as any failed index
            # write — degrade, then read the head through the overlay.
            self._degrade(exc)
            last = self._view.last()
        self._head = _Head(*last) if last else _Head()

    # ------------------------------------------------------------- writing

    async def append(self, raw: Any) -> EntryDict:
        """Validate, store and return one entry (see the module contract)."""
        self._check_open()
        return await self._append(normalise_entry(raw), fresh=_generates_id(raw))

    async def append_own(self, entry: EntryDict) -> EntryDict:
        """:meth:`append` for an entry the daemon built itself in canonical
        form (see :func:`own_entry`): the hot path of every peripheral
        action, which skips the entry model (the edges validate what
        clients send; this entry's content is the daemon's own)."""
        self._check_open()
        return await self._append(own_entry(entry), fresh=True)

    async def _append(self, entry: EntryDict, *, fresh: bool) -> EntryDict:
        if (
            self._writes_inline()
            and self._turn_inline < INLINE_PER_TURN
            and not self._pending
            and (self._drain_task is None or self._drain_task.done())
        ):
            # Nothing queued and nothing to wait for: commit right here, with
            # no await in between, so ordering with other appends holds. (A
            # batch, below, looks its ids up in one query for all of them.)
            generated = frozenset((entry["evidence/id"],)) if fresh else frozenset()
            sealed, failures = self._seal([entry], generated)
            if failures:
                raise failures[0][1]
            self._publish(sealed, self._write_or_revert(sealed), commit=False)
            self._note_turn()
            return sealed[0].entry
        loop = asyncio.get_running_loop()
        future: asyncio.Future[EntryDict] = loop.create_future()
        self._pending.append((entry, future))
        if fresh:
            self._fresh.add(entry["evidence/id"])
        if self._drain_task is None or self._drain_task.done():
            # A task of its own, so a cancelled caller never strands the batch.
            self._drain_task = loop.create_task(self._drain())
        return await future

    def append_sync(self, raw: Any) -> EntryDict:
        """``append`` for callers without an event loop (CLI, benches)."""
        return self.append_many_sync([raw])[0]

    def append_many_sync(self, raws: Iterable[Any]) -> list[EntryDict]:
        """Store a batch in one write; all or nothing."""
        self._check_open()
        if self._overlay is not None:
            self._try_catch_up()  # no loop may be running to retry it for us
        entries = [normalise_entry(raw) for raw in raws]
        sealed, failures = self._seal(entries)
        if failures:
            self._load_head()
            raise failures[0][1]
        if not sealed:
            return []
        locations = self._write_or_revert(sealed)
        self._publish(sealed, locations)
        return [s.entry for s in sealed]

    def _note_turn(self) -> None:
        """After an inline append: past INLINE_PER_TURN of them in this turn
        of the loop, further appends join a batch (``_drain``) instead —
        under load many requests are handled per turn, and one write, anchor
        and index hand-over per batch costs far less than one each. The
        first ones stay inline: a caller appending line after line in one
        turn (the IRC server records a client's lines as it reads them)
        would otherwise wait a turn per line, and the IRC fan-out lost its
        write coalescing — 2.5× slower (bench/irc_fanout.py)."""
        if self._batches_turns():
            self._turn_inline += 1
            if self._turn_inline == 1:
                asyncio.get_running_loop().call_soon(self._end_turn)

    def _end_turn(self) -> None:
        self._turn_inline = 0

    def _batches_turns(self) -> bool:
        """Whether appends after an inline one in the same turn are batched."""
        return False

    async def _drain(self) -> None:
        batch: list[tuple[EntryDict, asyncio.Future[EntryDict]]] = []
        try:
            await self._drain_batches(batch)
        except Exception as exc:
            # A bug or an index failure outside the paths above must not
            # leave callers waiting forever: whoever is still waiting hears
            # of it (typed), and nothing unacknowledged was recorded as theirs.
            log.exception("evidence: a batch of appends failed")
            error = StoreError(f"evidence append failed: {exc}")
            for _, future in [*batch, *self._pending]:
                if not future.done():
                    future.set_exception(error)
            self._pending = []
            self._fresh.clear()
            try:
                self._load_head()  # continue the chain from what was acknowledged
            except Exception:
                log.exception("evidence: could not reload the chain's head")

    async def _drain_batches(self, batch: list[tuple[EntryDict, asyncio.Future[EntryDict]]]) -> None:
        """The batches of :meth:`_drain`; ``batch`` holds the one in hand."""
        while self._pending:
            await self._gather()
            batch[:], self._pending = self._pending, []
            entries = [entry for entry, _ in batch]
            futures = [future for _, future in batch]
            # Ids the store generated need no lookup (see referenced_ids).
            generated = frozenset(e["evidence/id"] for e in entries if e["evidence/id"] in self._fresh)
            self._fresh.difference_update(generated)
            sealed, failures = self._seal(entries, generated)
            failed_at = dict(failures)
            ok_futures = [f for i, f in enumerate(futures) if i not in failed_at]
            for index, error in failed_at.items():
                if not futures[index].done():
                    futures[index].set_exception(error)
            if not sealed:
                continue
            try:
                locations = await self._write_async(sealed)
                self._publish(sealed, locations, commit=False)
            except StoreError as error:
                for future in ok_futures:
                    if not future.done():
                        future.set_exception(error)
                continue
            for future, item in zip(ok_futures, sealed, strict=True):
                if not future.done():
                    future.set_result(item.entry)

    async def _gather(self) -> None:
        """Group commit: before a batch is taken, let the loop run while
        appends keep joining it — requests whose bytes have already arrived
        are parsed in the next turn or two, and would otherwise wait for a
        sync of their own after this one. Stops at the first turn that adds
        nothing, after GATHER_TURNS turns, or at GATHER_MAX entries: no
        timer, so a lone append waits one turn of the loop, not a delay."""
        waiting = len(self._pending)
        for _ in range(GATHER_TURNS):
            if waiting >= GATHER_MAX:
                return
            await asyncio.sleep(0)  # one turn of the loop, not a timed wait
            if len(self._pending) == waiting:
                return
            waiting = len(self._pending)

    def _seal(
        self, entries: list[EntryDict], generated: frozenset[str] = frozenset()
    ) -> tuple[list[Sealed], list[tuple[int, Exception]]]:
        """Check each entry against the store and the batch so far; give the
        good ones seq, time and hash. Failures come back with their index.
        ``generated``: ids the store made (not looked up: see referenced_ids)."""
        existing = self._reads(wait=False).existing(referenced_ids(entries, generated))
        sealed, failures, self._head = seal_batch(entries, self._head, existing, format_at(self._clock()))
        return sealed, failures

    @staticmethod
    def _check_references(entry: EntryDict, batch_ids: set[str], existing: dict[str, int]) -> None:
        entry_id = entry["evidence/id"]
        if entry_id in batch_ids or entry_id in existing:
            raise Conflict(f"an entry with id {entry_id!r} already exists", code="duplicate-id")
        for key, code in _REFERENCES.items():
            target = entry.get(key)
            if target is not None and target not in batch_ids and target not in existing:
                raise Conflict(f"{key} names {target!r}, which does not exist", code=code)

    def _write_or_revert(self, sealed: list[Sealed]) -> list[Location]:
        try:
            return self._write(sealed)
        except OSError as exc:
            raise self._write_failed(exc) from None

    def _write_failed(self, exc: OSError) -> StoreError:
        # Nothing of the batch was acknowledged: the chain continues from
        # the last entry that was (the index only holds written entries).
        self._load_head()
        log.error("evidence write failed: %s", exc)
        return StoreError(f"evidence write failed: {exc.strerror or exc}")

    async def _write_async(self, sealed: list[Sealed]) -> list[Location]:
        """Backends with blocking I/O override this to leave the loop free."""
        return self._write_or_revert(sealed)

    def _writes_inline(self) -> bool:
        """Whether a write never waits (no sync to await): then an idle
        store commits an append in the caller's task."""
        return True

    def _publish(self, sealed: list[Sealed], locations: list[Location], *, commit: bool = True) -> None:
        rows = list(zip((s.entry for s in sealed), locations, strict=True))
        if self._overlay is not None:
            self._hold_or_refuse(rows, locations)
        else:
            try:
                self._index.add(rows, self._shard_progress(), commit=commit, known=sealed[0].known if sealed else None)
            except sqlite3.Error as exc:
                # This batch is not acknowledged yet: take its lines back, as
                # a failed write would. What the index lost of earlier,
                # acknowledged batches is served from memory from now on.
                self._unwrite(locations)
                self._degrade(exc)
                self._load_head()
                raise StoreError(f"evidence index update failed: {exc}") from None
            else:
                if commit:
                    self._deferred.clear()
                else:
                    self._deferred.extend(rows)
                    self._commit_wanted = True
                    self._schedule_index_commit()
        self._notify(item.entry for item in sealed)

    def _notify(self, entries: Iterable[EntryDict]) -> None:
        """Hand each committed entry to every listener, in seq order."""
        for entry in entries:
            for listener in list(self._listeners):
                try:
                    listener(entry)
                except Exception:  # a broken listener must not break appends
                    log.exception("evidence listener failed")

    # ------------------------------------------------------------- degraded index

    @property
    def index_state(self) -> str:
        """``ok``, or ``degraded`` while acknowledged entries are served from
        the memory overlay because the index could not be written."""
        return "ok" if self._overlay is None else "degraded"

    def _degrade(self, exc: sqlite3.Error) -> None:
        """The index failed a write: whatever it had not committed is gone
        from it. Move that into the memory overlay."""
        log.error(
            "evidence index write failed (%s); serving the newest entries from memory "
            "until the index catches up from the shards",
            exc,
        )
        lost, self._deferred = self._deferred, []
        try:
            self._index.rollback()
        except sqlite3.Error as again:
            log.error("evidence index rollback failed: %s", again)
        if self._overlay is None:
            self._overlay = Index(None)
            self._view = LayeredIndex(self._index, self._overlay)
        # A commit that failed may still have reached the file: keep only
        # what the index really lacks.
        present = self._index.existing(entry["evidence/id"] for entry, _ in lost) if lost else {}
        self._overlay.add([row for row in lost if row[0]["evidence/id"] not in present])
        self._schedule_catch_up()

    def _hold_or_refuse(self, rows: list[tuple[EntryDict, Location]], locations: list[Location]) -> None:
        assert self._overlay is not None
        if self._overlay.count_all() + len(rows) > OVERLAY_MAX:
            # Bounded: past this the store refuses rather than grow.
            self._unwrite(locations)
            self._load_head()
            raise StoreError(
                f"the evidence index cannot be written and {OVERLAY_MAX} entries already wait for it; "
                "free space (or fix the index's disk) and retry"
            )
        self._overlay.add(rows)

    def _schedule_catch_up(self) -> None:
        if self._catch_up_timer is not None or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # a caller without a loop retries on its next append
        self._catch_up_timer = loop.call_later(CATCH_UP_S, self._try_catch_up)

    def _try_catch_up(self) -> None:
        """Re-index from the shards what the index lacks; on success, leave
        degraded mode. Runs between writes, never during one."""
        self._catch_up_timer = None
        if self._overlay is None or self._closed:
            return
        if self._drain_task is not None and not self._drain_task.done():
            self._schedule_catch_up()  # a batch is between its write and its publish
            return
        try:
            self._reindex_from_shards()
        except (sqlite3.Error, OSError) as exc:
            with contextlib.suppress(sqlite3.Error):
                self._index.rollback()
            log.warning("evidence index still cannot catch up: %s", exc)
            self._schedule_catch_up()
            return
        overlay, self._overlay = self._overlay, None
        self._view = self._index
        overlay.close()
        log.info("evidence index caught up; reads are served from it again")

    def _reindex_from_shards(self) -> None:
        """Backends whose index can lag the truth bring it up to date here."""
        raise sqlite3.OperationalError("this store cannot rebuild its index")

    def _shard_progress(self) -> list[ShardRecord]:
        return []

    def _schedule_index_commit(self) -> None:
        """Commit the index's deferred changes within INDEX_COMMIT_S, so
        other processes (a read-only CLI) see new entries soon."""
        if self._commit_timer is None:
            loop = asyncio.get_running_loop()
            self._commit_timer = loop.call_later(INDEX_COMMIT_S, self._commit_index)

    def _commit_index(self) -> None:
        """Commit the index (on its writer thread when it has one) and keep
        looking, every INDEX_COMMIT_S, until the rows acknowledged before
        are committed — or the writer failed, and the store degrades as it
        would for a failed commit on the loop's own thread."""
        self._commit_timer = None
        if self._closed or self._overlay is not None:
            return
        self._trim_deferred()
        if not self._deferred:
            return
        try:
            if self._commit_wanted:
                self._commit_wanted = False
                self._index.commit_soon()
            else:
                self._index.raise_write_error()
        except sqlite3.Error as exc:
            self._degrade(exc)
            return
        self._trim_deferred()  # an index without a writer has committed already
        if self._deferred:
            self._schedule_index_commit()

    def _trim_deferred(self) -> None:
        """Forget the held rows the index has committed (they are in seq order)."""
        committed = self._index.committed_seq
        deferred = self._deferred
        cut = 0
        while cut < len(deferred) and deferred[cut][0]["evidence/seq"] <= committed:
            cut += 1
        if cut:
            del deferred[:cut]

    def _unwrite(self, locations: list[Location]) -> None:  # noqa: B027 - optional hook
        """Remove a just-written batch that could not be indexed."""

    @abstractmethod
    def _write(self, sealed: list[Sealed]) -> list[Location]:
        """Make the lines durable per the store's policy; return locations."""

    @abstractmethod
    def _read(self, locations: list[Location]) -> list[EntryDict]:
        """Entries at these locations, in the same order."""

    # ------------------------------------------------------------- reading

    @property
    def last_seq(self) -> int:
        return self._head.seq

    def _reads(self, *, wait: bool = True) -> Index | LayeredIndex:
        """What reads (and the id checks of a seal) go through, once a
        failure of the index's writer thread is taken in: SQLite may have
        rolled back the index's open transaction with it, so acknowledged
        rows not committed yet are missing from the index until the store
        degrades and serves them from memory (_deferred keeps them). Read
        before that, an acknowledged entry would be "not found" and its id
        free again. ``wait`` false (the append path): a failure known now,
        without waiting for the writer thread."""
        if self._overlay is None and self._index.settled_failure(wait=wait):
            try:
                self._index.raise_write_error()
            except sqlite3.Error as exc:
                self._degrade(exc)
        return self._view

    def get(self, entry_id: str) -> EntryDict:
        location = self._reads().locate(entry_id)
        if location is None:
            raise NotFound(f"no evidence entry {entry_id!r}", code="evidence-not-found", context={"evidence-id": entry_id})
        return self._read([location])[0]

    def exists(self, entry_id: str) -> bool:
        return self._reads().has_id(entry_id)

    def query(self, query: EvidenceQuery) -> Page:
        """One page, newest first (oldest first with ``after_seq``)."""
        locations = self._reads().search(query, limit=query.limit + 1)
        more = len(locations) > query.limit
        locations = locations[: query.limit]
        entries = self._read(locations)
        cursor = encode_cursor(locations[-1].seq) if more and query.after_seq is None else None
        return Page(entries, cursor)

    def query_lines(self, query: EvidenceQuery) -> tuple[list[bytes], str | None]:
        """:meth:`query` as the stored JSON lines (without their newline) and
        the next cursor: for answers that only pass entries on, no parse
        and no re-serialisation. Each line is checked against its hash."""
        locations = self._reads().search(query, limit=query.limit + 1)
        more = len(locations) > query.limit
        locations = locations[: query.limit]
        cursor = encode_cursor(locations[-1].seq) if more and query.after_seq is None else None
        return self._read_lines(locations), cursor

    def _read_lines(self, locations: list[Location]) -> list[bytes]:
        """Backends that keep lines override this; the default serialises."""
        return [
            json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode() for entry in self._read(locations)
        ]

    def count(self, query: EvidenceQuery) -> int:
        return self._reads().count(query)

    def search(self, request: SearchRequest) -> list[SearchHit]:
        """Entries whose text holds the request's words, best first
        (:mod:`futon.evidence.search`); ``invalid-query`` if FTS5 refuses it."""
        try:
            found = self._reads().search_text(request.words, request.query, request.limit)
        except sqlite3.OperationalError as exc:
            raise ProtocolError(f"the search could not run: {exc}", code="invalid-query") from None
        entries = self._read([hit.location for hit in found])
        return [
            SearchHit(entry, hit.tier, hit.score, hit.snippet) for entry, hit in zip(entries, found, strict=True)
        ]

    def chain(self, entry_id: str) -> list[EntryDict]:
        """Ancestors by in-reply-to, root first, ending at the entry."""
        if not self._reads().has_id(entry_id):
            raise NotFound(f"no evidence entry {entry_id!r}", code="evidence-not-found", context={"evidence-id": entry_id})
        return self._read(self._reads().ancestors(entry_id))

    def thread(self, entry_id: str, *, include_ephemeral: bool = True) -> Thread:
        """The whole reply tree under the root of ``entry_id``."""
        if not self._reads().has_id(entry_id):
            raise NotFound(f"no evidence entry {entry_id!r}", code="evidence-not-found", context={"evidence-id": entry_id})
        root = self._reads().thread_root(entry_id)
        entries = self._read(self._reads().descendants(root))
        if not include_ephemeral:
            entries = [e for e in entries if not e.get("evidence/ephemeral?") or e["evidence/id"] == root]
        return build_thread(root, entries)

    def total(self) -> int:
        return self._reads().count_all()

    # ------------------------------------------------------------- live

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(entry)`` for every entry committed from now on,
        in seq order, on the appending thread. Returns the unsubscriber."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    # ------------------------------------------------------------- compaction

    def compact(self, before: datetime) -> dict[str, Any]:
        """Drop ephemeral entries older than ``before`` (backends that keep
        files do; see :mod:`futon.evidence.compact`)."""
        raise StoreError("this evidence store does not compact")

    async def compact_live(self, before: datetime) -> dict[str, Any]:
        """:meth:`compact` in a running daemon: between two appends, with
        no await in between the flush and the rewrite."""
        await self.flush()
        return self.compact(before)

    # ------------------------------------------------------------- lifecycle

    async def flush(self) -> None:
        """Wait until every pending append is committed."""
        while self._drain_task is not None and not self._drain_task.done():
            await asyncio.shield(self._drain_task)

    async def aclose(self) -> None:
        await self.flush()
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for timer in (self._commit_timer, self._catch_up_timer):
                if timer is not None:
                    timer.cancel()
            self._commit_timer = self._catch_up_timer = None
            self._close_backend()
            if self._overlay is not None:
                self._overlay.close()
            try:
                self._index.close()
            except sqlite3.Error as exc:
                log.error("evidence index could not commit on close (%s); the next start catches up", exc)

    def _close_backend(self) -> None:  # noqa: B027 - optional hook
        """Sync and release files."""

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the evidence store is closed")

    def __enter__(self) -> EvidenceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryStore(EvidenceStore):
    """Lines in a dict, index in SQLite ``:memory:``. Same semantics as the
    JSONL store, nothing on disk: for unit tests and throwaway daemons.
    It keeps each entry's line, as a shard would, so every read is a fresh
    parse that no caller can mutate."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        super().__init__(Index(None), clock=clock)
        self._lines: dict[int, bytes] = {}

    def _unwrite(self, locations: list[Location]) -> None:
        for loc in locations:
            self._lines.pop(loc.seq, None)

    def _write(self, sealed: list[Sealed]) -> list[Location]:
        out = []
        for item in sealed:
            seq = item.entry["evidence/seq"]
            self._lines[seq] = item.line
            out.append(Location(seq, None, None, None))
        return out

    def _read(self, locations: list[Location]) -> list[EntryDict]:
        return [json.loads(self._lines[loc.seq]) for loc in locations]
