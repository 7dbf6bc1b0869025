"""Query parameters: one parser for HTTP, WS and CLI; bad values are
invalid-query, never an empty list."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from futon.evidence.query import MAX_LIMIT, EvidenceQuery, decode_cursor, encode_cursor
from futon.protocol.errors import ProtocolError


def test_http_style_params_parse() -> None:
    q = EvidenceQuery.from_params(
        {"type": ":coordination", "tag": "a, b,", "include-ephemeral": "true", "limit": "5000", "since": "2026-01-01"}
    )
    assert q.type == "coordination"
    assert q.tags == ("a", "b")
    assert q.include_ephemeral is True
    assert q.limit == MAX_LIMIT
    assert q.since == "2026-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    "params",
    [
        {"type": "gossip"},
        {"claim-type": "hunch"},
        {"subject-type": "planet"},
        {"since": "yesterday"},
        {"until": "2026-13-01"},
        {"limit": "0"},
        {"limit": "-3"},
        {"limit": "ten"},
        {"limit": True},
        {"include-ephemeral": "maybe"},
        {"cursor": "not-a-cursor!"},
        {"cursor": encode_cursor(5)[:-2] + "zz"},
        {"tag": 5},
        {"author": ["a"]},
    ],
)
def test_bad_params_are_invalid_query(params: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        EvidenceQuery.from_params(params)
    assert caught.value.code == "invalid-query"


def test_strict_keys_refuse_unknown_filters() -> None:
    with pytest.raises(ProtocolError, match="unknown filter 'colour'"):
        EvidenceQuery.from_params({"colour": "red"}, strict_keys=True)


def test_cursor_round_trips() -> None:
    assert decode_cursor(encode_cursor(123456789)) == 123456789


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "tag", "limit", "since", "cursor", "include-ephemeral", "author"]), st.text(max_size=30)))
def test_arbitrary_params_parse_or_raise_invalid_query(params: dict[str, str]) -> None:
    try:
        q = EvidenceQuery.from_params(params)
    except ProtocolError as exc:
        assert exc.code == "invalid-query"
    else:
        assert q.limit in range(1, MAX_LIMIT + 1)
