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


class DaemonUnreachable(FutonError):
    """No daemon answers at the address the config gives (not running)."""


class DaemonRefused(FutonError):
    """The daemon answered 401/403: the admin token is missing or wrong."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "status",
        help="Show the agents, sessions and transports of a running daemon.",
        description=(
            "Show the agents, sessions, transports and counts of a running daemon, read "
            "over its HTTP API."
        ),
    )
    add_config_option(parser)
    parser.add_argument("--url", help="The daemon's base URL (default: from the config).")
    parser.add_argument("--token", help="The admin token (default: $FUTON_ADMIN_TOKEN).")
    parser.add_argument(
        "--sessions",
        type=int,
        default=20,
        metavar="N",
        help="Show the N newest sessions (default: 20).",
    )
    parser.add_argument(
        "--json", action="store_true", help="Print what was read as one JSON object."
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
            raise DaemonUnreachable(
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
            raise DaemonRefused(
                f"the daemon at {url} needs its admin token for {path}: {hint}"
            ) from None
        try:
            message = json.loads(exc.read()).get("message")
        except (ValueError, AttributeError, OSError):
            message = None
        raise FutonError(f"the daemon at {url} answered {exc.code} for {path}" + (f": {message}" if message else "")) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DaemonUnreachable(
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
    """Plain tables that fit the terminal (``COLUMNS``, else its width, else
    80; :mod:`futon.cli.columns`). Agent and session ids, which a user
    copies into other commands, are never cut. Times are UTC: the time of
    day for today, the day for older ones."""
    from futon.cli.columns import paragraph, table
    from futon.cli.evidence_lines import terminal_width

    width = terminal_width()
    connections = health.get("connections", {})
    online = sum(1 for a in agents if a.get("connected"))
    lines = paragraph(
        f"futon {health.get('version', '?')} at {url}: "
        f"{len(agents)} agents ({online} connected), {health.get('sessions', 0)} active sessions, "
        f"connections ws {connections.get('ws', 0)} irc {connections.get('irc', 0)}, "
        f"evidence {health.get('evidence', {}).get('entries', 0)} entries",
        width,
    )
    agent_rows = [
        [a["agent_id"], a.get("type") or "", "yes" if a.get("connected") else "no",
         a.get("transport") or "-", a.get("peripheral_id") or "-", _when(a.get("last_active")) or "never"]
        for a in agents
    ]  # fmt: skip
    headings = ["id", "type", "connected", "transport", "peripheral", "last active"]
    if any("daemon" in a for a in agents):  # one of a team (issue 20): the daemon each agent is on
        headings.insert(3, "daemon")
        for row, a in zip(agent_rows, agents, strict=True):
            row.insert(3, a.get("daemon") or "-")
    lines += ["", *table("Agents", headings, agent_rows, width, whole=frozenset({0}))]
    session_rows = [
        [s["session_id"], s.get("agent_id") or "", s.get("peripheral_id") or "", s.get("state") or "",
         _when(s.get("at")) or ""]
        for s in sessions
    ]  # fmt: skip
    lines += ["", *table(
        f"Sessions ({len(sessions)} of {total_sessions}, newest first)",
        ["session", "agent", "peripheral", "state", "at"], session_rows, width, whole=frozenset({0, 1}),
    )]  # fmt: skip
    transport_rows = []
    for name, info in (health.get("transports") or {}).items():
        where = []
        if info.get("port") is not None:
            where.append(f"port {info['port']}")
        if info.get("paths"):
            where.append(" ".join(info["paths"]))
        for network, up in (info.get("networks") or {}).items():
            where.append(f"{network}: {'connected' if up else 'down'}")
        count = connections.get(name)
        transport_rows.append(
            [name, "yes" if info.get("listening") else "no", ", ".join(where) or "-",
             "-" if count is None else str(count)]
        )  # fmt: skip
    lines += ["", *table("Transports", ["transport", "listening", "where", "connections"], transport_rows, width)]
    print("\n".join(lines))


def _when(at: str | None) -> str | None:
    """An ISO-8601 UTC time as ``HH:MM`` when it is today, else its day."""
    if not at:
        return None
    from datetime import UTC, datetime

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    return at[11:16] if at[:10] == today and len(at) >= 16 else at[:10]
