"""Humans in IRC and agents over WebSocket, through the daemon: a raw IRC
client on the embedded server talks with a WS agent; the daemon answers its
own commands; the channel's transcript is one evidence thread."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from futon.evidence import EvidenceQuery
from tests.transports.irc.kit import RawClient
from tests.transports.kit import base_url, connected, running_daemon


async def test_a_human_and_an_agent_talk_through_the_embedded_server(tmp_path: Path) -> None:
    async with (
        running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon,
        aiohttp.ClientSession() as http,
    ):
        joe = await RawClient.connect(daemon.ports["irc"])
        joe.auto_pong = True
        await joe.register("joe")
        joined = await joe.join("#futon")
        names = " ".join(m.params[-1] for m in joined if m.command == "353")
        assert {"claude-1", "codex-1", "futon"} <= set(names.replace("@", "").split())

        async with connected(http, daemon, "claude-1") as claude:
            await joe.send("PRIVMSG #futon :morning all")
            await joe.send("PRIVMSG #futon :claude-1: the add test fails, can you look?")
            heard = await claude.push_of("irc_message")
            assert (heard["channel"], heard["from"], heard["text"]) == (
                "#futon",
                "joe",
                "claude-1: the add test fails, can you look?",
            )

            await claude.send(
                {
                    "type": "irc_response",
                    "channel": "#futon",
                    "text": "joe: on it\nlooking at src/app.py",
                }
            )
            first = await joe.expect("PRIVMSG")
            second = await joe.expect("PRIVMSG")
            assert first.source.startswith("claude-1!") and first.params == ["#futon", "joe: on it"]
            assert second.params == ["#futon", "looking at src/app.py"]

            await joe.send("PRIVMSG claude-1 :psst, private")
            private = await claude.push_of("irc_message")
            assert (private["channel"], private["private"], private["text"]) == (
                None,
                True,
                "psst, private",
            )
            await claude.send({"type": "irc_response", "nick": "joe", "text": "got it"})
            reply = await joe.expect("PRIVMSG")
            assert reply.source.startswith("claude-1!") and reply.params == ["joe", "got it"]

            await joe.send("PRIVMSG #futon :futon: agents")
            answer = await joe.expect("PRIVMSG")
            assert answer.source.startswith("futon!") and "claude-1 (online" in answer.params[1]

        transcript = daemon.store.query(
            EvidenceQuery(subject_type="thread", subject_id="irc/#futon", limit=20)
        ).entries
        lines = [
            (e["evidence/author"], e["evidence/body"]["transport"], e["evidence/body"]["text"])
            for e in reversed(transcript)
        ]
        assert lines[:3] == [
            ("joe", "irc", "morning all"),
            ("joe", "irc", "claude-1: the add test fails, can you look?"),
            ("claude-1", "ws-relay", "joe: on it\nlooking at src/app.py"),
        ]
        health = daemon.health()
        assert health["connections"]["irc"] == 1
        await joe.close()


async def test_http_chat_to_a_channel_reaches_a_real_irc_client_and_is_recorded_once(
    tmp_path: Path,
) -> None:
    """The pinned bug (issue 15): ``POST /api/alpha/chat {to: "#futon"}``
    answered 202 and no IRC client saw the line. It goes through the one
    chat path now: the embedded server, the mentioned agent, the thread."""
    async with (
        running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon,
        aiohttp.ClientSession() as http,
    ):
        joe = await RawClient.connect(daemon.ports["irc"])
        joe.auto_pong = True
        await joe.register("joe")
        await joe.join("#futon")
        async with connected(http, daemon, "codex-1") as codex:
            async with http.post(
                base_url(daemon) + "/api/alpha/chat",
                json={"to": "#futon", "text": "codex-1: deploy is done", "from": "bob"},
            ) as response:
                assert response.status == 202, await response.text()
                answer = await response.json()
            assert (answer["thread"], answer["networks"], answer["agents"]) == (
                "irc/#futon",
                ["embedded"],
                ["codex-1"],
            )
            line = await joe.expect("PRIVMSG")
            assert line.source.startswith("futon!") and line.params == [
                "#futon",
                "[bob] codex-1: deploy is done",
            ]
            assert [m for m in await joe.ping() if m.command == "PRIVMSG"] == []  # once
            push = await codex.push_of("chat_message")
            assert (push["from"], push["to"], push["transport"]) == ("bob", "#futon", "http")
            # The one chat path's other callers reach the same client: a bulletin, a bell.
            await daemon.runner.messenger.post("#futon", "3 missions ready", author="tickle-1")
            bulletin = await joe.expect("PRIVMSG")
            assert bulletin.source.startswith("tickle-1!") and bulletin.params == [
                "#futon",
                "3 missions ready",
            ]
        thread = daemon.store.query(
            EvidenceQuery(subject_type="thread", subject_id="irc/#futon", limit=20)
        ).entries
        texts = [e["evidence/body"]["text"] for e in thread]
        assert texts.count("codex-1: deploy is done") == 1 and texts.count("3 missions ready") == 1
        (entry,) = [e for e in thread if e["evidence/body"]["text"] == "codex-1: deploy is done"]
        assert (
            entry["evidence/author"],
            entry["evidence/body"]["transport"],
            entry["evidence/body"]["network"],
        ) == ("bob", "http", "embedded")
        await joe.close()


async def test_an_agents_chat_reaches_irc_the_mentioned_agent_and_the_thread_once(
    tmp_path: Path,
) -> None:
    async with (
        running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon,
        aiohttp.ClientSession() as http,
    ):
        joe = await RawClient.connect(daemon.ports["irc"])
        joe.auto_pong = True
        await joe.register("joe")
        await joe.join("#Futon")
        async with (
            connected(http, daemon, "claude-1") as claude,
            connected(http, daemon, "codex-1") as codex,
        ):
            await claude.send({"type": "chat", "to": "#FUTON", "text": "@codex-1 review please"})
            line = await joe.expect("PRIVMSG")
            assert (
                line.source.startswith("claude-1!") and line.params[1] == "@codex-1 review please"
            )
            assert [m for m in await joe.ping() if m.command == "PRIVMSG"] == []
            push = await codex.push_of("chat_message")
            assert (push["from"], push["text"], push["transport"]) == (
                "claude-1",
                "@codex-1 review please",
                "websocket",
            )
            await claude.send({"type": "chat", "to": "joe", "text": "and you too"})
            private = await joe.expect("PRIVMSG")
            assert private.params == ["joe", "and you too"]
        channel = daemon.store.query(
            EvidenceQuery(subject_type="thread", subject_id="irc/#futon")
        ).entries
        assert [e["evidence/body"]["text"] for e in channel] == [
            "@codex-1 review please"
        ]  # #FUTON is #futon
        assert (
            len(
                daemon.store.query(
                    EvidenceQuery(subject_type="thread", subject_id="irc/claude-1+joe")
                ).entries
            )
            == 1
        )
        await joe.close()


async def test_agent_lines_that_go_nowhere_are_typed_errors_echoing_req_id(tmp_path: Path) -> None:
    """Issue 15: an ``irc_response`` to a channel nobody carries, a ``chat``
    to a name that is no agent and no IRC user — error frames, not a log
    line; over HTTP the same codes as 404/400."""
    async with (
        running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon,
        aiohttp.ClientSession() as http,
    ):
        async with connected(http, daemon, "claude-1") as claude:
            refused = await claude.ask(
                {"type": "irc_response", "channel": "#nowhere", "text": "hello?"}
            )
            assert (refused["type"], refused["code"]) == ("error", "no-such-channel") and refused[
                "req_id"
            ].startswith("r")
            refused = await claude.ask({"type": "chat", "to": "ghost", "text": "hello?"})
            assert (refused["type"], refused["code"], refused["context"]) == (
                "error",
                "unknown-target",
                {"to": "ghost"},
            )
            refused = await claude.ask(
                {"type": "irc_response", "nick": "no such nick", "text": "hello?"}
            )
            assert refused["code"] == "invalid-target"
            assert (await claude.ask({"type": "ping"}))["type"] == "pong"  # the socket stays usable
        url = base_url(daemon) + "/api/alpha/chat"
        for to, status, code in (
            ("#nowhere", 404, "no-such-channel"),
            ("ghost", 404, "unknown-target"),
            ("a b", 400, "invalid-target"),
        ):
            async with http.post(url, json={"to": to, "text": "hello?"}) as response:
                body = await response.json()
                assert (response.status, body["error"], body["code"]) == (status, True, code), body
        assert daemon.store.query(EvidenceQuery(type="forum-post")).entries == []
