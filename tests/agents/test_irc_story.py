"""The whole story over real sockets: a human asks an agent in IRC to fix a
failing test in a fixture repo; the agent (the openai driver against a
local fake Chat Completions server) explores, hops to edit, edits the file,
hops to test, runs the suite and reports the passing count — taken from the
real pytest run — back to the channel. The evidence landscape holds it all."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from futon.agents.drivers.openai import OpenAIDriver
from futon.config.models import SandboxSpec
from futon.evidence import EvidenceQuery
from futon.peripherals.spec import Peripheral
from tests.agents.conftest import FAST_RETRY, running_agent
from tests.agents.fakes import Call, FakeOpenAI, Say
from tests.support import until
from tests.transports.irc.kit import RawClient
from tests.transports.kit import running_daemon

PYTEST = f"{sys.executable} -m pytest"


class ReportingModel(FakeOpenAI):
    """Plays the fixed tool calls, then answers with the count it reads in
    the last tool result it was sent — so the reply carries the real run."""

    def _next(self) -> Any:
        step = super()._next()
        if step is None and self.requests:
            results = [m.get("content") or "" for m in self.requests[-1]["messages"] if m.get("role") == "tool"]
            found = re.search(r"(\d+) passed", results[-1] if results else "")
            return Say(f"fixed src/calc.py; tests: {found.group(1) if found else '?'} passed")
        return step


async def test_an_agent_asked_in_irc_fixes_a_failing_test_and_reports_the_count(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0, tools__test_commands=[f"{PYTEST} -q {{paths}}"]) as daemon:
        workspace = daemon.config.workspace
        # Tool processes run sandboxed; the test step needs this interpreter,
        # which lives outside the system folders here: show it read-only.
        test = daemon.runner.peripherals["test"]
        extras = SandboxSpec(read_only=sorted({sys.prefix, sys.base_prefix}))
        daemon.runner.peripherals["test"] = Peripheral("test", test.spec.model_copy(update={"sandbox": extras}))
        (workspace / "src" / "calc.py").write_text("def add(a, b):\n    return a - b\n")
        (workspace / "tests").mkdir(exist_ok=True)
        (workspace / "tests" / "test_calc.py").write_text(
            "import pathlib, sys\nsys.path.insert(0, str(pathlib.Path(__file__).parent.parent / 'src'))\n"
            "from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n\ndef test_zero():\n    assert add(0, 0) == 0\n"
        )
        model = await ReportingModel([
            Call.named("grep", pattern="return a - b", path="src"),
            Call.named("read", path="src/calc.py"),
            Call("hop", {"to": "edit", "exit_condition": "found-target", "reason": "add subtracts"}),
            Call.named("edit", path="src/calc.py", old="return a - b", new="return a + b"),
            Call("hop", {"to": "test", "exit_condition": "hop-test", "reason": "run the suite"}),
            Call.named("bash-test", command=f"{PYTEST} -q tests"),
        ]).start()  # fmt: skip
        try:
            driver = OpenAIDriver("fake-model", base_url=model.root + "/v1", retry=FAST_RETRY)
            joe = await RawClient.connect(daemon.ports["irc"])
            joe.auto_pong = True
            await joe.register("joe")
            await joe.join("#futon")
            async with running_agent(daemon, driver, "claude-1"):
                await joe.send("PRIVMSG #futon :claude-1: tests/test_calc.py fails, please fix it")
                answer = await joe.expect("PRIVMSG", timeout=60)
                await until(lambda: bool(daemon.store.query(EvidenceQuery(claim_type="conclusion", author="claude-1")).entries))
            await joe.close()
        finally:
            await model.close()
        store = daemon.store
        conclusion = store.query(EvidenceQuery(claim_type="conclusion", author="claude-1")).entries[0]
        story = list(reversed(store.query(EvidenceQuery(session_id=conclusion["evidence/session-id"], limit=100)).entries))
        channel = [e["evidence/body"]["text"] for e in reversed(store.query(EvidenceQuery(subject_id="irc/#futon")).entries)]

    assert answer.source.startswith("claude-1!")
    assert answer.params == ["#futon", "joe: fixed src/calc.py; tests: 2 passed"]
    assert (workspace / "src" / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    offered = [tool["function"]["name"] for tool in model.with_tools[0]["tools"]]
    assert "read" in offered and "edit" not in offered and {"hop", "reply"} <= set(offered)  # explore's envelope only
    steps = [(e["evidence/type"], e["evidence/body"].get("tool") or e["evidence/body"].get("to")) for e in story]
    assert steps == [
        ("coordination", None), ("coordination", "grep"), ("coordination", "read"), ("mode-transition", "edit"),
        ("coordination", "edit"), ("mode-transition", "test"), ("coordination", "bash-test"), ("coordination", None),
    ]  # fmt: skip
    assert conclusion["evidence/body"]["fruit"]["result"] == "pass" and conclusion["evidence/body"]["fruit"]["test_count"] == 2
    assert channel == ["claude-1: tests/test_calc.py fails, please fix it", "joe: fixed src/calc.py; tests: 2 passed"]
