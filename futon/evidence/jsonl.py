"""The embedded evidence backend: JSONL shards plus a SQLite index.

Layout of ``<data_dir>/evidence/``::

    000000000001-2026-11-25.jsonl   first seq, then the UTC day it was opened
    000000051234-2026-11-26.jsonl   names sort in seq order
    index.sqlite3                   rebuildable; never the truth
    anchor.json                     seq and hash of the newest entry (futon.evidence.anchor)

Durability (``fsync``): ``always`` syncs each batch before acknowledging it
(concurrent appends share one sync: group commit); ``interval`` writes each
batch at once and syncs at most every ``fsync_interval_ms``; ``never``
leaves it to the OS.

Start-up recovery (:meth:`JsonlStore.open`): a torn last line is cut off and
reported; a corrupt line elsewhere is reported with shard and line and
skipped; a shard that vanished or shrank since the index saw it makes the
index rebuild from what is there; lines appended since the last run are
indexed. Nothing is ever silently dropped: ``report`` says what happened,
and ``futon evidence verify`` re-checks everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from futon.evidence import compact as compaction
from futon.evidence.anchor import ANCHOR_NAME, Anchor, AnchorWriter, keep_lost, read_anchor
from futon.evidence.index import Index, Location, ShardRecord
from futon.evidence.model import EntryDict, format_at, normalise_entry, seal
from futon.evidence.store import Clock, EvidenceStore, Sealed, utc_now
from futon.protocol.errors import StoreError

log = logging.getLogger("futon.evidence")

SHARD_NAME = re.compile(r"^(\d{12})-(\d{4}-\d{2}-\d{2})\.jsonl$")
INDEX_NAME = "index.sqlite3"
LOCK_NAME = ".lock"
FsyncMode = Literal["always", "interval", "never"]
_REQUIRED = ("evidence/id", "evidence/seq", "evidence/subject", "evidence/type",
             "evidence/claim-type", "evidence/author", "evidence/at", "evidence/hash")  # fmt: skip


@dataclass(frozen=True)
class ShardFile:
    no: int  # the seq of its first entry
    day: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


def shard_name(first_seq: int, day: str) -> str:
    return f"{first_seq:012d}-{day}.jsonl"


def list_shards(directory: Path) -> list[ShardFile]:
    """The shard files of a store directory, in seq order."""
    shards = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = SHARD_NAME.match(path.name)
            if match and path.is_file():
                shards.append(ShardFile(int(match.group(1)), match.group(2), path))
    return sorted(shards, key=lambda s: s.no)


@dataclass
class RecoveryReport:
    """What start-up found and did; each note is one human sentence."""

    torn_bytes: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing_shards: list[str] = field(default_factory=list)
    rebuilt: bool = False
    indexed: int = 0
    notes: list[str] = field(default_factory=list)
    lost_anchor: Anchor | None = None  # an anchor ahead of (or not matching) the shards

    def note(self, text: str) -> None:
        self.notes.append(text)
        log.warning("evidence: %s", text)


class JsonlStore(EvidenceStore):
    def __init__(
        self,
        directory: Path | str,
        *,
        fsync: FsyncMode = "interval",
        fsync_interval_ms: int = 100,
        shard_max_bytes: int = 64 * 1024 * 1024,
        rollover: Literal["daily", "size"] = "daily",
        clock: Clock = utc_now,
        read_only: bool = False,
    ) -> None:
        """Open (and recover) the store. One writer per directory: a second
        writer gets ``StoreLocked``. ``read_only`` opens beside a running
        writer — no recovery, no index writes, appends refused."""
        self.directory = Path(directory)
        self.read_only = read_only
        self.fsync = fsync
        self.fsync_interval = fsync_interval_ms / 1000
        self.shard_max_bytes = shard_max_bytes
        self.rollover = rollover
        self.report = RecoveryReport()
        self._fd_lock = threading.Lock()  # write, roll and sync never overlap
        self._fd: int | None = None
        self._shard: ShardRecord | None = None
        self._size = 0
        self._dirty = False
        self._last_sync = 0.0
        self._sync_timer: asyncio.TimerHandle | None = None
        self._readers: dict[int, int] = {}
        self.sync_count = 0  # fsyncs issued: lets tests see group commit at work
        self._paths: dict[int, Path] = {}
        self._lock_fd: int | None = None
        self._anchor: AnchorWriter | None = None
        if read_only:
            for shard in list_shards(self.directory):
                self._paths[shard.no] = shard.path
            try:
                index = Index(self.directory / INDEX_NAME, read_only=True)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the evidence index in {self.directory}: {exc}") from None
            super().__init__(index, clock=clock)
            self._load_head()
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create evidence directory {self.directory}: {exc.strerror}") from None
        self._lock_fd = _take_lock(self.directory / LOCK_NAME)
        super().__init__(self._open_index(), clock=clock)
        self._recover()
        self._load_head()
        self._check_anchor()
        # From here on the index is written and committed on a thread of
        # its own (SQLite releases the GIL): the loop only hands rows over.
        self._index.start_writer()

    def _check_anchor(self) -> None:
        """Compare the anchor with what the shards hold, say what is wrong,
        then anchor the head as it is now."""
        path = self.directory / ANCHOR_NAME
        try:
            anchor = read_anchor(path)
        except ValueError:
            self.report.note(f"{ANCHOR_NAME} is unreadable; it is written anew from the shards")
            anchor = None
        head = self._head
        if anchor is not None:
            problem = None
            if anchor.seq > head.seq:
                problem = f"the anchor says the store reached seq {anchor.seq}, but the shards end at {head.seq}"
            elif anchor.seq > 0 and self._index.hash_at(anchor.seq) != anchor.hash:
                problem = f"entry {anchor.seq} is not the one the anchor recorded (rewritten?)"
            if problem is not None:
                kept = keep_lost(path, anchor)
                self.report.lost_anchor = anchor
                self.report.note(f"{problem}: entries were lost or changed; the old anchor is kept as {kept.name}")
                log.error("evidence: %s; the old anchor is kept as %s", problem, kept.name)
        try:
            self._anchor = AnchorWriter(path)
            if head.seq:
                self._anchor.write(Anchor(head.seq, head.hash, head.at))
        except OSError as exc:
            raise StoreError(f"cannot write the evidence anchor {path}: {exc.strerror}") from None

    def _check_open(self) -> None:
        super()._check_open()
        if self.read_only:
            raise StoreError("this evidence store is open read-only")

    # ------------------------------------------------------------- start-up

    def _open_index(self) -> Index:
        path = self.directory / INDEX_NAME
        try:
            return Index(path)
        except sqlite3.DatabaseError as exc:
            self.report.note(f"index {path.name} unreadable ({exc}); rebuilding it from the shards")
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / (INDEX_NAME + suffix)).unlink()
            return Index(path)

    def _recover(self) -> None:
        shards = list_shards(self.directory)
        if shards:
            self._cut_torn_tail(shards[-1].path)
        on_disk = {s.no: s for s in shards}
        known = {r.no: r for r in self._index.shards()}
        for record in known.values():
            present = on_disk.get(record.no)
            if present is None:
                self.report.missing_shards.append(record.name)
                self.report.note(f"shard {record.name} is missing; its entries are gone, index rebuilt")
            elif present.path.stat().st_size < record.indexed_bytes:
                self.report.note(f"shard {record.name} is shorter than when indexed; index rebuilt")
                self.report.missing_shards.append(record.name)
        if self.report.missing_shards or (not shards and self._index.count_all()):
            self._index.reset()
            known = {}
            self.report.rebuilt = True
        bulk = self._index.bulk_load() if shards and self._index.count_all() == 0 else contextlib.nullcontext()
        with bulk:
            for shard in shards:
                self._paths[shard.no] = shard.path
                self._catch_up(shard, known.get(shard.no))
        if self.report.rebuilt or self.report.indexed > 10_000:
            self._index.analyze()
        if shards:
            last = shards[-1]
            record = next(r for r in self._index.shards() if r.no == last.no)
            self._shard = record
            self._size = last.path.stat().st_size

    def _cut_torn_tail(self, path: Path) -> None:
        """A crash mid-write leaves a last line without its newline: cut it."""
        size = path.stat().st_size
        if size == 0:
            return
        with open(path, "rb+") as handle:
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            # Find the last newline, reading backwards in blocks.
            end = size
            keep = 0
            while end > 0:
                start = max(0, end - 65536)
                handle.seek(start)
                block = handle.read(end - start)
                cut = block.rfind(b"\n")
                if cut >= 0:
                    keep = start + cut + 1
                    break
                end = start
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        self.report.torn_bytes = size - keep
        self.report.note(f"cut a torn last line ({size - keep} bytes) from {path.name}")

    def _catch_up(self, shard: ShardFile, record: ShardRecord | None, *, commit: bool = True) -> None:
        """Index the lines of ``shard`` past what the index has seen
        (``commit=False``: leave it to the caller, all or nothing)."""
        start = record.indexed_bytes if record else 0
        line_no = record.indexed_lines if record else 0
        batch: list[tuple[EntryDict, Location, int]] = []
        last = self._index.last()
        last_seq = last[0] if last else 0
        offset = start
        with open(shard.path, "rb") as handle:
            handle.seek(start)
            for raw in handle:
                line_no += 1
                length = len(raw)
                entry = _parse_line(raw)
                if entry is None:
                    self._skip(shard, line_no, "not a valid evidence entry")
                elif entry["evidence/seq"] <= last_seq:
                    self._skip(shard, line_no, f"seq {entry['evidence/seq']} does not follow {last_seq}")
                else:
                    last_seq = entry["evidence/seq"]
                    batch.append((entry, Location(last_seq, shard.no, offset, length), line_no))
                offset += length
                if len(batch) >= 20_000:
                    self._flush_catch_up(shard, batch, offset, line_no, commit=commit)
                    batch = []
        self._flush_catch_up(shard, batch, offset, line_no, commit=commit)

    def _skip(self, shard: ShardFile, line_no: int, problem: str) -> None:
        where = f"{shard.name}:{line_no}"
        self.report.corrupt.append(where)
        self.report.note(f"{where}: {problem}; line skipped")

    def _flush_catch_up(
        self,
        shard: ShardFile,
        batch: list[tuple[EntryDict, Location, int]],
        offset: int,
        lines: int,
        *,
        commit: bool = True,
    ) -> None:
        # Duplicate ids (a hand-edited shard) are found per chunk, in one query.
        ids = [entry["evidence/id"] for entry, _, _ in batch]
        taken = set(self._index.existing(ids))
        rows, seen = [], set()
        for entry, loc, line_no in batch:
            entry_id = entry["evidence/id"]
            if entry_id in taken or entry_id in seen:
                self._skip(shard, line_no, f"duplicate id {entry_id!r}")
                continue
            seen.add(entry_id)
            rows.append((entry, loc))
        self._index.add(rows, [ShardRecord(shard.no, shard.name, shard.day, offset, lines)], commit=commit)
        self.report.indexed += len(rows)

    # ------------------------------------------------------------- writing

    def _write(self, sealed: list[Sealed]) -> list[Location]:
        data = b"".join(item.line for item in sealed)
        with self._fd_lock:
            first = sealed[0].entry
            # The day of a shard is its first entry's: that entry's ``at`` is
            # the clock already read (strftime per write costs more).
            self._maybe_roll(first["evidence/seq"], len(data), first["evidence/at"][:10])
            assert self._fd is not None and self._shard is not None
            offset = self._size
            try:
                view = memoryview(data)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                if self.fsync == "always":
                    os.fdatasync(self._fd)
                    self.sync_count += 1
                    self._last_sync = time.monotonic()
                else:
                    self._dirty = True
            except OSError:
                # Leave no partial line behind: the batch was not acknowledged.
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, offset)
                raise
            self._size = offset + len(data)
            self._write_anchor(sealed[-1].entry)
            shard_no = self._shard.no
            self._shard = ShardRecord(
                shard_no, self._shard.name, self._shard.day, self._size, self._shard.indexed_lines + len(sealed)
            )
        if self.fsync == "interval":
            self._schedule_interval_sync()
        locations = []
        for item in sealed:
            locations.append(Location(item.entry["evidence/seq"], shard_no, offset, len(item.line)))
            offset += len(item.line)
        return locations

    def _load_head(self) -> None:
        super()._load_head()
        # After a batch was taken back (a failed write), the anchor must not
        # keep claiming it.
        if self._anchor is not None and self._head.seq:
            with self._fd_lock, contextlib.suppress(OSError):
                self._anchor.write(Anchor(self._head.seq, self._head.hash, self._head.at))

    def _write_anchor(self, newest: EntryDict) -> None:
        # After the lines (and their sync): the anchor never claims more than
        # the shards hold. A failed anchor write only leaves it behind.
        if self._anchor is None:
            return
        try:
            self._anchor.write(Anchor(newest["evidence/seq"], newest["evidence/hash"], newest["evidence/at"]))
        except OSError as exc:
            log.warning("evidence: could not update the anchor (%s); it lags until the next batch", exc)

    def _writes_inline(self) -> bool:
        return self.fsync != "always"

    def _batches_turns(self) -> bool:
        return True

    async def _write_async(self, sealed: list[Sealed]) -> list[Location]:
        if self.fsync != "always":
            # Without a sync to wait for, a write to the page cache is quicker
            # than a hop to a worker thread and back.
            return self._write_or_revert(sealed)
        loop = asyncio.get_running_loop()
        locations = await loop.run_in_executor(None, self._write_in_thread, sealed)
        if isinstance(locations, OSError):
            raise self._write_failed(locations)
        return locations

    def append_many_sync(self, raws: Iterable[Any]) -> list[EntryDict]:
        stored = super().append_many_sync(raws)
        if self.fsync == "interval" and time.monotonic() - self._last_sync >= self.fsync_interval:
            self._sync()
        return stored

    def _schedule_interval_sync(self) -> None:
        """Sync within fsync_interval of a write (when a loop is running; a
        caller without one syncs in append_many_sync)."""
        if self._dirty and self._sync_timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._sync_timer = loop.call_later(self.fsync_interval, self._interval_sync)

    def _write_in_thread(self, sealed: list[Sealed]) -> list[Location] | OSError:
        try:
            return self._write(sealed)
        except OSError as error:
            return error

    def _interval_sync(self) -> None:
        self._sync_timer = None
        if self._dirty and not self._closed:
            asyncio.get_running_loop().run_in_executor(None, self._sync)

    def _sync(self) -> None:
        with self._fd_lock:
            if self._fd is not None and self._dirty:
                try:
                    os.fdatasync(self._fd)
                except OSError as exc:
                    log.error("evidence: fsync failed: %s", exc)
                    return
                self.sync_count += 1
                self._dirty = False
                self._last_sync = time.monotonic()

    def _maybe_roll(self, first_seq: int, incoming: int, today: str) -> None:
        """Open the shard the next ``incoming`` bytes go to; ``today`` is the
        UTC day (YYYY-MM-DD) of the first entry they hold."""
        shard = self._shard
        if shard is not None and self._size > 0:
            too_big = self._size + incoming > self.shard_max_bytes
            new_day = self.rollover == "daily" and shard.day != today
            if not (too_big or new_day):
                if self._fd is None:
                    self._fd = self._open_for_append(self._paths[shard.no])
                return
        elif shard is not None:
            if self._fd is None:
                self._fd = self._open_for_append(self._paths[shard.no])
            return
        self._close_writer()
        name = shard_name(first_seq, today)
        path = self.directory / name
        self._fd = self._open_for_append(path)
        self._paths[first_seq] = path
        # The index learns of the new shard when the batch is published (on
        # the loop's thread: the index is never touched from the writer).
        self._shard = ShardRecord(first_seq, name, today, 0, 0)
        self._size = 0

    @staticmethod
    def _open_for_append(path: Path) -> int:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)

    def _close_writer(self) -> None:
        if self._fd is not None:
            if self._dirty:
                with contextlib.suppress(OSError):
                    os.fdatasync(self._fd)
                self._dirty = False
            os.close(self._fd)
            self._fd = None

    def _unwrite(self, locations: list[Location]) -> None:
        with self._fd_lock:
            first = locations[0]
            if self._fd is None or self._shard is None or first.shard != self._shard.no:
                log.error("evidence: cannot take back a batch that spans shards; restart re-indexes it")
                return
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, first.offset or 0)
                self._size = first.offset or 0
                self._shard = ShardRecord(
                    self._shard.no, self._shard.name, self._shard.day, self._size,
                    self._shard.indexed_lines - len(locations),
                )  # fmt: skip

    def _shard_progress(self) -> list[ShardRecord]:
        return [self._shard] if self._shard else []

    # ------------------------------------------------------------- compaction

    def compact(self, before: datetime) -> dict[str, Any]:
        """Drop ephemeral entries older than ``before`` from the shards and
        record what went in a compaction entry (:mod:`futon.evidence.compact`).
        Call with no append in flight (``await flush()`` first): it runs to
        the end without yielding. Returns ``{removed, kept, runs, entry}``."""
        self._check_open()
        if self._pending or (self._drain_task is not None and not self._drain_task.done()):
            raise StoreError("appends are in flight; flush the store before compacting")
        head = self._head
        with self._fd_lock:
            self._close_writer()
        shards = list_shards(self.directory)
        work = self.directory / compaction.NEW_DIR
        old = self.directory / compaction.OLD_DIR
        for stale in (work, old):
            if stale.exists() and any(stale.iterdir()):
                raise StoreError(f"{stale.name}/ is left from an interrupted compaction; look at it and remove it first")
            stale.mkdir(exist_ok=True)
        try:
            result = compaction.rewrite([(s.path, s.day) for s in shards], work, before)
        except OSError as exc:
            raise StoreError(f"compaction could not write new shards: {exc.strerror}") from None
        if not result.runs:
            work.rmdir()
            old.rmdir()
            return {"removed": 0, "kept": self.total(), "runs": [], "entry": None}
        # The record of what went, chained to the old head, ends the new shards.
        record = normalise_entry({
            "subject": {"ref/type": "evidence", "ref/id": "compaction"}, "type": "correction",
            "claim-type": "observation", "author": "futon", "tags": [compaction.TAG],
            "body": {"compaction": {"before": format_at(before), "removed": result.removed,
                                    "runs": [run.to_dict() for run in result.runs]}},
        })  # fmt: skip
        stored, line = seal(record, seq=head.seq + 1, at=max(format_at(self._clock()), head.at), prev_hash=head.hash)
        today = self._clock().strftime("%Y-%m-%d")
        last = result.shards[-1] if result.shards else work / shard_name(head.seq + 1, today)
        with open(last, "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        if not result.shards:
            result.shards.append(last)
        compaction.fsync_dir(work)
        # Swap: old shards out, new in, old deleted — each step synced.
        for shard in shards:
            os.replace(shard.path, old / shard.path.name)
        for path in result.shards:
            os.replace(path, self.directory / path.name)
        compaction.fsync_dir(self.directory)
        for leftover in old.iterdir():
            leftover.unlink()
        old.rmdir()
        work.rmdir()
        self._reset_after_rewrite()
        self._publish_compaction(stored)
        return {"removed": result.removed, "kept": result.kept, "runs": [r.to_dict() for r in result.runs],
                "entry": stored["evidence/id"]}  # fmt: skip

    def _reset_after_rewrite(self) -> None:
        """Forget every location (the shards are new) and index them anew."""
        for fd in self._readers.values():
            os.close(fd)
        self._readers.clear()
        self._paths.clear()
        self._shard = None
        self._size = 0
        if self._overlay is not None:
            self._overlay.close()
            self._overlay = None
            self._view = self._index
        self._deferred.clear()
        self._index.rollback()
        self._index.reset()
        self._recover()
        self._load_head()

    def _publish_compaction(self, stored: EntryDict) -> None:
        for listener in list(self._listeners):
            try:
                listener(stored)
            except Exception:
                log.exception("evidence listener failed")

    def _reindex_from_shards(self) -> None:
        """Index the shards past what the index committed (as at start-up),
        in one transaction."""
        known = {r.no: r for r in self._index.shards()}
        for shard in list_shards(self.directory):
            self._catch_up(shard, known.get(shard.no), commit=False)
        self._index.commit()

    def _close_backend(self) -> None:
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        with self._fd_lock:
            self._close_writer()
            if self._anchor is not None:
                self._anchor.close()
                self._anchor = None
        for fd in self._readers.values():
            os.close(fd)
        self._readers.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # ------------------------------------------------------------- reading

    def _read_lines(self, locations: list[Location]) -> list[bytes]:
        out = []
        for loc in locations:
            raw = self._pread(loc)
            assert loc.shard is not None  # _pread has checked it
            # The line must end with the hash the index holds for this seq:
            # one comparison instead of a parse (shards are canonical JSON
            # with the hash as the last key).
            if loc.hash is None or not raw.endswith(f'"evidence/hash":"{loc.hash}"}}\n'.encode()):
                entry = _parse_line(raw)
                if entry is None or entry["evidence/seq"] != loc.seq:
                    raise StoreError(f"shard {self._paths[loc.shard].name} changed under the index at byte {loc.offset}")
            out.append(raw[:-1] if raw.endswith(b"\n") else raw)
        return out

    def _pread(self, loc: Location) -> bytes:
        assert loc.shard is not None and loc.offset is not None and loc.length is not None
        fd = self._readers.get(loc.shard)
        if fd is None:
            path = self._paths.get(loc.shard)
            if path is None:  # a reader beside a writer that rolled over
                self._paths.update({s.no: s.path for s in list_shards(self.directory)})
                path = self._paths.get(loc.shard)
            if path is None:
                raise StoreError(f"shard {loc.shard} is not known to this store")
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError as exc:
                raise StoreError(f"cannot read shard {path.name}: {exc.strerror}") from None
            self._readers[loc.shard] = fd
        return os.pread(fd, loc.length, loc.offset)

    def _read(self, locations: list[Location]) -> list[EntryDict]:
        out = []
        for loc in locations:
            entry = _parse_line(self._pread(loc))
            if entry is None or entry["evidence/seq"] != loc.seq:
                assert loc.shard is not None
                raise StoreError(f"shard {self._paths[loc.shard].name} changed under the index at byte {loc.offset}")
            out.append(entry)
        return out


class StoreLocked(StoreError):
    """Another process (a running daemon) is the writer of this store."""


def _take_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise StoreLocked(f"the evidence store {path.parent} is in use by another process (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def open_for_reading(directory: Path) -> JsonlStore:
    """The store for a reader such as the CLI: the writer's own view when a
    daemon holds the store, else a normal open (with recovery)."""
    try:
        return JsonlStore(directory)
    except StoreLocked:
        return JsonlStore(directory, read_only=True)


def _parse_line(raw: bytes) -> EntryDict | None:
    """A shard line as an entry, or None when it is not one."""
    try:
        entry = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(entry, dict) or any(k not in entry for k in _REQUIRED):
        return None
    subject = entry["evidence/subject"]
    if not isinstance(entry["evidence/seq"], int) or not isinstance(subject, dict):
        return None
    if not isinstance(subject.get("ref/type"), str) or not isinstance(subject.get("ref/id"), str):
        return None
    return entry


def open_store(data_dir: Path, **options: object) -> JsonlStore:
    """The store of a daemon's data directory (``<data_dir>/evidence``)."""
    return JsonlStore(Path(data_dir) / "evidence", **options)  # type: ignore[arg-type]
