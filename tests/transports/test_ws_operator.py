"""Operator clients over WebSocket (issue 17): a socket whose ``ready``
carries the admin token may decide approvals with ``approval_decision``;
any other socket is refused ``not-an-approver``. Real daemon, real sockets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from futon.social.registry import token_digest
from tests.transports.kit import AgentClient, agent_socket, running_daemon
from tests.transports.test_humans_in_the_loop import (
    approval_entries,
    humans_daemon,
    passing_tests,
    send,
)


async def ready(agent: AgentClient, agent_id: str, **extra: Any) -> None:
    ack = await agent.ask({"type": "ready", "agent_id": agent_id, **extra})
    assert ack["type"] == "ready_ack", ack


async def test_an_operator_client_approves_and_the_waiting_hop_proceeds(tmp_path: Path) -> None:
    async with humans_daemon(tmp_path) as daemon, aiohttp.ClientSession() as http:
        async with agent_socket(http, daemon) as claude, agent_socket(http, daemon) as codex, agent_socket(
            http, daemon
        ) as operator:
            await ready(claude, "claude-1")
            await ready(codex, "codex-1")  # a normal agent: no admin_token
            # No admin token configured: a loopback peer asking for it is the admin (the HTTP rule).
            await ready(operator, "tickle-1", admin_token="anything")
            await passing_tests(claude)
            await send(claude, {"type": "hop", "to": "deploy", "exit_condition": "hop-deploy", "reason": "ship"}, "h1")
            approval_id = (await claude.push_of("approval_pending"))["approval_id"]

            decision = {"type": "approval_decision", "approval_id": approval_id, "decision": "approve"}
            await send(codex, decision, "d1")
            refused = await codex.reply_to("d1")
            assert (refused["type"], refused["code"], refused["req_id"]) == ("error", "not-an-approver", "d1")
            assert daemon.approvals is not None and [p.id for p in daemon.approvals.pending()] == [approval_id]

            await send(operator, {**decision, "reason": "looks fine"}, "d2")
            decided = await operator.reply_to("d2")
            assert decided == {"type": "approval_decided", "approval_id": approval_id, "outcome": "approved",
                               "by": "admin", "req_id": "d2"}  # fmt: skip
            hopped = await claude.reply_to("h1")
            assert (hopped["type"], hopped["to"]) == ("hopped", "deploy"), hopped

            await send(operator, {"type": "approval_decision", "approval_id": "nope", "decision": "deny"}, "d3")
            unknown = await operator.reply_to("d3")
            assert (unknown["type"], unknown["code"], unknown["req_id"]) == ("error", "approval-not-found", "d3")
            await send(operator, {"type": "approval_decision", "approval_id": approval_id, "decision": "maybe"}, "d4")
            bad = await operator.reply_to("d4")
            assert (bad["type"], bad["req_id"]) == ("error", "d4") and bad["code"] != "internal-error", bad
        request, recorded = approval_entries(daemon, approval_id)
        assert recorded["evidence/body"]["outcome"] == "approved"
        assert recorded["evidence/author"] == "admin"
        assert recorded["evidence/in-reply-to"] == request["evidence/id"]


async def test_with_an_admin_token_only_that_token_makes_an_operator(tmp_path: Path) -> None:
    digest = token_digest("s3cret")
    async with (
        running_daemon(tmp_path, http__admin_token_sha256=digest) as daemon,
        aiohttp.ClientSession() as http,
        agent_socket(http, daemon) as wrong,
        agent_socket(http, daemon) as right,
    ):
        await ready(wrong, "codex-1", admin_token="guess")
        await ready(right, "claude-1", admin_token="s3cret")
        frame = {"type": "approval_decision", "approval_id": "abcd", "decision": "deny"}
        await send(wrong, frame, "w1")
        assert (await wrong.reply_to("w1"))["code"] == "not-an-approver"
        await send(right, frame, "r1")
        assert (await right.reply_to("r1"))["code"] == "approval-not-found"
