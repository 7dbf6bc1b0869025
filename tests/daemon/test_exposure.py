"""Security defaults: the daemon binds to loopback, and refuses to listen
beyond it while anything is open — an agent without a token, IRC access
that allows everyone, HTTP write routes without an admin token."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from futon.config.loader import load_config
from futon.daemon.exposure import check_exposure, is_loopback
from futon.protocol.errors import ConfigError
from tests.support import make_config


def closed_config(folder: Path, **overrides: object) -> Path:
    """Public HTTP bind, every agent with a token, IRC access deny-by-default."""
    config = make_config(folder, http__host="0.0.0.0", **overrides)
    yaml = YAML()
    agents = yaml.load(folder / "agents.yaml")
    for agent in agents["agents"]:
        agent["token_sha256"] = hashlib.sha256(agent["id"].encode()).hexdigest()
    agents["irc_access"]["default"] = "deny"
    yaml.dump(agents, folder / "agents.yaml")
    return config


def test_shipped_defaults_bind_to_loopback() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "futon" / "data" / "config" / "futon.yaml")
    assert is_loopback(config.daemon.http.host) and is_loopback(config.daemon.irc.server.host)
    check_exposure(config)  # loopback: nothing to refuse


def test_a_public_bind_needs_an_admin_token_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="admin_token_sha256"):
        check_exposure(load_config(closed_config(tmp_path / "a")))
    admin = hashlib.sha256(b"admin").hexdigest()
    check_exposure(load_config(closed_config(tmp_path / "b", http__admin_token_sha256=admin)))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.3.4.5"])
def test_loopback_hosts_are_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.4", "example.org", ""])
def test_everything_else_counts_as_exposed(host: str) -> None:
    assert not is_loopback(host)
