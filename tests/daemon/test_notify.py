"""The hand-written sd_notify sender against real datagram sockets (a
filesystem path and the abstract namespace), and the watchdog of a real
``futon serve``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from futon.daemon.notify import Notifier, socket_address
from tests.daemon.kit import NotifySocket, start_serve
from tests.support import make_config, wait_for_ports


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """AF_UNIX paths are limited to 107 bytes; pytest's tmp_path may not fit."""
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="fn-") as folder:
        yield Path(folder)


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
async def test_each_state_change_is_one_datagram_of_assignments(
    short_dir: Path, abstract: bool
) -> None:
    listener = NotifySocket(short_dir, abstract=abstract)
    env = {"NOTIFY_SOCKET": listener.env_value, "OTHER": "kept"}
    notifier = Notifier.from_environment(env)
    try:
        assert env == {"OTHER": "kept"}  # unset, so tool subprocesses do not inherit it
        assert notifier.ready("listening on\nhttp :1") is True
        assert await listener.receive() == {"READY": "1", "STATUS": "listening on http :1"}
        assert notifier.reloading()
        reloading = await listener.receive()
        assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
        assert notifier.stopping()
        assert (await listener.receive())["STOPPING"] == "1"
        assert notifier.watchdog()
        assert await listener.receive() == {"WATCHDOG": "1"}
    finally:
        notifier.close()
        listener.close()


def test_without_a_socket_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier.from_environment({})
    assert (
        not notifier.enabled and notifier.ready() is False and notifier.watchdog_interval_s is None
    )


def test_a_vanished_socket_is_logged_not_raised(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(short_dir / "gone.sock")})
    with caplog.at_level(logging.WARNING, "futon.notify"):
        assert notifier.ready() is False
        assert notifier.stopping() is False
    assert (
        len(caplog.records) == 1 and "could not notify" in caplog.text
    )  # warned once, not per message


def test_addresses_and_the_watchdog_pid() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abstract") == b"\0abstract"
    assert socket_address("vsock:2:1234") is None
    mine = Notifier.from_environment(
        {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert mine.watchdog_interval_s == 1.5
    other = Notifier.from_environment(
        {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}
    )
    assert other.watchdog_interval_s is None  # the watchdog is someone else's


async def test_serve_pings_the_watchdog_every_half_period(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg")
    notify = NotifySocket()
    proc = start_serve(config, notify, WATCHDOG_USEC="200000")
    try:
        await notify.wait_for("READY")
        loop = asyncio.get_running_loop()
        first = (await notify.wait_for("WATCHDOG"), loop.time())[1]
        second = (await notify.wait_for("WATCHDOG"), loop.time())[1]
        assert 0.05 < second - first < 1.0  # 0.1 s, with room for a loaded machine
        wait_for_ports(tmp_path / "cfg" / "var", proc)
        proc.send_signal(signal.SIGTERM)
        await notify.wait_for("STOPPING")
        _, err = await asyncio.to_thread(proc.communicate, timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        notify.close()
    assert proc.returncode == 0, err
