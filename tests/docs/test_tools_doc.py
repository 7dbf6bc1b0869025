"""docs/tools.md lists every tool futon implements (the argument models are
the list) and, for each shipped peripheral, exactly its tools."""

from __future__ import annotations

import re

from ruamel.yaml import YAML

from futon.peripherals.args import ARGS
from tests.support import REPO, SHIPPED

PAGE = REPO / "docs" / "tools.md"


def test_every_tool_has_a_row_with_its_arguments() -> None:
    page = PAGE.read_text()
    missing = [tool for tool in sorted(ARGS) if f"| `{tool}` | [" not in page]
    assert not missing, f"docs/tools.md has no argument row for: {', '.join(missing)}"


def test_the_peripheral_table_matches_the_shipped_file() -> None:
    page = PAGE.read_text().split("## Which peripheral offers which tool", 1)[1]
    shipped = YAML(typ="safe").load((SHIPPED / "peripherals.yaml").read_text())["peripherals"]
    for pid, spec in shipped.items():
        row = re.search(rf"^\| `{re.escape(pid)}` \| [^|]* \| ([^|]*) \|$", page, re.M)
        assert row, f"docs/tools.md has no row for peripheral {pid}"
        listed = [t.strip() for t in row.group(1).split(",")] if spec["tools"] else []
        assert listed == list(spec["tools"]) or (
            not spec["tools"] and row.group(1).startswith("(none")
        ), pid
