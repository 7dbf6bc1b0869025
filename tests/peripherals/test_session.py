"""Sessions: evidence chain, serialised actions, idempotent stop (also
against a running step and a concurrent stop), hops with context, fruit."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from futon.evidence import MemoryStore
from futon.protocol.errors import FutonError, NotFound, PermissionDenied, ToolError
from tests.peripherals.support import (
    PASSING_RUN,
    RecordingBackend,
    human_asks,
    make_runner,
    session_entries,
)


async def test_evidence_runs_goal_steps_tension_hop_conclusion_in_one_reply_chain(workspace: Path) -> None:
    store = MemoryStore()
    runner = make_runner(workspace, RecordingBackend(replies={"read": "text"}), store)
    session = await runner.start("claude-1", "explore")
    await session.step("read", ["src/app.py"])
    with pytest.raises(PermissionDenied):
        await session.step("write", ["src/x.py", "x"])
    await session.hop("edit", "found-target", "fix the bug")
    await session.stop("done")
    entries = session_entries(store, session.id)
    claims = [(e["evidence/type"], e["evidence/claim-type"]) for e in entries]
    assert claims == [
        ("coordination", "goal"),
        ("coordination", "step"),
        ("coordination", "tension"),
        ("mode-transition", "step"),
        ("coordination", "conclusion"),
    ]
    for previous, entry in itertools.pairwise(entries):
        assert entry["evidence/in-reply-to"] == previous["evidence/id"]
    assert {e["evidence/author"] for e in entries} == {"claude-1"}
    assert {e["evidence/session-id"] for e in entries} == {session.id}
    assert all(e["evidence/subject"] == {"ref/type": "session", "ref/id": session.id} for e in entries)
    assert entries[0]["evidence/tags"] == ["peripheral", "explore"]
    assert entries[-1]["evidence/tags"] == ["peripheral", "edit"]
    assert entries[1]["evidence/body"] == {"tool": "read", "args": ["src/app.py"], "ok": True, "result": "text"}
    assert entries[3]["evidence/body"]["carried"] == {"session-id": session.id, "target-files": ["src/app.py"]}
    assert session.id.startswith("sess-")


async def test_a_failed_tool_is_data_not_a_refusal(workspace: Path) -> None:
    store = MemoryStore()
    backend = RecordingBackend(replies={"read": ToolError("no such file: src/nope.py")})
    session = await make_runner(workspace, backend, store).start("claude-1", "explore")
    result = await session.step("read", ["src/nope.py"])
    assert not result.ok
    assert result.result == {"error": "no such file: src/nope.py", "code": "invoke-failed"}
    assert session_entries(store, session.id)[-1]["evidence/claim-type"] == "step"


async def test_actions_of_one_session_run_one_at_a_time_in_order(workspace: Path) -> None:
    backend = RecordingBackend()
    session = await make_runner(workspace, backend).start("claude-1", "explore")
    await asyncio.gather(*(session.step("read", [f"src/f{n}.py"]) for n in range(10)))
    assert backend.max_active == 1
    assert [args.path for _, args, _ in backend.calls] == [f"src/f{n}.py" for n in range(10)]


async def test_stop_is_idempotent_and_concurrent_stops_share_one_conclusion(workspace: Path) -> None:
    store = MemoryStore()
    session = await make_runner(workspace, RecordingBackend(), store).start("claude-1", "explore")
    fruits = await asyncio.gather(session.stop("client-requested"), session.stop("connection-closed"), session.stop())
    assert fruits[0] is fruits[1] is fruits[2]
    assert await session.stop() is fruits[0]
    conclusions = [e for e in session_entries(store, session.id) if e["evidence/claim-type"] == "conclusion"]
    assert len(conclusions) == 1
    assert conclusions[0]["evidence/body"]["reason"] == "client-requested"
    assert session.status == "stopped"
    with pytest.raises(FutonError) as caught:
        await session.step("read", ["src/app.py"])
    assert caught.value.code == "session-stopped"


async def test_stop_while_a_step_runs_cancels_the_step(workspace: Path) -> None:
    gate = asyncio.Event()  # never set: the step would run forever
    backend = RecordingBackend(gate=gate)
    session = await make_runner(workspace, backend).start("claude-1", "explore")
    step = asyncio.ensure_future(session.step("bash-readonly", ["sleep 1000"]))
    while not backend.calls:
        await asyncio.sleep(0)
    fruit = await asyncio.wait_for(session.stop("shutdown"), timeout=5)
    result = await step
    assert backend.cancelled == 1
    assert not result.ok and result.result["code"] == "session-stopped"
    assert fruit == {"found": [], "summary": "1 steps; found 0 file(s)"}


async def test_a_cancelled_caller_cancels_its_step_but_not_the_session(workspace: Path) -> None:
    gate = asyncio.Event()
    backend = RecordingBackend(gate=gate)
    session = await make_runner(workspace, backend).start("claude-1", "explore")
    step = asyncio.ensure_future(session.step("read", ["src/app.py"]))
    while not backend.calls:
        await asyncio.sleep(0)
    step.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step
    assert backend.cancelled == 1 and session.active
    gate.set()
    assert (await session.step("read", ["src/app.py"])).ok


async def test_unknown_and_unpermitted_peripherals_are_refused(workspace: Path) -> None:
    runner = make_runner(workspace)
    with pytest.raises(NotFound) as unknown:
        await runner.start("claude-1", "teleport")
    assert unknown.value.code == "unknown-peripheral"
    with pytest.raises(PermissionDenied) as denied:
        await runner.start("claude-1", "deploy", permitted=["explore", "edit"])
    assert denied.value.code == "peripheral-not-permitted"
    session = await runner.start("claude-1", ":explore", permitted=["explore", "edit"])
    with pytest.raises(PermissionDenied) as hop_denied:
        await session.hop("test", "user-request")
    assert hop_denied.value.code == "peripheral-not-permitted"


@pytest.mark.parametrize(
    ("source", "target", "condition", "rule"),
    [
        ("explore", "deploy", "found-target", "entry-condition"),  # deploy: from-test, tests-passed
        ("explore", "edit", "tests-pass", "exit-condition"),  # not one of explore's exits
        ("edit", "explore", "user-request", "exit-condition"),  # not an exit of edit, and explore has no user-request entry
        ("test", "edit", "deployed", "exit-condition"),
        ("chat", "deploy", "user-request", "entry-condition"),
        ("chat", "explore", "user-request", "entry-condition"),  # only hop-explore declares it
    ],
)
async def test_hops_that_break_the_rules_are_refused_and_change_nothing(
    workspace: Path, source: str, target: str, condition: str, rule: str
) -> None:
    store = MemoryStore()
    session = await make_runner(workspace, RecordingBackend(), store).start("claude-1", source)
    with pytest.raises(PermissionDenied) as caught:
        await session.hop(target, condition, "try")
    assert caught.value.code == "hop-not-allowed"
    assert caught.value.context["rule"] == rule
    assert session.peripheral.id == source
    assert session_entries(store, session.id)[-1]["evidence/claim-type"] == "tension"


@pytest.mark.parametrize(
    ("source", "target", "condition"),
    [
        ("explore", "edit", "found-target"),
        ("explore", "edit", "user-request"),  # edit's entry has user-request
        ("edit", "test", "hop-test"),
        ("test", "deploy", "hop-deploy"),
        ("test", "edit", "hop-edit"),
        ("deploy", "reflect", "anything"),  # reflect's entry has from-any
        ("chat", "explore", "hop-explore"),  # a hop-<target> exit declares the hop
        ("chat", "edit", "hop-edit"),
        ("mission-control", "explore", "hop-explore"),
        ("reflect", "explore", "par-generated"),  # explore's entry has from-reflect
    ],
)
async def test_hops_that_follow_the_rules_keep_the_session(workspace: Path, source: str, target: str, condition: str) -> None:
    store = MemoryStore()
    session = await make_runner(workspace, RecordingBackend(replies={"bash-test": PASSING_RUN}), store).start("claude-1", source)
    given: dict[str, str] = {}
    if condition == "user-request":  # a fact, checked: a human's message to the agent, cited
        given["request"] = await human_asks(store, "claude-1")
    if target == "deploy":  # a fact, checked: the session's last test run passed
        assert (await session.step("bash-test", ["pytest tests"])).ok
    hop = await session.hop(target, condition, "next", context=given)
    assert (hop.from_id, hop.to_id, hop.session_id) == (source, target, session.id)
    assert session.peripheral.id == target
    assert hop.tools == list(session.peripheral.spec.tools)


async def test_hop_carries_found_files_to_edit_and_changed_files_to_test(workspace: Path) -> None:
    backend = RecordingBackend(
        replies={"grep": [{"file": "src/app.py", "line": 2, "content": "return a - b"}], "edit": {"file": "src/app.py", "replacements": 1}}
    )
    backend.replies["bash-test"] = PASSING_RUN
    session = await make_runner(workspace, backend).start("claude-1", "explore")
    await session.step("grep", ["a - b"])
    to_edit = await session.hop("edit", "found-target", "fix")
    assert to_edit.context == {"session-id": session.id, "target-files": ["src/app.py"]}
    await session.step("edit", ["src/app.py", "a - b", "a + b"])
    to_test = await session.hop("test", "hop-test", "check", context={"target-files": ["ignored"]})
    assert to_test.context == {"session-id": session.id, "changed-files": ["src/app.py"]}
    await session.step("bash-test", ["pytest tests"])  # deploy needs the last run to have passed
    to_deploy = await session.hop("deploy", "hop-deploy", "ship", context={"commit-message": "fix: add"})
    assert to_deploy.context == {"session-id": session.id, "commit-message": "fix: add"}


async def test_edit_fruit_lists_changes(workspace: Path) -> None:
    backend = RecordingBackend(replies={"write": {"file": "src/new.py", "bytes": 6}, "edit": {"file": "src/app.py", "replacements": 1}})
    session = await make_runner(workspace, backend).start("codex-1", "edit")
    await session.step("write", ["src/new.py", "x = 1\n"])
    await session.step("edit", ["src/app.py", "a - b", "a + b"])
    fruit = await session.stop()
    assert fruit["changed_files"] == ["src/new.py", "src/app.py"]
    assert fruit["ready_to_test"] is True
    assert [c["tool"] for c in fruit["changes"]] == ["write", "edit"]


async def test_chat_fruit_is_its_messages(workspace: Path) -> None:
    store = MemoryStore()
    session = await make_runner(workspace, store=store).start("claude-1", "chat")
    await session.say("#futon", "hello humans")
    await session.say("joe", "psst")
    fruit = await session.stop()
    assert fruit == {
        "messages": [{"to": "#futon", "text": "hello humans"}, {"to": "joe", "text": "psst"}],
        "channels": ["#futon"],
    }


async def test_reflect_writes_a_par_entry_before_its_conclusion(workspace: Path) -> None:
    store = MemoryStore()
    backend = RecordingBackend(replies={"read": "text", "edit": {"file": "src/app.py", "replacements": 1}})
    session = await make_runner(workspace, backend, store).start("claude-1", "explore")
    await session.step("read", ["src/app.py"])
    await session.hop("edit", "found-target")
    await session.step("edit", ["src/app.py", "a - b", "a + b"])
    with pytest.raises(PermissionDenied):
        await session.step("bash-test", ["pytest"])
    await session.hop("reflect", "hop-reflect", "review")
    fruit = await session.stop("par-generated")
    entries = session_entries(store, session.id)
    par, conclusion = entries[-2], entries[-1]
    assert (par["evidence/type"], conclusion["evidence/claim-type"]) == ("reflection", "conclusion")
    assert conclusion["evidence/in-reply-to"] == par["evidence/id"]
    assert fruit["par"]["id"] == par["evidence/id"]
    assert fruit["par"]["peripherals"] == ["explore", "edit", "reflect"]
    assert fruit["par"]["files_changed"] == ["src/app.py"]
    assert fruit["par"]["refusals"] == 1


async def test_runner_lists_sessions_newest_first_and_finds_them(workspace: Path) -> None:
    runner = make_runner(workspace)
    first = await runner.start("claude-1", "explore")
    second = await runner.start("codex-1", "edit")
    assert [s.id for s in runner.sessions()] == [second.id, first.id]
    assert [s.id for s in runner.sessions("claude-1")] == [first.id]
    assert runner.get(first.id) is first
    with pytest.raises(NotFound) as caught:
        runner.get("sess-nope")
    assert caught.value.code == "session-not-found"
    await runner.stop_all("shutdown")
    assert {s.status for s in runner.sessions()} == {"stopped"}


# ------------------------------------------------------------- the session service (issue 14, 15)


async def test_the_runner_is_the_entry_point_start_step_hop_stop_by_session_id(workspace: Path) -> None:
    store = MemoryStore()
    runner = make_runner(workspace, RecordingBackend(replies={"read": "text"}), store)
    session = await runner.start("claude-1", "explore")
    assert (await runner.step(session.id, "read", ["src/app.py"])).result == "text"
    hopped = await runner.hop(session.id, "edit", "found-target", "fix it")
    assert (hopped.from_id, hopped.to_id) == ("explore", "edit")
    stopped = await runner.stop(session.id, "done")
    assert (stopped.peripheral_id, stopped.reason) == ("edit", "done")
    assert stopped == await runner.stop(session.id, "again")  # idempotent: same fruit, first reason
    with pytest.raises(NotFound) as missing:
        await runner.step("sess-nope", "read", ["README.md"])
    assert missing.value.code == "session-not-found"


async def test_a_slot_holds_one_session_at_a_time_and_close_stops_it_once(workspace: Path) -> None:
    store = MemoryStore()
    runner = make_runner(workspace, RecordingBackend(), store)
    seen: list[str | None] = []
    slot = runner.slot("claude-1", lambda s: seen.append(s.peripheral.id if s else None))
    with pytest.raises(FutonError) as empty:
        await slot.step("read", ["README.md"])
    assert empty.value.code == "no-active-peripheral"
    session = await slot.start("explore")
    with pytest.raises(FutonError) as busy:
        await slot.start("edit")
    assert busy.value.code == "peripheral-already-active"
    await slot.hop("edit", "found-target")
    await slot.close("connection-closed")
    await slot.close("connection-closed")  # a second close does nothing
    assert seen == ["explore", "edit", None]
    assert slot.session is None and session.stop_reason == "connection-closed"
    conclusions = [e for e in session_entries(store, session.id) if e["evidence/claim-type"] == "conclusion"]
    assert len(conclusions) == 1
    again = await slot.start("explore")  # an empty slot starts afresh
    assert (await slot.stop("done")).reason == "done" and again.status == "stopped"


async def test_sessions_of_an_earlier_run_are_described_from_their_evidence(workspace: Path) -> None:
    store = MemoryStore()
    before = make_runner(workspace, RecordingBackend(), store)  # the daemon before a restart
    closed = await before.start("claude-1", "explore")
    await closed.step("read", ["README.md"])
    await closed.stop("done")
    crashed = await before.start("claude-1", "explore")  # never concluded: a kill
    await crashed.step("read", ["README.md"])
    await crashed.step("read", ["src/app.py"])
    stopping = make_runner(workspace, RecordingBackend(), store)  # a daemon stopped gracefully
    shut = await stopping.start("codex-1", "explore")
    await stopping.stop_all("shutdown")  # which ends open sessions as "shutdown"
    assert crashed.status == "active" and shut.status == "stopped"

    after = make_runner(workspace, RecordingBackend(), store)  # the daemon after it
    listed = after.infos()
    assert [i.session_id for i in listed] == [shut.id, crashed.id, closed.id]  # newest first
    assert [i.session_id for i in after.infos("claude-1")] == [crashed.id, closed.id]
    done = after.info(closed.id)
    assert (done.state, done.reason, done.steps, done.agent_id) == ("stopped", "done", 1, "claude-1")
    assert done.fruit is not None and done.fruit["found"] == ["README.md"]
    lost = after.info(crashed.id)
    assert (lost.state, lost.reason, lost.fruit, lost.steps) == ("interrupted", None, None, 2)
    assert after.info(shut.id).state == "interrupted" and after.info(shut.id).reason == "shutdown"
    live = await after.start("claude-1", "edit")
    assert after.infos(limit=1)[0].to_dict()["state"] == "active"
    assert after.info(live.id).peripheral_id == "edit"
    with pytest.raises(NotFound) as missing:
        after.info("sess-nope")
    assert missing.value.code == "session-not-found"
