"""What a configuration reload changes (pure: no daemon in here).

The daemon re-reads every config file on ``SIGHUP`` or ``POST
/api/alpha/config/reload``; an invalid set of files raises ``ConfigError``
and nothing changes. For a valid set, :func:`plan_reload` compares what is
in force with what was read and says, per part, what will change:

- agents, peripherals: added / removed / changed ids;
- routing: added / removed / changed agent types; irc_access: changed or not;
- futon.yaml settings, as dotted keys, split into those applied live
  (:data:`LIVE_SETTINGS`) and those that only take effect at the next start
  (ports, hosts, data_dir, workspace, evidence, IRC server and networks…),
  which are reported as ``restart_required`` and left as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from futon.config.loader import LoadedConfig
from futon.config.models import AgentSpec, PeripheralSpec

# futon.yaml keys (and prefixes) a running daemon applies on reload.
LIVE_SETTINGS = (
    "files",  # where the other two files are: the reload has just read them
    "http.admin_token_sha256",  # the auth middleware reads it per request
    "ws",  # rate limits at once; heartbeat and max frame size for new connections
    "dispatch",  # reply timeout of the next dispatch
    "tools",  # timeouts and allowed commands of the next tool action
    "tickle",  # interval, staleness, escalation; enabled starts or stops it
    "logging",  # the root logger's level
)


@dataclass
class Changes:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, list[str]]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}

    def summary(self) -> str:
        parts = (
            [f"+{x}" for x in self.added]
            + [f"-{x}" for x in self.removed]
            + [f"~{x}" for x in self.changed]
        )
        return " ".join(parts)


def diff_by_key(old: Mapping[str, Any], new: Mapping[str, Any]) -> Changes:
    """Keys added, removed, and present in both with unequal values."""
    return Changes(
        added=[key for key in new if key not in old],
        removed=[key for key in old if key not in new],
        changed=[key for key in new if key in old and old[key] != new[key]],
    )


def flatten(model: BaseModel | Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a (nested) model; lists are leaves."""
    data = model.model_dump() if isinstance(model, BaseModel) else model
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def is_live(key: str) -> bool:
    return any(key == live or key.startswith(live + ".") for live in LIVE_SETTINGS)


@dataclass
class ReloadPlan:
    new: LoadedConfig
    agents: Changes
    peripherals: Changes
    routing: Changes
    irc_access: bool
    settings: list[str]
    restart_required: list[str]

    @property
    def changed(self) -> bool:
        return bool(
            self.agents
            or self.peripherals
            or self.routing
            or self.irc_access
            or self.settings
            or self.restart_required
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "agents": self.agents.to_dict(),
            "peripherals": self.peripherals.to_dict(),
            "routing": self.routing.to_dict(),
            "irc_access": self.irc_access,
            "settings": self.settings,
            "restart_required": self.restart_required,
        }

    def summary(self) -> str:
        """One log line."""
        if not self.changed:
            return "nothing changed"
        parts = []
        for name in ("agents", "peripherals", "routing"):
            changes: Changes = getattr(self, name)
            if changes:
                parts.append(f"{name} {changes.summary()}")
        if self.irc_access:
            parts.append("irc_access changed")
        if self.settings:
            parts.append("applied " + ", ".join(self.settings))
        if self.restart_required:
            parts.append("restart required for " + ", ".join(self.restart_required))
        return "; ".join(parts)


def _differing(old: BaseModel, new: BaseModel) -> list[str]:
    before, after = flatten(old), flatten(new)
    return [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]


def plan_reload(
    *,
    started: LoadedConfig,
    running: LoadedConfig,
    new: LoadedConfig,
    agents_in_force: Mapping[str, AgentSpec],
    peripherals_in_force: Mapping[str, PeripheralSpec],
) -> ReloadPlan:
    """Compare what is in force with ``new``: live settings against the
    last config applied (``running``), restart-only settings against the
    one the daemon started with (``started``, so they stay reported until a
    restart). Agents and peripherals are compared with the live registry
    and runner (agents registered at run time are not the config's and
    never count as removed)."""
    return ReloadPlan(
        new=new,
        agents=diff_by_key(agents_in_force, {spec.id: spec for spec in new.agents.agents}),
        peripherals=diff_by_key(peripherals_in_force, new.peripherals.peripherals),
        routing=diff_by_key(running.agents.routing, new.agents.routing),
        irc_access=running.agents.irc_access != new.agents.irc_access,
        settings=[k for k in _differing(running.daemon, new.daemon) if is_live(k)],
        restart_required=[k for k in _differing(started.daemon, new.daemon) if not is_live(k)],
    )


__all__ = ["LIVE_SETTINGS", "Changes", "ReloadPlan", "diff_by_key", "flatten", "plan_reload"]
