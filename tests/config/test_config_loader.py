"""load_config: every problem becomes one FILE:LINE:COL: KEY: message line."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from futon.config.loader import LoadedConfig, load_config
from futon.protocol.errors import ConfigError
from tests.config.support import SHIPPED

AGENTS_OK = """\
agents:
  - id: a-1
    type: claude
routing: {default: explore}
"""


@pytest.fixture
def problems(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., list[str]]:
    """Write the files, load ``futon.yaml`` from its own folder (so lines
    start with the bare file names) and return the problem lines."""

    def load(**texts: str | None) -> list[str]:
        path = write_config(**texts)
        monkeypatch.chdir(path.parent)
        with pytest.raises(ConfigError) as caught:
            load_config("futon.yaml")
        assert caught.value.exit_code == 2
        return caught.value.problems

    return load


# ------------------------------------------------------------------ futon.yaml


def test_malformed_yaml_names_line_and_column(problems) -> None:
    lines = problems(futon="http:\n  port: [7070\n")
    assert len(lines) == 1
    assert lines[0].startswith("futon.yaml:3:1: invalid YAML:")


def test_tab_indentation_is_a_yaml_error_with_position(problems) -> None:
    (line,) = problems(futon="http:\n\tport: 7070\n")
    assert line.startswith("futon.yaml:2:1: invalid YAML:")


def test_duplicate_yaml_key_is_a_problem(problems) -> None:
    (line,) = problems(futon="http:\n  port: 1\n  port: 2\n")
    assert line.startswith("futon.yaml:3:3: invalid YAML:")
    assert 'duplicate key "port"' in line


def test_unknown_top_level_key(problems) -> None:
    (line,) = problems(futon="data_dir: var\nhtttp: {}\n")
    assert line.startswith(
        "futon.yaml:2:1: htttp: unknown key: expected one of data_dir, workspace,"
    )
    assert "did you mean 'http'?" in line


def test_unknown_nested_key(problems) -> None:
    (line,) = problems(futon="irc:\n  server:\n    prot: 6667\n")
    assert line.startswith("futon.yaml:3:5: irc.server.prot: unknown key:")
    assert "did you mean 'port'?" in line


def test_port_not_a_number(problems) -> None:
    assert problems(futon="http:\n  port: abc\n") == [
        "futon.yaml:2:9: http.port: expected an integer (got 'abc')"
    ]


def test_port_out_of_range(problems) -> None:
    assert problems(futon="http:\n  host: 127.0.0.1\n  port: 70000\n") == [
        "futon.yaml:3:9: http.port: expected a number <= 65535 (got 70000)"
    ]


def test_wrong_type_in_a_network_list_item(problems) -> None:
    text = "irc:\n  networks:\n    - name: x\n      host: h\n      tls: sometimes\n"
    assert problems(futon=text) == [
        "futon.yaml:5:12: irc.networks[0].tls: expected true or false (got 'sometimes')"
    ]


def test_missing_key_points_at_the_mapping_that_lacks_it(problems) -> None:
    (line,) = problems(futon="irc:\n  networks:\n    - name: x\n")
    assert line == "futon.yaml:3:7: irc.networks[0].host: required key is missing"


def test_empty_file_is_a_clear_error(problems) -> None:
    (line,) = problems(futon="")
    assert line.startswith("futon.yaml:1:1: the file is empty;")


def test_comments_only_file_counts_as_empty(problems) -> None:
    (line,) = problems(futon="# nothing here\n")
    assert "the file is empty" in line


def test_top_level_list_is_a_clear_error(problems) -> None:
    (line,) = problems(futon="- a\n- b\n")
    assert line.startswith("futon.yaml:1:1: expected a mapping of daemon settings")
    assert "(got a list)" in line


def test_missing_referenced_file_points_at_its_key(problems) -> None:
    text = "data_dir: var\nfiles:\n  peripherals: nope.yaml\n"
    assert problems(futon=text) == [
        "futon.yaml:3:3: files.peripherals: expected an existing peripherals file "
        "(got 'nope.yaml', which does not exist)"
    ]


def test_missing_futon_yaml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


# ------------------------------------------------------------- peripherals.yaml

PERIPHERALS_HEAD = (
    "peripherals:\n  explore:\n    scope: full-codebase\n    entry: [default]\n    exit: [done]\n"
)


def test_peripheral_with_unknown_tool(problems) -> None:
    (line,) = problems(
        peripherals=PERIPHERALS_HEAD + "    tools: [read, teleport]\n", agents=AGENTS_OK
    )
    assert line.startswith(
        "peripherals.yaml:6:5: peripherals.explore.tools: unknown tool(s) teleport;"
    )


def test_peripheral_with_unknown_scope(problems) -> None:
    text = PERIPHERALS_HEAD.replace("scope: full-codebase", "scope: everywhere")
    (line,) = problems(peripherals=text, agents=AGENTS_OK)
    assert line.startswith(
        "peripherals.yaml:3:12: peripherals.explore.scope: unknown scope 'everywhere';"
    )


def test_peripheral_scope_of_the_wrong_type_gives_one_line(problems) -> None:
    text = PERIPHERALS_HEAD.replace("scope: full-codebase", "scope: 3")
    assert problems(peripherals=text, agents=AGENTS_OK) == [
        "peripherals.yaml:3:12: peripherals.explore.scope: expected a string or a mapping (got 3)"
    ]


def test_peripheral_paths_scope_reports_only_the_paths_branch(problems) -> None:
    text = PERIPHERALS_HEAD.replace("scope: full-codebase", "scope: {paths: []}")
    assert problems(peripherals=text, agents=AGENTS_OK) == [
        "peripherals.yaml:3:13: peripherals.explore.scope.paths: expected at least 1 item(s) (got 0)"
    ]


def test_unknown_key_in_a_peripheral(problems) -> None:
    (line,) = problems(peripherals=PERIPHERALS_HEAD + "    tool: [read]\n", agents=AGENTS_OK)
    assert line.startswith("peripherals.yaml:6:5: peripherals.explore.tool: unknown key:")
    assert "did you mean 'tools'?" in line


# ------------------------------------------------------------------ agents.yaml


def test_unknown_key_in_an_agent(problems) -> None:
    text = "agents:\n  - id: a-1\n    type: claude\n  - id: b-1\n    type: codex\n    rellay: all\n"
    (line,) = problems(agents=text)
    assert line.startswith("agents.yaml:6:5: agents[1].rellay: unknown key:")
    assert "did you mean 'relay'?" in line


def test_bad_relay_value(problems) -> None:
    text = "agents:\n  - id: a-1\n    type: claude\n    relay: everything\n"
    assert problems(agents=text) == [
        "agents.yaml:4:12: agents[0].relay: expected 'mentions' or 'all' (got 'everything')"
    ]


def test_duplicate_agent_id_points_at_the_second(problems) -> None:
    text = "agents:\n  - id: a-1\n    type: claude\n  - id: a-1\n    type: codex\n"
    assert problems(agents=text) == [
        "agents.yaml:4:9: agents[1].id: expected a unique agent id (got 'a-1', already used by agents[0])"
    ]


def test_routing_to_a_missing_peripheral(problems) -> None:
    text = AGENTS_OK.replace("{default: explore}", "{claude: explor, default: explore}")
    assert problems(agents=text) == [
        "agents.yaml:4:19: routing.claude: expected a peripheral defined in peripherals.yaml "
        "(got 'explor'; did you mean 'explore'?)"
    ]


def test_agent_restricted_to_a_missing_peripheral(problems) -> None:
    text = AGENTS_OK.replace("type: claude\n", "type: claude\n    peripherals: [edit, nowhere]\n")
    (line,) = problems(agents=text)
    assert line.startswith(
        "agents.yaml:4:25: agents[0].peripherals[1]: expected a peripheral defined in"
    )


def test_routing_without_default(problems) -> None:
    (line,) = problems(agents=AGENTS_OK.replace("{default: explore}", "{claude: explore}"))
    assert line.startswith("agents.yaml:4:1: routing: expected a 'default' entry")


def test_routing_keys_are_any_agent_type(write_config) -> None:
    text = AGENTS_OK.replace("{default: explore}", "{my-own-type: chat, default: explore}")
    config = load_config(write_config(agents=text))
    assert config.agents.routing["my-own-type"] == "chat"


def test_empty_agents_file(problems) -> None:
    (line,) = problems(agents="")
    assert line.startswith("agents.yaml:1:1: the file is empty;")


# ------------------------------------------------------------------ whole config


def test_all_problems_of_all_files_are_collected(problems) -> None:
    lines = problems(
        futon="http:\n  port: abc\n",
        peripherals=PERIPHERALS_HEAD + "    tools: [teleport]\n",
        agents="agents:\n  - id: a-1\n    type: claude\n    relay: loud\nrouting: {default: nowhere}\n",
    )
    assert [line.split(":")[0] for line in lines] == [
        "futon.yaml",
        "peripherals.yaml",
        "agents.yaml",
        "agents.yaml",
    ]


def test_problem_lines_name_files_as_given(write_config, monkeypatch) -> None:
    path = write_config(futon="http:\n  port: abc\n")
    monkeypatch.chdir(path.parent.parent)
    with pytest.raises(ConfigError) as caught:
        load_config("cfg/futon.yaml")
    assert caught.value.problems[0].startswith("cfg/futon.yaml:2:9: ")


def test_alias_cycle_and_deep_nesting_are_problems_not_crashes(problems) -> None:
    assert problems(futon="a: &x [*x]\n")
    assert problems(futon="x: " + "[" * 600 + "\n")


def test_relative_paths_are_relative_to_futon_yaml(write_config, monkeypatch, tmp_path) -> None:
    path = write_config(futon="data_dir: state\nworkspace: ../ws\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(os.path.relpath(path))
    assert isinstance(config, LoadedConfig)
    assert config.path == path
    assert config.data_dir == path.parent / "state"
    assert config.workspace == tmp_path / "ws"


def test_null_workspace_is_the_cwd_at_load_time(write_config, monkeypatch, tmp_path) -> None:
    path = write_config(futon="workspace: null\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(path)
    monkeypatch.chdir(SHIPPED)
    assert config.workspace == tmp_path


def test_files_section_names_other_files(write_config) -> None:
    path = write_config(futon="files:\n  agents: team/agents.yaml\n")
    (path.parent / "team").mkdir()
    (path.parent / "team" / "agents.yaml").write_text(AGENTS_OK)
    config = load_config(path)
    assert config.agents_path == path.parent / "team" / "agents.yaml"
    assert [a.id for a in config.agents.agents] == ["a-1"]
