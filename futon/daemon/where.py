"""Where to connect: the lines the daemon logs once it listens, so the
first thing an operator reads says which address each kind of client uses."""

from __future__ import annotations

from futon.config.loader import LoadedConfig

_WILDCARDS = ("", "0.0.0.0", "::")


def _reachable(host: str) -> str:
    """A host a local client can dial (a wildcard bind answers on loopback),
    bracketed when it is an IPv6 address."""
    if host in _WILDCARDS:
        host = "127.0.0.1" if host != "::" else "::1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def connect_lines(config: LoadedConfig, ports: dict[str, int]) -> list[str]:
    """One line per way in: the web page, the agents' WebSocket, the IRC
    server (address and channels) and each bot-mode network."""
    settings = config.daemon
    http = f"{_reachable(settings.http.host)}:{ports['http']}"
    page = f"http://{http}/"
    if settings.http.admin_token_sha256 is not None:
        page += " (open it once as /?token=TOKEN with the admin token)"
    lines = [
        f"web page: {page}",
        f"agents connect to ws://{http}/agency/ws",
    ]
    channels = ", ".join(settings.irc.channels) or "no channel"
    if "irc" in ports:
        irc = f"{_reachable(settings.irc.server.host)}:{ports['irc']}"
        first = settings.irc.channels[0].lstrip("#") if settings.irc.channels else ""
        lines.append(f"humans join IRC at {irc}, channel {channels} (irc://{irc}/{first})")
    for network in settings.irc.networks:
        lines.append(
            f"IRC network {network.name}: {network.host}:{network.port}, channels "
            f"{', '.join(network.channels) or 'none'}"
        )
    if "irc" not in ports and not settings.irc.networks:
        lines.append("IRC is off (irc.server.enabled: false and no irc.networks)")
    hosts = [settings.http.host] + ([settings.irc.server.host] if "irc" in ports else [])
    if any(host in _WILDCARDS for host in hosts):
        lines.append("(bound to every address: other machines use this host's name)")
    return lines
