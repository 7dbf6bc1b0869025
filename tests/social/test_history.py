"""A channel's history read back from its evidence thread: who each line is
shown as, LATEST / BEFORE / AFTER by msgid and by time, bounded counts and
typed errors for anchors that name nothing."""

from __future__ import annotations

import pytest

from futon.config.models import AgentsFile, AgentSpec
from futon.evidence import MemoryStore
from futon.protocol.errors import FutonError, NotFound
from futon.social.history import ChannelHistory
from futon.social.registry import AgentRegistry


def post(store: MemoryStore, author: str, text: str, *, transport: str = "irc", notice: bool = False) -> str:
    body: dict[str, object] = {"text": text, "channel": "#futon", "transport": transport, "network": "embedded"}
    if notice:
        body["notice"] = True
    entry = store.append_sync(
        {"subject": {"ref/type": "thread", "ref/id": "irc/#futon"}, "type": "forum-post",
         "claim-type": "observation", "author": author, "body": body}
    )  # fmt: skip
    return str(entry["evidence/id"])


@pytest.fixture
def history() -> tuple[ChannelHistory, MemoryStore, list[str]]:
    store = MemoryStore()
    registry = AgentRegistry(
        AgentsFile(agents=[AgentSpec(id="claude-1", type="claude", nick="claude")], routing={"default": "explore"})
    )
    ids = [
        post(store, "joe", "claude: why?"),
        post(store, "claude-1", "because", transport="ws-relay"),
        post(store, "futon", "claude is offline", transport="daemon", notice=True),
        post(store, "irc:claude-1", "I am not the agent"),
        post(store, "script", "from http", transport="http"),
    ]
    return ChannelHistory(store, registry, "futon"), store, ids


def test_lines_are_shown_as_their_speakers_oldest_first(history) -> None:  # type: ignore[no-untyped-def]
    reader, _store, ids = history
    lines = reader.latest("#FUTON", 10)  # channel names fold as IRC folds them
    assert [(line.nick, line.text, line.notice) for line in lines] == [
        ("joe", "claude: why?", False),
        ("claude", "because", False),  # an agent by its nick
        ("futon", "claude is offline", True),
        ("claude-1", "I am not the agent", False),  # a human who carried an agent's name
        ("futon", "[script] from http", False),  # said through the daemon, named
    ]
    assert [line.entry_id for line in lines] == ids
    assert [line.text for line in reader.latest("#futon", 2)] == ["I am not the agent", "[script] from http"]


def test_before_after_and_latest_after_an_anchor(history) -> None:  # type: ignore[no-untyped-def]
    reader, store, ids = history
    assert [line.entry_id for line in reader.before("#futon", ("msgid", ids[3]), 2)] == ids[1:3]
    assert [line.entry_id for line in reader.after("#futon", ("msgid", ids[1]), 2)] == ids[2:4]
    assert [line.entry_id for line in reader.latest("#futon", 10, ("msgid", ids[2]))] == ids[3:]
    first_at = store.get(ids[0])["evidence/at"]
    assert [line.entry_id for line in reader.before("#futon", ("timestamp", first_at), 5)] == []
    assert ids[0] not in [line.entry_id for line in reader.after("#futon", ("timestamp", first_at), 5)]


def test_anchors_that_name_nothing_are_typed_errors(history) -> None:  # type: ignore[no-untyped-def]
    reader, _store, _ids = history
    with pytest.raises(NotFound):
        reader.before("#futon", ("msgid", "e-nope"), 5)
    with pytest.raises(FutonError) as caught:
        reader.after("#futon", ("timestamp", "yesterday"), 5)
    assert caught.value.code == "invalid-query"
    assert reader.latest("#elsewhere", 5) == []
