"""Identity that cannot be borrowed (issue 13).

- An action runs with the caller's own identity and permissions: an agent
  restricted to ``chat`` cannot run tools through another agent (HTTP
  ``/dispatch`` with its own token, or a WS ``message`` frame), nor outside
  its own envelope by dispatching to itself. Only the admin may run actions
  as another agent, and the evidence then names the admin, not the agent.
- An agent's IRC nick is the agent's: a human who took it before the agent
  was registered is renamed, cannot take it back, is never recorded as the
  agent, and never receives the agent's private messages.

Every attack goes through the public surface of a real daemon (``arena``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from ruamel.yaml import YAML

from futon.evidence.query import EvidenceQuery
from tests.security.conftest import Arena
from tests.transports.irc.kit import RawClient

ADMIN_TOKEN = "admin-token-identity-5c2e8a"
LIMITED_TOKEN = "limited-token-9a7b3c41"
CLAUDE_TOKEN = "claude-token-1d4e6f07"
BASH_MARKER = {"peripheral": "edit", "actions": [{"tool": "bash", "args": ["touch pwned"]}]}
READ = {"actions": [{"tool": "read", "args": ["README.md"]}]}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def edit_yaml(path: Any, change: Callable[[Any], None]) -> None:
    yaml = YAML()
    doc = yaml.load(path)
    change(doc)
    yaml.dump(doc, path)


async def with_limited_agent(arena: Arena, *, admin: bool) -> None:
    """claude-1 gets a token; ``limited`` (type mock, ``peripherals: [chat]``)
    is added with its own; with ``admin`` the admin token is set. Applied by
    a config reload, as an operator would."""
    folder = arena.daemon.config.base_dir

    def agents(doc: Any) -> None:
        claude = next(a for a in doc["agents"] if a["id"] == "claude-1")
        claude["token_sha256"] = digest(CLAUDE_TOKEN)
        doc["agents"].append({"id": "limited", "type": "mock", "token_sha256": digest(LIMITED_TOKEN),
                              "channels": ["#futon"], "peripherals": ["chat"]})  # fmt: skip

    edit_yaml(folder / "agents.yaml", agents)
    if admin:
        edit_yaml(
            folder / "futon.yaml",
            lambda doc: doc["http"].__setitem__("admin_token_sha256", digest(ADMIN_TOKEN)),
        )
    plan = await arena.daemon.reload()
    assert "limited" in plan["agents"]["added"], plan


async def dispatch(
    arena: Arena, token: str | None, to: str, payload: Any, msg_id: str
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"msg_id": msg_id, "to": to, "payload": payload}
    async with arena.http.post(arena.base + "/dispatch", json=body, headers=headers) as response:
        return response.status, json.loads(await response.text())


def entries(arena: Arena, **filters: Any) -> list[dict[str, Any]]:
    assert arena.daemon.store is not None
    return arena.daemon.store.query(EvidenceQuery(limit=1000, **filters)).entries


def assert_claude_did_nothing(arena: Arena) -> None:
    assert not (arena.workspace / "pwned").exists(), "the borrowed bash ran"
    assert arena.daemon.runner is not None and arena.daemon.runner.sessions("claude-1") == []
    assert entries(arena, author="claude-1") == [], "evidence names claude-1 for what another did"
    session_ids = {e.get("evidence/session-id") for e in entries(arena)} - {None}
    assert not any(
        arena.daemon.runner.get(sid).agent_id == "claude-1"
        for sid in session_ids
        if _known(arena, sid)
    )


def _known(arena: Arena, session_id: str) -> bool:
    assert arena.daemon.runner is not None
    return any(s.id == session_id for s in arena.daemon.runner.sessions())


# ------------------------------------------------------------------ actions


async def test_an_agent_token_cannot_run_actions_as_another_agent_over_http(arena: Arena) -> None:
    await with_limited_agent(arena, admin=True)
    for n, payload in enumerate([BASH_MARKER, READ]):
        status, body = await dispatch(arena, LIMITED_TOKEN, "claude-1", payload, f"borrow-{n}")
        assert (status, body["code"]) == (403, "forbidden"), body
        assert "claude-1" in body["message"] and "admin" in body["message"]
    assert_claude_did_nothing(arena)
    refusals = entries(arena, claim_type="tension", author="limited")
    assert {e["evidence/body"]["msg_id"] for e in refusals} == {"borrow-0", "borrow-1"}
    arena.assert_walls_held()


async def test_an_agent_cannot_run_actions_as_another_agent_over_ws(arena: Arena) -> None:
    await with_limited_agent(arena, admin=False)
    async with arena.agent("limited", LIMITED_TOKEN) as limited:
        for n, payload in enumerate([BASH_MARKER, READ, "plain text runs the routed peripheral"]):
            error = await limited.ask(
                {
                    "type": "message",
                    "msg_id": f"ws-borrow-{n}",
                    "to": "claude-1",
                    "payload": payload,
                }
            )
            assert (error["type"], error["code"]) == ("error", "forbidden"), error
    assert_claude_did_nothing(arena)


async def test_coordination_between_agents_still_flows(arena: Arena) -> None:
    await with_limited_agent(arena, admin=True)
    async with (
        arena.agent("claude-1", CLAUDE_TOKEN) as claude,
        arena.agent("limited", LIMITED_TOKEN) as limited,
    ):
        await limited.send({"type": "message", "msg_id": "q-1", "to": "claude-1", "req_id": "q",
                            "payload": {"coordination": True, "text": "status?"}})  # fmt: skip
        pushed = await claude.push_of("message")
        assert pushed["from"] == {"value": "limited", "type": "agent"}
        await claude.send({"type": "reply", "msg_id": "q-1", "payload": "green"})
        receipt = await limited.reply_to("q")
    assert receipt["reply"] == "green"


async def test_without_an_admin_token_an_agents_token_still_names_the_caller(arena: Arena) -> None:
    """Loopback without an admin token: no token is the admin; an agent's
    token is that agent, which may not borrow claude-1; a token nobody owns
    is refused."""
    await with_limited_agent(arena, admin=False)
    status, body = await dispatch(arena, LIMITED_TOKEN, "claude-1", BASH_MARKER, "loopback-borrow")
    assert (status, body["code"]) == (403, "forbidden")
    assert_claude_did_nothing(arena)
    status, body = await dispatch(arena, "nobody-has-this-token", "claude-1", READ, "unknown-token")
    assert (status, body["code"]) == (401, "unauthorized")
    status, body = await dispatch(arena, None, "claude-1", READ, "loopback-admin")
    assert status == 200 and body["route"] == "peripheral/run-chain", body


async def test_the_admin_runs_actions_as_an_agent_and_the_evidence_names_the_admin(
    arena: Arena,
) -> None:
    await with_limited_agent(arena, admin=True)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    body = {
        "msg_id": "admin-1",
        "from": "claude-1",
        "to": "claude-1",
        "payload": READ,
    }  # claims claude-1
    async with arena.http.post(arena.base + "/dispatch", json=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        receipt = await response.json()
    assert receipt["results"][0]["ok"] is True
    assert arena.daemon.runner is not None
    session = arena.daemon.runner.get(receipt["session_id"])
    assert session.agent_id == "claude-1"  # the admin may run as the agent, in its envelope
    (record,) = [
        e for e in entries(arena, tags=("dispatch",)) if e["evidence/body"]["msg_id"] == "admin-1"
    ]
    assert record["evidence/author"] == "http" and record["evidence/body"]["from"] == "http"
    started = entries(arena, session_id=receipt["session_id"])
    assert any(
        e["evidence/body"].get("context", {}).get("dispatched-by") == "http" for e in started
    ), started


async def test_an_agent_dispatching_to_itself_keeps_its_own_envelope(arena: Arena) -> None:
    await with_limited_agent(arena, admin=True)
    for n, payload in enumerate([BASH_MARKER, READ]):  # edit; and the default route (explore)
        status, body = await dispatch(arena, LIMITED_TOKEN, "limited", payload, f"self-{n}")
        assert (status, body["code"]) == (403, "peripheral-not-permitted"), body
    async with arena.agent("limited", LIMITED_TOKEN) as limited:
        error = await limited.ask(
            {"type": "message", "msg_id": "self-ws", "to": "limited", "payload": BASH_MARKER}
        )
        assert (error["type"], error["code"]) == ("error", "peripheral-not-permitted")
    assert not (arena.workspace / "pwned").exists()
    status, body = await dispatch(
        arena, LIMITED_TOKEN, "limited", {"peripheral": "chat", "actions": []}, "self-chat"
    )
    assert status == 200 and body["peripheral_id"] == "chat", body
    (record,) = [
        e for e in entries(arena, tags=("dispatch",)) if e["evidence/body"]["msg_id"] == "self-chat"
    ]
    assert record["evidence/author"] == "limited"


# ------------------------------------------------------------------ IRC nicks


def lines_with(client: RawClient, command: str, text: str) -> list[Any]:
    return [m for m in client.history if m.command == command and text in " ".join(m.params)]


async def test_registering_an_agent_takes_its_nick_from_a_human(arena: Arena) -> None:
    human = await RawClient.connect(arena.irc_port)
    await human.register("newbot")
    await human.send("JOIN #futon")
    await human.expect("366")
    alice = await RawClient.connect(arena.irc_port)
    await alice.register("alice")
    await alice.send("JOIN #futon")
    await alice.expect("366")

    def add_newbot(doc: Any) -> None:
        doc["agents"].append({"id": "newbot", "type": "mock", "channels": ["#futon"]})

    edit_yaml(arena.daemon.config.base_dir / "agents.yaml", add_newbot)
    await arena.daemon.reload()

    notice = await human.expect("NOTICE", "newbot")
    assert "reserved" in notice.text and "agent" in notice.text
    renamed = await human.expect("NICK", where=lambda m: (m.source or "").startswith("newbot!"))
    guest = renamed.params[0]
    assert guest.lower() != "newbot"
    human.nick = guest
    assert (await alice.expect("NICK", guest)).source.startswith("newbot!")

    for attempt in ("newbot", "NEWBOT", "NewBot"):
        await human.send(f"NICK {attempt}")
        await human.expect_numeric("433", attempt)

    async with arena.agent("newbot") as newbot:
        await human.send("PRIVMSG #futon :hello, I am definitely the bot")
        await alice.expect("PRIVMSG", "#futon")
        await alice.send("PRIVMSG newbot :the deploy key is in the vault")
        pushed = await newbot.push_of("irc_message")
        assert pushed["from"] == "alice" and pushed.get("private") is True
        await human.ping()
    assert not lines_with(human, "PRIVMSG", "deploy key"), (
        "the agent's private message reached the human"
    )
    said = [
        e
        for e in entries(arena, type="forum-post")
        if "definitely the bot" in e["evidence/body"]["text"]
    ]
    assert [e["evidence/author"] for e in said] == [guest]
    assert not [e for e in entries(arena, author="newbot") if e["evidence/type"] == "forum-post"]
    await human.close()
    await alice.close()


async def test_an_agent_registered_over_http_takes_its_nick_and_keeps_it(arena: Arena) -> None:
    human = await RawClient.connect(arena.irc_port)
    await human.register("botx")
    async with arena.http.post(
        arena.base + "/api/alpha/agents", json={"agent_id": "botx", "type": "mock"}
    ) as response:
        assert response.status == 201
    notice = await human.expect("NOTICE", "botx")
    assert "reserved" in notice.text
    renamed = await human.expect("NICK")
    human.nick = renamed.params[0]
    await human.send("NICK botx")
    await human.expect_numeric("433", "botx")
    await human.close()


async def test_a_human_with_an_agents_name_is_never_recorded_as_the_agent(arena: Arena) -> None:
    """The daemon's nick and every agent's nick are refused outright; and
    where a human does carry an agent's name (another network in bot mode),
    the relay records the line under ``irc:<nick>``."""
    human = await RawClient.connect(arena.irc_port)
    await human.send("NICK claude-1", "NICK Futon", "NICK CLAUDE-1")
    for nick in ("claude-1", "Futon", "CLAUDE-1"):
        await human.expect("433", "*", nick)
    await human.close()
    relay = arena.daemon.relay
    assert relay is not None
    side = relay.sides[0]
    await relay.on_message(side, "Claude-1", "#futon", "merge it, I am claude", private=False)
    (line,) = [
        e for e in entries(arena, type="forum-post") if "merge it" in e["evidence/body"]["text"]
    ]
    assert line["evidence/author"] == "irc:Claude-1"
