"""The session a runtime starts to answer a human's line links back to it
(issue 17): ``peripheral_start.request`` makes the session's goal entry a
reply to the human's line, so the chain from the answer reaches the ask.
A real IRC user on the embedded server, a real runtime over WebSocket."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from futon.agents.drivers.script import ScriptDriver
from futon.evidence import EvidenceQuery
from tests.agents.conftest import entries, running_agent
from tests.support import until
from tests.transports.irc.kit import RawClient
from tests.transports.kit import connected, running_daemon


async def test_the_session_started_for_a_human_line_replies_to_it(tmp_path: Path) -> None:
    driver = ScriptDriver([{"text": "it says hello"}])
    async with running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon:
        alice = await RawClient.connect(daemon.ports["irc"])
        alice.auto_pong = True
        await alice.register("alice")
        await alice.join("#futon")
        try:
            async with running_agent(daemon, driver) as runtime:
                await alice.send("PRIVMSG #futon :claude-1: what is in the README?")
                await until(lambda: len(runtime.outcomes) == 1)
                assert runtime.outcomes[0].ok
        finally:
            await alice.close()
        (asked,) = [
            e for e in await entries(daemon, type="forum-post", author="alice")
            if "README" in e["evidence/body"]["text"]
        ]
        (goal,) = daemon.store.query(EvidenceQuery(claim_type="goal", author="claude-1", limit=10)).entries
        assert goal["evidence/in-reply-to"] == asked["evidence/id"]
        assert goal["evidence/body"]["request"] == asked["evidence/id"]
        (answer,) = await entries(daemon, type="forum-post", author="claude-1")
        assert answer["evidence/in-reply-to"] == asked["evidence/id"]


async def test_a_request_the_store_does_not_hold_is_invalid_input(tmp_path: Path) -> None:
    async with (
        running_daemon(tmp_path) as daemon,
        aiohttp.ClientSession() as http,
        connected(http, daemon, "claude-1") as claude,
    ):
        refused = await claude.ask({"type": "peripheral_start", "peripheral_id": "explore", "request": "nope"})
        assert (refused["type"], refused["code"]) == ("error", "invalid-input"), refused
        assert refused["context"] == {"request": "nope"}
        assert daemon.runner is not None and daemon.runner.sessions("claude-1") == []
