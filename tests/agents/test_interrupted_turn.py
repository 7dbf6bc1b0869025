"""An interrupted turn (issue 17): a human's ``futon: stop claude-1``
during a long test run ends the agent's turn at once, and the runtime says
so in the channel — from the agent's nick — instead of carrying on."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from futon.agents.drivers.openai import OpenAIDriver
from futon.config.models import SandboxSpec
from futon.evidence import EvidenceQuery
from futon.peripherals.spec import Peripheral
from tests.agents.conftest import FAST_RETRY, running_agent
from tests.agents.fakes import Call, FakeOpenAI
from tests.transports.irc.kit import RawClient
from tests.transports.kit import running_daemon
from tests.transports.test_humans_in_the_loop import pids_mentioning

PYTEST = f"{sys.executable} -m pytest"


async def test_futon_stop_ends_the_turn_and_the_agent_says_so(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0,
                              tools__test_commands=[f"{PYTEST} -q {{paths}}"]) as daemon:  # fmt: skip
        assert daemon.runner is not None and daemon.approvals is not None
        daemon.approvals.apply_settings(["joe"], 300)
        test = daemon.runner.peripherals["test"]
        extras = SandboxSpec(read_only=sorted({sys.prefix, sys.base_prefix}))
        daemon.runner.peripherals["test"] = Peripheral("test", test.spec.model_copy(update={"sandbox": extras}))
        workspace = daemon.config.workspace
        (workspace / "tests").mkdir(exist_ok=True)
        (workspace / "tests" / "test_nap_until_stopped.py").write_text("import time\n\n\ndef test_nap():\n    time.sleep(120)\n")
        model = await FakeOpenAI([
            Call("hop", {"to": "edit", "exit_condition": "found-target", "reason": "look"}),
            Call("hop", {"to": "test", "exit_condition": "hop-test", "reason": "run it"}),
            Call.named("bash-test", command=f"{PYTEST} -q tests/test_nap_until_stopped.py"),
        ]).start()  # fmt: skip
        try:
            driver = OpenAIDriver("fake-model", base_url=model.root + "/v1", retry=FAST_RETRY)
            joe = await RawClient.connect(daemon.ports["irc"])
            joe.auto_pong = True
            await joe.register("joe")
            await joe.join("#futon")
            async with running_agent(daemon, driver, "claude-1"):
                await joe.send("PRIVMSG #futon :claude-1: run the nap test")
                deadline = time.monotonic() + 60
                while not pids_mentioning("tests/test_nap_until_stopped.py"):  # the run has started
                    assert time.monotonic() < deadline, "the test run never started"
                    await asyncio.sleep(0.05)
                await joe.send("PRIVMSG #futon :futon: stop claude-1")
                said: list[str] = []
                while not any(line.startswith("[claude-1]") for line in said):
                    line = await joe.expect("PRIVMSG", timeout=30)
                    if line.source.startswith("claude-1!"):
                        said.append(line.params[1].removeprefix("joe: "))
            await joe.close()
        finally:
            await model.close()
        assert said[-1] == "[claude-1] could not finish: a human interrupted the session"
        assert pids_mentioning("tests/test_nap_until_stopped.py") == []
        assert len(model.requests) == 3  # the model was not asked again after the interrupt
        conclusion = daemon.store.query(EvidenceQuery(claim_type="conclusion", author="claude-1")).entries[0]
        assert conclusion["evidence/body"]["reason"] == "interrupted"
