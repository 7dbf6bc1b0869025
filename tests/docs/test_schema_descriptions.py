"""`futon schema` describes every field: each property of every frame's JSON
Schema (nested models included) and of every HTTP request body carries a
description, so the generated schemas document the protocol by themselves."""

from __future__ import annotations

from typing import Any

from futon.protocol import bodies
from futon.protocol.frames import frame_schemas


def undescribed(schema: dict[str, Any], where: str) -> list[str]:
    found = [
        f"{where}.{key}"
        for key, prop in schema.get("properties", {}).items()
        if "description" not in prop
    ]
    for name, sub in schema.get("$defs", {}).items():
        found += undescribed(sub, f"{where}/{name}")
    return found


def test_every_frame_field_has_a_description() -> None:
    missing = [gap for name, schema in frame_schemas().items() for gap in undescribed(schema, name)]
    assert not missing, f"fields without a description: {', '.join(missing)}"


def test_every_request_body_field_has_a_description() -> None:
    models = (bodies.DispatchRequest, bodies.PresenceRequest, bodies.RegisterAgentRequest,
              bodies.CompactRequest, bodies.ChatRequest)  # fmt: skip
    missing = [
        gap for m in models for gap in undescribed(m.model_json_schema(by_alias=True), m.__name__)
    ]
    assert not missing, f"fields without a description: {', '.join(missing)}"
