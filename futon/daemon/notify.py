"""systemd's notify protocol (sd_notify(3)), written by hand: no dependency.

A service of ``Type=notify`` finds ``$NOTIFY_SOCKET`` in its environment —
a filesystem path, or ``@name`` for the Linux abstract namespace — and
sends newline-separated ``KEY=VALUE`` assignments to it as one datagram
each time its state changes:

- ``READY=1`` once every transport listens (and again after a reload);
- ``RELOADING=1`` with ``MONOTONIC_USEC=<CLOCK_MONOTONIC now>`` when a
  reload begins (systemd ≥ 253 waits for the next ``READY=1``);
- ``STOPPING=1`` when shutdown begins;
- ``WATCHDOG=1`` every ``WATCHDOG_USEC / 2`` when the unit sets
  ``WatchdogSec=`` (and ``WATCHDOG_PID``, when present, names us);
- ``STATUS=<one line>`` for ``systemctl status``.

Contract: without ``$NOTIFY_SOCKET`` every method is a no-op that returns
False; a send never blocks the event loop and never raises (a lost
notification is logged, the daemon carries on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import MutableMapping

log = logging.getLogger("futon.notify")

_ENV_KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd compares against."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def socket_address(value: str) -> str | bytes | None:
    """The address to ``sendto`` for a ``$NOTIFY_SOCKET`` value: a path as
    is, ``@name`` as an abstract address (leading NUL); None when the value
    names something we cannot speak to (e.g. ``vsock:``)."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    return None


class Notifier:
    """Sends state changes to the service manager (see the module doc)."""

    def __init__(
        self, address: str | bytes | None = None, *, watchdog_usec: int | None = None
    ) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._socket: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environment(
        cls, environ: MutableMapping[str, str] | None = None, *, unset: bool = True
    ) -> Notifier:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``.

        With ``unset`` (the default) they are removed from the environment,
        as ``sd_notify(unset_environment=1)`` does, so tool subprocesses do
        not inherit a socket that speaks for the service."""
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        usec_text, pid_text = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if unset:
            for key in _ENV_KEYS:
                env.pop(key, None)
        address = socket_address(raw) if raw else None
        if raw and address is None:
            log.warning("NOTIFY_SOCKET=%s is not a path or @abstract name; not notifying", raw)
        watchdog: int | None = None
        if usec_text.isdigit() and int(usec_text) > 0:
            for_us = not pid_text or (pid_text.isdigit() and int(pid_text) == os.getpid())
            watchdog = int(usec_text) if for_us else None
        return cls(address, watchdog_usec=watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    # ------------------------------------------------------------- messages

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines as one datagram; True when it went out."""
        if self.address is None:
            return False
        payload = "\n".join(assignments).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
                self._socket.setblocking(False)  # a full manager queue drops, never stalls the loop
            self._socket.sendto(payload, self.address)
        except OSError as exc:
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            log.log(level, "could not notify the service manager (%s): %s", assignments[0], exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *_status(status))

    def reloading(self, status: str | None = "reloading configuration") -> bool:
        return self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", *_status(status))

    def stopping(self, status: str | None = "shutting down") -> bool:
        return self.send("STOPPING=1", *_status(status))

    def status(self, text: str) -> bool:
        return self.send(*_status(text))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    # ------------------------------------------------------------- watchdog

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half the manager's timeout (sd_watchdog_enabled(3))."""
        if self.watchdog_usec is None or self.address is None:
            return None
        return self.watchdog_usec / 2 / 1_000_000

    async def run_watchdog(self) -> None:
        """Ping until cancelled. The pings come from the event loop, so a
        loop that hangs stops pinging and the manager restarts us."""
        interval = self.watchdog_interval_s
        if interval is None:
            return
        while True:
            self.watchdog()
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None


def _status(text: str | None) -> list[str]:
    if not text:
        return []
    return ["STATUS=" + " ".join(text.split())]  # one line: STATUS ends at a newline


__all__ = ["Notifier", "monotonic_usec", "socket_address"]
