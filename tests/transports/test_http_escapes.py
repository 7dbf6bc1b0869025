"""Percent-escapes in request targets: malformed ones are named, valid ones
pass, and no input makes the check itself fail."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from futon.transports.http import malformed_escape


def test_valid_escapes_pass() -> None:
    assert malformed_escape("/session/sess%2D1?tag=a%2Cb&x=%C3%A9") is None
    assert malformed_escape("/plain/path?x=1") is None


def test_malformed_escapes_are_named() -> None:
    assert malformed_escape("/a%zz") == "'%zz'"
    assert malformed_escape("/a%") == "'%'"
    assert malformed_escape("/a?x=%C3%28") == "escapes that are not UTF-8"


@given(st.text(max_size=60))
def test_any_quoted_text_is_accepted(text: str) -> None:
    assert malformed_escape("/x/" + quote(text, safe="")) is None


@given(st.text(alphabet="%/?&=+abcdefABCDEF0123456789\u00e9", max_size=40))
def test_the_check_never_raises(target: str) -> None:
    result = malformed_escape(target)
    assert result is None or isinstance(result, str)
