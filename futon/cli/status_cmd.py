"""``futon status``: agents, sessions, transports and counts of a running
daemon, read over its HTTP API (``/health``, ``/api/alpha/agents``,
``/api/alpha/sessions``).

The daemon's address is ``--url``, or the config's ``http.host``/``http.port``
(with ``port: 0``, the port the daemon wrote to ``data_dir/ports.json``).
With an admin token configured, pass it as ``--token`` or
``FUTON_ADMIN_TOKEN``. A daemon that does not answer is one line on stderr
and exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from futon.cli import add_config_option
from futon.protocol.errors import FutonError

TIMEOUT_S = 5.0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "status",
        help="agents, sessions and transports of a running daemon",
        description=__doc__.splitlines()[0],
    )
    add_config_option(parser)
    parser.add_argument("--url", help="the daemon's base URL (default: from the config)")
    parser.add_argument("--token", help="admin token (default: $FUTON_ADMIN_TOKEN)")
    parser.add_argument(
        "--sessions",
        type=int,
        default=20,
        metavar="N",
        help="show the N newest sessions (default 20)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print what was read as one JSON object"
    )
    parser.set_defaults(func=run)


def daemon_url(config_path: str) -> str:
    """The base URL a daemon of this config listens on."""
    from futon.config.loader import load_config

    config = load_config(config_path)
    host, port = config.daemon.http.host, config.daemon.http.port
    if port == 0:
        ports_file = Path(config.data_dir) / "ports.json"
        try:
            port = int(json.loads(ports_file.read_text())["http"])
        except (OSError, ValueError, KeyError, TypeError):
            raise FutonError(
                f"the daemon is not running (it listens on a free port and {ports_file} is missing)"
            ) from None
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def fetch(url: str, path: str, token: str | None) -> Any:
    return _call(urllib.request.Request(url + path, headers={"Accept": "application/json"}), url, path, token)


def post(url: str, path: str, body: Any, token: str | None) -> Any:
    """POST a JSON body to a running daemon; its JSON answer (a typed error
    as FutonError with the daemon's message)."""
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), method="POST",
        headers={"Accept": "application/json", "Content-Type": "application/json"},
    )  # fmt: skip
    return _call(request, url, path, token)


def _call(request: urllib.request.Request, url: str, path: str, token: str | None) -> Any:
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            hint = "pass --token or set FUTON_ADMIN_TOKEN" if not token else "the token was refused"
            raise FutonError(
                f"the daemon at {url} needs its admin token for {path}: {hint}"
            ) from None
        try:
            message = json.loads(exc.read()).get("message")
        except (ValueError, AttributeError, OSError):
            message = None
        raise FutonError(f"the daemon at {url} answered {exc.code} for {path}" + (f": {message}" if message else "")) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FutonError(
            f"the daemon is not running at {url} ({getattr(reason, 'strerror', None) or reason})"
        ) from None
    except ValueError:
        raise FutonError(f"{url}{path} did not answer JSON; is that a futon daemon?") from None


def run(args: argparse.Namespace) -> int:
    url = (args.url or daemon_url(args.config)).rstrip("/")
    token = args.token or os.environ.get("FUTON_ADMIN_TOKEN") or None
    health = fetch(url, "/health", None)
    agents = fetch(url, "/api/alpha/agents", token)["agents"]
    sessions = fetch(url, "/api/alpha/sessions", token)["sessions"]
    if args.json:
        print(
            json.dumps(
                {"url": url, "health": health, "agents": agents, "sessions": sessions}, indent=2
            )
        )
        return 0
    render(url, health, agents, sessions[: max(args.sessions, 0)], len(sessions))
    return 0


def render(
    url: str,
    health: dict[str, Any],
    agents: list[dict[str, Any]],
    sessions: list[dict[str, Any]],
    total_sessions: int,
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    connections = health.get("connections", {})
    online = sum(1 for a in agents if a.get("connected"))
    console.print(
        f"[bold]futon {health.get('version', '?')}[/] at {url}: "
        f"{len(agents)} agents ({online} connected), {health.get('sessions', 0)} active sessions, "
        f"connections ws {connections.get('ws', 0)} irc {connections.get('irc', 0)}, "
        f"evidence {health.get('evidence', {}).get('entries', 0)} entries",
        highlight=False,
    )

    table = Table(title="Agents", title_justify="left")
    for column in ("id", "type", "connected", "transport", "peripheral", "last active"):
        table.add_column(column)
    for agent in agents:
        table.add_row(
            agent["agent_id"], agent.get("type") or "",
            "[green]yes[/]" if agent.get("connected") else "no",
            agent.get("transport") or "-", agent.get("peripheral_id") or "-", agent.get("last_active") or "never",
        )  # fmt: skip
    console.print(table)

    table = Table(
        title=f"Sessions ({len(sessions)} of {total_sessions}, newest first)", title_justify="left"
    )
    for column in ("session", "agent", "peripheral", "state", "at"):
        table.add_column(column)
    for session in sessions:
        state = session.get("state") or ""
        table.add_row(session["session_id"], session.get("agent_id") or "", session.get("peripheral_id") or "",
                      f"[green]{state}[/]" if state == "active" else state, session.get("at") or "")  # fmt: skip
    console.print(table)

    table = Table(title="Transports", title_justify="left")
    for column in ("transport", "listening", "where", "connections"):
        table.add_column(column)
    for name, info in (health.get("transports") or {}).items():
        where = []
        if info.get("port") is not None:
            where.append(f"port {info['port']}")
        if info.get("paths"):
            where.append(" ".join(info["paths"]))
        for network, up in (info.get("networks") or {}).items():
            where.append(f"{network}: {'connected' if up else 'down'}")
        count = connections.get(name)
        table.add_row(
            name,
            "[green]yes[/]" if info.get("listening") else "no",
            ", ".join(where) or "-",
            "-" if count is None else str(count),
        )
    console.print(table)
