"""Progress lines: what the agent runtime says in the channel while it works
(agents.yaml ``progress: notice``; docs/irc.md, "Progress").

One short line per step — ``claude-1 ▸ explore: grep "def main" → 2 hits``,
``claude-1 ▸ test: bash-test → 3 passed, 1 failed``, a refusal as
``claude-1 ▸ explore: edit → refused (tool-not-allowed)`` — sent as a
``progress`` frame, which the daemon says as a NOTICE from the agent's nick
where the request came from. Rate-limited here: at most ``burst`` lines in
any ``window_s`` seconds; the rest are skipped (the answer still comes).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from futon.agents.client import AgentClient, Disconnected
from futon.protocol.errors import FutonError

log = logging.getLogger("futon.agent.progress")

ARROW = "▸"
MAX_LINE_CHARS = 200  # one short line; the frame allows 400
MAX_ARG_CHARS = 40


def _short(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_args(args: Any) -> str:
    """The first argument, short and quoted when it is text: ``"def main"``."""
    first: Any = None
    if isinstance(args, list) and args:
        first = args[0]
    elif isinstance(args, dict) and args:
        first = next(iter(args.values()))
    if first is None or isinstance(first, dict | list):
        return ""
    return json.dumps(_short(first, MAX_ARG_CHARS), ensure_ascii=False)


def summarize(ok: bool, result: Any) -> str:
    """A tool result in a few words: counts for tests and searches, the
    first line of text, else ok / failed."""
    if isinstance(result, dict):
        counts = [
            f"{result[k]} {k}"
            for k in ("passed", "failed", "errors")
            if isinstance(result.get(k), int)
        ]
        if counts:
            return ", ".join(counts)
        for key in ("matches", "hits", "results", "entries", "files", "items"):
            found = result.get(key)
            if isinstance(found, list):
                return f"{len(found)} {'hit' if len(found) == 1 else 'hits'}"
        if isinstance(result.get("exit_code"), int):
            return f"exit {result['exit_code']}"
    if isinstance(result, list):
        return f"{len(result)} {'hit' if len(result) == 1 else 'hits'}"
    if isinstance(result, str) and result.strip():
        return _short(result.strip().splitlines()[0], 60)
    return "ok" if ok else "failed"


class Progress:
    """Formats and sends progress lines for one agent, rate-limited."""

    def __init__(
        self,
        client: AgentClient,
        *,
        burst: int = 5,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.burst = burst
        self.window_s = window_s
        self.clock = clock
        self.sent = 0
        self.skipped = 0
        self._recent: deque[float] = deque(maxlen=max(1, burst))

    @property
    def enabled(self) -> bool:
        ready = self.client.ready
        return ready is not None and ready.progress == "notice"

    async def step(
        self,
        to: str | None,
        peripheral: str | None,
        tool: str,
        args: Any,
        *,
        ok: bool = True,
        result: Any = None,
        refused: str | None = None,
    ) -> None:
        """Say one step: ``tool`` with ``args`` in ``peripheral`` came out
        as ``result`` (or was refused with code ``refused``)."""
        if to is None or not self.enabled:
            return
        shown = f"{tool} {describe_args(args)}".strip()
        outcome = f"refused ({refused})" if refused else summarize(ok, result)
        where = f"{peripheral}: " if peripheral else ""
        await self.say(to, f"{self.client.agent_id} {ARROW} {where}{shown} → {outcome}")

    async def say(self, to: str, line: str) -> None:
        if not self._take():
            self.skipped += 1
            return
        try:
            await self.client.progress(to, _short(line, MAX_LINE_CHARS), timeout=10)
            self.sent += 1
        except (FutonError, TimeoutError, Disconnected) as exc:  # progress never fails a turn
            log.info("progress line not sent: %s", exc)

    def _take(self) -> bool:
        now = self.clock()
        recent = self._recent
        while recent and now - recent[0] >= self.window_s:
            recent.popleft()
        if len(recent) >= self.burst:
            return False
        recent.append(now)
        return True


__all__ = ["ARROW", "Progress", "describe_args", "summarize"]
