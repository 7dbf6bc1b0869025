"""Humans in IRC and agents over WebSocket, through the daemon: a raw IRC
client on the embedded server talks with a WS agent; the daemon answers its
own commands; the channel's transcript is one evidence thread."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from futon.evidence import EvidenceQuery
from tests.transports.irc.kit import RawClient
from tests.transports.kit import connected, running_daemon


async def test_a_human_and_an_agent_talk_through_the_embedded_server(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon, aiohttp.ClientSession() as http:
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
            assert (heard["channel"], heard["from"], heard["text"]) == ("#futon", "joe", "claude-1: the add test fails, can you look?")

            await claude.send({"type": "irc_response", "channel": "#futon", "text": "joe: on it\nlooking at src/app.py"})
            first = await joe.expect("PRIVMSG")
            second = await joe.expect("PRIVMSG")
            assert first.source.startswith("claude-1!") and first.params == ["#futon", "joe: on it"]
            assert second.params == ["#futon", "looking at src/app.py"]

            await joe.send("PRIVMSG claude-1 :psst, private")
            private = await claude.push_of("irc_message")
            assert (private["channel"], private["private"], private["text"]) == (None, True, "psst, private")
            await claude.send({"type": "irc_response", "nick": "joe", "text": "got it"})
            reply = await joe.expect("PRIVMSG")
            assert reply.source.startswith("claude-1!") and reply.params == ["joe", "got it"]

            await joe.send("PRIVMSG #futon :futon: agents")
            answer = await joe.expect("PRIVMSG")
            assert answer.source.startswith("futon!") and "claude-1 (online" in answer.params[1]

        transcript = daemon.store.query(EvidenceQuery(subject_type="thread", subject_id="irc/#futon", limit=20)).entries
        lines = [(e["evidence/author"], e["evidence/body"]["transport"], e["evidence/body"]["text"]) for e in reversed(transcript)]
        assert lines[:3] == [
            ("joe", "irc", "morning all"),
            ("joe", "irc", "claude-1: the add test fails, can you look?"),
            ("claude-1", "ws-relay", "joe: on it\nlooking at src/app.py"),
        ]
        health = daemon.health()
        assert health["connections"]["irc"] == 1
        await joe.close()
