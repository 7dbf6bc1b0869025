"""The runtime sends a turn's request as the session's goal and puts the
related prior work the daemon answers with into the model's context."""

from __future__ import annotations

import aiohttp

from futon.agents.drivers.script import ScriptDriver
from futon.daemon.app import Daemon
from tests.agents.conftest import ask_by_chat, running_agent


async def test_related_prior_work_reaches_the_models_context(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    finding = daemon.store.append_sync(
        {
            "subject": {"ref/type": "session", "ref/id": "sess-old"},
            "type": "coordination",
            "claim-type": "conclusion",
            "author": "codex-1",
            "body": {"reason": "the README greeting is stale; it still says hello"},
        }
    )
    driver = ScriptDriver([{"text": "already known"}])
    async with running_agent(daemon, driver):
        assert await ask_by_chat(http, daemon, "is the README greeting stale?") == "already known"
    messages, _ = driver.requests[0]
    system = messages[0]
    assert system.role == "system"
    assert finding["evidence/id"] in system.content and "stale" in system.content
