"""The PostgreSQL evidence store beyond the shared suite (which runs against
it through the ``store`` fixture): one chain for several processes, a
database that goes away and comes back, lossless copies both ways, and
listeners that see other processes' entries. Real cluster, real processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from futon.cli.evidence_copy import copy_to_jsonl, copy_to_postgres, shard_lines
from futon.evidence import EvidenceQuery, EvidenceStore, JsonlStore
from futon.evidence.pg_verify import verify_postgres
from futon.evidence.postgres import PostgresStore
from futon.evidence.verify import verify_store
from futon.protocol.errors import StoreError
from tests.evidence.conftest import entry
from tests.pg_cluster import PgCluster
from tests.support import REPO, until

# Another process appending to the same database: N entries from W
# concurrent writers (group commit in that process too).
WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from futon.evidence.postgres import PostgresStore

    dsn, count, writers, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

    async def main() -> None:
        store = PostgresStore(dsn, daemon_id=tag)
        async def writer(w: int) -> None:
            for n in range(count // writers):
                await store.append({"subject": {"ref/type": "session", "ref/id": tag}, "type": "coordination",
                                    "claim-type": "step", "author": tag, "tags": [tag], "body": {"n": n, "w": w}})
        await asyncio.gather(*(writer(w) for w in range(writers)))
        await store.aclose()
        print("done", flush=True)

    asyncio.run(main())
    """
)


def writer_process(dsn: str, count: int, writers: int, tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, dsn, str(count), str(writers), tag],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


async def test_two_processes_appending_at_once_keep_one_valid_chain(pg_dsn: str) -> None:
    others = [writer_process(pg_dsn, 120, 8, f"proc-{n}") for n in range(2)]
    store = PostgresStore(pg_dsn, daemon_id="here")
    try:
        mine = await asyncio.gather(
            *(store.append(entry(author="here", tags=["here"])) for _ in range(120))
        )
        for proc in others:
            out, err = await asyncio.to_thread(proc.communicate, timeout=120)
            assert proc.returncode == 0, err
            assert out.strip() == "done"
        assert store.total() == 360
        assert store.last_seq == 360
        report = verify_postgres(store)
        assert report.ok, report.problems[:5]
        assert report.entries == 360
        # Every process's entries are all there, and each append got its own seq.
        for tag in ("here", "proc-0", "proc-1"):
            assert store.count(EvidenceQuery(tags=(tag,))) == 120
        assert len({e["evidence/seq"] for e in mine}) == 120
    finally:
        await store.aclose()


async def test_database_down_is_store_unavailable_and_back_appends_again(
    pg_cluster: PgCluster, pg_dsn: str
) -> None:
    store = PostgresStore(pg_dsn)
    try:
        acknowledged = [await store.append(entry(id=f"e-{n}")) for n in range(3)]
        pg_cluster.stop()
        try:
            with pytest.raises(StoreError) as caught:
                await store.append(entry(id="e-while-down"))
            assert caught.value.code == "store-unavailable"
            with pytest.raises(StoreError) as caught:
                store.append_sync(entry(id="e-sync-while-down"))
            assert caught.value.code == "store-unavailable"
            with pytest.raises(StoreError):  # reads are typed errors too
                store.query(EvidenceQuery())
            assert store.last_seq == 3  # /health keeps answering with what it last knew
        finally:
            pg_cluster.start()
        after = await store.append(entry(id="e-after"))
        assert after["evidence/seq"] == 4  # nothing of the refused appends was written
        assert not store.exists("e-while-down") and not store.exists("e-sync-while-down")
        assert [e["evidence/id"] for e in store.query(EvidenceQuery()).entries] == [
            "e-after",
            *(e["evidence/id"] for e in reversed(acknowledged)),
        ]
        assert verify_postgres(store).ok
    finally:
        await store.aclose()


def test_unreachable_database_at_open_is_store_unavailable(pg_cluster: PgCluster) -> None:
    with pytest.raises(StoreError) as caught:
        PostgresStore(f"postgresql://futon@127.0.0.1:{pg_cluster.port + 1}/nowhere")
    assert caught.value.code == "store-unavailable"


def test_copy_round_trips_byte_for_byte(tmp_path: Path, pg_dsn: str) -> None:
    source = tmp_path / "source"
    with JsonlStore(source, fsync="never") as jsonl:
        jsonl.append_sync(entry(id="root", body={"text": 'ünïcödé ✓ and "quotes"'}))
        jsonl.append_many_sync(
            [entry(id=f"r-{n}", tags=["t", f"n{n}"], **{"in-reply-to": "root", "ephemeral?": n % 2 == 0})
             for n in range(50)]
        )  # fmt: skip
    original = list(shard_lines(source))
    with PostgresStore(pg_dsn) as pg:
        there = copy_to_postgres(source, pg)
        assert there.ok, there.problems
        assert there.entries == 51
        assert list(pg.iter_lines()) == original
        assert pg.thread("r-7").root == "root"
        back = tmp_path / "back"
        again = copy_to_jsonl(pg, back)
        assert again.ok, again.problems
    assert [p.read_bytes() for p in sorted(back.glob("*.jsonl"))] == [
        p.read_bytes() for p in sorted(source.glob("*.jsonl"))
    ]
    assert verify_store(back).ok
    with JsonlStore(back, fsync="never") as reopened:
        assert reopened.total() == 51 and reopened.get("root")["evidence/body"]["text"].startswith(
            "ünï"
        )
        assert reopened.append_sync(entry())["evidence/seq"] == 52  # the chain goes on


def test_copy_refuses_a_target_that_is_not_empty(tmp_path: Path, pg_dsn: str) -> None:
    from futon.protocol.errors import ProtocolError

    source = tmp_path / "source"
    with JsonlStore(source, fsync="never") as jsonl:
        jsonl.append_sync(entry())
    with PostgresStore(pg_dsn) as pg:
        pg.append_sync(entry())
        with pytest.raises(ProtocolError) as caught:
            copy_to_postgres(source, pg)
        assert caught.value.code == "invalid-input"
        assert pg.total() == 1


async def test_listener_sees_another_processes_entries_in_order(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn, daemon_id="listener")
    seen: list[int] = []
    authors: set[str] = set()

    def listen(e: dict[str, object]) -> None:
        seen.append(int(e["evidence/seq"]))  # type: ignore[call-overload]
        authors.add(str(e["evidence/author"]))

    store.subscribe(listen)
    try:
        proc = writer_process(pg_dsn, 20, 4, "elsewhere")
        mine = [await store.append(entry(author="listener")) for _ in range(5)]
        _, err = await asyncio.to_thread(proc.communicate, timeout=120)
        assert proc.returncode == 0, err
        await until(
            lambda: len(seen) >= 25, what="the other process's entries reaching the listener"
        )
        assert seen == list(range(1, 26))  # each once, in seq order, whichever process wrote it
        assert authors == {"listener", "elsewhere"}
        assert all(e["evidence/seq"] in seen for e in mine)
    finally:
        await store.aclose()


def test_tampered_row_fails_verify(pg_cluster: PgCluster, pg_dsn: str) -> None:
    with PostgresStore(pg_dsn) as pg:
        pg.append_many_sync([entry(id=f"e-{n}", body={"n": n}) for n in range(3)])
        database = pg_dsn.rsplit("/", 1)[1]
        pg_cluster.psql(
            "UPDATE futon_evidence SET line = convert_to(replace(convert_from(line, 'UTF8'), "
            "'\"n\":1', '\"n\":9'), 'UTF8') WHERE seq = 2",
            database,
        )
        report = verify_postgres(pg)
        assert not report.ok
        assert [p.line for p in report.problems] == [2]


async def test_two_daemons_share_one_store(
    tmp_path: Path, pg_cluster: PgCluster, pg_dsn: str
) -> None:
    """`evidence.backend: postgres`: each daemon's entries are read on the
    other, one chain, and each row says which daemon appended it."""
    import aiohttp

    from tests.transports.kit import base_url, running_daemon

    backend = {"evidence__backend": "postgres", "evidence__postgres": {"dsn": pg_dsn}}
    async with (
        running_daemon(tmp_path / "d1", daemon_id="d1", **backend) as one,
        running_daemon(tmp_path / "d2", daemon_id="d2", **backend) as two,
        aiohttp.ClientSession() as http,
    ):
        for daemon, entry_id in ((one, "from-1"), (two, "from-2")):
            async with http.post(
                base_url(daemon) + "/api/alpha/evidence", json=entry(id=entry_id)
            ) as r:
                assert r.status == 201, await r.text()
        for daemon in (one, two):
            async with http.get(
                base_url(daemon) + "/api/alpha/evidence", params={"author": "claude-1"}
            ) as r:
                ids = [e["evidence/id"] for e in (await r.json())["entries"]]
            assert {"from-1", "from-2"} <= set(ids)
            async with http.get(base_url(daemon) + "/health") as r:
                health = await r.json()
            assert health["evidence"]["entries"] >= 2  # the team's newest seq, not this daemon's
        assert isinstance(one.store, PostgresStore)
        assert verify_postgres(one.store).ok
        database = pg_dsn.rsplit("/", 1)[1]
        out = pg_cluster.psql(
            "SELECT id, daemon FROM futon_evidence WHERE id LIKE 'from-%'", database
        )
        rows = dict(line.split("|") for line in out.split())
        assert rows == {"from-1": "d1", "from-2": "d2"}
        # What daemon 1 appends reaches daemon 2's live subscribers.
        assert two.store is not None
        live: list[str] = []
        two.store.subscribe(lambda e: live.append(str(e["evidence/id"])))
        async with http.post(base_url(one) + "/api/alpha/evidence", json=entry(id="live-1")) as r:
            assert r.status == 201
        await until(lambda: "live-1" in live, what="daemon 1's entry at daemon 2's subscriber")


def test_copy_of_a_compacted_store_is_refused_whole(tmp_path: Path, pg_dsn: str) -> None:
    """Compaction leaves seq gaps whose hashes only its records explain: the
    copy refuses them, in one transaction, so nothing is half-copied."""
    from datetime import UTC, datetime

    source = tmp_path / "source"
    with JsonlStore(source, fsync="never", clock=lambda: datetime(2026, 1, 1, tzinfo=UTC)) as jsonl:
        jsonl.append_many_sync([entry(id=f"keep-{n}") for n in range(1500)])
        jsonl.append_many_sync([entry(id=f"brief-{n}", **{"ephemeral?": True}) for n in range(3)])
        jsonl.append_sync(entry(id="after"))
        jsonl.compact(datetime(2026, 6, 1, tzinfo=UTC))
    assert verify_store(source).ok
    with PostgresStore(pg_dsn) as pg:
        with pytest.raises(StoreError, match="does not continue the chain"):
            copy_to_postgres(source, pg)
        assert pg.total() == 0 and pg.last_seq == 0


def test_words_inside_paths_and_identifiers_are_found_on_every_backend(
    store: EvidenceStore,
) -> None:
    """PostgreSQL's parser keeps a path or an address as one token; the
    store indexes plain words, as FTS5 does, so both find the same."""
    from futon.evidence.search import SearchRequest

    hit = store.append_sync(entry(body={"args": ["src/app_main.py", "ops@example.org"]}))
    store.append_sync(entry(body={"text": "nothing here"}))
    for q in ("app", "main py", "example"):
        assert [h.entry["evidence/id"] for h in store.search(SearchRequest.of(q))] == [
            hit["evidence/id"]
        ], q


async def test_batches_sealed_ahead_are_sealed_again_when_another_daemon_appended(
    pg_dsn: str,
) -> None:
    """Each daemon seals its next batch against the head it expects; when
    another daemon's append came in between, the database refuses that
    batch whole and it is sealed again under the lock. Two stores taking
    turns make every expectation wrong: the chain stays one valid chain."""
    one, two = PostgresStore(pg_dsn, daemon_id="one"), PostgresStore(pg_dsn, daemon_id="two")
    try:
        stored = []
        for n in range(20):
            stored.append(await one.append(entry(author="one", body={"n": n})))
            stored.append(await two.append(entry(author="two", body={"n": n})))
        assert [e["evidence/seq"] for e in stored] == list(range(1, 41))
        assert one.sealed_again > 0 and two.sealed_again > 0
        report = verify_postgres(one)
        assert report.ok and report.entries == 40, report.problems[:5]
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_reply_to_an_entry_of_the_batch_still_in_flight_is_stored(pg_dsn: str) -> None:
    """Forty appends at once are committed as two batches, the second
    sealed while the first is in the database: an entry of the second that
    replies to one of the first (not stored yet when it was sealed) is
    stored all the same, in the order appended."""
    store = PostgresStore(pg_dsn)
    try:
        appends = [store.append(entry(id="r-0"))]
        appends += [store.append(entry(**{"id": f"r-{n}", "in-reply-to": f"r-{n - 1}"})) for n in range(1, 40)]
        stored = await asyncio.gather(*appends)
        assert [e["evidence/seq"] for e in stored] == list(range(1, 41))
        assert [e["evidence/id"] for e in store.chain("r-39")] == [f"r-{n}" for n in range(40)]
        assert store.sealed_again >= 1  # the second batch, sealed before r-19 was stored
        assert verify_postgres(store).ok
    finally:
        await store.aclose()


async def test_concurrent_appends_are_stored_in_the_order_they_were_made(pg_dsn: str) -> None:
    """Batches in flight at once take the chain in their order (one sealed
    again waits for the one before it to end), so seq order is call order."""
    store = PostgresStore(pg_dsn)
    try:
        for _ in range(3):
            stored = await asyncio.gather(*(store.append(entry(body={"n": n})) for n in range(200)))
            seqs = [e["evidence/seq"] for e in stored]
            assert seqs == sorted(seqs) and len(set(seqs)) == 200
        assert verify_postgres(store).ok
    finally:
        await store.aclose()


def test_the_text_vector_of_plain_words_is_that_of_the_words_alone(pg_dsn: str) -> None:
    """plain_words leaves runs of blanks where ASCII text had other
    characters; PostgreSQL numbers words, not blanks, so the vector (and
    with it phrase search and ranking) is the one of the words joined by
    single spaces."""
    import re

    import asyncpg

    from futon.evidence.pg_sql import TS_CONFIG, plain_words

    texts = [
        "src/app_main.py -- ops@example.org",
        "read\nsrc/app.py\n" + "x" * 800,
        "  retry   logic, (again) ; retries!! 42 a_b_c  ",
        "naïve café: déjà-vu",  # not ASCII: the other way
        "",
        "___",
    ]

    async def vectors() -> list[tuple[str, str]]:
        conn = await asyncpg.connect(pg_dsn)
        try:
            return [
                (
                    await conn.fetchval(f"SELECT to_tsvector('{TS_CONFIG}', $1)::text", plain_words(text)),
                    await conn.fetchval(
                        f"SELECT to_tsvector('{TS_CONFIG}', $1)::text",
                        " ".join(re.findall(r"[^\W_]+", text)),
                    ),
                )
                for text in texts
            ]
        finally:
            await conn.close()

    for text, (ours, words) in zip(texts, asyncio.run(vectors()), strict=True):
        assert ours == words, text
    assert plain_words("a/b_c") == "a b c"


async def test_a_batch_that_reaches_the_lock_before_the_one_before_it_is_sent_again(
    pg_dsn: str,
) -> None:
    """Two batches in flight go through two connections, and the database
    may take the second first. It finds the head short of what the batch
    was sealed after, stores nothing, and the batch is sent again as it is
    once the first has committed — not sealed again."""
    import contextlib

    store = PostgresStore(pg_dsn)
    try:
        first_writer = store._writers[0]
        use = first_writer.use
        held_back = asyncio.Event()

        @contextlib.asynccontextmanager
        async def late_use():  # type: ignore[no-untyped-def]
            if not held_back.is_set():  # the first batch's call leaves after the second's
                held_back.set()
                await asyncio.sleep(0.5)
            async with use() as conn:
                yield conn

        first_writer.use = late_use  # type: ignore[method-assign]
        stored = await asyncio.gather(*(store.append(entry(body={"n": n})) for n in range(40)))
        assert [e["evidence/seq"] for e in stored] == list(range(1, 41))
        assert (store.sent_again, store.sealed_again) == (1, 0)
        assert verify_postgres(store).ok
    finally:
        await store.aclose()


def test_the_large_columns_are_compressed_with_lz4(pg_cluster: PgCluster, pg_dsn: str) -> None:
    """Debian's PostgreSQL has lz4: a row's line, doc and text vector use
    it (less server CPU per append than pglz); an older database gets it
    at the next start, for new rows."""
    from futon.evidence import pg_sql

    database = pg_dsn.rsplit("/", 1)[1]
    PostgresStore(pg_dsn).close()
    pg_cluster.psql(f"ALTER TABLE {pg_sql.TABLE} ALTER COLUMN doc SET COMPRESSION pglz", database)
    with PostgresStore(pg_dsn) as store:
        store.append_sync(entry(body={"text": "x" * 4000}))
    methods = pg_cluster.psql(
        f"SELECT attname || '=' || attcompression::text FROM pg_attribute WHERE attrelid = '{pg_sql.TABLE}'::regclass "
        "AND attname IN ('line', 'doc', 'tsv') ORDER BY attname",
        database,
    ).split()
    assert methods == ["doc=l", "line=l", "tsv=l"]
    assert pg_cluster.psql(f"SELECT pg_column_compression(line) FROM {pg_sql.TABLE}", database).strip() == "lz4"


async def test_a_server_without_lz4_keeps_pglz_and_opens(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncpg

    real_execute = asyncpg.Connection.execute

    async def no_lz4(self: asyncpg.Connection, query: str, *args: object, **kw: object) -> str:
        if "SET COMPRESSION lz4" in query:  # what a server built without lz4 answers
            raise asyncpg.FeatureNotSupportedError('compression method lz4 not supported')
        return await real_execute(self, query, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncpg.Connection, "execute", no_lz4)
    store = PostgresStore(pg_dsn)
    try:
        stored = await store.append(entry())
        assert store.get(stored["evidence/id"]) == stored
    finally:
        await store.aclose()
