"""``futon evidence copy --to postgres|jsonl`` and ``futon evidence verify``/
``query`` with ``evidence.backend: postgres``, as a user runs them: the real
``futon`` command, a real cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from futon.cli.evidence_copy import shard_lines
from futon.evidence import JsonlStore
from tests.support import futon_env, make_config


def futon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "futon", *args],
        capture_output=True,
        text=True,
        env=futon_env(),
        timeout=120,
        check=False,
    )


def test_copy_there_verify_query_and_copy_back(tmp_path: Path, pg_dsn: str) -> None:
    config = make_config(
        tmp_path / "cfg", evidence__backend="postgres", evidence__postgres={"dsn": pg_dsn}
    )
    shards = config.parent / "var" / "evidence"
    with JsonlStore(shards, fsync="never") as store:
        store.append_sync(
            {
                "id": "e-q",
                "subject": {"ref/type": "thread", "ref/id": "t"},
                "type": "forum-post",
                "claim-type": "question",
                "author": "joe",
                "body": {"text": "who broke the build?"},
            }
        )
        store.append_sync({"id": "e-a", "subject": {"ref/type": "thread", "ref/id": "t"}, "type": "forum-post",
                           "claim-type": "conclusion", "author": "claude-1", "in-reply-to": "e-q"})  # fmt: skip

    there = futon("evidence", "copy", "--to", "postgres", "--config", str(config))
    assert there.returncode == 0, there.stderr
    assert "ok: 2 entries copied to PostgreSQL" in there.stdout

    again = futon("evidence", "copy", "--to", "postgres", "--config", str(config))
    assert again.returncode != 0 and "already holds 2 entries" in again.stderr
    assert "Traceback" not in again.stderr

    verified = futon("evidence", "verify", "--config", str(config))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("ok: 2 entries") and "(PostgreSQL)" in verified.stdout

    queried = futon("evidence", "query", "--json", "--config", str(config))
    assert [json.loads(line)["evidence/id"] for line in queried.stdout.splitlines()] == [
        "e-a",
        "e-q",
    ]

    back_dir = tmp_path / "back"
    back = futon(
        "evidence", "copy", "--to", "jsonl", "--dir", str(back_dir), "--config", str(config)
    )
    assert back.returncode == 0, back.stderr
    assert list(shard_lines(back_dir)) == list(shard_lines(shards))


def test_copy_without_a_database_configured_is_a_clear_error(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg")
    done = futon("evidence", "copy", "--to", "postgres", "--config", str(config))
    assert done.returncode != 0
    assert "evidence.postgres.dsn" in done.stderr and "Traceback" not in done.stderr


def test_postgres_backend_without_its_section_is_a_config_error(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", evidence__backend="postgres")
    done = futon("evidence", "verify", "--config", str(config))
    assert done.returncode != 0
    assert "evidence.postgres" in done.stderr and "Traceback" not in done.stderr
