"""kill -9 of the daemon in the middle of heavy evidence appends under
``fsync: always``: after a restart every acknowledged entry is there and
``futon evidence verify`` is clean."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.support import futon_env, make_config, start_futon, wait_for_ports


async def hammer(base: str, acked: list[str], stop_after: int) -> None:
    """64 concurrent writers POST entries until ``stop_after`` are acked;
    the daemon is killed under them, so the last ones fail — that is the point."""
    counter = iter(range(10**9))

    async def writer(http: aiohttp.ClientSession) -> None:
        while len(acked) < stop_after * 2:
            n = next(counter)
            entry = {"id": f"e-{n}", "subject": {"ref/type": "session", "ref/id": "load"}, "type": "coordination",
                     "claim-type": "step", "author": "loader", "body": {"n": n, "pad": "x" * 200}}  # fmt: skip
            try:
                async with http.post(base + "/api/alpha/evidence", json=entry) as r:
                    if r.status == 201:
                        acked.append(entry["id"])
            except (TimeoutError, aiohttp.ClientError, ConnectionError):
                return

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        await asyncio.gather(*(writer(http) for _ in range(64)))


def test_every_acknowledged_entry_survives_kill_9(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", evidence__fsync="always")
    proc = start_futon("serve", "--config", str(config))
    ports = wait_for_ports(tmp_path / "cfg" / "var", proc)
    acked: list[str] = []

    async def run() -> None:
        load = asyncio.ensure_future(hammer(f"http://127.0.0.1:{ports['http']}", acked, 400))
        while len(acked) < 400:
            await asyncio.sleep(0.01)
            assert not load.done(), "the writers stopped before the kill"
        proc.send_signal(signal.SIGKILL)  # mid-flight: dozens of appends in the air
        await load

    asyncio.run(run())
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    # Restart: recovery runs, then every acknowledged id must be readable.
    (tmp_path / "cfg" / "var" / "ports.json").unlink()  # the killed daemon's, stale
    proc = start_futon("serve", "--config", str(config))
    ports = wait_for_ports(tmp_path / "cfg" / "var", proc)
    try:
        missing = []

        async def check() -> None:
            async with aiohttp.ClientSession() as http:
                for entry_id in acked:
                    async with http.get(f"http://127.0.0.1:{ports['http']}/api/alpha/evidence/{entry_id}") as r:
                        if r.status != 200:
                            missing.append(entry_id)

        asyncio.run(check())
        assert missing == [], f"{len(missing)} acknowledged entries lost"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    verify = subprocess.run([sys.executable, "-m", "futon", "evidence", "verify", "--config", str(config)],
                            capture_output=True, text=True, env=futon_env(), timeout=120)  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("ok:")
    assert len(acked) >= 400
