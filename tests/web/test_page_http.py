"""The web page over HTTP (no browser): served from the package, open
without a token while the API stays guarded, ``?token=`` accepted on the
SSE stream only, no HTML built from data, SSE streams ended at shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from pathlib import Path

import aiohttp

from futon.daemon.app import Daemon
from futon.transports.http import openapi_document
from tests.transports.kit import base_url, running_daemon

WEB = Path(__file__).resolve().parents[2] / "futon" / "web"


async def test_the_page_and_its_assets_are_served_with_a_strict_policy(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    base = base_url(daemon)
    async with http.get(base + "/") as response:
        assert response.status == 200 and response.content_type == "text/html"
        html = await response.text()
        policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert '<script src="/web/app.js"' in html and 'href="/web/app.css"' in html
    for path, kind in (("/web/app.js", "text/javascript"), ("/web/app.css", "text/css")):
        async with http.get(base + path) as response:
            assert response.status == 200 and response.content_type == kind, path
    async with http.get(base + "/web/nope.js") as response:
        assert response.status == 404


def test_the_script_never_builds_html_from_strings() -> None:
    script = re.sub(
        r"^\s*//.*$", "", (WEB / "app.js").read_text(), flags=re.M
    )  # code, not comments
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert sink not in script, sink
    assert not re.search(
        r"<script>|\son[a-z]+=", (WEB / "index.html").read_text()
    )  # no inline script or handlers


async def test_with_an_admin_token_the_page_is_open_and_the_stream_takes_a_query_token(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    digest = hashlib.sha256(b"s3cret").hexdigest()
    async with running_daemon(tmp_path, http__admin_token_sha256=digest) as daemon:
        base = base_url(daemon)
        for path in ("/", "/web/app.js", "/web/app.css"):
            async with http.get(base + path) as response:
                assert response.status == 200, path
        async with http.get(base + "/api/alpha/evidence/stream") as response:
            assert response.status == 401
        async with http.get(base + "/api/alpha/evidence/stream?token=wrong") as response:
            assert response.status == 401
        async with http.get(base + "/api/alpha/evidence?token=s3cret") as response:
            assert response.status == 401  # ?token= is for the stream only
        headers = {"Authorization": "Bearer s3cret"}
        entry = {
            "subject": {"ref/type": "thread", "ref/id": "t"},
            "type": "forum-post",
            "claim-type": "question",
            "author": "ann",
        }
        async with http.post(base + "/api/alpha/evidence", json=entry, headers=headers) as response:
            seq = (await response.json())["entry"]["evidence/seq"]
        async with http.get(
            base + f"/api/alpha/evidence/stream?token=s3cret&author=ann&last-event-id={seq - 1}"
        ) as response:
            assert response.status == 200 and response.content_type == "text/event-stream"
            line = await asyncio.wait_for(response.content.readline(), 5)
            assert line == f"id: {seq}\n".encode()


async def test_stop_ends_open_sse_streams_at_once(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_daemon(tmp_path) as daemon:
        # after what the store holds already (the daemon may record its own
        # entries at start): the stream has nothing to send before the stop
        assert daemon.store is not None
        after = daemon.store.last_seq
        response = await http.get(
            base_url(daemon) + f"/api/alpha/evidence/stream?last-event-id={after}"
        )
        assert response.status == 200
        started = time.monotonic()
        await daemon.stop()
        assert time.monotonic() - started < 2  # not the HTTP drain timeout
        assert await asyncio.wait_for(response.content.read(), 5) == b""
        response.release()


def test_openapi_lists_the_page_metrics_and_reload() -> None:
    paths = openapi_document()["paths"]
    assert "text/html" in paths["/"]["get"]["responses"]["200"]["content"]
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert "requestBody" not in paths["/api/alpha/config/reload"]["post"]
    assert any(
        p["name"] == "token" for p in paths["/api/alpha/evidence/stream"]["get"]["parameters"]
    )
