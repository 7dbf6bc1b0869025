"""The evidence store on PostgreSQL: one chain for a whole team.

Same public interface and contract as :class:`~futon.evidence.store.EvidenceStore`
(the module docstring there), with these differences of substance:

- Several daemons (processes, hosts) append to one store. Each batch is one
  transaction that takes ``pg_advisory_xact_lock`` first, then reads the
  chain's head, checks ids and references, seals the batch with the shared
  :func:`~futon.evidence.store.seal_batch` (same seq + hash chain as the
  JSONL store), inserts it and commits: seq and prev-hash are assigned
  inside the transaction, so concurrent daemons keep one valid chain.
  ``await append`` returns only after the commit (``synchronous_commit`` as
  the server has it — on by default): acknowledged ⇒ committed. Concurrent
  appends of one process share a transaction (group commit).
- Up to two batches of one store are in the database at once (``_drain``):
  the next is sealed here against the head the one before will leave and
  stored with one call of ``futon_evidence_append``, which checks, under
  the lock, that the head and referenced ids are what it was sealed
  against (``_commit``); this process seals while the database inserts.
  Measured (bench/evidence_pg.py, 64 writers): 2× the rate of sealing
  under the lock, and ≥ 10× one writer's rate.
- The database down (or unreachable) ⇒ ``StoreError`` (``store-unavailable``)
  for appends and reads; a transaction that fails is rolled back whole, so
  nothing is half-written. Connections are re-opened by themselves once
  the database is back.
- Listeners see entries appended by other daemons too: every commit
  NOTIFYs its newest seq, and a store with listeners (subscribed inside a
  running loop) fetches what it has not delivered yet, in seq order.
- No compaction (``compact`` refuses) and no degraded index: PostgreSQL is
  the index.

The driver is asyncpg (bench/pg_driver.py: 2.5× psycopg 3's rate at 64
writers); its connections live on a private loop (:mod:`futon.evidence.pg_runner`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import re
import socket
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg

from futon.evidence import pg_sql
from futon.evidence.index import Index, Location
from futon.evidence.model import EntryDict, chain_hash, format_at, normalise_entry
from futon.evidence.pg_conn import CONNECT_TIMEOUT_S, PgConnection
from futon.evidence.pg_runner import PgRunner
from futon.evidence.query import EvidenceQuery, Page, encode_cursor
from futon.evidence.search import SNIPPET_CLOSE, SNIPPET_OPEN, SearchHit, SearchRequest, entry_text
from futon.evidence.store import (
    Clock,
    EvidenceStore,
    Listener,
    Sealed,
    _Head,
    referenced_ids,
    seal_batch,
    utc_now,
)
from futon.evidence.threads import Thread, build_thread
from futon.protocol.errors import NotFound, ProtocolError, StoreError

log = logging.getLogger("futon.evidence")

T = TypeVar("T")
IMPORT_CHUNK = 1000  # rows per INSERT round when copying a store in
IMPORT_TIMEOUT_S = 3600.0  # a whole copy; a million entries take minutes
MAX_BATCH = 512  # entries per transaction; a longer queue is committed in several
PIPELINE = 2  # append transactions in flight (the next is sealed while one is inserted)
SPLIT_AT = 32  # a queue this long, with nothing in flight, is committed as two batches
CATCH_UP_MAX = 1000  # entries fetched per round when delivering other daemons' appends
BEHIND_MAX = 10_000  # further behind than this, listeners skip ahead (and a warning says so)
RELISTEN_S = (0.2, 0.5, 1.0, 2.0, 5.0)  # back-off while the LISTEN connection is re-opened
_MERGE = re.compile(re.escape(SNIPPET_CLOSE) + r"(\s+)" + re.escape(SNIPPET_OPEN))
# What a lost or refused connection looks like from asyncpg: the database
# is unavailable, not the request wrong.
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.CannotConnectNowError,
    TimeoutError,
)


def default_daemon_id() -> str:
    return socket.gethostname() or "futon"


@dataclass
class _Flight:
    """An append transaction in flight, as the next one sees it (runner's loop)."""

    sealed: asyncio.Future[_Head | None]  # the head it leaves if it commits (None: unknown)
    done: asyncio.Future[None]  # it ended, committed or not


@dataclass
class _Committed:
    """What one append transaction did (returned from the runner's loop)."""

    sealed: list[Sealed]
    failures: list[tuple[int, Exception]]
    head: _Head
    earlier: list[bytes] = field(default_factory=list)  # other daemons' lines not yet delivered


class PostgresStore(EvidenceStore):
    def __init__(
        self,
        dsn: str,
        *,
        password: str | None = None,
        daemon_id: str | None = None,
        clock: Clock = utc_now,
    ) -> None:
        """Connect (creating the schema when missing). ``StoreError`` when
        the database cannot be reached."""
        # The base's SQLite index stays empty: PostgreSQL answers every read.
        super().__init__(Index(None), clock=clock)
        self.dsn = dsn
        self.daemon_id = daemon_id or default_daemon_id()
        self._password = password
        self._runner = PgRunner()
        # Append transactions: PIPELINE connections, one per transaction in
        # flight (the first also creates the schema and takes imports).
        self._writers = tuple(PgConnection(dsn, password) for _ in range(PIPELINE))
        self._writer = self._writers[0]
        self._next_writer = 0
        # On the runner's loop: the newest append transaction in flight (the
        # next seals after the head it will leave), the head as the last one
        # left it (None: unknown), and the last head this store committed.
        self._flight: _Flight | None = None
        self._tail_head: _Head | None = None
        self._own_head = _Head()
        self.sealed_again = 0  # batches sealed ahead that the lock found out of date
        self.sent_again = 0  # batches that reached the lock before the one before them
        self._reader = PgConnection(dsn, password)  # everything else
        self._listen_conn: asyncpg.Connection | None = None
        self._listen_future: concurrent.futures.Future[None] | None = None
        self._delivery_loop: asyncio.AbstractEventLoop | None = None
        self._delivered = 0  # newest seq handed to listeners (or skipped while none listened)
        self._remote_target = 0  # newest seq another daemon announced
        self._catch_up_task: asyncio.Task[None] | None = None
        try:
            self._runner.call(self._open())
            self._head = self._call(self._fetch_head())
        except BaseException:
            self._runner.call(self._close_connections())
            self._runner.close()
            self._index.close()
            raise
        self._delivered = self._head.seq
        self._tail_head = self._head

    # ------------------------------------------------------------- plumbing

    async def _open(self) -> None:
        try:
            await self._create_schema()
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from None
        except asyncpg.PostgresError as exc:  # a wrong database name, user or password
            raise StoreError(f"cannot open the evidence database: {exc}") from None

    async def _create_schema(self) -> None:
        async with self._writer.use() as conn, conn.transaction():
            # Two daemons starting together must not both create the tables.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", pg_sql.LOCK_KEY)
            await conn.execute(pg_sql.SCHEMA)
            await conn.execute(pg_sql.APPEND_FUNCTION)
            await self._use_lz4(conn)
            version = await conn.fetchval("SELECT value FROM futon_meta WHERE key = 'schema'")
            if version is None:
                await conn.execute(
                    "INSERT INTO futon_meta VALUES ('schema', $1)", pg_sql.SCHEMA_VERSION
                )
            elif version != pg_sql.SCHEMA_VERSION:
                raise StoreError(
                    f"evidence schema {version} in the database; this futon knows {pg_sql.SCHEMA_VERSION}"
                )

    @staticmethod
    async def _use_lz4(conn: asyncpg.Connection) -> None:
        """The large columns compressed with lz4 (pg_sql.COMPRESSED), once
        per database (new rows only; an ALTER of the column, not a rewrite)."""
        columns = [r[0] for r in await conn.fetch(pg_sql.COMPRESSION_OF, list(pg_sql.COMPRESSED))]
        if not columns:
            return
        alter = ", ".join(f"ALTER COLUMN {column} SET COMPRESSION lz4" for column in columns)
        try:
            async with conn.transaction():  # a savepoint: a refusal leaves the schema's transaction usable
                await conn.execute(f"ALTER TABLE {pg_sql.TABLE} {alter}")
        except asyncpg.FeatureNotSupportedError as exc:
            log.info("evidence: this PostgreSQL has no lz4 (%s); rows are compressed with pglz", exc)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a database coroutine from synchronous code, errors typed."""
        self._check_usable()
        return self._runner.call(_guarded(coro))

    async def _acall(self, coro: Coroutine[Any, Any, T]) -> T:
        self._check_usable()
        return await self._runner.acall(_guarded(coro))

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreError("the evidence store is closed")

    async def _fetch_head(self) -> _Head:
        async with self._reader.use() as conn:
            row = await conn.fetchrow(pg_sql.HEAD)
        return _Head(row[0], row[1], row[2]) if row else _Head()

    async def _rows(self, sql: str, *args: object) -> list[asyncpg.Record]:
        async with self._reader.use() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows

    async def _value(self, sql: str, *args: object) -> Any:
        async with self._reader.use() as conn:
            return await conn.fetchval(sql, *args)

    # ------------------------------------------------------------- writing

    def _writes_inline(self) -> bool:
        return False  # every append waits for a commit: always through the queue

    def _write(self, sealed: list[Sealed]) -> list[Location]:
        raise AssertionError("PostgresStore seals and writes inside its transaction")

    def _read(self, locations: list[Location]) -> list[EntryDict]:
        seqs = [loc.seq for loc in locations]
        rows = self._call(
            self._rows(f"SELECT seq, line FROM {pg_sql.TABLE} WHERE seq = ANY($1::bigint[])", seqs)
        )
        by_seq = {row[0]: row[1] for row in rows}
        return [json.loads(by_seq[seq]) for seq in seqs]

    def append_many_sync(self, raws: Iterable[Any]) -> list[EntryDict]:
        """Store a batch in one transaction; all or nothing."""
        self._check_open()
        entries = [normalise_entry(raw) for raw in raws]
        if not entries:
            return []
        done = self._call(self._commit(entries, format_at(self._clock()), all_or_nothing=True))
        self._head = done.head
        if done.failures:
            raise done.failures[0][1]
        self._deliver(done.earlier, [s.entry for s in done.sealed])
        return [s.entry for s in done.sealed]

    async def _drain(self) -> None:
        """Commit the queue in batches, up to :data:`PIPELINE` transactions
        at once: while PostgreSQL inserts one batch, the next is sealed
        here (:meth:`_commit`), so this process and the database work at the
        same time instead of in turns. A long queue with nothing in flight
        is cut in two (from :data:`SPLIT_AT` entries), so that callers who
        append again once acknowledged — most of them — refill one half
        while the other is in the database."""
        in_flight: list[asyncio.Task[None]] = []
        while self._pending or in_flight:
            if self._pending and len(in_flight) < PIPELINE:
                size = MAX_BATCH
                if len(self._pending) >= SPLIT_AT:
                    free = PIPELINE - len(in_flight)
                    size = min(MAX_BATCH, -(-len(self._pending) // free))
                batch, self._pending = self._pending[:size], self._pending[size:]
                before = in_flight[-1] if in_flight else None
                in_flight.append(asyncio.ensure_future(self._commit_batch(batch, before)))
                continue
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            in_flight = [task for task in in_flight if not task.done()]

    async def _commit_batch(
        self,
        batch: list[tuple[EntryDict, asyncio.Future[EntryDict]]],
        before: asyncio.Task[None] | None,
    ) -> None:
        """One batch of :meth:`_drain`: commit it, then (after the batch
        ``before`` it, so listeners and callers hear in seq order) settle
        its callers. Whatever fails, every caller hears (typed)."""
        entries = [entry for entry, _ in batch]
        futures = [future for _, future in batch]
        # Ids the store generated need no lookup (see referenced_ids).
        generated = frozenset(e["evidence/id"] for e in entries if e["evidence/id"] in self._fresh)
        self._fresh.difference_update(generated)
        try:
            try:
                done = await self._acall(
                    self._commit(
                        entries, format_at(self._clock()), all_or_nothing=False, generated=generated
                    )
                )
            finally:
                if before is not None:
                    await asyncio.wait([before])
        except StoreError as error:
            _fail(futures, error)
            return
        except Exception as exc:  # a bug must not leave callers waiting forever
            log.exception("evidence: a batch of appends failed")
            _fail(futures, StoreError(f"evidence append failed: {exc}"))
            return
        self._head = done.head
        failed_at = dict(done.failures)
        for index, failure in failed_at.items():
            if not futures[index].done():
                futures[index].set_exception(failure)
        ok_futures = [f for i, f in enumerate(futures) if i not in failed_at]
        # Listeners first, as the other backends do: an append returns
        # after its entry was handed to them.
        self._deliver(done.earlier, [s.entry for s in done.sealed])
        for future, item in zip(ok_futures, done.sealed, strict=True):
            if not future.done():
                future.set_result(item.entry)

    async def _commit(
        self,
        entries: list[EntryDict],
        now: str,
        *,
        all_or_nothing: bool,
        generated: frozenset[str] = frozenset(),
    ) -> _Committed:
        """One append transaction, on the runner's loop. A queued batch is
        sealed ahead — here, against the head the transaction before it
        will leave, while PostgreSQL still works on that one — and stored in
        one statement (:meth:`_store_ahead`); when the database holds
        something else (another daemon appended, a batch before failed, a
        referenced entry arrived meanwhile) it is sealed again under the
        lock (:meth:`_transaction`). Sealing is a function of (entries,
        head, stored ids, time), so both ways give the same chain."""
        loop = asyncio.get_running_loop()
        before, mine = self._flight, _Flight(loop.create_future(), loop.create_future())
        self._flight = mine
        writer = self._writers[self._next_writer]
        self._next_writer = (self._next_writer + 1) % len(self._writers)
        try:
            if not all_or_nothing:
                predicted = (
                    await asyncio.shield(before.sealed) if before is not None else self._tail_head
                )
                if predicted is not None:
                    done = await self._store_ahead(
                        writer, entries, now, generated, predicted, mine.sealed, before
                    )
                    if done is not None:
                        return done
                    self.sealed_again += 1
            if before is not None:
                # Batches take the lock in their order: the one before ends first.
                await asyncio.shield(before.done)
            return await self._transaction(
                writer, entries, now, all_or_nothing, generated, mine.sealed
            )
        except BaseException:
            self._tail_head = None  # unknown: the next batch reads it under the lock
            raise
        finally:
            if not mine.sealed.done():
                mine.sealed.set_result(None)
            mine.done.set_result(None)
            if self._flight is mine:
                self._flight = None

    async def _store_ahead(
        self,
        writer: PgConnection,
        entries: list[EntryDict],
        now: str,
        generated: frozenset[str],
        predicted: _Head,
        sealed_head: asyncio.Future[_Head | None],
        before: _Flight | None,
    ) -> _Committed | None:
        """Seal ``entries`` after ``predicted`` and store them with one call
        of ``futon_evidence_append`` (pg_sql.APPEND_FUNCTION), which
        inserts them only if the head and the referenced ids are still what
        they were sealed against. None: they were not (nothing stored).
        Two calls in flight may reach the lock in either order: when this
        one came first (the head is still before the one ``before`` it
        seals), it is sent again once that one has committed what it said."""
        wanted = referenced_ids(entries, generated)
        known = await self._existing(wanted) if wanted else {}
        sealed, failures, new_head = seal_batch(entries, predicted, known, now)
        if not sealed:
            return None  # nothing to store: the lock decides what failed
        sealed_head.set_result(new_head)  # the next batch seals after this one
        args = [predicted.seq, predicted.hash, list(wanted), sorted(known), *self._columns(sealed)]
        async with writer.use() as conn:
            ok, head_seq, *_ = await conn.fetchrow(pg_sql.APPEND, *args)
            if not ok and before is not None and (head_seq or 0) < predicted.seq:
                await asyncio.shield(before.done)
                if self._own_head == predicted:
                    self.sent_again += 1
                    ok, *_ = await conn.fetchrow(pg_sql.APPEND, *args)
            if not ok:
                return None
            earlier = await self._earlier(conn, sealed[0].entry["evidence/seq"])
        self._tail_head = self._own_head = new_head
        return _Committed(sealed, failures, new_head, earlier)

    async def _transaction(
        self,
        writer: PgConnection,
        entries: list[EntryDict],
        now: str,
        all_or_nothing: bool,
        generated: frozenset[str],
        sealed_head: asyncio.Future[_Head | None],
    ) -> _Committed:
        """Lock, read the head, seal, insert, notify — rolled back whole on
        any error."""
        wanted = referenced_ids(entries, generated)
        async with writer.use() as conn:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", pg_sql.LOCK_KEY)
                # After the lock, in a statement of its own: its snapshot then
                # sees every batch committed before the lock was granted.
                head = _Head()
                existing: dict[str, int] = {}
                for seq, digest, at, entry_id in await conn.fetch(
                    pg_sql.HEAD_AND_IDS, list(wanted)
                ):
                    if entry_id is None:
                        head = _Head(seq, digest, at)
                    else:
                        existing[entry_id] = seq
                sealed, failures, new_head = seal_batch(entries, head, existing, now)
                if not sealed or (failures and all_or_nothing):
                    self._tail_head = head
                    _settle(sealed_head, head)
                    return _Committed([], failures, head)
                _settle(sealed_head, new_head)
                await self._insert(conn, [self._row(item) for item in sealed])
                await conn.execute("SELECT pg_notify($1, $2)", pg_sql.CHANNEL, str(new_head.seq))
            earlier = await self._earlier(conn, sealed[0].entry["evidence/seq"])
        self._tail_head = self._own_head = new_head
        return _Committed(sealed, failures, new_head, earlier)

    async def _earlier(self, conn: asyncpg.Connection, first: int) -> list[bytes]:
        """What other daemons committed since this store last delivered,
        for listeners to get before this store's batch from ``first`` on,
        in seq order: all committed (the chain is extended only under the
        lock, and seq ``first`` was), so read after the commit."""
        # This store's own batch before is delivered by its own result.
        after = max(self._delivered, self._own_head.seq)
        behind = first - 1 - after
        if not self._listeners or behind <= 0:
            return []
        if behind > BEHIND_MAX:
            log.warning(
                "evidence: listeners are %d entries behind; skipping to seq %d", behind, first
            )
            return []
        lines = await conn.fetch(
            f"SELECT line FROM {pg_sql.TABLE} WHERE seq > $1 AND seq < $2 ORDER BY seq", after, first
        )
        return [r[0] for r in lines]

    async def _existing(self, ids: set[str]) -> dict[str, int]:
        """Which of ``ids`` are stored now (→ their seq), for a batch sealed ahead."""
        rows = await self._rows(
            f"SELECT id, seq FROM {pg_sql.TABLE} WHERE id = ANY($1::text[])", list(ids)
        )
        return {row[0]: row[1] for row in rows}

    @staticmethod
    async def _insert(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
        """Entry rows (:meth:`_row`) and their tag rows, in the caller's transaction."""
        await conn.executemany(pg_sql.INSERT, rows)
        tags = [(tag, row[0]) for row in rows for tag in row[13]]
        if tags:
            await conn.execute(pg_sql.INSERT_TAGS, [t for t, _ in tags], [seq for _, seq in tags])

    def _row(self, item: Sealed) -> tuple[Any, ...]:
        entry = item.entry
        subject = entry["evidence/subject"]
        body, subject_text, author, tags = entry_text(entry)
        return (
            entry["evidence/seq"], entry["evidence/id"], entry["evidence/at"], entry["evidence/type"],
            entry["evidence/claim-type"], entry["evidence/author"], entry.get("evidence/session-id"),
            subject["ref/type"], subject["ref/id"], entry.get("evidence/pattern-id"),
            entry.get("evidence/in-reply-to"), entry.get("evidence/fork-of"),
            bool(entry.get("evidence/ephemeral?")), list(dict.fromkeys(entry.get("evidence/tags") or ())),
            entry["evidence/hash"], self.daemon_id, body, subject_text, author, tags,
            pg_sql.plain_words(body), pg_sql.plain_words(subject_text), pg_sql.plain_words(author),
            pg_sql.plain_words(tags), item.line.rstrip(b"\n"),
        )  # fmt: skip

    def _columns(self, sealed: list[Sealed]) -> list[Any]:
        """``futon_evidence_append``'s row arguments: one array per column
        of :meth:`_row` (tags as JSON, the daemon once, the text joined into
        ``doc`` as INSERT joins it)."""
        rows = [self._row(item) for item in sealed]
        columns = [list(column) for column in zip(*rows, strict=True)]
        return [
            *columns[:13], [json.dumps(tags) for tags in columns[13]], columns[14], self.daemon_id,
            ["\n".join(row[16:20]) for row in rows], *columns[20:25],
        ]  # fmt: skip

    # ------------------------------------------------------------- import (copy)

    def import_lines(self, lines: Iterable[bytes]) -> int:
        """Append already-sealed lines verbatim (``futon evidence copy``):
        each must continue the chain from the store's head exactly (next
        seq, prev hash). One transaction for the lot — a line that does not
        continue the chain (or is not JSON) leaves the store as it was —
        inserted IMPORT_CHUNK rows at a time; ``lines`` is read on the
        runner's thread as it goes. Returns how many were stored."""
        self._check_open()
        count: int = self._runner.call(_guarded(self._import(lines)), timeout=IMPORT_TIMEOUT_S)
        self._head = self._tail_head = self._call(self._fetch_head())
        return count

    async def _import(self, lines: Iterable[bytes]) -> int:
        async with self._writer.use() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", pg_sql.LOCK_KEY)
            row = await conn.fetchrow(pg_sql.HEAD)
            head = _Head(row[0], row[1], row[2]) if row else _Head()
            count = 0
            rows: list[tuple[Any, ...]] = []
            for raw in lines:
                try:
                    entry = json.loads(raw)
                    digest = chain_hash(head.hash, entry)
                except (ValueError, TypeError, AttributeError):
                    raise StoreError(
                        f"the line after seq {head.seq} is not an entry; nothing copied"
                    ) from None
                if entry.get("evidence/seq") != head.seq + 1 or digest != entry.get(
                    "evidence/hash"
                ):
                    raise StoreError(
                        f"the line for seq {entry.get('evidence/seq')} does not continue the chain at "
                        f"seq {head.seq} (a compacted store has gaps); nothing copied"
                    )
                rows.append(self._row(Sealed(entry, raw.rstrip(b"\n"))))
                head = _Head(entry["evidence/seq"], entry["evidence/hash"], entry["evidence/at"])
                if len(rows) >= IMPORT_CHUNK:
                    await self._insert(conn, rows)
                    count += len(rows)
                    rows = []
            if rows:
                await self._insert(conn, rows)
                count += len(rows)
            if count:
                await conn.execute("SELECT pg_notify($1, $2)", pg_sql.CHANNEL, str(head.seq))
            return count

    def iter_lines(self, chunk: int = 1000) -> Iterator[bytes]:
        """Every stored line (without its newline), in seq order."""
        for _seq, _id, _hash, line in self.iter_rows(chunk):
            yield line

    def iter_rows(self, chunk: int = 1000) -> Iterator[tuple[int, str, str, bytes]]:
        """(seq, id, hash, line) of every entry in seq order, ``chunk`` rows
        per query (memory stays bounded whatever the store's size)."""
        after = 0
        while True:
            rows = self._call(self._rows(
                f"SELECT seq, id, hash, line FROM {pg_sql.TABLE} WHERE seq > $1 ORDER BY seq LIMIT $2", after, chunk
            ))  # fmt: skip
            if not rows:
                return
            for row in rows:
                yield row[0], row[1], row[2], bytes(row[3])
            after = rows[-1][0]

    # ------------------------------------------------------------- reading

    @property
    def last_seq(self) -> int:
        """The team's newest seq; the last one seen while the database is down."""
        try:
            seq = self._call(self._value(f"SELECT max(seq) FROM {pg_sql.TABLE}"))
        except StoreError:
            return self._head.seq
        return int(seq or 0)

    def get(self, entry_id: str) -> EntryDict:
        line = self._call(self._value(f"SELECT line FROM {pg_sql.TABLE} WHERE id = $1", entry_id))
        if line is None:
            raise _not_found(entry_id)
        entry: EntryDict = json.loads(line)
        return entry

    def exists(self, entry_id: str) -> bool:
        return bool(
            self._call(self._value(f"SELECT 1 FROM {pg_sql.TABLE} WHERE id = $1", entry_id))
        )

    def _page(self, query: EvidenceQuery) -> tuple[list[bytes], str | None]:
        sql, params = pg_sql.select(query, "e.seq, e.line", query.limit + 1)
        rows = self._call(self._rows(sql, *params))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = encode_cursor(rows[-1][0]) if more and query.after_seq is None else None
        return [bytes(row[1]) for row in rows], cursor

    def query(self, query: EvidenceQuery) -> Page:
        lines, cursor = self._page(query)
        return Page([json.loads(line) for line in lines], cursor)

    def query_lines(self, query: EvidenceQuery) -> tuple[list[bytes], str | None]:
        return self._page(query)

    def count(self, query: EvidenceQuery) -> int:
        sql, params = pg_sql.count(query)
        return int(self._call(self._value(sql, *params)))

    def total(self) -> int:
        return int(self._call(self._value(f"SELECT count(*) FROM {pg_sql.TABLE}")))

    def search(self, request: SearchRequest) -> list[SearchHit]:
        """As :meth:`EvidenceStore.search`, by PostgreSQL full-text search:
        the phrase tier, then all words, then any word (the next tier runs
        only while the answer is short); ``score`` is the negated ts_rank
        (lower is better, as bm25)."""
        hits: list[SearchHit] = []
        seen: list[int] = []
        for tier, function, text in pg_sql.tsqueries(request.words):
            if len(hits) >= request.limit:
                break
            sql, params = pg_sql.search(
                function, text, request.query, seen, request.limit - len(hits)
            )
            try:
                rows = self._call(self._rows(sql, *params))
            except asyncpg.PostgresSyntaxError as exc:  # never built, but never a 500 either
                raise ProtocolError(
                    f"the search could not run: {exc}", code="invalid-query"
                ) from None
            for seq, line, rank, snippet in rows:
                seen.append(seq)
                # ts_headline marks each word; FTS5 marks a matched phrase
                # as one: «retry» «logic» → «retry logic».
                hits.append(
                    SearchHit(json.loads(line), tier, -float(rank), _MERGE.sub(r"\1", snippet))
                )
        return hits

    def chain(self, entry_id: str) -> list[EntryDict]:
        rows = self._call(self._rows(pg_sql.ANCESTORS, entry_id))
        if not rows:
            raise _not_found(entry_id)
        return [json.loads(row[0]) for row in rows]

    def thread(self, entry_id: str, *, include_ephemeral: bool = True) -> Thread:
        if not self.exists(entry_id):
            raise _not_found(entry_id)
        root = self._call(self._value(pg_sql.THREAD_ROOT, entry_id)) or entry_id
        entries = [json.loads(row[0]) for row in self._call(self._rows(pg_sql.DESCENDANTS, root))]
        if not include_ephemeral:
            entries = [
                e for e in entries if not e.get("evidence/ephemeral?") or e["evidence/id"] == root
            ]
        return build_thread(root, entries)

    # ------------------------------------------------------------- live

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """As :meth:`EvidenceStore.subscribe`; inside a running loop, other
        daemons' entries reach ``listener`` too (on that loop, in seq order)."""
        if not self._listeners:
            # Nobody listened: what was committed until now is not "from now on".
            with contextlib.suppress(StoreError):
                self._delivered = max(self._delivered, self.last_seq)
        unsubscribe = super().subscribe(listener)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return unsubscribe
        if self._listen_future is None and not self._closed:
            self._delivery_loop = loop
            self._listen_future = self._runner.spawn(self._listen())
        return unsubscribe

    def _deliver(self, earlier: list[bytes], own: list[EntryDict]) -> None:
        """Hand listeners the entries after ``_delivered``, in seq order,
        each once: other daemons' (``earlier``) then this store's own."""
        fresh = [json.loads(line) for line in earlier]
        fresh.extend(own)
        if not self._listeners:
            if fresh:
                self._delivered = max(self._delivered, fresh[-1]["evidence/seq"])
            return
        out = []
        for entry in fresh:
            if entry["evidence/seq"] > self._delivered:
                out.append(entry)
                self._delivered = entry["evidence/seq"]
        self._notify(out)

    async def _listen(self) -> None:
        """On the runner's loop: LISTEN for other daemons' commits, and
        re-open the connection (bounded back-off) whenever it is lost."""
        attempt = 0
        while not self._closed:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(
                    self.dsn, password=self._password, timeout=CONNECT_TIMEOUT_S
                )
            except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
                delay = RELISTEN_S[min(attempt, len(RELISTEN_S) - 1)]
                attempt += 1
                log.warning(
                    "evidence: cannot LISTEN for other daemons' entries (%s); retrying in %gs",
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self._listen_conn = conn
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            await conn.add_listener(pg_sql.CHANNEL, self._on_notify)
            self._announce(None)  # catch up on what was committed while not listening
            await lost.wait()
            self._listen_conn = None
            if not self._closed:
                log.warning("evidence: the LISTEN connection was lost; re-opening it")

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            seq = int(payload)
        except ValueError:
            return
        self._announce(seq)

    def _announce(self, seq: int | None) -> None:
        """Runner loop → delivery loop: another daemon committed up to
        ``seq`` (None: unknown, look)."""
        loop = self._delivery_loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._remote_committed, seq)

    def _remote_committed(self, seq: int | None) -> None:
        if seq is not None:
            if seq <= self._delivered:
                return
            self._remote_target = max(self._remote_target, seq)
        if self._catch_up_task is None or self._catch_up_task.done():
            self._catch_up_task = asyncio.get_running_loop().create_task(
                self._catch_up_remote(seq is None)
            )

    async def _catch_up_remote(self, look: bool) -> None:
        """Deliver other daemons' entries up to the newest announced seq
        (bounded rounds of CATCH_UP_MAX lines)."""
        while (
            not self._closed and self._listeners and (look or self._remote_target > self._delivered)
        ):
            look = False
            after = self._delivered
            try:
                head = await self._acall(self._value(f"SELECT max(seq) FROM {pg_sql.TABLE}"))
                if head is not None and head - after > BEHIND_MAX:
                    log.warning(
                        "evidence: listeners are %d entries behind; skipping to seq %d",
                        head - after,
                        head,
                    )
                    self._delivered = head
                    return
                rows = await self._acall(self._rows(
                    f"SELECT line FROM {pg_sql.TABLE} WHERE seq > $1 ORDER BY seq LIMIT $2", after, CATCH_UP_MAX
                ))  # fmt: skip
            except StoreError as exc:
                log.warning("evidence: cannot fetch other daemons' entries: %s", exc)
                return
            if not rows:
                return
            self._deliver([row[0] for row in rows], [])

    # ------------------------------------------------------------- lifecycle

    def compact(self, before: Any) -> dict[str, Any]:
        raise StoreError("the PostgreSQL evidence store does not compact")

    def _close_backend(self) -> None:
        if self._catch_up_task is not None:
            self._catch_up_task.cancel()
        if self._listen_future is not None:
            self._listen_future.cancel()  # thread-safe: cancels the task on the runner's loop
        try:
            self._runner.call(self._close_connections(), timeout=10)
        except (StoreError, OSError, asyncpg.PostgresError) as exc:
            log.warning("evidence: closing the database connections: %s", exc)
        self._runner.close()

    async def _close_connections(self) -> None:
        if self._listen_conn is not None:
            conn, self._listen_conn = self._listen_conn, None
            await _quietly(conn.close(timeout=2))
        for writer in self._writers:
            await writer.close()
        await self._reader.close()


async def _guarded(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``; a lost or refused connection becomes ``store-unavailable``,
    any other database error a ``StoreError`` too (never a raw traceback)."""
    try:
        return await coro
    except _UNAVAILABLE as exc:
        raise _unavailable(exc) from None
    except asyncpg.PostgresSyntaxError:
        raise
    except asyncpg.PostgresError as exc:
        raise StoreError(f"the evidence database refused the request: {exc}") from None


async def _quietly(coro: Coroutine[Any, Any, Any]) -> None:
    try:
        await coro
    except (*_UNAVAILABLE, asyncpg.PostgresError):
        pass


def _settle(future: asyncio.Future[_Head | None], head: _Head) -> None:
    """Tell the next batch the head to seal after (unless this batch
    already did, ahead, and is now sealed again under the lock: the next
    one, sealed after the head told, will be sealed again too)."""
    if not future.done():
        future.set_result(head)


def _fail(futures: list[asyncio.Future[EntryDict]], error: Exception) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)


def _unavailable(exc: BaseException) -> StoreError:
    log.error("evidence database unavailable: %s", exc)
    return StoreError(f"the evidence database is unavailable: {exc or type(exc).__name__}")


def _not_found(entry_id: str) -> NotFound:
    return NotFound(
        f"no evidence entry {entry_id!r}",
        code="evidence-not-found",
        context={"evidence-id": entry_id},
    )


def open_postgres(
    dsn: str, *, password_env: str | None = None, daemon_id: str | None = None
) -> PostgresStore:
    """The store a config names: the password (if any) from the environment
    variable ``password_env``, never from the config file."""
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            raise StoreError(
                f"evidence.postgres.password_env names {password_env}, which is not set"
            )
    return PostgresStore(dsn, password=password, daemon_id=daemon_id)
