"""futon's configuration: the models (``models``), loading and validation
with file:line:column problems (``loader``), and comment-preserving edits
(``edit``)."""

from __future__ import annotations

from futon.config.edit import AddedAgent, add_agent, get_value, set_value
from futon.config.loader import LoadedConfig, load_config

__all__ = ["AddedAgent", "LoadedConfig", "add_agent", "get_value", "load_config", "set_value"]
