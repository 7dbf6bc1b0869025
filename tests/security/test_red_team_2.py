"""Red-team attacks, second pass: the surfaces added since the first
(the one chat path, sessions history, /dispatch receipts, evidence
compaction, config files the CLI writes), through the public surface of a
real daemon (``arena``). "escape" marks an attack that found a way out
before its fix; the rest document walls that held.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from futon.config.yamlfile import atomic_write
from futon.peripherals import runner as runner_module
from tests.security.conftest import Arena
from tests.security.test_identity import (
    CLAUDE_TOKEN,
    LIMITED_TOKEN,
    dispatch,
    with_limited_agent,
)
from tests.transports.irc.kit import RawClient


async def post(
    arena: Arena, path: str, body: Any, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with arena.http.post(arena.base + path, json=body, headers=headers) as response:
        return response.status, json.loads(await response.text())


async def get(arena: Arena, path: str) -> tuple[int, dict[str, Any]]:
    async with arena.http.get(arena.base + path) as response:
        return response.status, json.loads(await response.text())


# ------------------------------------------------------------------ escape: forged session history


async def test_an_agent_cannot_rewrite_another_agents_recorded_session(
    arena: Arena, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``limited`` posts a conclusion (reason ``shutdown``, a fruit) and
    steps into claude-1's ended session: the recorded view must still be
    claude-1's own story."""
    monkeypatch.setattr(runner_module, "KEEP_STOPPED", 0)  # the view comes from evidence only
    await with_limited_agent(arena, admin=False)
    async with arena.agent("claude-1", token=CLAUDE_TOKEN) as claude:
        started = await arena.start(claude, "edit")
        sid = started["session_id"]
        stopped = await claude.ask({"type": "peripheral_stop", "reason": "done"})
        assert stopped["type"] == "peripheral_stopped", stopped
        await arena.start(claude, "edit")  # forgets the stopped one (KEEP_STOPPED = 0)
    status, before = await get(arena, f"/session/{sid}")
    assert status == 200 and before["state"] == "stopped" and before["reason"] == "done", before

    def forged(claim: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "author": "limited",
            "type": "coordination",
            "claim-type": claim,
            "subject": {"ref/type": "session", "ref/id": sid},
            "session-id": sid,
            "tags": ["peripheral", "edit"],
            "body": body,
        }

    for _ in range(3):
        status, _ = await post(
            arena, "/api/alpha/evidence", forged("step", {"tool": "bash"}), LIMITED_TOKEN
        )
        assert status == 201
    conclusion = forged(
        "conclusion", {"reason": "shutdown", "fruit": {"pwned": True}, "peripheral": "deploy"}
    )
    status, _ = await post(arena, "/api/alpha/evidence", conclusion, LIMITED_TOKEN)
    assert status == 201  # limited may write evidence as itself; it must not count as claude-1's
    goal = forged("goal", {"peripheral": "deploy"})
    status, _ = await post(arena, "/api/alpha/evidence", goal, LIMITED_TOKEN)
    assert status == 201

    status, after = await get(arena, f"/session/{sid}")
    assert status == 200
    assert after == before, "another agent's evidence rewrote claude-1's session"
    status, listed = await get(arena, "/api/alpha/sessions?limit=50")
    mine = [s for s in listed["sessions"] if s["session_id"] == sid]
    assert mine == [before], "a forged goal listed claude-1's session again (or as limited's)"


async def test_hostile_session_ids_and_limits_are_typed_errors(arena: Arena) -> None:
    # (a request line over 8 KiB is refused by aiohttp's parser before futon sees it)
    for sid in ("x" * 8000, "%00", "..%2F..%2Fetc", "sess-\u202e", "%FF"):
        async with arena.http.get(arena.base + f"/session/{sid}") as response:
            body = json.loads(await response.text())
            assert response.status in (400, 404) and body["error"] is True, (sid[:20], body)
    for limit in ("-1", "0", "999999999999999999999", "abc", "1e9"):
        status, body = await get(arena, f"/api/alpha/sessions?limit={limit}")
        assert status == 400 and body["code"] == "invalid-query", (limit, body)


# ------------------------------------------------------------------ escape: CTCP through the chat path


async def test_an_agents_line_cannot_send_ctcp_to_irc_users(arena: Arena) -> None:
    """A relayed line is text: ``\\x01DCC``/``VERSION`` in any line would make
    a human's client answer or offer a connection. Only a whole-line
    ``ACTION`` (``/me``) stays a CTCP."""
    human = await RawClient.connect(arena.irc_port)
    await human.register("alice")
    await human.join("#futon")
    async with arena.agent("claude-1") as claude:
        lines = [
            "\x01DCC SEND evil 2130706433 4444 100\x01",
            "hello\n\x01VERSION\x01\r\nPRIVMSG #futon :injected\0tail",
            "\x01ACTION waves\x01",
        ]
        for text in lines:
            await claude.send({"type": "chat", "to": "#futon", "text": text})
        await claude.send({"type": "irc_response", "nick": "alice", "text": "\x01PING 1\x01"})
        await human.ping()
    said = [m for m in human.history if m.command == "PRIVMSG"]
    assert said and all((m.source or "").startswith("claude-1!") for m in said), human.transcript()
    texts = [m.params[-1] for m in said]
    assert [t for t in texts if "\x01" in t] == ["\x01ACTION waves\x01"], texts
    assert not any("\0" in t for t in texts)
    await human.close()


# ------------------------------------------------------------------ held: receipts, compaction, voices


async def test_a_replayed_msg_id_never_returns_another_agents_receipt(arena: Arena) -> None:
    await with_limited_agent(arena, admin=False)
    payload = {"actions": [{"tool": "read", "args": ["README.md"]}]}
    status, theirs = await dispatch(arena, CLAUDE_TOKEN, "claude-1", payload, "m-shared")
    assert status == 200, theirs
    status, mine = await dispatch(arena, LIMITED_TOKEN, "claude-1", payload, "m-shared")
    assert "hello" not in json.dumps(mine), "limited got claude-1's receipt"
    assert mine.get("code") != "duplicate-msg-id"


async def test_an_agent_token_cannot_compact_evidence(arena: Arena) -> None:
    await with_limited_agent(arena, admin=True)
    status, body = await post(
        arena, "/api/alpha/evidence/compact", {"before": "2999-01-01T00:00:00Z"}, LIMITED_TOKEN
    )
    assert status == 403 and body["code"] == "forbidden", body


async def test_an_http_caller_cannot_speak_as_an_agent_with_the_agents_nick(arena: Arena) -> None:
    """With an admin token, an agent token speaks as its own agent whatever
    ``from`` says (a nick, the daemon's nick)."""
    await with_limited_agent(arena, admin=True)
    human = await RawClient.connect(arena.irc_port)
    await human.register("alice")
    await human.join("#futon")
    for name in ("claude-1", "CLAUDE-1", "futon"):
        status, said = await post(
            arena, "/api/alpha/chat", {"to": "#futon", "text": "hi", "from": name}, LIMITED_TOKEN
        )
        assert status == 202 and said["networks"] == ["embedded"], said
    await human.ping()
    sources = {m.source or "" for m in human.history if m.command == "PRIVMSG"}
    assert sources and all(s.startswith("limited!") for s in sources), sources
    await human.close()


# ------------------------------------------------------------------ escape: config files others can write


def test_a_rewritten_config_file_is_never_group_or_world_writable(tmp_path: Path) -> None:
    """``futon admin-token`` / ``agent token --rotate`` rewrite futon.yaml
    and agents.yaml keeping the file's mode: a file anyone may write would
    let anyone put in their own token's hash."""
    path = tmp_path / "futon.yaml"
    path.write_text("a: 1\n")
    os.chmod(path, 0o666)
    atomic_write(path, "a: 2\n")
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o022 == 0, oct(mode)
    assert path.read_text() == "a: 2\n"


def test_futon_init_writes_no_group_or_world_writable_file(tmp_path: Path) -> None:
    from futon.cli.init_cmd import init_config

    old = os.umask(0)
    try:
        written = init_config(tmp_path / "cfg")
    finally:
        os.umask(old)
    loose = [p for p in written if stat.S_IMODE(p.stat().st_mode) & 0o022]
    assert not loose, loose[:3]


async def test_concurrent_appends_during_compaction_lose_nothing(arena: Arena) -> None:
    async def one(index: int) -> int:
        entry = {"author": "http", "type": "forum-post", "claim-type": "observation",
                 "subject": {"ref/type": "thread", "ref/id": "compact"}, "body": {"n": index}}  # fmt: skip
        status, answer = await post(arena, "/api/alpha/evidence", entry)
        assert status == 201, answer
        return status

    async def compact() -> int:
        status, _ = await post(
            arena, "/api/alpha/evidence/compact", {"before": "2999-01-01T00:00:00Z"}
        )
        return status

    statuses = await asyncio.gather(
        *(one(i) for i in range(40)), compact(), *(one(i) for i in range(40, 80))
    )
    assert set(statuses) <= {200, 201}, statuses
    _, counted = await get(arena, "/api/alpha/evidence/count?subject-id=compact")
    assert counted["count"] == 80, counted


# ------------------------------------------------------------------ escape: alfworld's JSON


@pytest.mark.parametrize("body", [b"[" * 5000 + b"]" * 5000, b'{"seed": ' + b"1" * 5000 + b"}"])
async def test_alfworld_hostile_json_is_invalid_json_not_a_500(body: bytes) -> None:
    from futon.peripherals.domain.alfworld_server import make_app, running

    async with running(make_app(), "127.0.0.1", 0) as url, aiohttp.ClientSession() as http:
        for path in ("/reset", "/step"):
            async with http.post(url + path, data=body) as response:
                answer = json.loads(await response.text())
                assert response.status == 400 and answer["code"] == "invalid-json", answer
        async with http.post(url + "/reset", data=b"x" * 20_000) as response:
            assert response.status == 413


async def test_alfworld_keeps_at_most_max_games(tmp_path: Path) -> None:
    from futon.peripherals.domain.alfworld_server import GameTable, make_app, running

    table = GameTable(max_games=4)
    async with running(make_app(table), "127.0.0.1", 0) as url, aiohttp.ClientSession() as http:
        for index in range(20):
            async with http.post(url + "/reset", json={"session": f"s{index}"}) as response:
                assert response.status == 200
        async with http.post(url + "/reset", json={"session": "x" * 129}) as response:
            assert response.status == 400
    assert len(table.games) == 4


@pytest.mark.parametrize("name", ["CLAUDE-1", "Claude-1"])
async def test_an_http_caller_naming_an_agent_in_another_case_is_not_recorded_as_it(
    arena: Arena, name: str
) -> None:
    """IRC folds case, so ``CLAUDE-1`` is claude-1 (its private threads, its
    nick): without claude-1's token the line is the HTTP caller's."""
    human = await RawClient.connect(arena.irc_port)
    await human.register("alice")
    await human.join("#futon")
    status, said = await post(
        arena, "/api/alpha/chat", {"to": "alice", "text": "I am the agent", "from": name}
    )
    assert status == 202, said
    await human.ping()
    from futon.evidence.query import EvidenceQuery

    assert arena.daemon.store is not None
    posts = arena.daemon.store.query(EvidenceQuery(type="forum-post", limit=100)).entries
    authors = [
        e["evidence/author"] for e in posts if "I am the agent" in e["evidence/body"]["text"]
    ]
    assert authors == ["http"], authors
    await human.close()


async def test_a_chat_flood_over_http_keeps_the_daemon_responsive_and_bounded(arena: Arena) -> None:
    human = await RawClient.connect(arena.irc_port)
    await human.register("alice")
    await human.join("#futon")
    human.auto_pong = True
    text = ("flood " * 60 + "\n") * 160  # ~58 KB, 160 lines
    before = arena.rss()
    async with arena.responsive():
        # One caller, one line after another: each request is bounded (64 KiB
        # of text); HTTP has no per-agent line rate yet (see the report).
        for _ in range(30):
            status, said = await post(arena, "/api/alpha/chat", {"to": "#futon", "text": text})
            assert status == 202, said
    assert arena.rss() - before < 200 * 1024 * 1024
    await human.close()


def test_futon_init_force_replaces_a_symlink_never_the_file_it_points_at(tmp_path: Path) -> None:
    from futon.cli.init_cmd import init_config

    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "agents.yaml").symlink_to(victim)
    with pytest.raises(Exception, match="refusing to overwrite"):
        init_config(folder)
    init_config(folder, force=True)
    assert victim.read_text() == "keep\n"
    assert not (folder / "agents.yaml").is_symlink()
