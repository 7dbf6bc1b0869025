"""Approvals (issue 17): a request waits for a human, is decided once by
an approver, expires, is bounded — and every request and decision is on
the record, the decision replying to the request with the human as author."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from futon.config.models import PeripheralSpec
from futon.evidence import EvidenceQuery, MemoryStore
from futon.peripherals.approval import ApprovalRequest
from futon.peripherals.runner import PeripheralRunner
from futon.peripherals.spec import Peripheral
from futon.protocol.errors import FutonError
from futon.protocol.frames import ServerFrame, push_fields
from futon.social.approvals import Approvals, Pending
from tests.peripherals.support import RecordingBackend, make_runner, session_entries


class Desk:
    """Approvals on a memory store, with what was said and pushed."""

    def __init__(self, **options: Any) -> None:
        self.store = MemoryStore()
        self.said: list[tuple[str, str]] = []
        self.pushed: list[tuple[str, dict[str, Any]]] = []
        self.requests: asyncio.Queue[Pending] = asyncio.Queue()

        async def announce(agent_id: str, line: str) -> None:
            self.said.append((agent_id, line))

        async def notify(agent_id: str, frame: ServerFrame) -> None:
            self.pushed.append((agent_id, push_fields(frame)))  # as the wire carries it

        self.approvals = Approvals(
            self.store, approvers=["joe", "svc-ann"], announce=announce, notify=notify, **options
        )
        self.approvals.on_request.append(self.requests.put_nowait)

    def ask(self, peripheral: str = "deploy", agent: str = "claude-1") -> asyncio.Task[None]:
        request = ApprovalRequest(agent, "sess-1", "enter", peripheral, reason="ship it")
        return asyncio.ensure_future(self.approvals.approve(request))

    def entries(self) -> list[dict[str, Any]]:
        return list(reversed(self.store.query(EvidenceQuery(tags=["approval"], limit=100)).entries))


async def test_an_approver_lets_the_request_through_and_both_are_on_the_record() -> None:
    desk = Desk()
    waiting = desk.ask()
    pending = await desk.requests.get()
    assert not waiting.done()
    assert [p.id for p in desk.approvals.pending()] == [pending.id]
    (agent, frame), = desk.pushed
    assert agent == "claude-1" and frame["type"] == "approval_pending"
    assert (frame["approval_id"], frame["what"]) == (pending.id, "enter deploy (ship it)")
    assert f"futon: approve {pending.id}" in desk.said[0][1] and "enter deploy" in desk.said[0][1]

    decided = await desk.approvals.decide(pending.id, "approve", "JOE")  # nicks compare as IRC does
    assert decided["outcome"] == "approved"
    await waiting  # returns: the action proceeds
    request, decision = desk.entries()
    assert (request["evidence/type"], request["evidence/claim-type"], request["evidence/author"]) == (
        "coordination", "question", "claude-1",
    )
    assert request["evidence/body"]["approval_id"] == pending.id
    assert (decision["evidence/claim-type"], decision["evidence/author"]) == ("evidence", "JOE")
    assert decision["evidence/in-reply-to"] == request["evidence/id"]
    assert decision["evidence/body"]["outcome"] == "approved"
    assert desk.approvals.pending() == []


async def test_a_services_account_counts_as_its_approver() -> None:
    desk = Desk()
    waiting = desk.ask()
    pending = await desk.requests.get()
    await desk.approvals.decide(pending.id, "approve", "ann", account="svc-ann")
    await waiting


async def test_deny_refuses_with_the_reason() -> None:
    desk = Desk()
    waiting = desk.ask()
    pending = await desk.requests.get()
    await desk.approvals.decide(pending.id, "deny", "joe", "not on a friday")
    with pytest.raises(FutonError) as denied:
        await waiting
    assert denied.value.code == "approval-denied" and "not on a friday" in denied.value.message
    assert desk.entries()[-1]["evidence/body"]["outcome"] == "denied"


async def test_nobody_deciding_in_time_is_a_denial_and_a_late_answer_is_told_it_expired() -> None:
    desk = Desk(timeout_s=0.05)
    with pytest.raises(FutonError) as expired:
        await desk.ask()
    assert expired.value.code == "approval-denied" and expired.value.context["outcome"] == "expired"
    request, decision = desk.entries()
    assert decision["evidence/in-reply-to"] == request["evidence/id"]
    assert (decision["evidence/author"], decision["evidence/body"]["outcome"]) == ("futon", "expired")
    with pytest.raises(FutonError) as late:
        await desk.approvals.decide(request["evidence/body"]["approval_id"], "approve", "joe")
    assert late.value.code == "approval-expired"


async def test_bad_decisions_are_refused_and_change_nothing() -> None:
    desk = Desk()
    waiting = desk.ask()
    pending = await desk.requests.get()
    refusals = []
    for approval_id, decision, by in [
        ("zzzz", "approve", "joe"),  # unknown id
        (pending.id, "approve", "mallory"),  # not an approver
        (pending.id, "approve", "claude-1"),  # the agent itself
        (pending.id, "maybe", "joe"),  # not a decision
    ]:
        with pytest.raises(FutonError) as refused:
            await desk.approvals.decide(approval_id, decision, by)
        refusals.append(refused.value.code)
    assert refusals == ["approval-not-found", "not-an-approver", "approval-self", "invalid-input"]
    assert [p.id for p in desk.approvals.pending()] == [pending.id] and not waiting.done()
    assert len(desk.entries()) == 1  # the request only

    await desk.approvals.decide(pending.id, "approve", "joe")
    with pytest.raises(FutonError) as twice:
        await desk.approvals.decide(pending.id, "deny", "joe")
    assert twice.value.code == "approval-already-decided"
    await waiting
    assert [e["evidence/body"].get("outcome") for e in desk.entries()] == [None, "approved"]


async def test_an_agent_cannot_approve_its_own_request_even_when_listed() -> None:
    desk = Desk()
    desk.approvals.apply_settings(["joe", "claude-1"], 300)
    waiting = desk.ask()
    pending = await desk.requests.get()
    with pytest.raises(FutonError) as own:
        await desk.approvals.decide(pending.id, "approve", "claude-1")
    assert own.value.code == "approval-self"
    waiting.cancel()


async def test_a_flood_of_requests_is_bounded_oldest_expire_first() -> None:
    desk = Desk(max_pending=3)
    waiting = [desk.ask(agent=f"agent-{n}") for n in range(5)]
    made = [await desk.requests.get() for _ in range(5)]
    assert [p.id for p in desk.approvals.pending()] == [p.id for p in made[2:]]
    for task in waiting[:2]:
        with pytest.raises(FutonError) as expired:
            await task
        assert expired.value.context["outcome"] == "expired"
    assert not any(task.done() for task in waiting[2:])
    for task in waiting[2:]:
        task.cancel()


async def test_a_cancelled_wait_withdraws_the_request() -> None:
    desk = Desk()
    waiting = desk.ask()
    pending = await desk.requests.get()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert desk.approvals.pending() == []
    with pytest.raises(FutonError) as late:
        await desk.approvals.decide(pending.id, "approve", "joe")
    assert late.value.code == "approval-already-decided"
    assert desk.entries()[-1]["evidence/body"]["outcome"] == "withdrawn"


# ------------------------------------------------------------------ in a session


def _runner_with(desk: Desk, workspace: Path, backend: RecordingBackend, **spec: Any) -> PeripheralRunner:
    """The shipped engine with ``desk`` as its approver; ``spec`` changes explore's envelope."""
    runner = make_runner(workspace, backend, desk.store)
    runner.approver = desk.approvals
    if spec:
        explore = runner.peripherals["explore"]
        runner.peripherals["explore"] = Peripheral("explore", explore.spec.model_copy(update=spec))
    return runner


async def test_an_ask_tool_waits_for_each_call_and_a_denial_never_reaches_the_backend(tmp_path: Path) -> None:
    desk, backend = Desk(), RecordingBackend(replies={"read": "text"})
    session = await _runner_with(desk, tmp_path, backend, ask=["read"]).start("claude-1", "explore")
    assert (await session.step("grep", ["x"])).ok  # not listed: no approval
    reading = asyncio.ensure_future(session.step("read", ["src/app.py"]))
    pending = await desk.requests.get()
    assert (pending.request.kind, pending.request.tool, pending.request.what) == (
        "tool", "read", "run read src/app.py in explore",
    )
    assert backend.tools == ["grep"]
    await desk.approvals.decide(pending.id, "approve", "joe")
    assert (await reading).ok and backend.tools == ["grep", "read"]

    refused = asyncio.ensure_future(session.step("read", ["src/app.py"]))
    await desk.approvals.decide((await desk.requests.get()).id, "deny", "joe", "enough reading")
    with pytest.raises(FutonError) as denied:
        await refused
    assert denied.value.code == "approval-denied"
    assert backend.tools == ["grep", "read"]
    assert session_entries(desk.store, session.id)[-1]["evidence/claim-type"] == "tension"


async def test_a_hop_into_an_approval_peripheral_waits_and_an_interrupt_withdraws_it(tmp_path: Path) -> None:
    desk = Desk()
    backend = RecordingBackend(replies={"bash-test": {"exit": 0, "out": "1 passed in 0.01s", "err": ""}})
    runner = _runner_with(desk, tmp_path, backend)
    session = await runner.start("claude-1", "test")
    await session.step("bash-test", ["pytest tests"])
    hopping = asyncio.ensure_future(session.hop("deploy", "hop-deploy", "ship"))
    pending = await desk.requests.get()
    assert pending.request.what == "enter deploy (ship)" and session.peripheral.id == "test"
    stopped = await runner.interrupt(session.id)
    assert stopped.reason == "interrupted"
    with pytest.raises(FutonError) as interrupted:
        await hopping
    assert interrupted.value.code == "interrupted"
    assert desk.approvals.pending() == [] and session.peripheral.id == "test"
    conclusion = session_entries(desk.store, session.id)[-1]
    assert conclusion["evidence/body"]["reason"] == "interrupted"
    with pytest.raises(FutonError) as again:
        await runner.interrupt(session.id)
    assert again.value.code == "session-stopped"
    with pytest.raises(FutonError) as unknown:
        await runner.interrupt("sess-nope")
    assert unknown.value.code == "session-not-found"


async def test_an_interrupt_cancels_a_running_step_with_code_interrupted(tmp_path: Path) -> None:
    desk, backend = Desk(), RecordingBackend(gate=asyncio.Event())
    runner = _runner_with(desk, tmp_path, backend)
    session = await runner.start("claude-1", "explore")
    step = asyncio.ensure_future(session.step("read", ["src/app.py"]))
    while backend.active == 0:  # the step reached the backend
        await asyncio.sleep(0)
    await runner.interrupt(session.id)
    result = await step
    assert (result.ok, result.result["code"]) == (False, "interrupted")
    assert backend.cancelled == 1


async def test_without_an_approver_an_approval_peripheral_cannot_be_entered(tmp_path: Path) -> None:
    store = MemoryStore()
    runner = make_runner(tmp_path, store=store)
    runner.approver = None
    with pytest.raises(FutonError) as refused:
        await runner.start("claude-1", "deploy")
    assert refused.value.code == "approval-denied"
    (info,) = runner.infos("claude-1")
    assert info.reason == "approval-denied"


def test_ask_may_only_name_the_peripherals_own_tools() -> None:
    with pytest.raises(ValidationError, match="ask lists bash"):
        PeripheralSpec(tools=["read"], scope="full-codebase", entry=["default"], exit=["done"], ask=["bash"])
    assert PeripheralSpec(tools=["read"], scope="full-codebase", entry=["default"], exit=["done"]).approval == "none"
