"""The IRC line codec on its own: no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from futon.protocol.errors import ProtocolError
from futon.protocol.irc_lines import (
    LineBuffer,
    Message,
    irc_lower,
    parse_line,
    render,
    split_utf8,
    valid_channel,
    valid_nick,
)


def test_parse_reads_tags_source_command_params_and_trailing() -> None:
    msg = parse_line(
        r"@time=2024-01-01T00:00:00.000Z;+draft/x=a\sb\:c :nick!u@h privmsg #room :hello there"
    )
    assert msg.tags == {"time": "2024-01-01T00:00:00.000Z", "+draft/x": "a b;c"}
    assert msg.source == "nick!u@h"
    assert msg.command == "PRIVMSG"
    assert msg.params == ["#room", "hello there"]
    assert msg.trailing


def test_parse_accepts_runs_of_spaces_and_empty_trailing() -> None:
    assert parse_line("MODE   #room  +o   alice").params == ["#room", "+o", "alice"]
    assert parse_line("TOPIC #room :").params == ["#room", ""]
    assert parse_line("PING").params == []


@pytest.mark.parametrize(
    "line", ["", "   ", ":only.a.prefix", "@a=b", "@a=b :src", "PRIV-MSG x", "12 x", "\ufffd\ufffd"]
)
def test_parse_refuses_lines_without_a_command(line: str) -> None:
    with pytest.raises(ProtocolError):
        parse_line(line)


def test_render_adds_a_colon_only_where_needed_or_asked() -> None:
    assert render(Message("JOIN", ["#room"], "a!b@c")) == ":a!b@c JOIN #room"
    assert render(Message("PRIVMSG", ["#room", "hi"], trailing=True)) == "PRIVMSG #room :hi"
    assert render(Message("PRIVMSG", ["#room", "two words"])) == "PRIVMSG #room :two words"
    assert render(Message("PRIVMSG", ["#room", ":)"])) == "PRIVMSG #room ::)"
    assert render(Message("TOPIC", ["#room", ""])) == "TOPIC #room :"
    assert render(Message("TAGMSG", ["#r"], tags={"+a": "x y", "b": ""})) == r"@+a=x\sy;b TAGMSG #r"


@pytest.mark.parametrize("params", [["a b", "x"], ["", "x"], [":a", "x"], ["x\r\ny"]])
def test_render_refuses_what_no_line_can_carry(params: list[str]) -> None:
    with pytest.raises(ValueError):
        render(Message("PRIVMSG", params))


def test_render_cuts_the_last_param_to_512_bytes_on_a_character_boundary() -> None:
    line = render(Message("PRIVMSG", ["#room", "é" * 600], "nick!user@host"))
    assert len(line.encode()) <= 510
    assert line.encode().decode() == line


_word = st.text(
    st.characters(blacklist_characters=" \r\n\0:", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=12,
)
_text = st.text(
    st.characters(blacklist_characters="\r\n\0", blacklist_categories=["Cs"]), max_size=40
)


@given(
    command=st.sampled_from(["PRIVMSG", "NOTICE", "JOIN", "001", "MODE"]),
    middle=st.lists(_word, max_size=4),
    last=_text,
    source=st.none() | _word,
    tags=st.dictionaries(st.from_regex(r"\A\+?[a-z][a-z0-9/-]{0,8}\Z"), _text, max_size=3),
)
def test_parse_inverts_render(
    command: str, middle: list[str], last: str, source: str | None, tags: dict[str, str]
) -> None:
    msg = Message(command, [*middle, last], source, tags, trailing=True)
    assert parse_line(render(msg, max_body_bytes=None)) == msg


def test_rfc1459_casemapping_folds_brackets_and_tilde() -> None:
    assert irc_lower("Nick[A]\\~") == "nick{a}|^"
    assert irc_lower("#Futon") == irc_lower("#fUTON")


def test_nick_and_channel_validity() -> None:
    assert valid_nick("claude-1") and valid_nick("[bot]") and valid_nick("a" * 30)
    assert not any(valid_nick(n) for n in ["", "1abc", "-x", "a b", "a!b", "a" * 31, "é"])
    assert valid_channel("#futon") and valid_channel("#a-b.c")
    assert not any(
        valid_channel(c) for c in ["#", "futon", "#a b", "#a,b", "#a\x07", "#" + "a" * 50]
    )


def test_split_utf8_prefers_word_boundaries_and_keeps_every_character() -> None:
    text = "lorem ipsum dolor sit amet " * 20 + "ünïcödé" * 30
    pieces = split_utf8(text, 50)
    assert all(len(p.encode()) <= 50 for p in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")
    assert split_utf8("", 50) == [""]


def test_line_buffer_splits_on_cr_lf_and_crlf_and_drops_empty_lines() -> None:
    buf = LineBuffer(limit=100)
    lines = buf.feed(b"A\r\nB\nC\rD") + buf.feed(b"\r") + buf.feed(b"\n\n\r\nE\r\n")
    assert [line.data for line in lines] == [b"A", b"B", b"C", b"D", b"E"]


def test_line_buffer_reports_an_overlong_line_once_and_discards_the_rest() -> None:
    buf = LineBuffer(limit=10)
    lines = buf.feed(b"x" * 25) + buf.feed(b"y" * 1000) + buf.feed(b"z\r\nPING ok\r\n")
    assert [(line.overflow, line.data) for line in lines] == [
        (True, b"x" * 10),
        (False, b"PING ok"),
    ]
