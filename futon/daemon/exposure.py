"""Refuse to expose an open daemon: a non-loopback bind needs tokens and
IRC access rules that deny by default."""

from __future__ import annotations

import ipaddress
import shlex

from futon.config.loader import LoadedConfig
from futon.protocol.errors import ConfigError


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname or 0.0.0.0: treat as exposed


def check_exposure(config: LoadedConfig) -> None:
    """Raise ConfigError when a transport binds beyond loopback while the
    daemon is open (an agent without a token, or IRC access allowing all)."""
    binds = [("http.host", config.daemon.http.host)]
    if config.daemon.irc.server.enabled:
        binds.append(("irc.server.host", config.daemon.irc.server.host))
    exposed = [(key, host) for key, host in binds if not is_loopback(host)]
    if not exposed:
        return
    path = shlex.quote(str(config.path))
    reasons: list[str] = []
    fixes: list[str] = []
    if any(key == "http.host" for key, _ in exposed) and config.daemon.http.admin_token_sha256 is None:
        reasons.append("no http.admin_token_sha256 (the write routes would be open)")
        fixes.append(f"futon admin-token --config {path}")
    tokenless = [a.id for a in config.agents.agents if a.token_sha256 is None]
    if tokenless:
        reasons.append(f"agents without a token: {', '.join(tokenless)}")
        fixes.extend(f"futon agent token {shlex.quote(a)} --rotate --config {path}" for a in tokenless)
    if config.agents.irc_access.default == "allow":
        reasons.append("irc_access.default is 'allow'")
        fixes.append(f"futon config set irc_access.default deny --config {path}")
    if reasons:
        where = ", ".join(f"{key}={host}" for key, host in exposed)
        raise ConfigError(
            f"refusing to bind beyond loopback ({where}) while the daemon is open: "
            + "; ".join(reasons)
            + ". These commands close it (each token is printed once: keep it):",
            problems=fixes,
        )
