"""``futon init`` writes the shipped configuration and pattern library, and
``futon config validate`` refuses a configuration whose pattern library is
missing (the old install-as-a-service recipe left it behind)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from futon.cli import main
from futon.data import CONFIG_FILES, SHIPPED_CONFIG

REPO = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_writes_the_three_files_and_the_pattern_library(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "etc" / "futon"
    code, out, err = run(capsys, "init", str(target))
    assert code == 0, err
    for name in CONFIG_FILES:
        assert (target / name).read_bytes() == (SHIPPED_CONFIG / name).read_bytes()
    patterns = sorted(p.name for p in (target / "patterns").glob("*.md"))
    assert patterns == sorted(p.name for p in (SHIPPED_CONFIG / "patterns").glob("*.md"))
    assert len(patterns) > 10
    assert f"futon serve --config {target / 'futon.yaml'}" in err
    code, out, err = run(capsys, "config", "validate", "--config", str(target / "futon.yaml"))
    assert code == 0, err
    assert out.startswith("ok: ")


def test_init_defaults_to_config_beside_the_default_config_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FUTON_CONFIG", raising=False)
    assert run(capsys, "init")[0] == 0
    code, _out, err = run(capsys, "config", "validate")  # --config defaults to config/futon.yaml
    assert code == 0, err


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "agents.yaml").write_text("# mine\n")
    (tmp_path / "patterns").mkdir()
    (tmp_path / "patterns" / "read-the-error.md").write_text("mine\n")
    code, _, err = run(capsys, "init", str(tmp_path))
    assert code == 2
    assert "refusing to overwrite 2 existing file(s)" in err and "--force" in err
    assert f"{tmp_path / 'agents.yaml'}: already exists" in err
    assert "Traceback" not in err
    assert (tmp_path / "agents.yaml").read_text() == "# mine\n"
    assert not (tmp_path / "futon.yaml").exists()  # nothing written at all
    code, _out, err = run(capsys, "init", str(tmp_path), "--force")
    assert code == 0, err
    assert (tmp_path / "agents.yaml").read_bytes() == (SHIPPED_CONFIG / "agents.yaml").read_bytes()
    assert (tmp_path / "patterns" / "read-the-error.md").read_text() != "mine\n"


def test_a_missing_config_points_at_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "config", "validate", "--config", str(tmp_path / "cfg" / "futon.yaml"))
    assert code == 2
    assert "not found" in err and f"futon init {tmp_path / 'cfg'}" in err


def copy_files_only(folder: Path) -> Path:
    """What the old README recipe installed: the three files, no library."""
    folder.mkdir(parents=True)
    for name in CONFIG_FILES:
        (folder / name).write_bytes((SHIPPED_CONFIG / name).read_bytes())
    return folder / "futon.yaml"


def test_validate_refuses_a_missing_pattern_library_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = copy_files_only(tmp_path / "etc")
    code, out, err = run(capsys, "config", "validate", "--config", str(config))
    assert code == 2 and out == ""
    line = next(line for line in err.splitlines() if "discipline.patterns_dir" in line)
    assert re.match(rf"{re.escape(str(config))}:\d+:\d+: discipline\.patterns_dir: ", line)
    assert "does not exist" in line and "futon init" in line
    (tmp_path / "etc" / "patterns").mkdir()
    (tmp_path / "etc" / "patterns" / "README.md").write_text("not a pattern\n")
    code, _, err = run(capsys, "config", "validate", "--config", str(config))
    assert code == 2 and "holds no pattern file" in err
    code, _, err = run(capsys, "config", "set", "discipline.patterns_dir", str(SHIPPED_CONFIG / "patterns"),
                       "--config", str(config))  # fmt: skip
    assert code == 0, err
    assert run(capsys, "config", "validate", "--config", str(config))[0] == 0


def test_validate_checks_a_peripherals_own_patterns_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = copy_files_only(tmp_path / "etc")
    (tmp_path / "etc" / "patterns").mkdir()
    (tmp_path / "etc" / "patterns" / "x.md").write_text("---\nid: x\n---\n")
    code, _, err = run(capsys, "config", "set", "peripherals.discipline.config",
                       "{patterns_dir: /nowhere/at/all}", "--config", str(config))  # fmt: skip
    assert code == 0, err
    code, _, err = run(capsys, "config", "validate", "--config", str(config))
    assert code == 2
    assert "peripherals.discipline.config.patterns_dir" in err and "/nowhere/at/all" in err


def test_the_readme_service_recipe_writes_the_pattern_library() -> None:
    """The install-as-a-service recipe must leave a configuration that
    validates: it writes the files with futon init, library included."""
    readme = (REPO / "README.md").read_text()
    recipe = readme.split("## Install as a service", 1)[1].split("```", 2)[1]
    assert re.search(r"futon init /etc/futon", recipe)
    assert "install -m 0644 config/" not in recipe
    assert "config validate" in recipe
