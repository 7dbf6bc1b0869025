"""Progress lines: how a step is said in a few words, and the rate limit
(an injected clock: no waiting)."""

from __future__ import annotations

from typing import Any

from futon.agents.progress import Progress, describe_args, summarize
from futon.protocol import frames as f


class FakeClient:
    agent_id = "claude-1"

    def __init__(self, progress: str = "notice") -> None:
        self.ready = f.ReadyAck(
            agent_id="claude-1", session_id="ws-1", server=f.ServerInfo(name="futon", version="0"),
            peripherals=["explore"], default_peripheral="explore", progress=progress,  # type: ignore[arg-type]
        )  # fmt: skip
        self.lines: list[tuple[str, str]] = []

    async def progress(self, to: str, text: str, *, timeout: float | None = None) -> None:
        self.lines.append((to, text))


def test_steps_are_summarised_in_a_few_words() -> None:
    assert describe_args(["def main", "src"]) == '"def main"'
    assert describe_args({"path": "README.md", "offset": 3}) == '"README.md"'
    assert describe_args([]) == "" and describe_args([{"a": 1}]) == ""
    assert summarize(True, {"passed": 3, "failed": 1}) == "3 passed, 1 failed"
    assert summarize(True, {"matches": [1, 2]}) == "2 hits"
    assert summarize(True, ["x"]) == "1 hit"
    assert summarize(True, "first line\nsecond") == "first line"
    assert summarize(False, None) == "failed" and summarize(True, {}) == "ok"


async def test_one_line_per_step_rate_limited_and_nothing_when_off() -> None:
    now = [0.0]
    client: Any = FakeClient()
    progress = Progress(client, burst=2, window_s=10, clock=lambda: now[0])
    await progress.step("#futon", "explore", "grep", ["def main"], result={"matches": [1, 2]})
    await progress.step("#futon", "test", "bash-test", [], result={"passed": 3, "failed": 1})
    await progress.step("#futon", "test", "edit", ["x"], refused="tool-not-allowed")  # over the burst
    assert client.lines == [
        ("#futon", 'claude-1 ▸ explore: grep "def main" → 2 hits'),
        ("#futon", "claude-1 ▸ test: bash-test → 3 passed, 1 failed"),
    ]
    assert progress.skipped == 1
    now[0] = 10.0  # the window has passed
    await progress.step("joe", "explore", "edit", ["x"], refused="tool-not-allowed")
    assert client.lines[-1] == ("joe", 'claude-1 ▸ explore: edit "x" → refused (tool-not-allowed)')
    await progress.step(None, "explore", "read", [])  # not an IRC request: nowhere to say it
    assert len(client.lines) == 3

    quiet: Any = FakeClient("off")
    await Progress(quiet).step("#futon", "explore", "read", ["README.md"])
    assert quiet.lines == []
