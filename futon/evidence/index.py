"""The evidence index: SQLite beside the shards (or in memory).

The shards are the truth; this index only says *where* each entry is and
which entries match a filter, so that no query ever scans a shard. It is
persistent, so start-up only indexes what was appended since the last run,
and it can always be rebuilt from the shards (``Index.reset``).

Both stores use it — the JSONL store with a file, the memory store with
``:memory:`` — so the meaning of every filter is written exactly once.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from futon.evidence.index_writer import IndexWriter
from futon.evidence.model import EntryDict
from futon.evidence.query import EvidenceQuery
from futon.evidence.search import (
    SNIPPET_CLOSE,
    SNIPPET_OPEN,
    SNIPPET_TOKENS,
    Tier,
    entry_text,
    match_expressions,
)

SCHEMA_VERSION = "4"  # 4: the full-text table `texts`

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries(
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    at         TEXT NOT NULL,
    type       TEXT NOT NULL,
    claim      TEXT NOT NULL,
    author     TEXT NOT NULL,
    session    TEXT,
    subj_type  TEXT NOT NULL,
    subj_id    TEXT NOT NULL,
    pattern    TEXT,
    reply_to   TEXT,
    reply_seq  INTEGER,
    fork_of    TEXT,
    ephemeral  INTEGER NOT NULL DEFAULT 0,
    conjecture INTEGER NOT NULL DEFAULT 0,
    hash       TEXT NOT NULL,
    shard      INTEGER,
    off        INTEGER,
    len        INTEGER
);
CREATE TABLE IF NOT EXISTS tags(tag TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(tag, seq)) WITHOUT ROWID;
-- Maintained counts per single filter (kind: tag, session, author, type,
-- claim, all; ``~e`` suffix: ephemeral entries), so that counting one
-- filter reads one row instead of every matching entry.
CREATE TABLE IF NOT EXISTS counts(kind TEXT NOT NULL, key TEXT NOT NULL, n INTEGER NOT NULL,
                                  PRIMARY KEY(kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shards(
    no            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    day           TEXT NOT NULL,
    indexed_bytes INTEGER NOT NULL DEFAULT 0,
    indexed_lines INTEGER NOT NULL DEFAULT 0
);
-- Full-text search (futon.evidence.search): one row per entry, rowid = seq.
-- Porter stemming so "retries" finds "retry"; full detail for phrases.
CREATE VIRTUAL TABLE IF NOT EXISTS texts USING fts5(
    body, subject, author, tags, tokenize='porter unicode61 remove_diacritics 2'
);
"""

# Secondary indexes, kept apart so a bulk rebuild can load rows first and
# build each index once, sorted, instead of updating ten B-trees per row.
_SECONDARY = """
CREATE INDEX IF NOT EXISTS by_session ON entries(session, seq);
CREATE INDEX IF NOT EXISTS by_author  ON entries(author, seq);
CREATE INDEX IF NOT EXISTS by_type    ON entries(type, seq);
CREATE INDEX IF NOT EXISTS by_claim   ON entries(claim, seq);
CREATE INDEX IF NOT EXISTS by_subject ON entries(subj_type, subj_id, seq);
CREATE INDEX IF NOT EXISTS by_pattern ON entries(pattern, seq);
CREATE INDEX IF NOT EXISTS by_reply   ON entries(reply_to);
CREATE INDEX IF NOT EXISTS by_fork    ON entries(fork_of);
CREATE INDEX IF NOT EXISTS by_at      ON entries(at);
"""

# Matches each search tier ranks by bm25 (the newest ones): bounds a search
# on a word that most entries hold (docs/evidence.md, search).
RANK_WINDOW = 4000

_BUMP = "INSERT INTO counts(kind, key, n) VALUES(?,?,?) ON CONFLICT(kind, key) DO UPDATE SET n = n + excluded.n"
# Query fields a maintained count answers alone (EvidenceQuery attribute → kind).
_COUNTED = {"session_id": "session", "author": "author", "type": "type", "claim_type": "claim"}
_UNCOUNTED = ("subject_type", "subject_id", "pattern_id", "since", "until", "before_seq", "after_seq")

_INSERT = (
    "INSERT INTO entries(seq,id,at,type,claim,author,session,subj_type,subj_id,pattern,"
    "reply_to,reply_seq,fork_of,ephemeral,conjecture,hash,shard,off,len) "
    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


_COLUMNS = 19  # of an entries row, as _INSERT lists them; reply_to is 10, reply_seq 11
# reply_seq when the batch did not know it: looked up by the INSERT itself.
_REPLY_SEQ = "COALESCE(value->>11, (SELECT p.seq FROM entries p WHERE p.id = value->>10))"
_INSERT_JSON = (
    "INSERT INTO entries(seq,id,at,type,claim,author,session,subj_type,subj_id,pattern,"
    "reply_to,reply_seq,fork_of,ephemeral,conjecture,hash,shard,off,len) SELECT "
    + ",".join(f"value->>{i}" if i != 11 else _REPLY_SEQ for i in range(_COLUMNS))
    + " FROM json_each(?)"
)
_TEXTS = "INSERT INTO texts(rowid, body, subject, author, tags) VALUES(?,?,?,?,?)"
_TEXTS_JSON = (
    "INSERT INTO texts(rowid, body, subject, author, tags) "
    "SELECT value->>0, value->>1, value->>2, value->>3, value->>4 FROM json_each(?)"
)
_TAGS = "INSERT OR IGNORE INTO tags VALUES(?,?)"
_TAGS_JSON = "INSERT OR IGNORE INTO tags SELECT value->>0, value->>1 FROM json_each(?)"
# ``->>`` came with SQLite 3.38; older ones get executemany.
_JSON_EACH = sqlite3.sqlite_version_info >= (3, 38, 0)


def _with_reply_seq(db: sqlite3.Connection, row: tuple[object, ...]) -> tuple[object, ...]:
    """An entries row for executemany, its reply_seq looked up if unknown
    (what _INSERT_JSON does in SQL)."""
    if row[10] is None or row[11] is not None:
        return row
    found = db.execute("SELECT seq FROM entries WHERE id = ?", (row[10],)).fetchone()
    return (*row[:11], found[0] if found else None, *row[12:])


@dataclass
class _Prepared:
    """Rows for each table, the count bumps and the newest seq of a batch."""

    entries: list[tuple[Any, ...]]
    texts: list[tuple[int, str, str, str, str]]
    tags: list[tuple[str, int]]
    bumps: Counter[tuple[str, str]]
    last_seq: int


class _BulkLoad:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        names = [row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='index' AND name LIKE 'by_%'")]
        for name in names:
            self._db.execute(f"DROP INDEX {name}")

    def __exit__(self, *exc: object) -> None:
        self._db.executescript(_SECONDARY)


@dataclass(frozen=True)
class Location:
    """Where an entry's line lies: shard number, byte offset, length; and,
    from searches, the entry's hash (so a raw line can be checked cheaply)."""

    seq: int
    shard: int | None
    offset: int | None
    length: int | None
    hash: str | None = None


@dataclass(frozen=True)
class TextHit:
    """A full-text match: where the entry is, its tier and bm25 score (lower
    is better), and a snippet of the matched text."""

    location: Location
    tier: Tier
    score: float
    snippet: str


@dataclass(frozen=True)
class ShardRecord:
    no: int
    name: str
    day: str
    indexed_bytes: int
    indexed_lines: int


BEHIND_MAX = 512
"""The most rows :meth:`Index.add` holds back (``commit=False``) before it
writes them: bounds the buffer whatever the commit timer does."""


@dataclass
class _Job:
    """Held-back rows (and shard progress) handed to the writer thread in
    one piece, and whether to commit after writing them."""

    rows: list[tuple[EntryDict, Location]]
    ids: dict[str, int]
    known: dict[str, int]
    shards: list[ShardRecord]
    commit: bool
    prepared: _Prepared | None = None  # the table rows, built on the loop's thread
    done: bool = field(default=False)


class Index:
    """Not thread-safe: the store calls it from one thread (the event loop's).
    With :meth:`start_writer`, held-back rows are written and committed on a
    thread of its own (:mod:`futon.evidence.index_writer`); every other use of
    the connection first waits for that thread to be idle (``_settle``).

    Write-behind: rows added with ``commit=False`` are held in memory and
    written in one batch — at :meth:`commit`, before any read of the
    database, or when :data:`BEHIND_MAX` are held — because SQLite costs
    about a quarter per row in batches of a hundred of what it costs one row
    at a time (issue 19). Every read sees them (``_db`` writes them first;
    :meth:`existing`, on every append's path, answers from memory for them),
    so nothing but the cost changes; a failed write keeps them for the next
    try, and :meth:`rollback` drops them like the rest of the transaction.
    """

    def __init__(self, path: Path | None, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._conn = self._connect_read_only() if read_only else self._connect()
        # Count bumps of the open transaction, written in one statement when it
        # commits (six upserts per entry otherwise); _counted adds them in.
        self._bumps: Counter[tuple[str, str]] = Counter()
        # Rows held back (write-behind): the rows, their ids' seqs, what the
        # callers already looked up, and the newest progress of each shard.
        self._behind: list[tuple[EntryDict, Location]] = []
        self._behind_ids: dict[str, int] = {}
        self._behind_known: dict[str, int] = {}
        self._behind_shards: dict[int, ShardRecord] = {}
        # The writer thread (start_writer), the jobs handed to it that may
        # not have run yet (their ids answer existing()), and a failure of
        # its that no caller has seen yet.
        self._writer: IndexWriter[_Job] | None = None
        self._inflight: deque[_Job] = deque()
        self._write_error: BaseException | None = None
        self._written_seq = 0  # the newest seq written into the open transaction
        self.committed_seq = 0
        """The newest seq this index has committed (as far as this process
        knows): the store keeps every newer acknowledged row until then."""

    def start_writer(self) -> None:
        """From now on write held-back rows, and commit (:meth:`commit_soon`),
        on a thread of their own. Only for an index that is written."""
        if self._writer is None and not self.read_only:
            self._writer = IndexWriter(self._run_job)

    def _run_job(self, job: _Job) -> None:
        """On the writer thread: the job's rows, then (if asked) the commit."""
        if job.prepared is not None:
            self._execute(job.prepared, job.shards)
        if job.commit:
            self._commit_now()
        job.done = True

    def _hand_off(self, *, commit: bool) -> None:
        """Give the held-back rows to the writer thread (blocks while it has
        WRITER_DEPTH jobs waiting)."""
        assert self._writer is not None
        shards = list(self._behind_shards.values())
        job = _Job(self._behind, self._behind_ids, self._behind_known, shards, commit)
        if job.rows or job.shards:
            job.prepared = self._prepare(job.rows, job.known)
        self._behind, self._behind_ids, self._behind_known, self._behind_shards = [], {}, {}, {}
        while self._inflight and self._inflight[0].done:
            self._inflight.popleft()
        self._inflight.append(job)
        self._writer.submit(job)

    def _settle(self) -> None:
        """Wait for the writer thread to be idle. The rows of a job that
        failed (and of those behind it) are held back again, in front of the
        newer ones, and the failure is kept for the next write to raise:
        nothing is dropped, and the store still learns of it."""
        if self._writer is None:
            return
        error, not_done = self._writer.settle()
        self._inflight.clear()
        if error is None:
            return
        if self._write_error is None:
            self._write_error = error
        rows: list[tuple[EntryDict, Location]] = []
        ids: dict[str, int] = {}
        known: dict[str, int] = {}
        shards: dict[int, ShardRecord] = {}
        for job in not_done:
            rows += job.rows
            ids.update(job.ids)
            known.update(job.known)
            shards.update((shard.no, shard) for shard in job.shards)
        self._behind = rows + self._behind
        self._behind_ids = {**ids, **self._behind_ids}
        self._behind_known = {**known, **self._behind_known}
        self._behind_shards = {**shards, **self._behind_shards}

    def settled_failure(self, *, wait: bool = True) -> bool:
        """Whether a write of the writer thread failed, the failure not
        raised yet: after waiting for it to be idle (as every read does), or
        as far as is known now (``wait`` false: the append path)."""
        if wait:
            self._settle()
        elif self._writer is not None and self._writer.failed:
            return True
        return self._write_error is not None

    def raise_write_error(self) -> None:
        """Raise a failure of the writer thread, if it had one (no waiting
        otherwise)."""
        self._raise_write_error()

    def _raise_write_error(self) -> None:
        """Raise (once) a failure of the writer thread: the store's cue to
        degrade, as a failed write on its own thread would be."""
        if self._writer is not None and self._writer.failed:
            self._settle()
        error, self._write_error = self._write_error, None
        if error is not None:
            raise error

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, with every held-back row written first: whoever
        reads or writes through it sees them. A failure of the writer thread
        is not raised here (a read is no place to learn of it): its rows are
        held back again and written now, and the next write raises it."""
        self._settle()
        if self._behind:
            self._write_behind()
        return self._conn

    def _write_behind(self) -> None:
        """Write the held-back rows in one batch. On failure they stay held
        (the next commit tries again, and its failure is the store's cue to
        degrade)."""
        rows = self._behind
        shards = list(self._behind_shards.values())
        self._insert(rows, shards, self._behind_known)
        self._behind = []
        self._behind_ids = {}
        self._behind_known = {}
        self._behind_shards = {}

    def _connect_read_only(self) -> sqlite3.Connection:
        """A reader beside a running daemon: sees what the daemon committed,
        writes nothing."""
        assert self.path is not None
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        version = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if version is None or version[0] != SCHEMA_VERSION:
            raise sqlite3.DatabaseError("index schema mismatch")
        return db

    def _connect(self) -> sqlite3.Connection:
        target = str(self.path) if self.path else ":memory:"
        db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        # The index is rebuildable from the shards, so it needs no durability
        # of its own: WAL without fsync keeps appends cheap.
        db.execute("PRAGMA journal_mode=WAL" if self.path else "PRAGMA journal_mode=MEMORY")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA temp_store=MEMORY")
        db.execute("PRAGMA cache_size=-16384")  # 16 MiB: hot index pages; the OS caches the rest
        db.executescript(_SCHEMA + _SECONDARY)
        version = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if version is None:
            db.execute("INSERT INTO meta VALUES('schema', ?)", (SCHEMA_VERSION,))
        elif version[0] != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"index schema {version[0]} != {SCHEMA_VERSION}")
        return db

    def close(self) -> None:
        try:
            if not self.read_only:
                self.commit()
        finally:
            if self._writer is not None:
                self._writer.close()  # idle by now, or failed: nothing more runs
                self._writer = None
            # Uncommitted rows are lost, which is safe: the next start
            # catches up from the shards.
            self._conn.close()

    def reset(self) -> None:
        """Drop everything; the caller re-indexes from the shards."""
        self.rollback()
        self._db.executescript(
            "DROP TABLE IF EXISTS entries; DROP TABLE IF EXISTS tags; DROP TABLE IF EXISTS shards;"
            "DROP TABLE IF EXISTS counts; DROP TABLE IF EXISTS texts;"
            "DELETE FROM meta WHERE key != 'schema';"
        )
        self._db.executescript(_SCHEMA + _SECONDARY)
        self._written_seq = self.committed_seq = 0

    def bulk_load(self) -> _BulkLoad:
        """``with index.bulk_load(): …add…`` — for rebuilding an empty index."""
        return _BulkLoad(self._db)

    # ------------------------------------------------------------- writing

    def add(
        self,
        rows: Iterable[tuple[EntryDict, Location]],
        shard_progress: Iterable[ShardRecord] = (),
        *,
        commit: bool = True,
        known: dict[str, int] | None = None,
    ) -> None:
        """Index entries (and the shards' new indexed sizes) atomically.

        With ``commit=False`` the change joins a transaction left open until
        :meth:`commit`: this connection sees it at once, other processes
        (a read-only CLI) when it commits. A commit per append would write
        every touched page of ten B-trees to the WAL each time; deferring it
        is safe because the shards are the truth and the shard progress rows
        commit together with the entries they cover, so a crash only means
        catching up from the shards at the next start. Such rows are also
        held back and written in batches (see the class)."""
        rows = list(rows)
        if not commit:
            self._behind.extend(rows)
            self._behind_ids.update((entry["evidence/id"], entry["evidence/seq"]) for entry, _ in rows)
            if known:
                self._behind_known.update(known)
            for shard in shard_progress:
                self._behind_shards[shard.no] = shard
            if len(self._behind) >= BEHIND_MAX:
                if self._writer is not None:
                    self._raise_write_error()
                    self._hand_off(commit=False)
                else:
                    self._write_behind()
            return
        db = self._db  # settled, and what is held back goes first, in seq order
        assert db is self._conn
        self._raise_write_error()
        self._insert(rows, shard_progress, known)
        self.commit()

    def _insert(
        self,
        rows: list[tuple[EntryDict, Location]],
        shard_progress: Iterable[ShardRecord],
        known: dict[str, int] | None,
    ) -> None:
        """Write ``rows`` into the open transaction (opened if none is),
        all or nothing."""
        self._execute(self._prepare(rows, known), shard_progress)

    def _prepare(
        self, rows: list[tuple[EntryDict, Location]], known: dict[str, int] | None
    ) -> _Prepared:
        """The table rows of ``rows`` (Python work: done on the loop's thread
        when a writer thread is to run them, so that thread holds the GIL
        only briefly — SQLite runs each statement with the GIL released)."""
        # Replies are stored with the seq they point at too, so chains walk
        # integer keys instead of text ids. Targets neither in the batch nor
        # known are looked up by the INSERT itself.
        seq_of = {entry["evidence/id"]: entry["evidence/seq"] for entry, _ in rows}
        if known:  # the caller already looked these up
            seq_of.update(known)
        entry_rows = []
        tag_rows: list[tuple[str, int]] = []
        text_rows: list[tuple[int, str, str, str, str]] = []
        bumps: Counter[tuple[str, str]] = Counter()
        for entry, loc in rows:
            subject = entry["evidence/subject"]
            seq = entry["evidence/seq"]
            reply_to = entry.get("evidence/in-reply-to")
            entry_rows.append(
                (
                    seq, entry["evidence/id"], entry["evidence/at"], entry["evidence/type"],
                    entry["evidence/claim-type"], entry["evidence/author"],
                    entry.get("evidence/session-id"), subject["ref/type"], subject["ref/id"],
                    entry.get("evidence/pattern-id"), reply_to, seq_of.get(reply_to) if reply_to else None,
                    entry.get("evidence/fork-of"), int(bool(entry.get("evidence/ephemeral?"))),
                    int(bool(entry.get("evidence/conjecture?"))), entry["evidence/hash"],
                    loc.shard, loc.offset, loc.length,
                )
            )  # fmt: skip
            text_rows.append((seq, *entry_text(entry)))
            tags = set(entry.get("evidence/tags") or ())
            tag_rows.extend((tag, seq) for tag in tags)
            mark = "~e" if entry.get("evidence/ephemeral?") else ""
            bumps["all" + mark, ""] += 1
            bumps["author" + mark, entry["evidence/author"]] += 1
            bumps["type" + mark, entry["evidence/type"]] += 1
            bumps["claim" + mark, entry["evidence/claim-type"]] += 1
            if entry.get("evidence/session-id"):
                bumps["session" + mark, entry["evidence/session-id"]] += 1
            for tag in tags:
                bumps["tag" + mark, tag] += 1
        last = rows[-1][0]["evidence/seq"] if rows else 0
        return _Prepared(entry_rows, text_rows, tag_rows, bumps, last)

    def _execute(self, prepared: _Prepared, shard_progress: Iterable[ShardRecord]) -> None:
        """Run prepared rows into the open transaction (opened if none is),
        all or nothing: one statement per table, each a single SQLite step
        over a JSON array (``json_each``) — the GIL is released once per
        table, not once per row as ``executemany`` does."""
        db = self._conn
        opened = not db.in_transaction
        if opened:
            db.execute("BEGIN")
        db.execute("SAVEPOINT batch")
        try:
            for sql, many, table_rows in (
                (_INSERT_JSON, _INSERT, prepared.entries),
                (_TEXTS_JSON, _TEXTS, prepared.texts),
                (_TAGS_JSON, _TAGS, prepared.tags),
            ):
                if not table_rows:
                    continue
                array = json.dumps(table_rows, ensure_ascii=False, separators=(",", ":"))
                if _JSON_EACH and "\\u0000" not in array:
                    db.execute(sql, (array,))
                else:  # no JSON functions in this SQLite, or a NUL JSON text would cut short
                    if many is _INSERT:
                        table_rows = [_with_reply_seq(db, row) for row in table_rows]
                    db.executemany(many, table_rows)
            for shard in shard_progress:
                self._save_shard(shard)
            db.execute("RELEASE batch")
            self._bumps.update(prepared.bumps)
            self._written_seq = max(self._written_seq, prepared.last_seq)
        except BaseException:
            if db.in_transaction:  # SQLite may already have rolled back on I/O errors
                db.execute("ROLLBACK TO batch")
                db.execute("RELEASE batch")
                if opened:
                    db.execute("ROLLBACK")
            raise

    @property
    def uncommitted(self) -> bool:
        self._settle()
        return self._conn.in_transaction or bool(self._behind)

    def commit(self) -> None:
        """Make deferred changes visible to other processes (held-back rows
        and the count bumps of the transaction are written first, inside it)."""
        self._db  # noqa: B018 - settles and writes what is held back
        self._raise_write_error()
        self._commit_now()

    def commit_soon(self) -> None:
        """:meth:`commit` on the writer thread when there is one (else at
        once): returns without waiting; a failure is raised by the next
        write (``add``, ``commit``, or this). ``committed_seq`` says how far
        the commits have got."""
        if self._writer is None:
            self.commit()
            return
        self._raise_write_error()
        self._hand_off(commit=True)

    def _commit_now(self) -> None:
        db = self._conn
        if db.in_transaction:
            if self._bumps:
                db.executemany(_BUMP, [(kind, key, n) for (kind, key), n in self._bumps.items()])
                self._bumps.clear()
            db.execute("COMMIT")
            self.committed_seq = self._written_seq
        else:
            self._bumps.clear()  # SQLite rolled the transaction back (an I/O error): its rows are gone too
            if self._written_seq > self.committed_seq:
                lost, self._written_seq = self._written_seq, self.committed_seq
                # Said out loud, so the store serves those rows from memory
                # (degraded) instead of losing them from every read path.
                raise sqlite3.OperationalError(f"the index lost its open transaction (rows up to seq {lost})")

    def rollback(self) -> None:
        """Drop deferred changes, held-back rows included (after a failed
        write, SQLite may already have done so): the index is then what it
        last committed."""
        self._settle()
        self._write_error = None
        self._written_seq = self.committed_seq  # what was written since is gone
        self._bumps.clear()
        self._behind, self._behind_ids, self._behind_known, self._behind_shards = [], {}, {}, {}
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def save_shard(self, shard: ShardRecord) -> None:
        self._db  # noqa: B018 - after the rows held back, in order
        self._save_shard(shard)

    def _save_shard(self, shard: ShardRecord) -> None:
        self._conn.execute(
            "INSERT INTO shards(no,name,day,indexed_bytes,indexed_lines) VALUES(?,?,?,?,?) "
            "ON CONFLICT(no) DO UPDATE SET indexed_bytes=excluded.indexed_bytes, indexed_lines=excluded.indexed_lines",
            (shard.no, shard.name, shard.day, shard.indexed_bytes, shard.indexed_lines),
        )

    def analyze(self) -> None:
        """Refresh the planner's statistics (after a rebuild or a bulk load)."""
        self._db.execute("ANALYZE")

    # ------------------------------------------------------------- reading

    def shards(self) -> list[ShardRecord]:
        rows = self._db.execute("SELECT no,name,day,indexed_bytes,indexed_lines FROM shards ORDER BY no")
        return [ShardRecord(*row) for row in rows]

    def last(self) -> tuple[int, str, str] | None:
        """(seq, hash, at) of the newest entry, or None when empty."""
        row: tuple[int, str, str] | None = self._db.execute(
            "SELECT seq, hash, at FROM entries ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return row

    def count_all(self) -> int:
        total: int = self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        return total

    def hash_at(self, seq: int) -> str | None:
        row = self._db.execute("SELECT hash FROM entries WHERE seq=?", (seq,)).fetchone()
        return row[0] if row else None

    def has_id(self, entry_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM entries WHERE id=?", (entry_id,)).fetchone() is not None

    def existing(self, ids: Iterable[str]) -> dict[str, int]:
        """Which of ``ids`` are indexed, with their seq (one query per 500
        ids). Held-back rows are answered from memory, without writing them:
        this is on every append's path."""
        found: dict[str, int] = {}
        rest = []
        for entry_id in ids:
            seq = self._behind_ids.get(entry_id)
            if seq is None:
                for job in self._inflight:  # handed to the writer: maybe not written yet
                    seq = job.ids.get(entry_id)
                    if seq is not None:
                        break
            if seq is None:
                rest.append(entry_id)
            else:
                found[entry_id] = seq
        if rest:
            # Only waits for the writer; its failure is for the next write to raise.
            self._settle()
            held = {entry_id: self._behind_ids[entry_id] for entry_id in rest if entry_id in self._behind_ids}
            found.update(held)  # rows of a failed job, held back again by _settle
            found.update(self._existing_in_db([entry_id for entry_id in rest if entry_id not in held]))
        return found

    def _existing_in_db(self, ids: Iterable[str]) -> dict[str, int]:
        ids = list(ids)
        found: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self._conn.execute(f"SELECT id, seq FROM entries WHERE id IN ({marks})", chunk))
        return found

    def locate(self, entry_id: str) -> Location | None:
        row = self._db.execute("SELECT seq,shard,off,len FROM entries WHERE id=?", (entry_id,)).fetchone()
        return Location(*row) if row else None

    def search(self, query: EvidenceQuery, *, limit: int | None = None) -> list[Location]:
        sql, params = self._select(query, "e.seq, e.shard, e.off, e.len, e.hash")
        ascending = query.after_seq is not None
        # With a tag filter the scan is driven by the tags table, whose key
        # is (tag, seq): ordering by its seq lets SQLite walk it backwards.
        order = "t0.seq" if query.tags else "e.seq"
        sql += f" ORDER BY {order} {'ASC' if ascending else 'DESC'} LIMIT ?"
        params.append(limit if limit is not None else query.limit)
        return [Location(*row) for row in self._db.execute(sql, params)]

    def search_text(self, words: tuple[str, ...], query: EvidenceQuery, limit: int) -> list[TextHit]:
        """Entries whose text holds ``words``, filtered by ``query``, best
        first: the exact-phrase tier, then all words, then any word (the
        next tier runs only while the answer is short), bm25 within a tier.
        Raises ``sqlite3.OperationalError`` only if FTS5 refuses an
        expression, which :func:`match_expressions` never builds."""
        source, where, params = self._filters(query)
        terms = " AND ".join(["texts MATCH ?", "e.seq = texts.rowid", *where])
        # Column weights: a word in the subject or the tags says more about
        # the entry than one of many in its body.
        # bm25 costs microseconds per match, so ranking every entry holding
        # a word that most entries hold would take hundreds of ms at 100k
        # entries: each tier ranks the newest RANK_WINDOW matches (all of
        # them, for any word rarer than that), walked newest first.
        sql = (
            "SELECT * FROM (SELECT e.seq, e.shard, e.off, e.len, e.hash, "
            "bm25(texts, 1.0, 2.0, 1.0, 2.0) AS score "
            f"FROM texts, {source} WHERE {terms} ORDER BY texts.rowid DESC LIMIT {RANK_WINDOW}) "
            "ORDER BY score LIMIT ?"
        )
        hits: list[TextHit] = []
        seen: set[int] = set()
        for tier, expression in match_expressions(words):
            if len(hits) >= limit:
                break
            rows = self._db.execute(sql, [expression, *params, limit + len(seen)]).fetchall()
            fresh = [row for row in rows if row[0] not in seen][: limit - len(hits)]
            # Snippets only for the rows kept: computed in the ranking query,
            # SQLite would build one for every match before sorting.
            snippets = self._snippets(expression, [row[0] for row in fresh])
            for seq, shard, off, length, digest, score in fresh:
                seen.add(seq)
                location = Location(seq, shard, off, length, digest)
                hits.append(TextHit(location, tier, float(score), snippets.get(seq, "")))
        return hits

    def _snippets(self, expression: str, seqs: list[int]) -> dict[int, str]:
        if not seqs:
            return {}
        marks = ",".join("?" * len(seqs))
        rows = self._db.execute(
            f"SELECT rowid, snippet(texts, -1, '{SNIPPET_OPEN}', '{SNIPPET_CLOSE}', '…', {SNIPPET_TOKENS}) "
            f"FROM texts WHERE texts MATCH ? AND rowid IN ({marks})",
            [expression, *seqs],
        )
        return {seq: snippet for seq, snippet in rows}

    def count(self, query: EvidenceQuery) -> int:
        counted = self._counted(query)
        if counted is not None:
            return counted
        sql, params = self._select(query, "COUNT(*)")
        total: int = self._db.execute(sql, params).fetchone()[0]
        return total

    def _counted(self, query: EvidenceQuery) -> int | None:
        """The maintained count for a query with at most one filter among
        one tag, session, author, type and claim; None for anything else."""
        if any(getattr(query, name) is not None for name in _UNCOUNTED) or len(query.tags) > 1:
            return None
        chosen = [(kind, getattr(query, name)) for name, kind in _COUNTED.items() if getattr(query, name) is not None]
        if query.tags:
            chosen.append(("tag", query.tags[0]))
        if len(chosen) > 1:
            return None
        kind, key = chosen[0] if chosen else ("all", "")
        kinds = (kind, kind + "~e") if query.include_ephemeral else (kind,)
        marks = ",".join("?" * len(kinds))
        row = self._db.execute(f"SELECT SUM(n) FROM counts WHERE key = ? AND kind IN ({marks})", (key, *kinds)).fetchone()
        return int(row[0] or 0) + sum(self._bumps.get((k, key), 0) for k in kinds)

    def ancestors(self, entry_id: str) -> list[Location]:
        """The entry and its in-reply-to ancestors, root first.

        Walked with point lookups on the integer key: measured faster than a
        recursive CTE, whose per-step overhead dominates on long chains."""
        row = self._db.execute("SELECT seq, shard, off, len, reply_seq FROM entries WHERE id=?", (entry_id,)).fetchone()
        out: list[Location] = []
        seen: set[int] = set()
        while row is not None and row[0] not in seen:
            seen.add(row[0])
            out.append(Location(*row[:4]))
            if row[4] is None:
                break
            row = self._db.execute("SELECT seq, shard, off, len, reply_seq FROM entries WHERE seq=?", (row[4],)).fetchone()
        out.reverse()
        return out

    def thread_root(self, entry_id: str) -> str:
        """Walk up by in-reply-to, then fork-of, to the entry with neither."""
        row = self._db.execute(
            """WITH RECURSIVE up(id, depth) AS (
                   SELECT ?, 0
                   UNION ALL
                   SELECT COALESCE(e.reply_to, e.fork_of), up.depth + 1 FROM entries e JOIN up ON e.id = up.id
                   WHERE COALESCE(e.reply_to, e.fork_of) IS NOT NULL
                     AND EXISTS (SELECT 1 FROM entries p WHERE p.id = COALESCE(e.reply_to, e.fork_of))
               )
               SELECT id FROM up ORDER BY depth DESC LIMIT 1""",
            (entry_id,),
        ).fetchone()
        return row[0] if row else entry_id

    def descendants(self, root_id: str) -> list[Location]:
        """The root and every entry replying to or forking from it,
        transitively, oldest first."""
        rows = self._db.execute(
            """WITH RECURSIVE down(id) AS (
                   SELECT ?
                   UNION
                   SELECT e.id FROM entries e JOIN down ON e.reply_to = down.id
                   UNION
                   SELECT e.id FROM entries e JOIN down ON e.fork_of = down.id
               )
               SELECT e.seq, e.shard, e.off, e.len FROM down JOIN entries e ON e.id = down.id
               ORDER BY e.seq""",
            (root_id,),
        )
        return [Location(*row) for row in rows]

    def links(self, entry_id: str) -> tuple[Location, str | None, str | None] | None:
        """Where ``entry_id`` is, and the ids it replies to and forks from."""
        row = self._db.execute(
            "SELECT seq, shard, off, len, reply_to, fork_of FROM entries WHERE id=?", (entry_id,)
        ).fetchone()
        return (Location(*row[:4]), row[4], row[5]) if row else None

    def links_in_order(self) -> Iterator[tuple[Location, str, str | None, str | None]]:
        """Every entry's location, id, in-reply-to and fork-of, by seq."""
        rows = self._db.execute("SELECT seq, shard, off, len, id, reply_to, fork_of FROM entries ORDER BY seq")
        yield from ((Location(*row[:4]), row[4], row[5], row[6]) for row in rows)

    def ids_of(self, locations: Iterable[Location]) -> list[str]:
        seqs = [loc.seq for loc in locations]
        found: list[str] = []
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.extend(row[0] for row in self._db.execute(f"SELECT id FROM entries WHERE seq IN ({marks})", chunk))
        return found

    def iter_locations(self, after_seq: int = 0) -> Iterator[Location]:
        yield from (Location(*row) for row in self._db.execute(
            "SELECT seq, shard, off, len FROM entries WHERE seq > ? ORDER BY seq", (after_seq,)
        ))  # fmt: skip

    def delete_from(self, seq: int) -> None:
        """Forget entries with seq ≥ ``seq`` (the shards lost them)."""
        self.commit()
        self._db.execute("BEGIN")
        self._db.execute("DELETE FROM tags WHERE seq >= ?", (seq,))
        self._db.execute("DELETE FROM texts WHERE rowid >= ?", (seq,))
        self._db.execute("DELETE FROM entries WHERE seq >= ?", (seq,))
        self._recount()
        self._db.execute("COMMIT")
        self._written_seq = self.committed_seq = min(self.committed_seq, seq - 1)

    def _recount(self) -> None:
        """Rebuild the maintained counts from the tables (rare: after
        entries were forgotten)."""
        db = self._db
        self._bumps.clear()  # recounted from the rows, uncommitted ones included
        db.execute("DELETE FROM counts")
        for kind, column in (("all", "''"), ("author", "author"), ("type", "type"), ("claim", "claim"), ("session", "session")):
            db.execute(
                f"INSERT INTO counts SELECT CASE WHEN ephemeral THEN ? ELSE ? END, {column}, COUNT(*) FROM entries "
                f"WHERE {column} IS NOT NULL GROUP BY ephemeral, {column}",
                (kind + "~e", kind),
            )
        db.execute(
            "INSERT INTO counts SELECT CASE WHEN e.ephemeral THEN 'tag~e' ELSE 'tag' END, t.tag, COUNT(*) "
            "FROM tags t JOIN entries e ON e.seq = t.seq GROUP BY e.ephemeral, t.tag"
        )

    # ------------------------------------------------------------- helpers

    @staticmethod
    def _select(query: EvidenceQuery, columns: str) -> tuple[str, list[object]]:
        """SELECT … FROM … WHERE … for a query. Tag filters drive the scan
        from the tags table (its (tag, seq) key is already in seq order)."""
        source, where, params = Index._filters(query)
        sql = f"SELECT {columns} FROM {source}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return sql, params

    @staticmethod
    def _filters(query: EvidenceQuery) -> tuple[str, list[str], list[object]]:
        """The FROM source, WHERE terms and parameters of a query's filters
        (entries as ``e``): the one place a filter gets its meaning."""
        params: list[object] = []
        where: list[str] = []
        if query.tags:
            first, *rest = query.tags
            source = "tags t0 JOIN entries e ON e.seq = t0.seq"
            where.append("t0.tag = ?")
            params.append(first)
            for tag in rest:  # EXISTS, not JOIN: SQLite joins at most 64 tables (query.MAX_TAGS is 64)
                where.append("EXISTS (SELECT 1 FROM tags tx WHERE tx.tag = ? AND tx.seq = e.seq)")
                params.append(tag)
        else:
            source = "entries e"
        for column, value in query.column_filters():
            where.append(f"{column} = ?")
            params.append(value)
        if query.since is not None:
            where.append("e.at >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("e.at < ?")
            params.append(query.until)
        if not query.include_ephemeral:
            where.append("e.ephemeral = 0")
        if query.before_seq is not None:
            where.append("e.seq < ?")
            params.append(query.before_seq)
        if query.after_seq is not None:
            where.append("e.seq > ?")
            params.append(query.after_seq)
        return source, where, params
