"""Bot mode through the daemon: the daemon joins a real ngircd network as
its bot, a human there addresses an agent, the WS agent hears it and its
answer comes back as `[claude-1] …` — the same relay as the embedded
server, recorded as one thread with the network's name."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from futon.evidence import EvidenceQuery
from tests.transports.irc_bot.kit import Connect, Ngircd
from tests.transports.kit import connected, running_daemon


async def test_a_human_on_a_real_network_talks_to_a_ws_agent(tmp_path: Path, ngircd: Ngircd, connect: Connect) -> None:
    network = [{"name": "testnet", "host": "127.0.0.1", "port": ngircd.port, "nick": "futonbot", "channels": ["#futon"]}]
    human = await connect(ngircd.port, "alice", channel="#futon")
    async with running_daemon(tmp_path, irc__networks=network) as daemon, aiohttp.ClientSession() as http:
        await human.expect(lambda line: line.command == "JOIN" and line.nick == "futonbot", timeout=20)
        async with connected(http, daemon, "claude-1") as claude:
            await human.send("PRIVMSG #futon :claude-1: is the build green?")
            heard = await claude.push_of("irc_message", timeout=20)
            assert (heard["channel"], heard["from"], heard["text"]) == ("#futon", "alice", "claude-1: is the build green?")
            await claude.send({"type": "irc_response", "channel": "#futon", "text": "alice: yes, 42 passed"})
            answer = await human.expect(lambda line: line.command == "PRIVMSG" and line.nick == "futonbot", timeout=20)
            assert answer.text == "[claude-1] alice: yes, 42 passed"
        assert daemon.health()["transports"]["irc"]["networks"] == {"testnet": True}
        thread = daemon.store.query(EvidenceQuery(subject_id="irc/#futon", limit=10)).entries
        networks = {e["evidence/body"]["network"] for e in thread}
        assert "testnet" in networks
        events = daemon.store.query(EvidenceQuery(tags=("irc", "connected"))).entries
        assert events and events[0]["evidence/body"]["network"] == "testnet"
