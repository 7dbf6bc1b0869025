"""Tell a running daemon that its configuration files changed.

After ``futon agent add``, ``futon agent token --rotate`` or ``futon
admin-token``, the files say something the running daemon does not know
yet. :func:`tell_daemon` asks the daemon of that config to reload
(``POST /api/alpha/config/reload``, as ``systemctl reload futon`` does)
and returns one line for the user saying what happened, or what to do.
"""

from __future__ import annotations

import os

from futon.cli.status_cmd import DaemonRefused, DaemonUnreachable, daemon_url, post
from futon.protocol.errors import FutonError

RELOAD_PATH = "/api/alpha/config/reload"


def admin_token(given: str | None) -> str | None:
    """``--token``, else ``$FUTON_ADMIN_TOKEN``, else None."""
    return given or os.environ.get("FUTON_ADMIN_TOKEN") or None


def tell_daemon(config_path: str, token: str | None, what: str) -> str:
    """Ask the daemon of ``config_path`` to re-read its files; never
    raises. ``what`` names the change (``agent 'x-1'``) in the line."""
    by_hand = "reload it with `systemctl reload futon` or SIGHUP"
    try:
        url = daemon_url(config_path).rstrip("/")
    except DaemonUnreachable:
        return f"no daemon is running for {config_path}; it will read {what} when it starts"
    except FutonError as exc:
        return f"could not find the daemon ({exc.message}); a running daemon needs a reload for {what}"
    try:
        post(url, RELOAD_PATH, {}, token)
    except DaemonUnreachable:
        return f"no daemon is running at {url}; it will read {what} when it starts"
    except DaemonRefused:
        return (
            f"the daemon at {url} needs a reload for {what}: pass its admin token "
            f"(--token or FUTON_ADMIN_TOKEN), or {by_hand}"
        )
    except FutonError as exc:
        return f"the daemon at {url} did not reload ({exc.message}); {by_hand} for {what}"
    return f"the daemon at {url} reloaded its configuration: {what} is in force"
