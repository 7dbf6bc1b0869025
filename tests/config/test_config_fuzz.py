"""Property tests: whatever text or YAML-ish data a user writes, the loader
either returns a LoadedConfig or raises ConfigError — never anything else."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from futon.config.edit import get_value, set_value
from futon.config.loader import LoadedConfig, load_config
from futon.protocol.errors import ConfigError
from tests.config.support import SHIPPED, SHIPPED_FILES

SHIPPED_TEXT = {name: (SHIPPED / name).read_text() for name in SHIPPED_FILES}
# Small valid companions for the file under test: parsing the shipped files
# every example would make these tests slow without testing more.
MINIMAL = {
    "futon": "data_dir: var\n",
    "peripherals": "peripherals:\n  explore: {tools: [read], scope: full-codebase, entry: [default], exit: [done]}\n",
    "agents": "agents:\n  - {id: a-1, type: claude, peripherals: [explore]}\nrouting: {default: explore}\n",
}
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keys drawn partly from the real vocabulary so the data often gets past the
# first level and exercises nested validation and the cross-file checks.
KEYS = st.sampled_from(
    [
        "http", "port", "host", "irc", "server", "networks", "peripherals", "explore", "edit",
        "tools", "scope", "paths", "entry", "exit", "agents", "id", "type", "routing",
        "default", "irc_access", "rules", "files", "data_dir", "workspace", "relay", "<<",
    ]
) | st.text(min_size=0, max_size=8)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)
DOCUMENTS = st.dictionaries(KEYS, VALUES, max_size=6)


def _load_with(**texts: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in SHIPPED_FILES:
            stem = name.removesuffix(".yaml")
            (folder / name).write_text(texts.get(stem, MINIMAL[stem]))
        try:
            result = load_config(folder / "futon.yaml")
        except ConfigError as exc:
            assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        else:
            assert isinstance(result, LoadedConfig)


@FUZZ
@given(text=st.text(max_size=300))
def test_arbitrary_text_as_futon_yaml(text: str) -> None:
    _load_with(futon=text)


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("ab:-[]{}#&*!|>'\"\n ,?.0129")), max_size=120))
def test_yaml_syntax_soup_as_agents_yaml(text: str) -> None:
    _load_with(agents=text)


@settings(FUZZ, max_examples=60)
@given(futon=DOCUMENTS, peripherals=DOCUMENTS, agents=DOCUMENTS)
def test_arbitrary_mappings_in_every_file(futon: dict, peripherals: dict, agents: dict) -> None:
    # JSON is YAML (with non-string keys made strings), so every generated
    # value is representable; allow_nan writes NaN/Infinity, which YAML reads as strings.
    _load_with(
        futon=json.dumps(futon),
        peripherals=json.dumps({"peripherals": peripherals}),
        agents=json.dumps(agents),
    )


def test_minimal_companions_are_valid() -> None:
    _load_with()  # else the fuzz tests below would only ever see ConfigError
    with tempfile.TemporaryDirectory() as tmp:
        for stem, text in MINIMAL.items():
            (Path(tmp) / f"{stem}.yaml").write_text(text)
        assert isinstance(load_config(Path(tmp) / "futon.yaml"), LoadedConfig)


@settings(max_examples=10, deadline=None)
@given(port=st.integers(min_value=0, max_value=65535))
def test_set_then_get_round_trips_and_changes_one_line(port: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in SHIPPED_FILES:
            (folder / name).write_text(SHIPPED_TEXT[name])
        path = folder / "futon.yaml"
        set_value(path, "http.port", str(port))
        assert get_value(path, "http.port") == port
        before, after = SHIPPED_TEXT["futon.yaml"].splitlines(), path.read_text().splitlines()
        assert len(before) == len(after)
        assert sum(a != b for a, b in zip(before, after, strict=True)) == (port != 7070)
