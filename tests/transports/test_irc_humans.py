"""Humans in the loop (issue 17), over real sockets: a raw IRC client on the
embedded server and real WebSocket agents. Presence tells the truth (an
offline agent is away, a human who addresses it is told, and it gets the
line when it connects), people who were away get the conversation (join
playback, CHATHISTORY from the evidence thread, across a restart), the
runtime says what it is doing, and an answer's entry replies to the
question's."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from futon.agents.drivers.openai import OpenAIDriver
from futon.evidence import EvidenceQuery
from tests.agents.conftest import FAST_RETRY, running_agent
from tests.agents.fakes import Call, FakeOpenAI, Say
from tests.support import until
from tests.transports.irc.kit import RawClient
from tests.transports.kit import connected, running_daemon

IRC = {"irc__server__enabled": True, "irc__server__port": 0}


async def human(daemon, nick: str, *caps: str) -> RawClient:  # type: ignore[no-untyped-def]
    client = await RawClient.connect(daemon.ports["irc"])
    client.auto_pong = True
    if caps:
        await client.send("CAP LS 302", f"CAP REQ :{' '.join(caps)}")
        await client.expect("CAP", "*", "ACK")
        await client.send("CAP END")
    await client.register(nick)
    return client


async def test_an_offline_agent_is_away_is_announced_and_gets_the_line_when_it_connects(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, **IRC) as daemon, aiohttp.ClientSession() as http:
        joe = await human(daemon, "joe")
        await joe.join("#futon")
        await joe.send("WHO #futon")
        rows = {m.params[5]: m.params[6] for m in await joe.through(lambda m: m.command == "315") if m.command == "352"}
        assert rows["claude-1"] == "G" and rows["codex-1"] == "G"  # away, and never channel operator
        assert rows["futon"] == "H@"  # the daemon's nick holds op
        await joe.send("WHOIS claude-1")
        away = await joe.expect_numeric("301", "claude-1")
        assert "not connected" in away.text

        await joe.send("PRIVMSG #futon :claude-1: the add test fails, can you look?")
        notice = await joe.expect("NOTICE")
        assert notice.source.startswith("futon!") and notice.params == [
            "joe",
            "claude-1 is offline; it will get your message when it connects.",
        ]
        await joe.send("PRIVMSG codex-1 :privately: review my branch")
        private_notice = await joe.expect("NOTICE")
        assert private_notice.params[1].startswith("codex-1 is offline")

        # Without resume: the waiting line arrives at connect, with its evidence id.
        async with connected(http, daemon, "claude-1") as claude:
            heard = await claude.push_of("irc_message")
            assert (heard["channel"], heard["from"], heard["text"]) == (
                "#futon",
                "joe",
                "claude-1: the add test fails, can you look?",
            )
            question = daemon.store.get(heard["evidence_id"])
            assert question["evidence/body"]["text"] == heard["text"]
            await joe.send("WHOIS claude-1")
            lines = await joe.through(lambda m: m.command == "318")
            assert "301" not in [m.command for m in lines]  # back: no longer away
            await joe.send("WHO claude-1")
            assert (await joe.expect_numeric("352")).params[6] == "H"

        # With resume: the client that resumes gets it from its resume.
        async with connected(http, daemon, "codex-1", resumes=True) as codex:
            await codex.send({"type": "resume", "since_seq": 0})
            heard = await codex.push_of("irc_message")
            assert (heard["private"], heard["text"]) == (True, "privately: review my branch")

        # The daemon's notices are on the record, in its private thread with joe.
        told = daemon.store.query(EvidenceQuery(subject_id="irc/futon+joe")).entries
        assert {e["evidence/body"]["text"].split(" ")[0] for e in told} == {"claude-1", "codex-1"}
        assert all(e["evidence/author"] == "futon" and e["evidence/body"]["notice"] for e in told)
        await joe.close()


async def test_joining_plays_the_recent_conversation_and_chathistory_answers_across_a_restart(
    tmp_path: Path,
) -> None:
    async with running_daemon(tmp_path, irc__server__history_lines=2, **IRC) as daemon:
        joe = await human(daemon, "joe")
        await joe.join("#futon")
        for n in range(3):
            await joe.send(f"PRIVMSG #futon :line {n}")
        await until(lambda: len(daemon.store.query(EvidenceQuery(subject_id="irc/#futon")).entries) == 3)

        amy = await human(daemon, "amy", "server-time")
        await amy.join("#futon")
        played = [await amy.expect("PRIVMSG") for _ in range(2)]  # history_lines: the last two
        assert [m.params for m in played] == [["#futon", "line 1"], ["#futon", "line 2"]]
        assert all(m.source.startswith("joe!") for m in played)
        stored = {e["evidence/body"]["text"]: e["evidence/at"] for e in daemon.store.query(EvidenceQuery(subject_id="irc/#futon")).entries}
        assert [m.tags["time"] for m in played] == [stored["line 1"], stored["line 2"]]  # the original times

        plain = await human(daemon, "bob")  # no server-time: the time is in the text
        await plain.join("#futon")
        first = await plain.expect("PRIVMSG")
        assert first.params[1].endswith("] line 1") and first.params[1].startswith("[")
        for client in (joe, amy, plain):
            await client.close()

    async with running_daemon(tmp_path, **IRC) as daemon:  # the same data_dir: history is in the store
        kim = await human(daemon, "kim", "batch", "server-time", "message-tags", "draft/chathistory")
        await kim.join("#futon")  # a chathistory client gets no playback: it asks
        await kim.send("CHATHISTORY LATEST #futon * 10")
        start = await kim.expect("BATCH")
        assert start.params[1:] == ["chathistory", "#futon"]
        ref = start.params[0].removeprefix("+")
        lines = await kim.through(lambda m: m.command == "BATCH")
        messages = [m for m in lines if m.command == "PRIVMSG"]
        assert [m.params[1] for m in messages] == ["line 0", "line 1", "line 2"]
        assert all(m.tags["batch"] == ref and m.tags["msgid"].startswith("e-") and m.tags["time"] for m in messages)
        assert lines[-1].params == [f"-{ref}"]

        await kim.send(f"CHATHISTORY BEFORE #futon msgid={messages[2].tags['msgid']} 1")
        await kim.expect("BATCH")
        before = [m for m in await kim.through(lambda m: m.command == "BATCH") if m.command == "PRIVMSG"]
        assert [m.params[1] for m in before] == ["line 1"]

        await kim.send("CHATHISTORY LATEST #elsewhere * 10")
        fail = await kim.expect("FAIL")
        assert fail.params[:3] == ["CHATHISTORY", "INVALID_TARGET", "LATEST"]
        await kim.send("CHATHISTORY LATEST #futon * many")
        assert (await kim.expect("FAIL")).params[1] == "INVALID_PARAMS"
        await kim.send("CHATHISTORY BEFORE #futon msgid=e-nope 5")
        assert (await kim.expect("FAIL")).params[1] == "MESSAGE_ERROR"
        await kim.close()


async def test_the_runtime_says_each_step_and_its_answer_replies_to_the_question(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, **IRC) as daemon:
        record = daemon.registry.get("claude-1")
        record.spec = record.spec.model_copy(update={"progress": "notice"})
        model = await FakeOpenAI([
            Call.named("grep", pattern="def add", path="src"),
            Call.named("edit", path="src/app.py", old="a - b", new="a + b"),  # not in explore: refused
            Say("add subtracts: src/app.py line 2"),
        ]).start()  # fmt: skip
        try:
            driver = OpenAIDriver("fake-model", base_url=model.root + "/v1", retry=FAST_RETRY)
            joe = await human(daemon, "joe")
            await joe.join("#futon")
            async with running_agent(daemon, driver, "claude-1"):
                await joe.send("PRIVMSG #futon :claude-1: why does add fail?")
                grep = await joe.expect("NOTICE", "#futon", timeout=30)
                refused = await joe.expect("NOTICE", "#futon", timeout=30)
                answer = await joe.expect("PRIVMSG", "#futon", timeout=30)
            await joe.close()
        finally:
            await model.close()
        assert grep.source.startswith("claude-1!")
        assert grep.params[1].startswith('claude-1 ▸ explore: grep "def add" → ')
        assert refused.params[1].startswith("claude-1 ▸ explore: edit ") and refused.params[1].endswith("→ refused (tool-not-allowed)")
        assert answer.params[1] == "joe: add subtracts: src/app.py line 2"

        def thread_now() -> list[dict]:
            return list(reversed(daemon.store.query(EvidenceQuery(subject_id="irc/#futon")).entries))

        await until(lambda: any(e["evidence/body"]["text"] == answer.params[1] for e in thread_now()))
        thread = thread_now()
        question = next(e for e in thread if e["evidence/body"]["text"] == "claude-1: why does add fail?")
        reply = next(e for e in thread if e["evidence/body"]["text"] == answer.params[1])
        assert reply["evidence/author"] == "claude-1" and reply["evidence/in-reply-to"] == question["evidence/id"]
        notices = [e for e in thread if e["evidence/body"].get("notice")]
        assert [e["evidence/body"]["text"] for e in notices] == [grep.params[1], refused.params[1]]


async def test_progress_is_dropped_when_off_and_a_bad_in_reply_to_is_refused(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, **IRC) as daemon, aiohttp.ClientSession() as http:
        async with connected(http, daemon, "claude-1") as claude:
            ack = await claude.ask({"type": "ready", "agent_id": "claude-1"})
            assert ack["progress"] == "off"  # the ready_ack tells the runtime
            await claude.send({"type": "progress", "to": "#futon", "text": "claude-1 ▸ explore: read"})
            bad = await claude.ask({"type": "irc_response", "channel": "#futon", "text": "hi", "in_reply_to": "e-nope"})
            assert (bad["type"], bad["code"]) == ("error", "invalid-input")
        lines = daemon.store.query(EvidenceQuery(subject_id="irc/#futon")).entries
        assert lines == []  # nothing said: progress off, the bad answer refused before it was said
