"""Fixtures shared across test packages: a daemon on port 0 in this process
and an HTTP client session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from futon.daemon.app import Daemon
from tests.pg_cluster import PgCluster
from tests.transports.kit import running_daemon


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster (tests/pg_cluster.py), started at the
    first test that asks for it, stopped and removed at the end."""
    cluster = PgCluster()
    yield cluster
    cluster.close()


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster) -> str:
    """A fresh database of the session's cluster, one per test."""
    if not pg_cluster.running:
        pg_cluster.start()  # a test that stopped it failed before restarting it
    return pg_cluster.create_database()


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    async with running_daemon(tmp_path) as d:
        yield d


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
