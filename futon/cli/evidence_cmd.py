"""``futon evidence query|search|tail|chain|verify`` — read the landscape from the
shards of the config's ``data_dir``, with or without a running daemon.

Filters are parsed by ``EvidenceQuery.from_params``, the same parser the HTTP
and WS transports use, so ``--type nonsense`` fails here exactly as
``?type=nonsense`` fails there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from futon.cli import add_config_option, add_group
from futon.cli.evidence_lines import LinePrinter
from futon.evidence.model import EntryDict
from futon.evidence.query import EvidenceQuery
from futon.evidence.search import MAX_SEARCH_LIMIT, SearchRequest

_FILTERS = (
    ("subject-type", "Only entries whose subject has this type (session, thread, agent, ...)."),
    ("subject-id", "Only entries whose subject has this id."),
    ("type", "Only entries of this evidence type."),
    ("claim-type", "Only entries of this claim type."),
    ("author", "Only entries by this author."),
    ("session-id", "Only entries of this session."),
    ("pattern-id", "Only entries about this pattern."),
    ("tag", "Only entries carrying every tag of this comma-separated list."),
    ("since", "Only entries at or after this ISO-8601 time."),
    ("until", "Only entries before this ISO-8601 time."),
)


def register(sub: argparse._SubParsersAction) -> None:
    actions = add_group(
        sub,
        "evidence",
        help="Read the evidence landscape.",
        description=(
            "Read the evidence landscape from the shards of the config's data_dir, "
            "with or without a running daemon."
        ),
    )

    query = actions.add_parser(
        "query",
        help="Print the entries matching the filters, newest first.",
        description=(
            "Print the entries matching the filters, newest first, one line each "
            "(--wide: a table with every column; --json: one JSON entry per line)."
        ),
    )
    _add_filters(query)
    query.add_argument("--limit", type=int, default=50, help="The page size, at most 1000 (default: 50).")
    query.add_argument("--cursor", help="Continue from the cursor a previous page printed.")
    query.set_defaults(func=cmd_query)

    search = actions.add_parser(
        "search",
        help="Print the entries whose text holds the words, best match first.",
        description=(
            "Full-text search of the entries' bodies, subjects, authors and tags: the words "
            "as an exact phrase first, then all of them, then any; the filters apply. One line "
            "each with the matched words «marked» (--wide: a table; --json: one hit per line)."
        ),
    )
    search.add_argument("words", metavar="QUERY", nargs="+", help="The words to look for (plain words; no operators).")
    _add_filters(search)
    search.add_argument(
        "--limit", type=int, default=20, help=f"How many hits, at most {MAX_SEARCH_LIMIT} (default: 20)."
    )
    search.set_defaults(func=cmd_search)

    audit = actions.add_parser(
        "audit",
        help="Replay a session's evidence against the peripheral specs; print each violation.",
        description=(
            "Replay the session's recorded chain against the peripherals of the config: every "
            "step's tool in its peripheral's tools, every path in scope, every hop admitted, the "
            "chain unbroken. Prints each violation with the entry that shows it; exits 1 when "
            "there is one."
        ),
    )
    add_config_option(audit)
    audit.add_argument("session", metavar="SESSION", nargs="?", help="The session id (sess-...).")
    audit.add_argument(
        "--all", action="store_true", help="Audit every session whose goal is in the --since/--until window."
    )
    audit.add_argument("--since", metavar="WHEN", help="With --all: sessions started at or after this ISO-8601 time.")
    audit.add_argument("--until", metavar="WHEN", help="With --all: sessions started before this ISO-8601 time.")
    audit.add_argument("--json", action="store_true", help="Print the report as JSON.")
    audit.set_defaults(func=cmd_audit)

    tail = actions.add_parser(
        "tail",
        help="Print the newest entries, and with -f the new ones as they come.",
        description=(
            "Print the newest entries in time order, one line each; with -f keep "
            "printing new entries in the same columns."
        ),
    )
    _add_filters(tail)
    tail.add_argument("-n", "--lines", type=int, default=20, help="How many entries to show first (default: 20).")
    tail.add_argument("-f", "--follow", action="store_true", help="Keep printing new entries.")
    tail.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    tail.set_defaults(func=cmd_tail)

    chain = actions.add_parser(
        "chain",
        help="Print an entry's in-reply-to ancestors, root first.",
        description="Print the entry ID and the entries it replies to, the root first.",
    )
    add_config_option(chain)
    chain.add_argument("id", metavar="ID", help="The evidence id of the entry.")
    _add_output_options(chain)
    chain.set_defaults(func=cmd_chain)

    verify = actions.add_parser(
        "verify",
        help="Re-read every shard and check its JSON, ids, seq order and hash chain.",
        description="Re-read every shard and check its JSON, ids, seq order and hash chain.",
    )
    add_config_option(verify)
    verify.add_argument("--no-progress", action="store_true", help="Never draw a progress bar.")
    verify.add_argument(
        "--anchor",
        metavar="SEQ:HASH",
        help="An anchor printed earlier by futon evidence anchor; the entries it covers must all be there, unchanged.",
    )
    verify.set_defaults(func=cmd_verify)

    anchor = actions.add_parser(
        "anchor",
        help="Print the newest entry's seq and hash, to keep outside futon for verify --anchor.",
        description=(
            "Print the newest entry's seq and hash as SEQ:HASH, to keep outside futon and "
            "check later with futon evidence verify --anchor."
        ),
    )
    add_config_option(anchor)
    anchor.add_argument("--json", action="store_true", help="Print the seq, hash and time as JSON.")
    anchor.set_defaults(func=cmd_anchor)

    compact = actions.add_parser(
        "compact",
        help="Drop ephemeral entries older than --before from the shards.",
        description=(
            "Drop ephemeral entries older than --before from the shards; a compaction "
            "entry keeps the hash chain verifiable."
        ),
    )
    add_config_option(compact)
    compact.add_argument("--before", required=True, metavar="TIME", help="An ISO-8601 time; a time without a zone is UTC.")
    compact.add_argument("--url", help="The base URL of a running daemon that holds the store (default: from the config).")
    compact.add_argument("--token", help="The daemon's admin token (default: $FUTON_ADMIN_TOKEN).")
    compact.add_argument("--json", action="store_true", help="Print the result as JSON.")
    compact.set_defaults(func=cmd_compact)

    from futon.cli import evidence_copy

    evidence_copy.register(actions)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    for name, help_text in _FILTERS:
        parser.add_argument(f"--{name}", dest=name.replace("-", "_"), help=help_text)
    parser.add_argument("--include-ephemeral", action="store_true", help="Show ephemeral entries too.")
    _add_output_options(parser)


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="Print one JSON entry per line.")
    form.add_argument(
        "--wide", action="store_true", help="Print a table with every column, the entry ids among them."
    )


def _query_from(args: argparse.Namespace, limit: int) -> EvidenceQuery:
    params: dict[str, Any] = {name: getattr(args, name.replace("-", "_")) for name, _ in _FILTERS}
    params = {k: v for k, v in params.items() if v is not None}
    params["include-ephemeral"] = bool(args.include_ephemeral)
    params["limit"] = str(limit)
    if getattr(args, "cursor", None):
        params["cursor"] = args.cursor
    return EvidenceQuery.from_params(params)


def _evidence_dir(args: argparse.Namespace) -> Path:
    from futon.config.loader import load_config

    return Path(load_config(args.config).data_dir) / "evidence"


def _open(args: argparse.Namespace):  # -> EvidenceStore | None
    from futon.evidence.jsonl import list_shards, open_for_reading

    postgres = _postgres(args)
    if postgres is not None:
        return postgres
    directory = _evidence_dir(args)
    if not list_shards(directory):
        print(f"(no evidence yet in {directory})", file=sys.stderr)
        return None
    return open_for_reading(directory)


# ------------------------------------------------------------------ commands


def cmd_query(args: argparse.Namespace) -> int:
    query = _query_from(args, args.limit)
    store = _open(args)
    if store is None:
        return 0
    with store:
        page = store.query(query)
    _emit(page.entries, args.json, title=f"{len(page.entries)} entries", wide=args.wide)
    if page.next_cursor:
        print(f"next page: --cursor {page.next_cursor}", file=sys.stderr)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    query = _query_from(args, 1)
    request = SearchRequest.of(" ".join(args.words), query=query, limit=max(1, args.limit))
    store = _open(args)
    if store is None:
        return 0
    with store:
        hits = store.search(request)
    if args.json:
        for hit in hits:
            sys.stdout.write(json.dumps(hit.to_dict(), ensure_ascii=False) + "\n")
    elif args.wide:
        _emit([hit.entry for hit in hits], False, title=f"{len(hits)} hits", wide=True)
    else:
        printer = LinePrinter(dated=True)
        if hits:
            printer.header()
        printer.print_hits([(hit.entry, hit.snippet) for hit in hits])
    if not hits:
        print("(no entry holds these words)", file=sys.stderr)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Exit 0: clean; 1: a violation; 2: usage, or no such session."""
    from futon.config.loader import load_config
    from futon.peripherals.audit import audit_session
    from futon.peripherals.spec import load_peripherals
    from futon.protocol.errors import NotFound, ProtocolError

    if args.all:
        return _audit_all(args)
    if args.session is None or args.since is not None or args.until is not None:
        raise ProtocolError("give a SESSION, or --all --since WHEN [--until WHEN]", code="invalid-input")
    peripherals = load_peripherals(load_config(args.config).peripherals)
    store = _open(args)
    try:
        if store is None:
            raise NotFound(f"no session {args.session!r} in the evidence", code="session-not-found")
        with store:
            report = audit_session(store, peripherals, args.session)
    except NotFound as missing:  # exit 1 is kept for "violations": a script can trust it
        raise ProtocolError(missing.message, code=missing.code) from None
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        for violation in report.violations:
            print(f"{violation.evidence_id} (seq {violation.seq}): {violation.rule}: {violation.message}")
        verdict = "clean" if report.clean else f"{len(report.violations)} violation(s)"
        print(
            f"{report.session_id}: {report.entries} entries, {report.steps} steps, {report.hops} hops, "
            f"{report.refusals} refusals: {verdict}" + (" (cut at the audit bound)" if report.truncated else "")
        )
    return 0 if report.clean else 1


def _audit_all(args: argparse.Namespace) -> int:
    from futon.config.loader import load_config
    from futon.evidence.model import parse_at
    from futon.peripherals.audit import WindowReport, audit_window
    from futon.peripherals.spec import load_peripherals
    from futon.protocol.errors import ProtocolError

    if args.session is not None or args.since is None:
        raise ProtocolError("--all takes no SESSION, and needs --since WHEN", code="invalid-input")
    try:
        since = parse_at(args.since)
        until = parse_at(args.until) if args.until is not None else None
    except ValueError as exc:
        raise ProtocolError(f"--since/--until must be ISO-8601 times: {exc}", code="invalid-input") from None
    peripherals = load_peripherals(load_config(args.config).peripherals)
    store = _open(args)
    if store is None:
        report = WindowReport(since, until, 0)
    else:
        with store:
            report = audit_window(store, peripherals, since, until)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        for session in report.sessions:
            verdict = "clean" if session.clean else f"{len(session.violations)} violation(s)"
            print(f"{session.session_id}: {verdict}")
            for violation in session.violations:
                print(f"  {violation.evidence_id} (seq {violation.seq}): {violation.rule}: {violation.message}")
        dirty = sum(1 for s in report.sessions if not s.clean)
        print(f"{len(report.sessions)} session(s) audited, {dirty} with violations")
        if report.more:
            print(f"(the window holds more than {report.cap} sessions: narrow it)", file=sys.stderr)
    return 0 if report.clean else 1


def cmd_tail(args: argparse.Namespace) -> int:
    query = _query_from(args, max(1, min(args.lines, 1000)))
    store = _open(args)
    if store is None and not args.follow:
        return 0
    last_seq = 0
    lines = LinePrinter()  # one for the whole command: a follow keeps its columns
    if store is not None:
        with store:
            entries = list(reversed(store.query(query).entries))
            last_seq = store.last_seq
        _emit(entries, args.json, title="newest entries", wide=args.wide, lines=lines)
    if not args.follow:
        return 0
    try:
        for entry in _follow(_evidence_dir(args), last_seq, args.interval):
            if query.matches(entry):
                _emit([entry], args.json, title=None, wide=args.wide, lines=lines)
    except KeyboardInterrupt:
        return 0
    return 0


def _follow(directory: Path, after_seq: int, interval: float) -> Iterator[EntryDict]:
    """New entries as the writer appends them, read from the shard files
    themselves (like tail -f), so following never takes the store's lock."""
    from futon.evidence.jsonl import list_shards

    positions: dict[Path, int] = {}
    partial: dict[Path, bytes] = {}
    while True:
        for shard in list_shards(directory):
            try:
                size = shard.path.stat().st_size
            except FileNotFoundError:
                continue
            start = positions.get(shard.path, 0)
            if size <= start:
                continue
            with open(shard.path, "rb") as handle:
                handle.seek(start)
                data = partial.pop(shard.path, b"") + handle.read(size - start)
            positions[shard.path] = size
            *lines, rest = data.split(b"\n")
            if rest:
                partial[shard.path] = rest  # a line still being written
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("evidence/seq", 0) > after_seq:
                    after_seq = entry["evidence/seq"]
                    yield entry
        sys.stdout.flush()
        time.sleep(interval)


def cmd_chain(args: argparse.Namespace) -> int:
    store = _open(args)
    if store is None:
        from futon.protocol.errors import NotFound

        raise NotFound(f"no evidence entry {args.id!r}", code="evidence-not-found")
    with store:
        entries = store.chain(args.id)
    _emit(entries, args.json, title=f"chain of {args.id} (root first)", wide=args.wide)
    return 0


def _postgres(args: argparse.Namespace):  # -> PostgresStore | None
    """The config's PostgreSQL store with ``evidence.backend: postgres``, else None."""
    from futon.config.loader import load_config

    config = load_config(args.config)
    section = config.daemon.evidence
    if section.backend != "postgres" or section.postgres is None:
        return None
    from futon.evidence.postgres import open_postgres

    return open_postgres(section.postgres.dsn, password_env=section.postgres.password_env)


def cmd_verify(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from futon.evidence.anchor import Anchor
    from futon.evidence.verify import total_bytes, verify_store
    from futon.protocol.errors import ProtocolError

    try:
        kept = Anchor.parse(args.anchor) if args.anchor else None
    except ValueError as exc:
        raise ProtocolError(f"--anchor: {exc}", code="invalid-input") from None
    postgres = _postgres(args)
    if postgres is not None:
        from futon.evidence.pg_verify import verify_postgres

        if kept is not None:
            raise ProtocolError("--anchor is for the JSONL store's shards", code="invalid-input")
        with postgres:
            report = verify_postgres(postgres)
        for problem in report.problems:
            print(problem)
        status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        print(f"{status}: {report.entries} entries, {report.bytes} bytes (PostgreSQL)")
        return 0 if report.ok else 1
    directory = _evidence_dir(args)
    total = total_bytes(directory)
    console = Console(stderr=True)
    show_bar = not args.no_progress and console.is_terminal and total > 16 * 1024 * 1024
    if show_bar:
        with Progress(
            "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=console,
        ) as progress:  # fmt: skip
            task = progress.add_task("verifying", total=total)
            report = verify_store(directory, lambda n: progress.advance(task, n), anchor=kept)
    else:
        report = verify_store(directory, anchor=kept)
    for problem in report.problems:
        print(problem)
    status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
    print(f"{status}: {report.entries} entries in {report.shards} shard(s), {report.bytes} bytes ({directory})")
    return 0 if report.ok else 1


def cmd_anchor(args: argparse.Namespace) -> int:
    from futon.evidence.anchor import head_of_shards
    from futon.evidence.jsonl import list_shards

    directory = _evidence_dir(args)
    shards = list_shards(directory)
    head = head_of_shards(shards[-1].path) if shards else None
    if head is None:
        print(f"(no evidence yet in {directory})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"seq": head.seq, "hash": head.hash, "at": head.at}))
    else:
        print(head)
    return 0


def parse_cutoff(text: str) -> datetime:
    """``--before``: ISO-8601, UTC when no zone is given."""
    from futon.protocol.errors import ProtocolError

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ProtocolError(f"--before: {text!r} is not an ISO-8601 time (e.g. 2026-12-01T00:00:00Z)",
                            code="invalid-input") from None  # fmt: skip
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def cmd_compact(args: argparse.Namespace) -> int:
    import os

    from futon.evidence.jsonl import JsonlStore, StoreLocked

    before = parse_cutoff(args.before)
    directory = _evidence_dir(args)
    try:
        store = JsonlStore(directory)
    except StoreLocked:
        # A daemon holds the store: it compacts between two appends.
        from futon.cli.status_cmd import daemon_url, post

        url = (args.url or daemon_url(args.config)).rstrip("/")
        token = args.token or os.environ.get("FUTON_ADMIN_TOKEN") or None
        result = post(url, "/api/alpha/evidence/compact", {"before": before.isoformat()}, token)
    else:
        with store:
            result = store.compact(before)
    if args.json:
        print(json.dumps(result))
    elif result["removed"]:
        runs = len(result["runs"])
        print(f"removed {result['removed']} ephemeral entries in {runs} run(s); {result['kept']} kept; "
              f"recorded as {result['entry']}")  # fmt: skip
    else:
        print(f"nothing to remove: no ephemeral entry is older than {before.isoformat()}")
    return 0


# ------------------------------------------------------------------ output


def _emit(
    entries: list[EntryDict],
    as_json: bool,
    title: str | None,
    *,
    wide: bool = False,
    lines: LinePrinter | None = None,
) -> None:
    """Entries as JSON lines, as the --wide table, or one line each
    (:mod:`futon.cli.evidence_lines`; ``lines`` carries a follow's state)."""
    if as_json:
        for entry in entries:
            sys.stdout.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return
    if not wide:
        printer = lines or LinePrinter()
        if entries:
            printer.header()
        printer.print(entries)
        return
    # Piped output is read by tools and people with wide windows: don't fold.
    console = Console(width=None if sys.stdout.isatty() else 240)
    table = Table(title=title, show_header=title is not None)
    for column in ("seq", "at", "type", "claim", "author", "subject", "id", "body"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        subject = entry.get("evidence/subject", {})
        cells = (
            entry.get("evidence/seq", ""),
            entry.get("evidence/at", ""),
            entry.get("evidence/type", ""),
            entry.get("evidence/claim-type", ""),
            entry.get("evidence/author", ""),
            f"{subject.get('ref/type', '')}:{subject.get('ref/id', '')}",
            entry.get("evidence/id", ""),
            _summary(entry.get("evidence/body")),
        )
        # Text, not str: entry content must never be read as rich markup.
        table.add_row(*(Text(str(cell)) for cell in cells))
    console.print(table)


def _summary(body: Any, width: int = 60) -> str:
    if body is None:
        return ""
    given = body.get("text") if isinstance(body, dict) else None
    text = given if isinstance(given, str) else json.dumps(body, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"
