"""``futon schema`` writes one JSON Schema per frame (both directions) and
the OpenAPI document, generated from the models the server uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from futon.cli import main
from futon.protocol.frames import CLIENT_FRAMES, SERVER_FRAMES, parse_client_frame


def test_schema_writes_every_frame_and_openapi(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "schema"
    assert main(["schema", "--out", str(out)]) == 0
    index = json.loads((out / "index.json").read_text())
    assert len(index["frames"]) == len(CLIENT_FRAMES) + len(SERVER_FRAMES)
    ready = json.loads((out / "frames" / "client.ready.schema.json").read_text())
    assert "agent_id" in ready["required"]
    tool_action = json.loads((out / "frames" / "client.tool_action.schema.json").read_text())
    # Positional (futon3c) or named parameters.
    assert [b["type"] for b in tool_action["properties"]["args"]["anyOf"]] == ["array", "object"]
    openapi = json.loads((out / "openapi.json").read_text())
    assert "/api/alpha/evidence/{id}/thread" in openapi["paths"]
    assert "wrote" in capsys.readouterr().out


def test_schema_required_fields_match_what_the_parser_demands() -> None:
    """The schema is generated from the parser's own models: a frame
    missing a field the schema requires is refused by the parser."""
    from futon.protocol.errors import ProtocolError

    for frame in CLIENT_FRAMES:
        schema = frame.model_json_schema()
        kind = schema["properties"]["type"]["const"]
        required = [f for f in schema.get("required", []) if f != "type"]
        if not required:
            assert parse_client_frame(json.dumps({"type": kind})).type == kind
            continue
        with pytest.raises(ProtocolError) as caught:
            parse_client_frame(json.dumps({"type": kind}))
        assert any(f"'{field}'" in caught.value.message for field in required), (kind, caught.value.message)
