"""Entry validation: the shapes of evidence.md, and a typed error for each
kind of bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from futon.evidence.model import chain_hash, normalise_entry, seal
from futon.protocol.errors import ProtocolError
from tests.evidence.conftest import entry


def test_compact_spellings_become_canonical_keys() -> None:
    out = normalise_entry(
        entry(tags=[":a", "b"], **{"session-id": "s", "pattern-id": "p", "conjecture?": False, "body": {"x": 1}})
    )
    assert out["evidence/subject"] == {"ref/type": "session", "ref/id": "sess-1"}
    assert out["evidence/tags"] == ["a", "b"]
    assert out["evidence/session-id"] == "s"
    assert out["evidence/conjecture?"] is False  # false is kept as false
    assert out["evidence/body"] == {"x": 1}
    assert out["evidence/id"].startswith("e-") and len(out["evidence/id"]) == 38


def test_subject_type_and_id_pair_is_accepted() -> None:
    raw = entry()
    del raw["subject"]
    raw.update({"subject-type": "thread", "subject-id": "irc/#futon"})
    assert normalise_entry(raw)["evidence/subject"] == {"ref/type": "thread", "ref/id": "irc/#futon"}


def test_futon3c_keywords_lose_their_colon() -> None:
    out = normalise_entry(
        {
            "evidence/subject": {"ref/type": ":session", "ref/id": "s"},
            "evidence/type": ":coordination",
            "evidence/claim-type": ":goal",
            "evidence/author": "a",
        }
    )
    assert (out["evidence/type"], out["evidence/claim-type"]) == ("coordination", "goal")
    assert out["evidence/subject"]["ref/type"] == "session"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ([1, 2], "must be a JSON object, got an array"),
        ("text", "must be a JSON object, got a string"),
        (None, "got null"),
        ({k: v for k, v in entry().items() if k != "subject"}, "missing required field 'evidence/subject'"),
        (entry(type="gossip"), "unknown value 'gossip'"),
        (entry(**{"claim-type": "hunch"}), "unknown value 'hunch'"),
        (entry(subject={"ref/type": "planet", "ref/id": "x"}), "unknown value 'planet'"),
        (entry(subject={"ref/type": "session", "ref/id": ""}), "ref/id"),
        (entry(subject="sess-1"), "evidence/subject"),
        (entry(body=[1]), "'evidence/body' must be a JSON object, got an array"),
        (entry(body="hi"), "'evidence/body' must be a JSON object, got a string"),
        (entry(tags="a,b"), "evidence/tags"),
        (entry(tags=[""]), "tag"),
        (entry(author=""), "evidence/author"),
        (entry(author=7), "evidence/author"),
        (entry(**{"ephemeral?": "yes"}), "evidence/ephemeral?"),
        (entry(**{"evidence/at": "2026-01-01T00:00:00Z"}), "set by the store"),
        (entry(seq=4), "set by the store"),
        (entry(**{"evidence/hash": "00"}), "set by the store"),
        (entry(colour="blue"), "unknown field 'colour'"),
        (entry(**{"evidence/colour": "blue"}), "unknown field 'evidence/colour'"),
        (entry(id="x", **{"evidence-id": "y"}), "given twice"),
        (entry(id="x" * 300), "evidence/id"),
    ],
)
def test_bad_entries_get_invalid_entry_naming_the_field(raw: Any, fragment: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        normalise_entry(raw)
    assert caught.value.code == "invalid-entry"
    assert fragment in caught.value.message


def test_hash_covers_every_field_and_the_previous_hash() -> None:
    base = normalise_entry(entry(id="e-1", body={"n": 1}))
    sealed, line = seal(base, seq=1, at="2026-01-01T00:00:00.000Z", prev_hash="0" * 64)
    assert json.loads(line) == sealed and line.endswith(b"\n")
    assert sealed["evidence/hash"] == chain_hash("0" * 64, sealed)
    assert chain_hash("1" * 64, sealed) != sealed["evidence/hash"]
    edited = dict(sealed, **{"evidence/body": {"n": 2}})
    assert chain_hash("0" * 64, edited) != sealed["evidence/hash"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
keys = st.sampled_from(
    ["subject", "type", "claim-type", "author", "body", "tags", "evidence/id", "in-reply-to", "ephemeral?", "zzz"]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys | st.text(max_size=10), json_values, max_size=8) | json_values)
def test_any_json_either_normalises_or_raises_invalid_entry(raw: Any) -> None:
    try:
        out = normalise_entry(raw)
    except ProtocolError as exc:
        assert exc.code == "invalid-entry"
    else:
        assert out["evidence/id"] and out["evidence/author"]


def test_generated_ids_are_distinct_uuid4s_and_a_forked_child_makes_its_own() -> None:
    import os
    import uuid

    from futon.evidence.model import new_entry_id

    ids = [new_entry_id() for _ in range(1000)]  # several refills of the pool
    assert len(set(ids)) == len(ids)
    for entry_id in ids:
        assert entry_id.startswith("e-")
        parsed = uuid.UUID(entry_id[2:])
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == entry_id[2:]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.write(write, new_entry_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    assert child != new_entry_id()
