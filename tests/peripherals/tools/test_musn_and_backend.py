"""musn-log over a real (in-memory) evidence store, and the backend's
dispatch table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from futon.config.catalog import CORE_TOOLS
from futon.evidence import MemoryStore
from futon.peripherals.args import ReadArgs, parse_args
from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.protocol.errors import ToolError

from .conftest import Call, make_ctx


def _entry(session: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "subject": {"ref/type": "session", "ref/id": session},
        "type": "coordination",
        "claim-type": "step",
        "author": "agent-1",
        "session-id": session,
        "body": {"n": n},
        **extra,
    }


async def test_musn_log_returns_every_entry_of_the_session_oldest_first(
    call: Call, ws: Path
) -> None:
    store = MemoryStore()
    rows = []
    for n in range(1205):  # more than one page of 1000
        rows.append(_entry("sess-1", n, **{"ephemeral?": n % 100 == 7}))
        if n % 3 == 0:
            rows.append(_entry("other", n))
    store.append_many_sync(rows)
    ctx = make_ctx(ws, store=store, session_id="sess-1")
    entries = await call("musn-log", [], ctx)
    assert [e["evidence/body"]["n"] for e in entries] == list(range(1205))
    assert {e["evidence/session-id"] for e in entries} == {"sess-1"}
    others = await call("musn-log", ["other"], ctx)
    assert len(others) == len(range(0, 1205, 3))


async def test_musn_log_of_an_unknown_session_is_empty(call: Call, ws: Path) -> None:
    assert await call("musn-log", ["nobody"], make_ctx(ws, store=MemoryStore())) == []


async def test_musn_log_without_a_store_is_a_tool_error(call: Call, ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="evidence store"):
        await call("musn-log", [], ctx)


# ------------------------------------------------------------------ dispatch


def test_the_backend_handles_exactly_the_core_tools() -> None:
    backend = RealBackend()
    assert backend.tools() == CORE_TOOLS
    assert backend.handles("read") and not backend.handles("proof-load")


async def test_an_unknown_tool_is_a_tool_error(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="no backend"):
        await RealBackend().call("proof-load", parse_args("read", ["x"]), ctx)


async def test_domain_tools_are_registered(ctx: ToolContext) -> None:
    backend = RealBackend()
    seen: list[Any] = []

    async def echo(args: ReadArgs, context: ToolContext) -> dict[str, str]:
        seen.append(context.session_id)
        return {"echo": args.path}

    class EchoArgs(ReadArgs):
        tool = "echo-path"

    backend.register("echo-path", echo)
    assert backend.handles("echo-path")
    assert await backend.call("echo-path", EchoArgs(path="a"), ctx) == {"echo": "a"}
    assert seen == ["sess-1"]
    with pytest.raises(ValueError, match="already registered"):
        backend.register("echo-path", echo)
    backend.register("echo-path", echo, replace=True)


async def test_arguments_of_another_tool_are_refused(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="given to"):
        await RealBackend().call("write", parse_args("read", ["README.md"]), ctx)
