"""``futon evidence copy --to postgres|jsonl`` — move a store between the two
backends losslessly, then verify the copy's chain.

Every entry is copied as its stored line, byte for byte (seq, time and hash
unchanged: nothing is re-sealed), so a copy back gives identical shards.
The target must be empty; the source is verified first and a source with
problems is not copied (fix it, or see what ``futon evidence verify``
says). With ``--to postgres`` the source is the JSONL store of the config's
``data_dir`` and the target the config's ``evidence.postgres`` (``--dsn``
overrides it); with ``--to jsonl`` the other way round. Stop the daemon
first: a copy is a snapshot.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from futon.cli import add_config_option
from futon.evidence.jsonl import JsonlStore, list_shards, shard_name
from futon.evidence.postgres import PostgresStore, open_postgres
from futon.evidence.verify import Problem, verify_store
from futon.protocol.errors import ConfigError, ProtocolError


@dataclass
class CopyReport:
    entries: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def shard_lines(directory: Path) -> Iterator[bytes]:
    """Every line of the shards under ``directory``, in seq order, without
    its newline."""
    for shard in list_shards(directory):
        with open(shard.path, "rb") as handle:
            for raw in handle:
                yield raw[:-1] if raw.endswith(b"\n") else raw


def copy_to_postgres(directory: Path, target: PostgresStore) -> CopyReport:
    """The JSONL store at ``directory`` into the empty ``target``."""
    source = verify_store(directory)
    if not source.ok:
        return CopyReport(
            0,
            [*source.problems, Problem("source", 0, "the source does not verify; nothing copied")],
        )
    held = target.total()
    if held:
        raise ProtocolError(
            f"the target database already holds {held} entries; copy into an empty one",
            code="invalid-input",
        )
    report = CopyReport()
    report.entries = target.import_lines(shard_lines(directory))  # one transaction
    from futon.evidence.pg_verify import verify_postgres

    report.problems.extend(verify_postgres(target).problems)
    return report


def copy_to_jsonl(source: PostgresStore, directory: Path) -> CopyReport:
    """The PostgreSQL store into an empty JSONL ``directory``: one shard per
    UTC day (as ``shard_rollover: daily`` names them), synced, then indexed
    by opening the store, then verified."""
    from futon.evidence.pg_verify import verify_postgres

    checked = verify_postgres(source)
    if not checked.ok:
        return CopyReport(
            0,
            [*checked.problems, Problem("source", 0, "the source does not verify; nothing copied")],
        )
    if list_shards(directory):
        raise ProtocolError(
            f"{directory} already holds evidence shards; copy into an empty folder",
            code="invalid-input",
        )
    directory.mkdir(parents=True, exist_ok=True)
    report = CopyReport()
    report.entries = _write_shards(directory, source.iter_lines())
    with JsonlStore(directory, fsync="never"):
        pass  # builds the index (and the anchor) from the shards
    report.problems.extend(verify_store(directory).problems)
    return report


def _write_shards(directory: Path, lines: Iterable[bytes]) -> int:
    count = 0
    handle: BinaryIO | None = None
    day = ""
    try:
        for line in lines:
            entry = json.loads(line)
            entry_day = str(entry["evidence/at"])[:10]
            if handle is None or entry_day != day:
                if handle is not None:
                    _sync_close(handle)
                day = entry_day
                handle = open(directory / shard_name(entry["evidence/seq"], day), "xb")  # noqa: SIM115 - rolled by hand
            handle.write(line + b"\n")
            count += 1
    finally:
        if handle is not None:
            _sync_close(handle)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return count


def _sync_close(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def register(actions: Any) -> None:
    copy = actions.add_parser(
        "copy",
        help="Copy the evidence store to the other backend (jsonl <-> postgres), losslessly.",
        description=(
            "Copy every entry, byte for byte, from the JSONL store of the config's data_dir to the "
            "PostgreSQL store of evidence.postgres (--to postgres), or back (--to jsonl); the target "
            "must be empty, and its chain is verified after the copy. Stop the daemon first."
        ),
    )
    add_config_option(copy)
    copy.add_argument(
        "--to", required=True, choices=("postgres", "jsonl"), help="The backend to copy into."
    )
    copy.add_argument(
        "--dsn", help="The PostgreSQL store (default: evidence.postgres.dsn of the config)."
    )
    copy.add_argument(
        "--password-env",
        help="The variable holding the database password (default: evidence.postgres.password_env).",
    )
    copy.add_argument("--dir", help="The JSONL store's folder (default: <data_dir>/evidence).")
    copy.set_defaults(func=cmd_copy)


def cmd_copy(args: argparse.Namespace) -> int:
    from futon.config.loader import load_config

    config = load_config(args.config)
    directory = Path(args.dir) if args.dir else Path(config.data_dir) / "evidence"
    section = config.daemon.evidence.postgres
    dsn = args.dsn or (section.dsn if section else None)
    if not dsn:
        raise ConfigError(
            "no PostgreSQL store: give --dsn or set evidence.postgres.dsn in futon.yaml"
        )
    password_env = args.password_env or (section.password_env if section else None)
    store = open_postgres(dsn, password_env=password_env, daemon_id=config.daemon.daemon_id)
    with store:
        if args.to == "postgres":
            report = copy_to_postgres(directory, store)
            where = "PostgreSQL"
        else:
            report = copy_to_jsonl(store, directory)
            where = str(directory)
    for problem in report.problems:
        print(problem)
    if not report.ok:
        print(f"copy NOT verified: {len(report.problems)} problem(s)")
        return 1
    print(f"ok: {report.entries} entries copied to {where}; the chain verifies")
    return 0
