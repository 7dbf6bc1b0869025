"""``futon schema [--out DIR]``: JSON Schema for every WebSocket frame and
the OpenAPI document of the HTTP API, generated from the same models the
server parses and renders with — so they cannot drift from the code."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from futon.cli import add_config_option


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "schema",
        help="Write the JSON Schemas of the WebSocket frames and the OpenAPI document.",
        description=(
            "Write the JSON Schema of every WebSocket frame and the OpenAPI document of the "
            "HTTP API, generated from the models the daemon itself uses."
        ),
    )
    add_config_option(parser)
    parser.add_argument("--out", default="schema", metavar="DIR", help="Where to write (default: ./schema).")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from futon.protocol.errors import FutonError
    from futon.protocol.frames import frame_schemas
    from futon.transports.http import openapi_document

    out = Path(args.out)
    try:
        (out / "frames").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FutonError(f"cannot create {out}: {exc.strerror}") from None
    index: dict[str, Any] = {"frames": {}, "openapi": "openapi.json"}
    for name, schema in sorted(frame_schemas().items()):
        path = out / "frames" / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        index["frames"][name] = str(path.relative_to(out))
    (out / "openapi.json").write_text(json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n")
    (out / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(index['frames'])} frame schemas and openapi.json to {out}")
    return 0
