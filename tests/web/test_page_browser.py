"""The evidence page in a real browser: headless Chromium (Debian's
``chromium``, driven by Playwright) against a real ``futon serve`` with an
admin token. Pins the page's data flow: token from ``?token=`` into
sessionStorage, the timeline, a live entry through SSE, the thread view's
reply tree with a fork, and that entry content is shown as text."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support import make_config, start_futon, wait_for_ports

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
TOKEN = "page-s3cret"


def browser_or_fail() -> Any:
    """Playwright's sync API, or a failure that says how to get a browser:
    a machine without one must not pass this test by skipping it."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (`make browser`, or apt-get install chromium)"
        )
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -e '.[test]'")
    return sync_playwright, expect


def post_entry(base: str, **fields: Any) -> dict[str, Any]:
    entry = {
        "subject": {"ref/type": "thread", "ref/id": "t-page"},
        "type": "forum-post",
        "claim-type": "observation",
        "author": "ann",
        **fields,
    }
    request = urllib.request.Request(
        base + "/api/alpha/evidence", data=json.dumps(entry).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        return json.loads(response.read())["entry"]


def test_page_shows_live_entries_and_a_thread_tree(tmp_path: Path) -> None:
    sync_playwright, expect = browser_or_fail()
    config = make_config(
        tmp_path / "cfg", http__admin_token_sha256=hashlib.sha256(TOKEN.encode()).hexdigest()
    )
    proc = start_futon("serve", "--config", str(config))
    try:
        base = f"http://127.0.0.1:{wait_for_ports(tmp_path / 'cfg' / 'var', proc)['http']}"
        root = post_entry(
            base, **{"claim-type": "question", "body": {"text": "which file adds numbers?"}}
        )
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS
            )
            try:
                page = context.new_page()
                problems: list[str] = []
                page.on("pageerror", lambda error: problems.append(str(error)))
                page.on(
                    "console",
                    lambda msg: problems.append(msg.text) if msg.type == "error" else None,
                )
                page.goto(f"{base}/?token={TOKEN}")
                timeline = page.locator("#timeline")
                timeline.locator(f'li[data-id="{root["evidence/id"]}"]').wait_for()
                assert "token" not in page.url  # moved to sessionStorage
                page.locator('#agents li[data-agent="claude-1"]').wait_for()
                page.locator("#stream-state.live").wait_for()

                # live: posted after the page loaded, shown as text
                hostile = '<img src=x onerror="window.__pwned = 1">'
                live = post_entry(
                    base, **{"in-reply-to": root["evidence/id"], "body": {"text": hostile}}
                )
                item = timeline.locator(f'li[data-id="{live["evidence/id"]}"]')
                item.wait_for(timeout=10_000)
                assert hostile in item.inner_text()
                assert (
                    timeline.locator("img").count() == 0 and page.evaluate("window.__pwned") is None
                )
                assert (
                    timeline.locator("li.entry").first.get_attribute("data-id")
                    == live["evidence/id"]
                )  # newest on top

                # a thread: root → live → (reply, fork) and root → other
                reply = post_entry(
                    base,
                    **{
                        "in-reply-to": live["evidence/id"],
                        "claim-type": "evidence",
                        "body": {"text": "src/app.py"},
                    },
                )
                fork = post_entry(
                    base,
                    **{
                        "fork-of": live["evidence/id"],
                        "claim-type": "conjecture",
                        "body": {"text": "or maybe lib/"},
                    },
                )
                other = post_entry(
                    base,
                    **{
                        "in-reply-to": root["evidence/id"],
                        "author": "bob",
                        "body": {"text": "a side note"},
                    },
                )
                timeline.locator(f'li[data-id="{other["evidence/id"]}"]').wait_for(timeout=10_000)
                timeline.locator(f'li[data-id="{reply["evidence/id"]}"]').click()
                thread = page.locator("#thread")
                thread.locator(f'li.node[data-id="{other["evidence/id"]}"]').wait_for()
                assert thread.locator("li.node").count() == 5
                assert (
                    thread.locator(f'li.node.selected[data-id="{reply["evidence/id"]}"]').count()
                    == 1
                )
                live_node = thread.locator(f'li.node[data-id="{live["evidence/id"]}"]')
                assert (
                    live_node.locator(f'li.node.fork[data-id="{fork["evidence/id"]}"]').count() == 1
                )  # nested under its parent
                assert live_node.locator(f'li.node[data-id="{reply["evidence/id"]}"]').count() == 1
                assert (
                    "5 entries" in page.locator("#thread-meta").inner_text()
                    and "1 fork(s)" in page.locator("#thread-meta").inner_text()
                )

                # the open thread follows new replies
                late = post_entry(
                    base,
                    **{
                        "in-reply-to": reply["evidence/id"],
                        "claim-type": "conclusion",
                        "body": {"text": "fixed"},
                    },
                )
                thread.locator(f'li.node[data-id="{late["evidence/id"]}"]').wait_for(timeout=10_000)
                assert "closed" in page.locator("#thread-meta").inner_text()

                # filters: only bob's entries
                page.fill('#filters input[name="author"]', "bob")
                page.click('#filters button[type="submit"]')
                # not wait_for_function: it evaluates a string, which the page's CSP forbids
                expect(timeline.locator("li.entry")).to_have_count(1)
                assert (
                    timeline.locator("li.entry").first.get_attribute("data-id")
                    == other["evidence/id"]
                )
                assert problems == []
            finally:
                context.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
