"""Evidence search over the wire (issue 21): GET /api/alpha/evidence/search,
WS evidence_query with q, the evidence-search tool, and related prior work
in peripheral_started — over real sockets against a real daemon."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from futon.daemon.app import Daemon
from futon.evidence import EvidenceQuery
from futon.evidence.search import MAX_QUERY_CHARS
from tests.transports.kit import base_url, connected


def entry(text: str, **overrides: Any) -> dict[str, Any]:
    body = {"subject": {"ref/type": "thread", "ref/id": "t"}, "type": "forum-post",
            "claim-type": "observation", "author": "joe", "body": {"text": text}}  # fmt: skip
    body.update(overrides)
    return body


async def call(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, url, **kwargs) as r:
        text = await r.text()
        return r.status, json.loads(text) if text and r.content_type == "application/json" else text


async def post(http: aiohttp.ClientSession, daemon: Daemon, raw: dict[str, Any]) -> str:
    status, body = await call(http, "POST", base_url(daemon) + "/api/alpha/evidence", json=raw)
    assert status == 201, body
    return str(body["evidence/id"])


async def test_http_search_ranks_filters_and_snippets(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    url = base_url(daemon) + "/api/alpha/evidence/search"
    scattered = await post(http, daemon, entry("retry later, the logic is elsewhere", author="ann"))
    phrase = await post(http, daemon, entry("the retry logic backs off too fast", author="bob"))
    status, body = await call(http, "GET", url, params={"q": "retry logic"})
    assert status == 200 and body["ok"] is True and body["count"] == 2
    assert [r["entry"]["evidence/id"] for r in body["results"]] == [phrase, scattered]
    assert [r["match"] for r in body["results"]] == ["phrase", "all"]
    assert "«retry logic»" in body["results"][0]["snippet"]
    status, body = await call(
        http, "GET", url, params={"q": "retry logic", "author": "ann", "limit": "5"}
    )
    assert [r["entry"]["evidence/id"] for r in body["results"]] == [scattered]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "?!"},
        {"q": "x" * (MAX_QUERY_CHARS + 1)},
        {"q": "x", "colour": "red"},
        {"q": "x", "type": "gossip"},
        {"q": "x", "limit": "-1"},
        {"q": "x", "cursor": "abc"},
    ],
)
async def test_http_search_bad_input_is_a_typed_400(
    daemon: Daemon, http: aiohttp.ClientSession, params: dict[str, str]
) -> None:
    status, body = await call(
        http, "GET", base_url(daemon) + "/api/alpha/evidence/search", params=params
    )
    assert (status, body["err"]) == (400, "invalid-query"), params


@pytest.mark.parametrize(
    "q", ['"unbalanced', "a AND", "NEAR(x y", "col:x*", "(((", "^x -y +z", "x" * 2000]
)
async def test_http_search_fts_syntax_is_never_a_500(
    daemon: Daemon, http: aiohttp.ClientSession, q: str
) -> None:
    await post(http, daemon, entry("x y z a col near and"))
    status, body = await call(
        http, "GET", base_url(daemon) + "/api/alpha/evidence/search", params={"q": q}
    )
    assert status in (200, 400), body
    assert status == 200 or body["err"] == "invalid-query"


async def test_ws_evidence_query_with_q(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    found = await post(http, daemon, entry("the gearbox grinds in third"))
    await post(http, daemon, entry("nothing relevant"))
    async with connected(http, daemon, "claude-1") as agent:
        result = await agent.ask(
            {"type": "evidence_query", "q": "gearbox", "filters": {"author": "joe"}}
        )
        assert result["type"] == "evidence_result" and result["count"] == 1
        assert result["entries"][0]["evidence/id"] == found
        assert (
            result["results"][0]["evidence_id"] == found and result["results"][0]["match"] == "all"
        )
        in_filters = await agent.ask({"type": "evidence_query", "filters": {"q": "gearbox"}})
        assert in_filters["count"] == 1
        plain = await agent.ask({"type": "evidence_query", "filters": {"author": "joe"}})
        assert "results" not in plain and plain["count"] == 2
        bad = await agent.ask({"type": "evidence_query", "q": "!!!"})
        assert bad["code"] == "invalid-query"


async def test_one_agent_finds_what_another_concluded(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    """Acceptance: one agent explores and concludes a finding; another,
    asked a related question, gets it in its session-start frame and
    through the evidence-search tool."""
    async with connected(http, daemon, "claude-1") as first:
        started = await first.ask({"type": "peripheral_start", "peripheral_id": "explore"})
        assert "related" not in started  # no goal, no search
        read = await first.ask({"type": "tool_action", "tool": "read", "args": ["src/app.py"]})
        assert read["ok"] is True
        stopped = await first.ask(
            {
                "type": "peripheral_stop",
                "reason": "finding: add() in src/app.py subtracts instead of adding",
            }
        )
        assert stopped["type"] == "peripheral_stopped"
    query = EvidenceQuery(session_id=started["session_id"], claim_type="conclusion")
    conclusion = daemon.store.query(query).entries[0]["evidence/id"]
    async with connected(http, daemon, "codex-1") as second:
        started = await second.ask(
            {
                "type": "peripheral_start",
                "peripheral_id": "explore",
                "goal": "why does add subtract?",
            }
        )
        assert started["type"] == "peripheral_started" and "evidence-search" in started["tools"]
        related = started["related"]
        assert related and related[0]["evidence_id"] == conclusion
        assert "subtract" in related[0]["summary"] and len(related[0]["summary"]) <= 200
        searched = await second.ask(
            {"type": "tool_action", "tool": "evidence-search", "args": ["add subtracts"]}
        )
        assert searched["ok"] is True
        ids = [hit["evidence_id"] for hit in searched["result"]["results"]]
        assert conclusion in ids
        hit = searched["result"]["results"][ids.index(conclusion)]
        assert hit["claim_type"] == "conclusion" and hit["author"] == "claude-1"
        empty = await second.ask(
            {"type": "tool_action", "tool": "evidence-search", "args": ["..."]}
        )
        assert empty["type"] == "tool_result" and empty["ok"] is False
        too_long = await second.ask(
            {"type": "tool_action", "tool": "evidence-search", "args": ["x" * 3000]}
        )
        assert too_long["code"] == "invalid-input"
        await second.ask({"type": "peripheral_stop"})
        nothing = await second.ask({"type": "peripheral_start", "goal": "?!"})
        assert nothing["related"] == []


async def test_dispatch_text_returns_related_work(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    found = await post(
        http, daemon, entry("the flux capacitor leaks", **{"claim-type": "conclusion"})
    )
    await post(
        http, daemon, entry("the flux capacitor was inspected")
    )  # an observation: not related work
    url = base_url(daemon) + "/dispatch"
    payload = {"text": "look at the flux capacitor", "actions": []}
    status, body = await call(
        http, "POST", url, json={"msg_id": "m-1", "to": "claude-1", "payload": payload}
    )
    assert status == 200, body
    assert [r["evidence_id"] for r in body["related"]] == [found]
    status, body = await call(
        http, "POST", url, json={"msg_id": "m-2", "to": "claude-1", "payload": {"actions": []}}
    )
    assert status == 200 and "related" not in body
