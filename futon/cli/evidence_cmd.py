"""``futon evidence query|tail|chain|verify`` — read the landscape from the
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
from futon.evidence.model import EntryDict
from futon.evidence.query import EvidenceQuery

_FILTERS = (
    ("subject-type", "ref/type of the subject"),
    ("subject-id", "ref/id of the subject"),
    ("type", "evidence type"),
    ("claim-type", "claim type"),
    ("author", "author"),
    ("session-id", "session id"),
    ("pattern-id", "pattern id"),
    ("tag", "comma list of tags (all must match)"),
    ("since", "ISO-8601, inclusive"),
    ("until", "ISO-8601, exclusive"),
)


def register(sub: argparse._SubParsersAction) -> None:
    actions = add_group(sub, "evidence", help="read the evidence landscape", description=__doc__.splitlines()[0])

    query = actions.add_parser("query", help="entries matching filters, newest first")
    _add_filters(query)
    query.add_argument("--limit", type=int, default=50, help="page size (max 1000)")
    query.add_argument("--cursor", help="continue from a previous page's cursor")
    query.set_defaults(func=cmd_query)

    tail = actions.add_parser("tail", help="the newest entries; -f to follow")
    _add_filters(tail)
    tail.add_argument("-n", "--lines", type=int, default=20, help="how many to show first")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new entries")
    tail.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    tail.set_defaults(func=cmd_tail)

    chain = actions.add_parser("chain", help="an entry's in-reply-to ancestors, root first")
    add_config_option(chain)
    chain.add_argument("id")
    chain.add_argument("--json", action="store_true", help="one JSON entry per line")
    chain.set_defaults(func=cmd_chain)

    verify = actions.add_parser("verify", help="re-read every shard: JSON, ids, seq order, hash chain")
    add_config_option(verify)
    verify.add_argument("--no-progress", action="store_true", help="never draw a progress bar")
    verify.add_argument(
        "--anchor",
        metavar="SEQ:HASH",
        help="an anchor printed earlier by 'futon evidence anchor'; entries it covers must all be there, unchanged",
    )
    verify.set_defaults(func=cmd_verify)

    anchor = actions.add_parser(
        "anchor",
        help="print the newest entry's seq and hash as SEQ:HASH, to keep outside futon and check later with verify --anchor",
    )
    add_config_option(anchor)
    anchor.add_argument("--json", action="store_true", help="print {seq, hash, at} as JSON")
    anchor.set_defaults(func=cmd_anchor)

    compact = actions.add_parser(
        "compact",
        help="drop ephemeral entries older than --before from the shards; a compaction entry keeps the chain verifiable",
    )
    add_config_option(compact)
    compact.add_argument("--before", required=True, metavar="TIME", help="ISO-8601 time; a time without a zone is UTC")
    compact.add_argument("--url", help="a running daemon's base URL, when it holds the store (default: from the config)")
    compact.add_argument("--token", help="the daemon's admin token (default: $FUTON_ADMIN_TOKEN)")
    compact.add_argument("--json", action="store_true", help="print the result as JSON")
    compact.set_defaults(func=cmd_compact)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    for name, help_text in _FILTERS:
        parser.add_argument(f"--{name}", dest=name.replace("-", "_"), help=help_text)
    parser.add_argument("--include-ephemeral", action="store_true", help="show ephemeral entries too")
    parser.add_argument("--json", action="store_true", help="one JSON entry per line")


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


def _open(args: argparse.Namespace):  # -> JsonlStore | None
    from futon.evidence.jsonl import list_shards, open_for_reading

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
    _emit(page.entries, args.json, title=f"{len(page.entries)} entries")
    if page.next_cursor:
        print(f"next page: --cursor {page.next_cursor}", file=sys.stderr)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    query = _query_from(args, max(1, min(args.lines, 1000)))
    store = _open(args)
    if store is None and not args.follow:
        return 0
    last_seq = 0
    if store is not None:
        with store:
            entries = list(reversed(store.query(query).entries))
            last_seq = store.last_seq
        _emit(entries, args.json, title="newest entries")
    if not args.follow:
        return 0
    try:
        for entry in _follow(_evidence_dir(args), last_seq, args.interval):
            if query.matches(entry):
                _emit([entry], args.json, title=None)
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
    _emit(entries, args.json, title=f"chain of {args.id} (root first)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from futon.evidence.anchor import Anchor
    from futon.evidence.verify import total_bytes, verify_store
    from futon.protocol.errors import ProtocolError

    try:
        kept = Anchor.parse(args.anchor) if args.anchor else None
    except ValueError as exc:
        raise ProtocolError(f"--anchor: {exc}", code="invalid-input") from None
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


def _emit(entries: list[EntryDict], as_json: bool, title: str | None) -> None:
    if as_json:
        for entry in entries:
            sys.stdout.write(json.dumps(entry, ensure_ascii=False) + "\n")
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
    text = body.get("text") if isinstance(body, dict) and isinstance(body.get("text"), str) else json.dumps(body, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"
