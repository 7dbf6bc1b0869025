"""Kit for the team tests: daemons sharing one PostgreSQL database (a fresh
database of the session's throwaway cluster, tests/pg_cluster.py), in this
process on port 0 or as real ``futon serve`` processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from futon.daemon.app import Daemon
from tests.support import futon_env, make_config, wait_for_ports
from tests.transports.kit import running_daemon


def team_overrides(dsn: str, daemon_id: str) -> dict[str, Any]:
    """futon.yaml keys (make_config's dotted form) of one daemon of the team."""
    return {
        "evidence__backend": "postgres",
        "evidence__postgres": {"dsn": dsn},
        "daemon_id": daemon_id,
        "dispatch__reply_timeout_s": 5,
    }


@asynccontextmanager
async def team_daemon(folder: Path, dsn: str, daemon_id: str, **extra: Any) -> AsyncIterator[Daemon]:
    """One daemon of the team, in this process (real sockets on loopback)."""
    async with running_daemon(folder, **team_overrides(dsn, daemon_id), **extra) as daemon:
        yield daemon


def ws_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/agency/ws"


@contextmanager
def team_process(folder: Path, dsn: str, daemon_id: str) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    """One daemon of the team as a real ``futon serve`` process: (process,
    http port, futon.yaml). Killed at the end if still running."""
    workspace = folder / "ws"
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "README.md").write_text("hello\n")
    config = make_config(folder / "cfg", workspace=str(workspace), **team_overrides(dsn, daemon_id))
    log = (folder / "daemon.log").open("w")  # a file: a pipe nobody reads would fill and stall it
    process = subprocess.Popen(
        [sys.executable, "-m", "futon", "serve", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=futon_env(),
    )  # fmt: skip
    try:
        try:
            ports = wait_for_ports(folder / "cfg" / "var", process)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{(folder / 'daemon.log').read_text()[-3000:]}") from None
        yield process, int(ports["http"]), config
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        log.close()
