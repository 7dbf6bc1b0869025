"""A throwaway PostgreSQL cluster for tests and benches.

``PgCluster`` runs Debian's PostgreSQL binaries (``/usr/lib/postgresql/*/bin``,
package ``postgresql``; ``make packages`` installs it) in a temporary
directory: ``initdb`` with trust authentication, the server on 127.0.0.1 at
a free port with its unix socket inside the directory, stopped and removed
by :meth:`PgCluster.close`. PostgreSQL refuses to run as root, so when we are
root the cluster runs as ``nobody`` (the directory is handed to it).

Missing binaries are a clear failure (``PgUnavailable``), never a skip: a
test that asked for a database must not pass silently without one.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

RUN_AS = "nobody"
START_TIMEOUT_S = 60


class PgUnavailable(RuntimeError):
    """PostgreSQL's server binaries are not installed here."""


def pg_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if not found:
        raise PgUnavailable(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): "
            "install Debian's `postgresql` package (`make packages` does, as root)"
        )
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgCluster:
    """One running cluster. ``durable`` keeps fsync on (benches measure
    real commits); tests run with fsync off, which changes nothing they can
    observe short of a power cut."""

    def __init__(self, *, durable: bool = False) -> None:
        self.bin = pg_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="futon-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.user = "futon"
        self.durable = durable
        self._as_other = os.geteuid() == 0
        self.sockets.mkdir()
        if self._as_other:
            entry = pwd.getpwnam(RUN_AS)
            os.chmod(self.root, 0o755)
            for path in (self.root, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust",
             "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
        )  # fmt: skip
        self.running = False
        self.start()

    def _run(self, argv: list[str], *, timeout: float = START_TIMEOUT_S) -> None:
        if self._as_other:
            argv = ["setpriv", f"--reuid={RUN_AS}", "--regid=nogroup", "--clear-groups", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}\n{tail}"
            )

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockets} "
            f"-c fsync={'on' if self.durable else 'off'} -c synchronous_commit=on "
            "-c max_connections=300 -c shared_buffers=64MB"
        )
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                   "-w", "-t", str(START_TIMEOUT_S), "start"])  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """Stop the server (fast: open transactions are rolled back)."""
        if self.running:
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
            self.running = False

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its DSN."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE template0')  # our own generated name
        return self.dsn(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with psql (no driver needed, usable inside or outside
        an event loop); returns its unaligned output."""
        done = subprocess.run(
            [str(self.bin / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", self.user, "-d", database, "-c", sql],
            capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def running_cluster(*, durable: bool = False) -> Iterator[PgCluster]:
    cluster = PgCluster(durable=durable)
    try:
        yield cluster
    finally:
        cluster.close()
