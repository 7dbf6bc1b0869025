"""A full disk (a real 1 MiB tmpfs under the data directory): appends fail
with a typed error, nothing half-written stays behind, and the daemon keeps
serving reads."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path

from tests.support import make_config, start_futon, wait_for_ports


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_full_disk_fails_appends_cleanly_and_reads_go_on(tmp_path: Path, small_disk: Path) -> None:
    config = make_config(tmp_path / "cfg", data_dir=str(small_disk / "var"), evidence__fsync="always")
    proc = start_futon("serve", "--config", str(config))
    try:
        base = f"http://127.0.0.1:{wait_for_ports(small_disk / 'var', proc)['http']}"
        acked, failure = [], None
        for n in range(5000):
            entry = {"id": f"e-{n}", "subject": {"ref/type": "session", "ref/id": "s"}, "type": "coordination",
                     "claim-type": "step", "author": "loader", "body": {"pad": "z" * 2000}}  # fmt: skip
            status, body = post(base + "/api/alpha/evidence", entry)
            if status == 201:
                acked.append(entry["id"])
            else:
                failure = (status, body)
                break
        assert failure is not None, "the disk never filled"
        status, body = failure
        assert (status, body["code"]) == (503, "store-unavailable")
        assert "write failed" in body["message"] or "index update failed" in body["message"]
        assert acked, "nothing was written before the disk filled"
        # Reads keep working, and every acknowledged entry is there.
        assert get(base + "/health")[0] == 200
        assert get(base + f"/api/alpha/evidence/{acked[0]}")[0] == 200
        assert get(base + f"/api/alpha/evidence/{acked[-1]}")[0] == 200
        status, page = get(base + "/api/alpha/evidence?author=loader&limit=5")
        assert status == 200 and page["entries"][0]["evidence/id"] == acked[-1]
        # Another append still fails cleanly (typed), and the daemon is still up.
        status, body = post(base + "/api/alpha/evidence", {"subject": {"ref/type": "session", "ref/id": "s"}, "type": "coordination",
                                                           "claim-type": "step", "author": "loader", "body": {"pad": "z" * 2000}})  # fmt: skip
        assert status == 503 and body["code"] == "store-unavailable"
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
