"""What the embedded IRC server is told besides its config section: limits
tests shrink (:class:`IrcLimits`), who the daemon is (:class:`IrcHome`), and
the fixed limits it advertises in ISUPPORT."""

from __future__ import annotations

from dataclasses import dataclass

from futon.config.models import IrcServerSection

TOPICLEN = 390
KICKLEN = 390
AWAYLEN = 200
MAXTARGETS = 4
USERLEN = 16
REALNAMELEN = 100


@dataclass(slots=True)
class IrcLimits:
    """The server's limits; tests shrink them. The flood ones come from the
    config file (``irc.server.flood_*``, see :meth:`from_settings`), the
    others are not configurable.

    Flood control is a token bucket per connection: ``flood_burst`` lines
    may arrive at once, then ``flood_rate`` lines per second are processed;
    the excess waits. More than ``flood_max_pending`` lines waiting is
    abuse: ``ERROR :Excess Flood``. A nick whose holder has left a PING
    unanswered for ``ghost_after_s`` (default: ``ping_interval_s``) may be
    taken over by a new client.
    """

    flood_burst: int = 20
    flood_rate: float = 2.0
    flood_max_pending: int = 100
    sendq_bytes: int = 1 << 20
    ghost_after_s: float | None = None
    max_channels_per_client: int = 50
    keepalive_tick_s: float | None = None

    @classmethod
    def from_settings(cls, settings: IrcServerSection) -> IrcLimits:
        """The defaults with the configured flood limits."""
        return cls(
            flood_burst=settings.flood_burst,
            flood_rate=settings.flood_rate,
            flood_max_pending=settings.flood_max_pending,
        )


@dataclass(frozen=True, slots=True)
class IrcHome:
    """The daemon as the server's host: its nick and the channels it sits in.

    With a home, the MOTD tells a newcomer where to go (``/join`` the first
    channel, ``<nick>: help``) and each of these channels starts with the
    configured topic when it is created. A bare server (``home=None``) has
    neither.
    """

    nick: str
    channels: tuple[str, ...] = ()


__all__ = [
    "AWAYLEN",
    "KICKLEN",
    "MAXTARGETS",
    "REALNAMELEN",
    "TOPICLEN",
    "USERLEN",
    "IrcHome",
    "IrcLimits",
]
