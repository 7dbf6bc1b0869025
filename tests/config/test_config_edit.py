"""get_value / set_value / add_agent: edits keep the user's file intact."""

from __future__ import annotations

import difflib
import hashlib
import stat
from pathlib import Path

import pytest

from futon.config.edit import add_agent, get_value, parse_key, parse_value, set_value
from futon.config.loader import load_config
from futon.protocol.errors import ConfigError


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """(old line, new line) pairs that differ; fails on added/removed lines."""
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new), "".join(difflib.unified_diff(old, new, lineterm="\n"))
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


# ----------------------------------------------------------------------- get


def test_get_scalars_from_each_file(shipped: Path) -> None:
    assert get_value(shipped, "http.port") == 7070
    assert get_value(shipped, "irc.server.enabled") is True
    assert get_value(shipped, "workspace") is None
    assert (
        get_value(shipped, "peripherals.alfworld.config.alfworld_server") == "http://127.0.0.1:3000"
    )
    assert get_value(shipped, "routing.tickle") == "mission-control"
    assert get_value(shipped, "irc_access.default") == "allow"


def test_get_list_items_by_index_and_agents_by_id(shipped: Path) -> None:
    assert get_value(shipped, "agents.1.id") == "codex-1"
    assert get_value(shipped, "agents[2].type") == "tickle"
    assert get_value(shipped, "agents.codex-1.type") == "codex"
    assert get_value(shipped, "peripherals.edit.scope") == {"paths": ["src/", "docs/", "scripts/"]}
    assert get_value(shipped, "peripherals.test.tools[1]") == "bash-test"


@pytest.mark.parametrize(
    "key", ["http.prot", "nope", "agents.nobody.type", "agents.9", "http.port.x"]
)
def test_get_unknown_key_names_it(shipped: Path, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        get_value(shipped, key)
    assert key in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("key", ["", "a..b", ".a", "[0]"])
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(ConfigError):
        parse_key(key)


def test_parse_key_accepts_brackets() -> None:
    assert parse_key("irc.networks[0].port") == ["irc", "networks", "0", "port"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("7071", 7071),
        ("true", True),
        ("null", None),
        ("~", None),
        ("[a, b]", ["a", "b"]),
        ("'7071'", "7071"),
        ('"#futon"', "#futon"),
        ("#futon", "#futon"),
        ("{a: 1}", {"a": 1}),
        ("http://x:1/", "http://x:1/"),
    ],
)
def test_parse_value_reads_yaml(text: str, value: object) -> None:
    assert parse_value(text) == value


def test_parse_value_refuses_broken_yaml() -> None:
    with pytest.raises(ConfigError, match="YAML value"):
        parse_value("[a, b")


# ----------------------------------------------------------------------- set


def test_set_in_futon_yaml_changes_only_that_line(shipped: Path) -> None:
    before = shipped.read_text()
    result = set_value(shipped, "http.port", "7071")
    assert (result.old, result.new, result.created) == (7070, 7071, False)
    assert changed_lines(before, shipped.read_text()) == [("  port: 7070", "  port: 7071")]
    assert load_config(shipped).daemon.http.port == 7071


def test_set_keeps_end_of_line_comment(shipped: Path) -> None:
    before = shipped.read_text()
    set_value(shipped, "evidence.fsync", "always")
    [(old, new)] = changed_lines(before, shipped.read_text())
    assert old.startswith("  fsync: interval ") and "# always | interval | never" in old
    assert new == old.replace("interval ", "always   ", 1)


def test_set_agent_by_id_changes_only_that_line(shipped: Path) -> None:
    agents = shipped.parent / "agents.yaml"
    before = agents.read_text()
    set_value(shipped, "agents.codex-1.relay", "all")
    assert changed_lines(before, agents.read_text()) == [("    relay: mentions", "    relay: all")]
    assert [a.relay for a in load_config(shipped).agents.agents] == ["mentions", "all", "mentions"]


def test_set_in_peripherals_yaml_changes_only_that_line(shipped: Path) -> None:
    peripherals = shipped.parent / "peripherals.yaml"
    before = peripherals.read_text()
    set_value(shipped, "peripherals.edit.tools", "[read, edit]")
    assert changed_lines(before, peripherals.read_text()) == [
        ("    tools: [read, edit, write, bash]", "    tools: [read, edit]")
    ]


def test_set_flow_mapping_entry(shipped: Path) -> None:
    agents = shipped.parent / "agents.yaml"
    before = agents.read_text()
    set_value(shipped, "routing.codex", "test")
    [(old, new)] = changed_lines(before, agents.read_text())
    assert new == old.replace("codex: edit", "codex: test")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("http.port", "abc"),
        ("http.port", "70000"),
        ("routing.codex", "nowhere"),
        ("peripherals.edit.tools", "[read, teleport]"),
        ("peripherals.edit.scope", "everywhere"),
        ("agents.claude-1.relay", "loud"),
        ("http.admin_token", "x"),
    ],
)
def test_set_refuses_an_invalid_result_and_writes_nothing(
    shipped: Path, key: str, value: str
) -> None:
    files = sorted(shipped.parent.iterdir())
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    with pytest.raises(ConfigError, match="refusing to set") as caught:
        set_value(shipped, key, value)
    assert caught.value.exit_code == 2
    assert caught.value.problems  # says why
    assert sorted(shipped.parent.iterdir()) == files  # no temp file left behind
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before


def test_set_a_new_key_is_allowed_when_the_model_has_it(shipped: Path) -> None:
    result = set_value(shipped, "agents.claude-1.nick", "claude")
    assert result.created and result.old is None
    assert load_config(shipped).agents.agents[0].nick == "claude"


def test_set_under_a_missing_mapping_is_an_unknown_key(shipped: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        set_value(shipped, "nosuch.section.key", "1")


def test_replacing_a_block_keeps_the_next_sections_comment(shipped: Path) -> None:
    """The comment before `tickle:` belongs, for ruamel, to the last line of
    tools.web_fetch; replacing that block must not take it along."""
    set_value(shipped, "tools.web_fetch", "{allow_private: true}")
    text = shipped.read_text()
    assert "  web_fetch: {allow_private: true}\n\n# Tickle: the watchdog" in text
    set_value(shipped, "irc.server", "{port: 6668}")
    text = shipped.read_text()
    assert "  server: {port: 6668}\n  # Bot mode: futon connects" in text
    assert load_config(shipped).daemon.irc.server.port == 6668


def test_set_keeps_every_comment_line(shipped: Path) -> None:
    comments = [line for line in shipped.read_text().splitlines() if line.lstrip().startswith("#")]
    for key, value in [
        ("http.port", "0"),
        ("tools.test_commands", "[pytest]"),
        ("logging.level", "debug"),
    ]:
        set_value(shipped, key, value)
    after = shipped.read_text().splitlines()
    assert [line for line in after if line.lstrip().startswith("#")] == comments


def test_set_keeps_file_mode(shipped: Path) -> None:
    shipped.chmod(0o600)
    set_value(shipped, "http.port", "7071")
    assert stat.S_IMODE(shipped.stat().st_mode) == 0o600


def test_set_through_a_symlink_keeps_the_link(shipped: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.yaml"
    link.symlink_to(shipped)
    # The other files are found beside the link; give it company.
    for name in ("peripherals.yaml", "agents.yaml"):
        (tmp_path / name).symlink_to(shipped.parent / name)
    set_value(link, "http.port", "7072")
    assert link.is_symlink()
    assert get_value(shipped, "http.port") == 7072


# ----------------------------------------------------------------- add agent


def test_add_agent_stores_only_the_token_hash(shipped: Path) -> None:
    agents = shipped.parent / "agents.yaml"
    before = agents.read_text()
    added = add_agent(shipped, "gemini-1", "gemini", channels=["#futon", "#dev"], relay="all")
    text = agents.read_text()
    assert added.token not in text
    assert hashlib.sha256(added.token.encode()).hexdigest() == added.token_sha256
    spec = load_config(shipped).agents.agents[-1]
    assert (spec.id, spec.type, spec.token_sha256, spec.channels, spec.relay) == (
        "gemini-1",
        "gemini",
        added.token_sha256,
        ["#futon", "#dev"],
        "all",
    )
    # Every old line is still there, in order; the comment introducing
    # routing still sits right above routing.
    old_lines = before.splitlines()
    matcher = difflib.SequenceMatcher(a=old_lines, b=text.splitlines(), autojunk=False)
    assert sum(block.size for block in matcher.get_matching_blocks()) == len(old_lines)
    assert "peripherals: null\n\n  - id: gemini-1\n" in text
    assert "relay: all\n\n# Which peripheral a request starts in" in text


def test_add_agent_twice_in_a_row_keeps_layout(shipped: Path) -> None:
    add_agent(shipped, "x-1", "mock")
    add_agent(shipped, "x-2", "mock")
    assert [a.id for a in load_config(shipped).agents.agents][-2:] == ["x-1", "x-2"]
    assert "\n\n# Which peripheral" in (shipped.parent / "agents.yaml").read_text()


def test_add_agent_duplicate_id_is_refused(shipped: Path) -> None:
    agents = shipped.parent / "agents.yaml"
    before = agents.read_bytes()
    with pytest.raises(ConfigError, match="already exists") as caught:
        add_agent(shipped, "codex-1", "codex")
    assert caught.value.exit_code == 2
    assert agents.read_bytes() == before


@pytest.mark.parametrize(("agent_id", "agent_type"), [("bad id", "claude"), ("ok-1", "Bad Type")])
def test_add_agent_refuses_invalid_fields(shipped: Path, agent_id: str, agent_type: str) -> None:
    with pytest.raises(ConfigError, match="cannot add agent"):
        add_agent(shipped, agent_id, agent_type)


def test_add_agent_to_an_empty_agent_list(write_config) -> None:
    path = write_config(agents="# team\nagents: []   # none yet\nrouting: {default: explore}\n")
    add_agent(path, "a-1", "claude")
    text = (path.parent / "agents.yaml").read_text()
    assert text.startswith("# team\nagents:")
    assert [a.id for a in load_config(path).agents.agents] == ["a-1"]
