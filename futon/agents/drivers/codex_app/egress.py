"""The App Server's only way out: to the model server, nowhere else.

The App Server runs in a new, empty network namespace (its sandbox has no
network: :mod:`.walls`), so no command Codex runs reaches the daemon's HTTP
or IRC ports on loopback, nor anything else of the host's network. Its one
exit is a pair of forwarders:

- OUTSIDE (here, in the driver): a unix socket in a folder bound into the
  view; each connection accepted on it is forwarded as raw bytes to the
  model server's host and port from ``--base-url`` (TCP; for https the TLS
  runs end to end between Codex and the model server, futon sees only
  ciphertext);
- INSIDE (:mod:`.tunnel`, started in the sandbox before Codex): a listener
  on ``127.0.0.1:PORT`` in the namespace, piping to that unix socket.

:class:`Route` is how Codex reaches the inside listener: for ``http`` the
URL's host and port become ``127.0.0.1:PORT``; for ``https`` the host name
stays (the certificate must match it) and a hosts file bound over
``/etc/hosts`` in the view maps it to 127.0.0.1. The inside port is the
URL's own when it is 1024 or above; an unprivileged process cannot bind a
lower one in the namespace (no capability survives into the sandbox), so
for ``https://host/…`` (443) the URL Codex gets names :data:`HTTPS_PORT`
explicitly (``https://host:8443/…``: same TLS name, a Host header with the
port, which servers route by name).

Both ends are bounded: :data:`~.tunnel.MAX_CONNECTIONS` connections at once,
:data:`~.tunnel.RATE_BYTES_S` per connection and direction, idle ones
closed. A model server that cannot be reached closes the connection: Codex
retries a bounded number of times and fails the turn (a could-not reply).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from futon.agents.drivers.codex_app import tunnel

log = logging.getLogger("futon.agent.codex_app")

DEFAULT_BASE_URL = "https://api.openai.com/v1"  # Codex's own, when no --base-url is given
HTTP_PORT = 8080  # the inside port for http URLs on a port below 1024
HTTPS_PORT = 8443  # likewise for https
TUNNEL = Path(tunnel.__file__).resolve()  # run by path inside the sandbox


@dataclass(frozen=True)
class Route:
    """Where the model server is (``host``, ``port``, outside) and how Codex
    inside reaches it (``inside_url`` via ``127.0.0.1:inside_port``; for
    https ``hosts`` maps the name)."""

    host: str
    port: int
    inside_port: int
    inside_url: str
    hosts: str | None  # the /etc/hosts of the view (https), None for http

    @classmethod
    def of(cls, base_url: str | None) -> Route:
        """The route for ``base_url`` (Codex's default server when None);
        ``ValueError`` naming why for a URL futon cannot route."""
        url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the model's base URL must be http(s)://host[:port]/…, not {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"the model's base URL has a bad port: {url!r}") from None
        host = parts.hostname
        low = HTTPS_PORT if parts.scheme == "https" else HTTP_PORT
        inside_port = port if port >= 1024 else low
        if parts.scheme == "https" and not _is_ip(host):
            netloc = f"{host}:{inside_port}"  # never 443: see the module doc
            hosts = f"127.0.0.1\tlocalhost {host}\n::1\tlocalhost ip6-localhost\n"
        else:
            # http (or an IP literal): Codex speaks straight to the inside listener.
            netloc, hosts = f"127.0.0.1:{inside_port}", None
        inside = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        return cls(host, port, inside_port, inside, hosts)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Egress:
    """The outside end: a unix socket at ``path`` forwarding to ``route``'s
    model server. ``hosts_file`` (https) is the file the view binds over
    /etc/hosts. Start with :meth:`start`, stop with :meth:`close`."""

    def __init__(self, route: Route, folder: str) -> None:
        self.route = route
        self.path = str(Path(folder) / "egress.sock")
        self.hosts_file: Path | None = None
        if route.hosts is not None:
            self.hosts_file = Path(folder) / "hosts"
            self.hosts_file.write_text(route.hosts)
            os.chmod(self.hosts_file, 0o444)
        self._gate = tunnel.Gate(tunnel.MAX_CONNECTIONS)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._handle, self.path)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._forward(reader, writer)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._gate.enter():
            limit = self._gate.limit
            log.warning("egress: more than %d connections to the model at once; closing one", limit)
            writer.close()
            return
        try:
            host, port = self.route.host, self.route.port
            try:
                onward = await asyncio.wait_for(
                    asyncio.open_connection(host, port), tunnel.CONNECT_S
                )
            except (OSError, TimeoutError) as exc:
                log.warning("egress: the model server %s:%d is unreachable: %s", host, port, exc)
                writer.close()
                return
            await tunnel.pipe((reader, writer), onward)
        finally:
            self._gate.leave()

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(OSError):
                await server.wait_closed()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
