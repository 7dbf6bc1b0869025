"""``systemd/futon.service``: it parses, it says what the deployment
contract says, and ``systemd-analyze verify`` has nothing to complain about
(where systemd-analyze exists)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

UNIT = REPO / "systemd" / "futon.service"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's INI dialect: sections, ``Key=value`` (a key may repeat),
    ``#``/``;`` comments, backslash continuations."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"line {number}: a key outside any section"
        key, sep, value = line.partition("=")
        assert sep and key.strip() == key and key, f"line {number}: not Key=value: {raw!r}"
        current.setdefault(key, []).append(value)
    return sections


def test_the_unit_runs_futon_as_a_hardened_notify_service() -> None:
    text = UNIT.read_text()
    unit = parse_unit(text)
    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert service["Type"] == "notify"
    assert service["ExecStart"].endswith("/futon serve --config /etc/futon/futon.yaml")
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["DynamicUser"] == "yes" and "futon" in service["StateDirectory"].split()
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes",
                       "SystemCallArchitectures": "native"}.items():  # fmt: skip
        assert service[key] == value, key
    assert set(service["RestrictAddressFamilies"].split()) == {
        "AF_UNIX",
        "AF_INET",
        "AF_INET6",
        "AF_NETLINK",
    }
    filters = " ".join(unit["Service"]["SystemCallFilter"]).split()
    assert (
        "@system-service" in filters and "@mount" in filters
    )  # bwrap mounts inside its namespaces
    assert (
        "RestrictNamespaces" not in service and "PrivateUsers" not in service
    )  # bwrap needs user namespaces
    assert "#WatchdogSec=" in text  # the example stays visible
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip(
            "systemd-analyze is not installed; the unit's keys are still checked by the test above"
        )
    futon = Path(sys.executable).parent / "futon"
    if not futon.exists():
        futon = Path(shutil.which("futon") or sys.executable)
    # verify checks that ExecStart exists: point it at this checkout's script.
    unit = tmp_path / "futon.service"
    unit.write_text(UNIT.read_text().replace("/opt/futon/bin/futon", str(futon)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    complaints = [
        line for line in (result.stdout + result.stderr).splitlines() if "futon.service" in line
    ]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr
