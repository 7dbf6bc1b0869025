"""The evidence page in a real browser: headless Chromium (Debian's
``chromium``, driven by Playwright) against a real ``futon serve`` with an
admin token. Pins the page's data flow: token from ``?token=`` into
sessionStorage, the timeline, a live entry through SSE, the thread view's
reply tree with a fork, and that entry content is shown as text. And the
conversation view (issue 17) against a real daemon with a real WebSocket
agent: a human's question → the session it started → the agent's answer."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ruamel.yaml import YAML

from futon.daemon.app import Daemon
from futon.evidence import EvidenceQuery
from tests.support import make_config, start_futon, wait_for_ports
from tests.transports.kit import AgentClient, base_url, connected, daemon_of

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


# ------------------------------------------------------------------ conversations


def async_browser_or_fail() -> Any:
    """Playwright's async API (see :func:`browser_or_fail`)."""
    browser_or_fail()
    from playwright.async_api import async_playwright, expect

    return async_playwright, expect


@asynccontextmanager
async def conversation_daemon(folder: Path) -> AsyncIterator[Daemon]:
    """The shipped config (no admin token: loopback, the caller is the
    admin), explore asking a human before each ``grep``."""
    workspace = folder / "ws"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "app.py").write_text("def add(a, b):\n    return a - b\n")
    config = make_config(folder / "cfg", workspace=str(workspace), evidence__fsync="never")
    yaml = YAML()
    peripherals = yaml.load(config.parent / "peripherals.yaml")
    peripherals["peripherals"]["explore"]["ask"] = ["grep"]
    yaml.dump(peripherals, config.parent / "peripherals.yaml")
    async with daemon_of(config) as daemon:
        yield daemon


HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


async def a_session_for(
    http: aiohttp.ClientSession, daemon: Daemon, claude: AgentClient, question: str
) -> dict[str, str]:
    """claude-1 works on ``question``: a step, a refusal, a step a human
    approves, a user-request hop citing the question; the admin interrupts
    it. Returns the ids the page must show."""
    base = base_url(daemon)
    started = await claude.ask(
        {
            "type": "peripheral_start",
            "peripheral_id": "explore",
            "goal": "what does add do?",
            "request": question,
        }
    )
    assert started["type"] == "peripheral_started", started
    session = started["session_id"]
    read = await claude.ask({"type": "tool_action", "tool": "read", "args": ["src/app.py"]})
    assert read["ok"], read
    refused = await claude.ask(
        {"type": "tool_action", "tool": "write", "args": ["src/app.py", HOSTILE]}
    )
    assert (
        refused.get("code") == "tool-not-allowed" or refused["result"]["code"] == "tool-not-allowed"
    ), refused
    await claude.send({"type": "tool_action", "tool": "grep", "args": ["def add"], "req_id": "g1"})
    pending = await claude.push_of("approval_pending")
    url = f"{base}/api/alpha/approvals/{pending['approval_id']}"
    async with http.post(url, json={"decision": "approve", "reason": "read-only, fine"}) as decided:
        assert decided.status == 200, await decided.text()
    assert (await claude.reply_to("g1"))["ok"]
    hop = {"type": "hop", "to": "edit", "exit_condition": "user-request", "reason": "alice asked"}
    hopped = await claude.ask({**hop, "context": {"request": question}})
    assert hopped["type"] == "hopped", hopped
    async with http.post(f"{base}/api/alpha/sessions/{session}/interrupt") as stopped:
        assert stopped.status == 200, await stopped.text()
    store = daemon.store
    assert store is not None
    (goal,) = store.query(EvidenceQuery(session_id=session, claim_type="goal", limit=1)).entries
    (asked,) = store.query(
        EvidenceQuery(session_id=session, tags=("approval",), claim_type="question", limit=1)
    ).entries
    return {"session": session, "goal": goal["evidence/id"], "approval": asked["evidence/id"]}


async def attribute_list(locator: Any, name: str) -> list[str | None]:
    return [await locator.nth(i).get_attribute(name) for i in range(await locator.count())]


async def test_a_conversation_reads_question_session_answer(tmp_path: Path) -> None:
    async_playwright, expect = async_browser_or_fail()
    async with conversation_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http:
        base = base_url(daemon)
        store = daemon.store
        assert store is not None
        async with connected(http, daemon, "claude-1") as claude:
            line = {
                "to": "#futon",
                "text": f"claude-1: what does add do? {HOSTILE}",
                "from": "alice",
            }
            async with http.post(base + "/api/alpha/chat", json=line) as said:
                assert said.status == 202, await said.text()
            (question,) = store.query(
                EvidenceQuery(type="forum-post", author="alice", limit=5)
            ).entries
            qid = question["evidence/id"]
            ids = await a_session_for(http, daemon, claude, qid)

            async with async_playwright() as playwright:
                context = await playwright.chromium.launch_persistent_context(
                    str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS
                )
                try:
                    page = await context.new_page()
                    problems: list[str] = []
                    page.on("pageerror", lambda error: problems.append(str(error)))
                    page.on(
                        "console",
                        lambda msg: problems.append(msg.text) if msg.type == "error" else None,
                    )
                    await page.goto(f"{base}/#conversation={qid}")
                    talk = page.locator("#conversation")
                    parts = talk.locator(":scope > li.part")
                    await expect(parts).to_have_count(2)  # asked, worked on, not answered yet
                    await expect(talk.locator(":scope > li.part-none")).to_have_text(
                        "no answer yet"
                    )

                    # the answer arrives while the page is open (the live stream)
                    await claude.send({"type": "irc_response", "channel": "#futon", "in_reply_to": qid,
                                       "text": "add subtracts: a bug <b>here</b>"})  # fmt: skip
                    await expect(parts).to_have_count(3)
                    (answer,) = store.query(
                        EvidenceQuery(type="forum-post", author="claude-1", limit=5)
                    ).entries
                    assert answer["evidence/in-reply-to"] == qid
                    assert await attribute_list(parts, "data-part") == [
                        "question",
                        "session",
                        "answer",
                    ]
                    assert await attribute_list(parts, "data-id") == [
                        qid,
                        ids["goal"],
                        answer["evidence/id"],
                    ]
                    session = parts.nth(1)
                    assert await session.get_attribute("data-session") == ids["session"]
                    steps = session.locator("li.step")
                    assert await attribute_list(steps, "data-kind") == [
                        "goal", "step", "refusal", "approval-request", "approval-decision", "step", "hop", "conclusion",
                    ]  # fmt: skip
                    refusal = steps.nth(2)
                    assert await refusal.locator(".code").inner_text() == "tool-not-allowed"
                    assert "write src/app.py" in await refusal.inner_text()
                    assert "asks to" in await steps.nth(3).inner_text()
                    assert await steps.nth(4).locator(".by").inner_text() == "admin"
                    assert "grep def add" in await steps.nth(5).inner_text()
                    assert "explore → edit (user-request)" in await steps.nth(6).inner_text()
                    assert await steps.nth(7).locator(".reason").inner_text() == "interrupted"
                    assert "concluded: interrupted" in await session.locator(".status").inner_text()
                    assert "human" in await parts.nth(0).locator(".where").inner_text()
                    assert "<b>here</b>" in await parts.nth(2).inner_text()

                    # text stays text: nothing of the hostile line ran or became markup
                    assert HOSTILE in await parts.nth(0).locator(".text").inner_text()
                    assert await talk.locator("script, img, b").count() == 0
                    assert await page.evaluate("window.__pwned") is None

                    # from any entry of the session (an approval names its session,
                    # not the reply chain) the same conversation opens, that entry marked
                    await page.goto(f"{base}/#conversation={ids['approval']}")
                    await talk.locator(f'li.step.selected[data-id="{ids["approval"]}"]').wait_for()
                    assert await attribute_list(parts, "data-id") == [
                        qid,
                        ids["goal"],
                        answer["evidence/id"],
                    ]

                    # and from the thread panel
                    await page.locator(f'#timeline li[data-id="{answer["evidence/id"]}"]').click()
                    await page.locator(
                        f'#thread li.node.selected[data-id="{answer["evidence/id"]}"]'
                    ).wait_for()
                    await page.locator("#thread-conversation").click()
                    await talk.locator(
                        f'li.part.answer.selected[data-id="{answer["evidence/id"]}"]'
                    ).wait_for()
                    await page.locator("#conversation-close").click()
                    await expect(page.locator("#conversation-panel")).to_be_hidden()
                    assert problems == []
                finally:
                    await context.close()
