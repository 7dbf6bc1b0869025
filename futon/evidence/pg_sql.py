"""The SQL of the PostgreSQL evidence store: schema, filters, text search.

The table holds each entry's stored line byte for byte (``line``, without
its newline) — the truth, from which a copy back to JSONL is identical — and
the columns the filters of :class:`~futon.evidence.query.EvidenceQuery`
need, with the same meaning as the SQLite index's (:mod:`futon.evidence.index`).
Text search uses PostgreSQL's full-text search with the ``english``
configuration (stemming, so "retries" finds "retry"), in the same three
tiers as FTS5: exact phrase, all words, any word.
"""

from __future__ import annotations

import re

from futon.evidence.query import EvidenceQuery
from futon.evidence.search import SNIPPET_CLOSE, SNIPPET_OPEN, SNIPPET_TOKENS, Tier

SCHEMA_VERSION = "1"
TABLE = "futon_evidence"
TAGS = "futon_evidence_tags"
CHANNEL = "futon_evidence"  # NOTIFY channel: payload = the newest seq of a commit
# pg_advisory_xact_lock key that serialises appends across every daemon:
# the chain's head is read and extended only while it is held.
LOCK_KEY = 0x66_75_74_6F_6E_65_76  # "futonev"
TS_CONFIG = "english"
# ts_rank weights {D, C, B, A}: body and author are B, subject and tags A —
# a word in the subject or the tags says twice as much (as the FTS5 bm25
# column weights 1, 2, 1, 2 of the SQLite index).
RANK_WEIGHTS = "{0.1, 0.2, 0.5, 1.0}"
JOINED_TAGS = 4  # tag filters joined (the rest are EXISTS tests)
RANK_WINDOW = 4000  # matches each tier ranks (the newest), as index.RANK_WINDOW

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS futon_meta(key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {TABLE}(
    seq        bigint PRIMARY KEY,
    id         text NOT NULL UNIQUE,
    at         text NOT NULL,
    type       text NOT NULL,
    claim      text NOT NULL,
    author     text NOT NULL,
    session    text,
    subj_type  text NOT NULL,
    subj_id    text NOT NULL,
    pattern    text,
    reply_to   text,
    fork_of    text,
    ephemeral  boolean NOT NULL,
    tags       text[] NOT NULL,
    hash       text NOT NULL,
    daemon     text NOT NULL,
    doc        text NOT NULL,
    tsv        tsvector NOT NULL,
    line       bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_session ON {TABLE}(session, seq);
CREATE INDEX IF NOT EXISTS {TABLE}_author  ON {TABLE}(author, seq);
CREATE INDEX IF NOT EXISTS {TABLE}_type    ON {TABLE}(type, seq);
CREATE INDEX IF NOT EXISTS {TABLE}_claim   ON {TABLE}(claim, seq);
CREATE INDEX IF NOT EXISTS {TABLE}_subject ON {TABLE}(subj_type, subj_id, seq);
CREATE INDEX IF NOT EXISTS {TABLE}_pattern ON {TABLE}(pattern, seq);
CREATE INDEX IF NOT EXISTS {TABLE}_reply   ON {TABLE}(reply_to);
CREATE INDEX IF NOT EXISTS {TABLE}_fork    ON {TABLE}(fork_of);
CREATE INDEX IF NOT EXISTS {TABLE}_at      ON {TABLE}(at);
-- One row per (tag, entry): a tag's page walks this key backwards.
CREATE TABLE IF NOT EXISTS {TAGS}(tag text NOT NULL, seq bigint NOT NULL, PRIMARY KEY(tag, seq));
CREATE INDEX IF NOT EXISTS {TABLE}_text    ON {TABLE} USING gin(tsv);
"""  # and APPEND_FUNCTION, below

# One row per entry. ``doc`` (for snippets) joins the four parts of
# search.entry_text as they are (body $17, subject $18, author $19, tags
# $20); the text vector is built from the same parts as plain words
# ($21-$24, :func:`plain_words`).
INSERT = f"""
INSERT INTO {TABLE}(seq, id, at, type, claim, author, session, subj_type, subj_id, pattern,
                    reply_to, fork_of, ephemeral, tags, hash, daemon, doc, tsv, line)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
        concat_ws(E'\\n', $17::text, $18::text, $19::text, $20::text),
        setweight(to_tsvector('{TS_CONFIG}', $21::text), 'B')
          || setweight(to_tsvector('{TS_CONFIG}', $22::text), 'A')
          || setweight(to_tsvector('{TS_CONFIG}', $23::text), 'B')
          || setweight(to_tsvector('{TS_CONFIG}', $24::text), 'A'),
        $25)
"""

# The large columns (a row's line, doc and text vector together pass the
# 2 KiB at which PostgreSQL compresses) with lz4 rather than the default
# pglz: measured 14-24% less server CPU per appended row (bench matrix of
# 8,192 rows, server CPU time). A server built without lz4 keeps pglz.
COMPRESSED = ("line", "doc", "tsv")
COMPRESSION_OF = f"""
SELECT attname FROM pg_attribute
WHERE attrelid = '{TABLE}'::regclass AND attname = ANY($1::text[]) AND attcompression <> 'l'
"""

# An append batch sealed ahead, in one statement (one round trip, its own
# transaction). First, before the lock, the text vectors (the costliest part
# of a row: while one daemon connection computes them, another may hold the
# lock and insert). Then the lock, and the check that the chain's head and
# the stored ones of the ids the batch references are what the batch was
# sealed against; then the rows, their tag rows, the NOTIFY. Anything else
# found: nothing is inserted, and the head and ids found come back (``ok``
# false). Each statement of a volatile function sees what was committed
# before it began, so the checks after the lock see every batch committed
# before the lock was granted. Rows come as one array per column (tags as a
# JSON array per row); ``doc`` and the words as in INSERT.
APPEND_FUNCTION = f"""
CREATE OR REPLACE FUNCTION futon_evidence_append(
    expect_seq bigint, expect_hash text, wanted text[], expect_found text[],
    r_seq bigint[], r_id text[], r_at text[], r_type text[], r_claim text[], r_author text[],
    r_session text[], r_subj_type text[], r_subj_id text[], r_pattern text[], r_reply text[],
    r_fork text[], r_ephemeral boolean[], r_tags text[], r_hash text[], r_daemon text,
    r_doc text[], r_body text[], r_subject text[], r_author_words text[], r_tag_words text[],
    r_line bytea[]
) RETURNS TABLE(ok boolean, head_seq bigint, head_hash text, head_at text, found text[])
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    h record;
    f text[];
    v tsvector[];
BEGIN
    SELECT array_agg(setweight(to_tsvector('{TS_CONFIG}', w.b), 'B')
                     || setweight(to_tsvector('{TS_CONFIG}', w.s), 'A')
                     || setweight(to_tsvector('{TS_CONFIG}', w.a), 'B')
                     || setweight(to_tsvector('{TS_CONFIG}', w.t), 'A') ORDER BY w.n) INTO v
    FROM unnest(r_body, r_subject, r_author_words, r_tag_words) WITH ORDINALITY AS w(b, s, a, t, n);
    PERFORM pg_advisory_xact_lock({LOCK_KEY});
    SELECT e.seq, e.hash, e.at INTO h FROM {TABLE} e ORDER BY e.seq DESC LIMIT 1;
    SELECT coalesce(array_agg(e.id ORDER BY e.id), '{{}}') INTO f FROM {TABLE} e WHERE e.id = ANY(wanted);
    IF coalesce(h.seq, 0) <> expect_seq OR (h.seq IS NOT NULL AND h.hash <> expect_hash)
       OR f <> expect_found THEN
        RETURN QUERY SELECT false, h.seq, h.hash, h.at, f;
        RETURN;
    END IF;
    INSERT INTO {TABLE}(seq, id, at, type, claim, author, session, subj_type, subj_id, pattern,
                        reply_to, fork_of, ephemeral, tags, hash, daemon, doc, tsv, line)
    SELECT u.s, u.i, u.a, u.ty, u.c, u.au, u.se, u.st, u.si, u.p, u.r, u.fo, u.ep,
           ARRAY(SELECT jsonb_array_elements_text(u.tg::jsonb)), u.h, r_daemon, u.d, u.v, u.l
    FROM unnest(r_seq, r_id, r_at, r_type, r_claim, r_author, r_session, r_subj_type, r_subj_id,
                r_pattern, r_reply, r_fork, r_ephemeral, r_tags, r_hash, r_doc, v, r_line)
         AS u(s, i, a, ty, c, au, se, st, si, p, r, fo, ep, tg, h, d, v, l);
    INSERT INTO {TAGS}(tag, seq)
    SELECT t, u.s FROM unnest(r_seq, r_tags) AS u(s, tg), jsonb_array_elements_text(u.tg::jsonb) AS t;
    PERFORM pg_notify('{CHANNEL}', r_seq[cardinality(r_seq)]::text);
    RETURN QUERY SELECT true, r_seq[cardinality(r_seq)], r_hash[cardinality(r_hash)],
                        r_at[cardinality(r_at)], f;
END
$fn$;
"""
APPEND = f"SELECT * FROM futon_evidence_append({', '.join(f'${n}' for n in range(1, 27))})"

# What search.words_of calls a word: letters and digits (FTS5's unicode61
# splits there). PostgreSQL's parser would keep "src/app_main.py" or
# "a@b.c" as one token, so a search for "app" would miss what the JSONL
# store finds: the vector is built from the words alone.
_WORD = re.compile(r"[^\W_]+")
# ASCII text (most of it) the fast way: every byte but a letter or a digit
# becomes a space. The runs of spaces this leaves change nothing: the text
# parser numbers words, not the blanks between them (a test checks it).
_ASCII_BLANKS = bytes(b if chr(b).isalnum() and b < 128 else 0x20 for b in range(256))


def plain_words(text: str) -> str:
    """``text``'s words (search.words_of's), separated by blanks."""
    if text.isascii():
        return text.encode().translate(_ASCII_BLANKS).decode()
    return " ".join(_WORD.findall(text))


INSERT_TAGS = f"INSERT INTO {TAGS}(tag, seq) SELECT * FROM unnest($1::text[], $2::bigint[])"

HEAD = f"SELECT seq, hash, at FROM {TABLE} ORDER BY seq DESC LIMIT 1"
# The head (id NULL) and which of the ids $1 exist (with their seq), in one
# round trip inside the append transaction.
HEAD_AND_IDS = f"""
(SELECT seq, hash, at, NULL::text AS id FROM {TABLE} ORDER BY seq DESC LIMIT 1)
UNION ALL
SELECT seq, NULL, NULL, id FROM {TABLE} WHERE id = ANY($1::text[])
"""


class Params:
    """Positional parameters ($1, $2 …) collected while SQL is built."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def add(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def filters(
    query: EvidenceQuery, params: Params, *, by_tag: bool = False
) -> tuple[str, list[str], str]:
    """The FROM source, WHERE terms (entries as ``e``) and the seq column to
    order by, for a query's filters: the same meaning as ``Index._filters``.
    ``by_tag``: the first tag drives the scan from the tags table, whose key
    (tag, seq) is already in seq order (as in the SQLite index); otherwise
    every tag is an EXISTS test."""
    where: list[str] = []
    source, order = f"{TABLE} e", "e.seq"
    tags = list(query.tags)
    if tags and by_tag:
        # The first JOINED_TAGS tags are joined on seq, so the planner can
        # merge their (tag, seq) keys, newest first, whichever is rarest.
        joined, tags = tags[:JOINED_TAGS], tags[JOINED_TAGS:]
        source, order = f"{TAGS} t0", "t0.seq"
        where.append(f"t0.tag = {params.add(joined[0])}")
        for n, tag in enumerate(joined[1:], start=1):
            source += f" JOIN {TAGS} t{n} ON t{n}.seq = t0.seq AND t{n}.tag = {params.add(tag)}"
        source += f" JOIN {TABLE} e ON e.seq = t0.seq"
    for tag in tags:
        where.append(
            f"EXISTS (SELECT 1 FROM {TAGS} tx WHERE tx.tag = {params.add(tag)} AND tx.seq = e.seq)"
        )
    for column, value in query.column_filters():
        where.append(f"{column} = {params.add(value)}")
    if query.since is not None:
        where.append(f"e.at >= {params.add(query.since)}")
    if query.until is not None:
        where.append(f"e.at < {params.add(query.until)}")
    if not query.include_ephemeral:
        where.append("NOT e.ephemeral")
    if query.before_seq is not None:
        where.append(f"e.seq < {params.add(query.before_seq)}")
    if query.after_seq is not None:
        where.append(f"e.seq > {params.add(query.after_seq)}")
    return source, where, order


def select(query: EvidenceQuery, columns: str, limit: int) -> tuple[str, list[object]]:
    """A page of ``columns``: newest first, oldest first with ``after_seq``."""
    params = Params()
    source, where, order = filters(query, params, by_tag=True)
    sql = f"SELECT {columns} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    direction = "ASC" if query.after_seq is not None else "DESC"
    sql += f" ORDER BY {order} {direction} LIMIT {params.add(limit)}"
    return sql, params.values


def count(query: EvidenceQuery) -> tuple[str, list[object]]:
    params = Params()
    source, where, _ = filters(query, params, by_tag=True)
    sql = f"SELECT count(*) FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, params.values


def tsqueries(words: tuple[str, ...]) -> list[tuple[Tier, str, str]]:
    """(tier, tsquery function, its text) for ``words``, best tier first.
    Every word is letters and digits only (search.words_of), and the
    functions read plain text, so no query text is a tsquery syntax error;
    ``to_tsquery`` gets the words joined by ``|`` and nothing else."""
    if not words:
        return []
    text = " ".join(words)
    if len(words) == 1:
        return [("all", "plainto_tsquery", text)]
    return [
        ("phrase", "phraseto_tsquery", text),
        ("all", "plainto_tsquery", text),
        ("any", "to_tsquery", " | ".join(words)),
    ]


def search(
    function: str, text: str, query: EvidenceQuery, exclude: list[int], limit: int
) -> tuple[str, list[object]]:
    """One tier: the newest RANK_WINDOW matches ranked (best first), without
    the seqs an earlier tier found, with a « » snippet each."""
    params = Params()
    tsq = f"{function}('{TS_CONFIG}', {params.add(text)})"
    where = ["e.tsv @@ q.q", *filters(query, params)[1]]
    if exclude:
        where.append(f"NOT (e.seq = ANY({params.add(exclude)}::bigint[]))")
    options = (
        f"StartSel={SNIPPET_OPEN}, StopSel={SNIPPET_CLOSE}, MaxWords={SNIPPET_TOKENS}, "
        f"MinWords={max(1, SNIPPET_TOKENS // 3)}, MaxFragments=1, FragmentDelimiter=…"
    )
    sql = f"""
        WITH q AS (SELECT {tsq} AS q),
        window_ AS (
            SELECT e.seq, ts_rank('{RANK_WEIGHTS}', e.tsv, q.q) AS rank
            FROM {TABLE} e, q WHERE {" AND ".join(where)}
            ORDER BY e.seq DESC LIMIT {RANK_WINDOW}),
        best AS (SELECT * FROM window_ ORDER BY rank DESC, seq DESC LIMIT {params.add(limit)})
        SELECT b.seq, e.line, b.rank, ts_headline('{TS_CONFIG}', e.doc, q.q, {params.add(options)})
        FROM best b JOIN {TABLE} e ON e.seq = b.seq, q ORDER BY b.rank DESC, b.seq DESC
    """
    return sql, params.values


ANCESTORS = f"""
WITH RECURSIVE up(seq, reply_to, depth) AS (
    SELECT seq, reply_to, 0 FROM {TABLE} WHERE id = $1
    UNION ALL
    SELECT e.seq, e.reply_to, up.depth + 1 FROM {TABLE} e JOIN up ON e.id = up.reply_to
)
SELECT e.line FROM up JOIN {TABLE} e ON e.seq = up.seq ORDER BY up.depth DESC
"""

THREAD_ROOT = f"""
WITH RECURSIVE up(id, depth) AS (
    SELECT $1::text, 0
    UNION ALL
    SELECT COALESCE(e.reply_to, e.fork_of), up.depth + 1 FROM {TABLE} e JOIN up ON e.id = up.id
    WHERE COALESCE(e.reply_to, e.fork_of) IS NOT NULL
      AND EXISTS (SELECT 1 FROM {TABLE} p WHERE p.id = COALESCE(e.reply_to, e.fork_of))
)
SELECT id FROM up ORDER BY depth DESC LIMIT 1
"""

DESCENDANTS = f"""
WITH RECURSIVE down(id) AS (
    SELECT $1::text
    UNION
    SELECT c.id FROM down, LATERAL (
        SELECT id FROM {TABLE} WHERE reply_to = down.id
        UNION ALL
        SELECT id FROM {TABLE} WHERE fork_of = down.id
    ) c
)
SELECT e.line FROM down JOIN {TABLE} e ON e.id = down.id ORDER BY e.seq
"""
