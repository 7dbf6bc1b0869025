"""The shipped config/ files: valid, complete, and faithful to the spec."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from futon.config.loader import default_data_dir, load_config
from futon.config.models import AgentsFile, DaemonConfig
from futon.config.yamlfile import dump_yaml, round_trip_yaml
from tests.config.support import SHIPPED, SHIPPED_FILES

# Copied from spec/peripherals.md, "The eleven": id → (tools, scope, entry, exit, context);
# issue 21 adds evidence-search to explore, reflect, proof, mission and mission-control.
SPEC_TABLE: dict[str, tuple[str, str, str, str, str]] = {
    "explore": (
        "read glob grep bash-readonly web-fetch evidence-search",
        "full-codebase",
        "default from-reflect",
        "found-target ready-to-edit user-request hop-reflect",
        "session-id",
    ),
    "edit": (
        "read edit write bash",
        "paths: src/ docs/ scripts/",
        "from-explore from-test user-request",
        "tests-pass ready-to-commit blocked hop-test hop-reflect",
        "session-id target-files",
    ),
    "test": (
        "read bash-test",
        "test-commands-only",
        "from-edit user-request",
        "pass fail flaky hop-edit hop-deploy hop-reflect",
        "session-id changed-files",
    ),
    "deploy": (
        "bash-git bash-deploy",
        "git-push-only",
        "from-test tests-passed",
        "deployed blocked hop-reflect",
        "session-id commit-message",
    ),
    "reflect": (
        "read musn-log evidence-search",
        "session-log-only",
        "session-close user-request agent-request from-any",
        "par-generated",
        "session-id session-log",
    ),
    "proof": (
        "read glob grep write bash bash-readonly proof-load proof-save ledger-query ledger-upsert "
        "dag-check dag-impact canonical-get canonical-update cycle-begin cycle-advance cycle-get "
        "cycle-list failed-route-add status-validate gate-check evidence-search",
        "full-codebase",
        "from-explore user-request from-any",
        "cycle-completed blocked hop-reflect hop-explore user-request",
        "session-id problem-id",
    ),
    "discipline": (
        "psr-search psr-select pur-update pur-mark-pivot par-punctuate",
        "discipline-records",
        "from-any from-reflect user-request",
        "par-generated hop-reflect user-request",
        "session-id pattern-id",
    ),
    "chat": (
        "",
        "irc-rooms",
        "default from-any user-request",
        "user-request hop-explore hop-edit hop-reflect",
        "session-id channel",
    ),
    "mission": (
        "read glob grep write bash bash-readonly mission-load mission-save obligation-query "
        "obligation-upsert dag-check dag-impact mission-spec-get mission-spec-update cycle-begin "
        "cycle-advance cycle-get cycle-list failed-approach-add status-validate gate-check "
        "corpus-check evidence-query evidence-search",
        "full-codebase",
        "from-explore user-request from-any",
        "cycle-completed blocked hop-reflect hop-explore user-request",
        "session-id mission-id",
    ),
    "alfworld": (
        "alfworld-action bell whistle",
        "alfworld-simulation",
        "default from-chat user-request",
        "won stuck user-request hop-chat hop-reflect",
        "session-id alfworld-state",
    ),
    "mission-control": (
        "read glob grep bash-readonly mc-inventory mc-devmaps mc-coverage mc-mana mc-review mc-bulletin "
        "evidence-search",
        "full-codebase",
        "from-any user-request",
        "review-complete hop-reflect hop-explore user-request",
        "session-id",
    ),
}
READ_ONLY = {"explore", "mission-control"}  # "full-codebase (read-only)" in the table


@pytest.fixture(scope="module")
def config():
    return load_config(SHIPPED / "futon.yaml")


def test_shipped_config_validates(config) -> None:
    assert config.path == SHIPPED / "futon.yaml"
    assert config.peripherals_path == SHIPPED / "peripherals.yaml"
    assert config.agents_path == SHIPPED / "agents.yaml"


def test_shipped_peripherals_are_exactly_the_eleven_of_the_spec(config) -> None:
    peripherals = config.peripherals.peripherals
    assert list(peripherals) == list(SPEC_TABLE)
    for pid, (tools, scope, entry, exit_, context) in SPEC_TABLE.items():
        spec = peripherals[pid]
        assert spec.tools == tools.split(), pid
        if scope.startswith("paths:"):
            assert not isinstance(spec.scope, str)
            assert spec.scope.paths == scope.split()[1:], pid
        else:
            assert spec.scope == scope, pid
        assert spec.entry == entry.split(), pid
        assert spec.exit == exit_.split(), pid
        assert spec.context == context.split(), pid
        assert spec.read_only == (pid in READ_ONLY), pid
        assert spec.description, f"{pid} has no description"


def test_shipped_alfworld_names_its_server(config) -> None:
    alfworld = config.peripherals.peripherals["alfworld"]
    assert alfworld.config == {"alfworld_server": "http://127.0.0.1:3000"}
    assert all(
        not spec.config for pid, spec in config.peripherals.peripherals.items() if pid != "alfworld"
    )


def _assert_every_field_written(model: BaseModel, data: dict[str, Any], where: str) -> None:
    assert list(data) == list(type(model).model_fields), where
    for name, value in data.items():
        child = getattr(model, name)
        if isinstance(child, BaseModel):
            _assert_every_field_written(child, value, f"{where}.{name}")


def test_shipped_futon_yaml_spells_out_every_default(config) -> None:
    """Every section and key of DaemonConfig is written, with its default."""
    assert config.daemon == DaemonConfig()
    raw = round_trip_yaml().load((SHIPPED / "futon.yaml").read_text())
    _assert_every_field_written(config.daemon, raw, "futon.yaml")
    assert config.daemon.http.host == "127.0.0.1" and config.daemon.http.port == 7070
    assert config.daemon.irc.server.enabled and config.daemon.irc.server.port == 6667
    assert config.daemon.irc.networks == []


def test_shipped_paths_resolve_beside_futon_yaml(config) -> None:
    assert config.base_dir == SHIPPED
    # The shipped data_dir is the user's state directory, outside the
    # workspace (issue 13: it used to be config/var, readable by `read`).
    assert config.daemon.data_dir is None and config.data_dir == default_data_dir()
    assert not str(config.data_dir).startswith(str(config.workspace) + os.sep)
    assert config.workspace == Path(os.getcwd())


def test_shipped_agents_and_routing(config) -> None:
    agents = config.agents
    assert [(a.id, a.type) for a in agents.agents] == [
        ("claude-1", "claude"),
        ("codex-1", "codex"),
        ("tickle-1", "tickle"),
    ]
    for agent in agents.agents:
        assert agent.token_sha256 is None
        assert agent.channels == ["#futon"]
        assert agent.relay == "mentions"
        assert agent.workspace is None and agent.peripherals is None
    assert agents.routing == {
        "claude": "explore",
        "codex": "edit",
        "tickle": "mission-control",
        "default": "explore",
    }
    assert agents.irc_access.default == "allow" and agents.irc_access.rules == []
    assert agents == AgentsFile.model_validate(agents.model_dump())


@pytest.mark.parametrize("name", SHIPPED_FILES)
def test_shipped_files_round_trip_byte_identical(name: str) -> None:
    """Loading and dumping unchanged must not alter a byte: that is what
    lets `config set` change only the line it means to."""
    text = (SHIPPED / name).read_text()
    yaml = round_trip_yaml(text)
    assert dump_yaml(yaml, yaml.load(text)) == text


@pytest.mark.parametrize("name", SHIPPED_FILES)
def test_shipped_files_are_commented(name: str) -> None:
    lines = (SHIPPED / name).read_text().splitlines()
    assert sum(1 for line in lines if "#" in line) >= 8
