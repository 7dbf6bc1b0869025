"""``futon serve`` as a real process: it starts on the shipped config, logs
where it listens, answers /health, and stops cleanly on SIGINT and SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import make_config, start_futon, wait_for_ports


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], dict]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_starts_answers_health_and_stops_cleanly(tmp_path: Path, signum: int) -> None:
    config = make_config(tmp_path / "cfg")
    proc = start_futon("serve", "--config", str(config))
    ports = wait_for_ports(tmp_path / "cfg" / "var", proc)
    status, headers, body = get(f"http://127.0.0.1:{ports['http']}/health")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert body["status"] == "ok" and body["agents"] == 3
    assert body["connections"] == {"ws": 0, "irc": 0}
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"http listening on http://127.0.0.1:{ports['http']}" in err
    assert "stopped" in err and "Traceback" not in err
    assert not (tmp_path / "cfg" / "var" / "ports.json").exists()


def test_unknown_path_is_json_404_and_wrong_method_is_405_with_allow(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg")
    proc = start_futon("serve", "--config", str(config))
    try:
        port = wait_for_ports(tmp_path / "cfg" / "var", proc)["http"]
        status, _, body = get(f"http://127.0.0.1:{port}/nowhere")
        assert status == 404
        assert body["error"] is True and body["code"] == "not-found"
        assert body["message"] == "Unknown endpoint: GET /nowhere"
        status, headers, body = get(f"http://127.0.0.1:{port}/health", method="POST")
        assert status == 405 and "GET" in headers["Allow"]
        for target in ("/%E0%A4%A", "/health?x=%ZZ", "/health?x=%C3%28", "/%"):
            status, _, body = get(f"http://127.0.0.1:{port}{target}")
            assert (status, body["code"]) == (400, "invalid-input"), target
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_a_busy_port_is_a_clear_error_without_traceback(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = make_config(tmp_path / "cfg", http__port=port)
        proc = start_futon("serve", "--config", str(config))
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_refuses_a_public_bind_while_agents_have_no_token(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", http__host="0.0.0.0")
    proc = start_futon("serve", "--config", str(config))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "refusing to bind beyond loopback (http.host=0.0.0.0)" in err
    assert "claude-1" in err and "Traceback" not in err


def test_invalid_config_exits_2_naming_file_line_and_key(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg")
    config.write_text(config.read_text().replace("max_body_bytes: 1048576", "max_body_bytes: lots"))
    proc = start_futon("serve", "--config", str(config))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "futon.yaml:" in err and "http.max_body_bytes" in err
    assert "Traceback" not in err


def test_a_second_daemon_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg")
    first = start_futon("serve", "--config", str(config))
    try:
        wait_for_ports(tmp_path / "cfg" / "var", first)
        second = start_futon("serve", "--config", str(config))
        _, err = second.communicate(timeout=30)
        assert second.returncode == 1
        assert "in use by another process" in err and "Traceback" not in err
        assert (tmp_path / "cfg" / "var" / "ports.json").exists()  # the first daemon's, untouched
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=20)
