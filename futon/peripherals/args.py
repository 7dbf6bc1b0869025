"""Tool arguments: one definition per tool, used three ways.

Tool arguments travel as JSON arrays (docs/tools.md): ``["src/a.py",
{"offset": 10}]``. Each tool has a pydantic model whose fields, in order, are
the positional arguments; a trailing ``options`` field takes the optional
object. From that one model come

- parsing and validation (:func:`parse_args`), which the dispatcher runs
  *before* any scope check or backend, so a backend only ever sees typed,
  bounded input;
- the list of path arguments the scope check must resolve
  (:meth:`ToolArgs.paths`);
- the JSON Schema an agent runtime or MCP bridge shows a model
  (:func:`args_schema`).

Bad input raises ``ProtocolError(code="invalid-input")`` naming the
argument — never a backend exception.

:data:`ARGS` is complete at import: the core tools' models are below, each
domain peripheral's are in its ``futon.peripherals.domain.*_args`` module
(pure models: no backend, no tool code), so parsing a call or showing a
schema never needs a backend to have been built. The building blocks
(:class:`ToolArgs`, :class:`Options`, :class:`PathArg`, the bounded strings)
are in :mod:`futon.peripherals.argtypes`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, field_validator

from futon.peripherals.argtypes import (
    MAX_COMMAND,
    MAX_PATH,
    MAX_PATTERN,
    MAX_TEXT,
    Command,
    Options,
    Path_,
    PathArg,
    Text,
    ToolArgs,
)
from futon.peripherals.domain import (
    alfworld_args,
    cycle_args,
    discipline_args,
    mission_control_args,
)
from futon.protocol.errors import ProtocolError


class ReadOptions(Options):
    offset: int = Field(default=0, ge=0, description="first line, 0-based")
    limit: int | None = Field(default=None, ge=1, description="how many lines")


class ReadArgs(ToolArgs):
    tool = "read"
    summary = "Read a text file (optionally a range of lines)."
    path: Path_
    options: ReadOptions = Field(default_factory=ReadOptions)


class GlobArgs(ToolArgs):
    tool = "glob"
    summary = "List files matching a glob pattern (** crosses directories; hidden files included)."
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN)
    base: Path_ | None = None


class GrepOptions(Options):
    case_insensitive: bool = False
    max_matches: int = Field(default=500, ge=1, le=5000)


class GrepArgs(ToolArgs):
    tool = "grep"
    summary = "Search files for a regular expression."
    regex: str = Field(min_length=1, max_length=MAX_PATTERN)
    path: Path_ | None = None
    options: GrepOptions = Field(default_factory=GrepOptions)


class EditArgs(ToolArgs):
    tool = "edit"
    summary = "Replace exactly one occurrence of `old` with `new` in a file."
    path: Path_
    old: Text = Field(min_length=1)
    new: Text


class WriteArgs(ToolArgs):
    tool = "write"
    summary = "Write a file (parents are created)."
    path: Path_
    content: Text


class ShellOptions(Options):
    timeout_ms: int = Field(default=30_000, ge=1, description="kill the command after this long")


class ShellArgs(ToolArgs):
    summary = "Run a command."
    command: Command
    options: ShellOptions = Field(default_factory=ShellOptions)


class BashArgs(ShellArgs):
    tool = "bash"
    summary = "Run a shell command in the workspace."


class BashTestArgs(ShellArgs):
    tool = "bash-test"
    summary = "Run a test command (allowlisted; no shell syntax)."


class BashGitArgs(ShellArgs):
    tool = "bash-git"
    summary = "Run git with an allowlisted subcommand (no shell syntax)."


class BashDeployArgs(ShellArgs):
    tool = "bash-deploy"
    summary = "Run a configured deploy command (no shell syntax)."


class BashReadonlyArgs(ShellArgs):
    tool = "bash-readonly"
    summary = "Run a shell command that cannot write (read-only sandbox, no network)."


class WebFetchArgs(ToolArgs):
    tool = "web-fetch"
    summary = "Fetch an http(s) URL."
    url: str = Field(min_length=1, max_length=8192)

    @field_validator("url")
    @classmethod
    def _http_only(cls, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("only http and https URLs may be fetched")
        return value


class MusnLogArgs(ToolArgs):
    tool = "musn-log"
    summary = "The evidence entries of a session (default: this one), oldest first."
    session_id: str | None = Field(default=None, min_length=1, max_length=256)


CORE_ARG_MODELS: tuple[type[ToolArgs], ...] = (
    ReadArgs, GlobArgs, GrepArgs, EditArgs, WriteArgs, BashArgs, BashTestArgs,
    BashGitArgs, BashDeployArgs, BashReadonlyArgs, WebFetchArgs, MusnLogArgs,
)  # fmt: skip

# tool name → its argument model: every tool of the catalog
# (futon.config.catalog.KNOWN_TOOLS; tests/test_layers.py holds them equal).
ARGS: dict[str, type[ToolArgs]] = {
    model.tool: model
    for model in (
        *CORE_ARG_MODELS,
        *cycle_args.ARG_MODELS,
        *discipline_args.ARG_MODELS,
        *mission_control_args.ARG_MODELS,
        *alfworld_args.ARG_MODELS,
    )
}


def register_args(model: type[ToolArgs]) -> type[ToolArgs]:
    """Add the argument model of a tool futon does not ship (a test's, a
    plugin's); futon's own tools are all in :data:`ARGS` at import."""
    if not model.tool:
        raise ValueError(f"{model.__name__} has no tool name")
    ARGS[model.tool] = model
    return model


class RawArgs(ToolArgs):
    """Arguments of a tool that registered no model: any JSON array, passed
    through as ``values`` for its backend to read."""

    values: list[Any] = Field(default_factory=list)


def parse_args(tool: str, args: Any) -> ToolArgs:
    """Validate a JSON array of arguments for ``tool``."""
    if not isinstance(args, list):
        raise ProtocolError(
            f"{tool}: args must be a JSON array, got {type(args).__name__}", code="invalid-input"
        )
    model = ARGS.get(tool)
    if model is None:
        return RawArgs(values=args)
    names = model.positional()
    has_options = "options" in model.model_fields
    most = len(names) + (1 if has_options else 0)
    if len(args) > most:
        raise ProtocolError(
            f"{tool}: takes at most {most} arguments, got {len(args)}", code="invalid-input"
        )
    if len(args) < model.required_count():
        missing = names[len(args)]
        raise ProtocolError(f"{tool}: missing argument {missing!r}", code="invalid-input")
    values: dict[str, Any] = {}
    for index, value in enumerate(args):
        if index < len(names):
            values[names[index]] = value
        else:
            values["options"] = value
    for name, value in values.items():
        if isinstance(value, str) and "\x00" in value:
            raise ProtocolError(
                f"{tool}: argument {name!r} contains a NUL byte", code="invalid-input"
            )
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"])
        raise ProtocolError(
            f"{tool}: argument {where!r}: {error['msg']}", code="invalid-input"
        ) from None


def args_schema(tool: str) -> dict[str, Any]:
    """JSON Schema of the argument array of ``tool`` (prefixItems, in order)."""
    model = ARGS[tool]
    schema = model.model_json_schema()
    props = schema.get("properties", {})
    defs = schema.get("$defs", {})
    items = []
    for name in model.positional():
        item = dict(props[name])
        item.setdefault("title", name)
        items.append(item)
    if "options" in model.model_fields:
        option_schema = props["options"]
        ref = option_schema.get("$ref") or (option_schema.get("allOf") or [{}])[0].get("$ref")
        if ref:
            option_schema = defs[ref.rsplit("/", 1)[-1]]
        items.append({**option_schema, "title": "options"})
    out: dict[str, Any] = {
        "type": "array",
        "description": model.summary,
        "prefixItems": items,
        "minItems": model.required_count(),
        "maxItems": len(items),
    }
    if defs:  # nested models referenced from the items
        out["$defs"] = defs
    return out


__all__ = [
    "ARGS",
    "CORE_ARG_MODELS",
    "MAX_COMMAND",
    "MAX_PATH",
    "MAX_PATTERN",
    "MAX_TEXT",
    "BashArgs",
    "BashDeployArgs",
    "BashGitArgs",
    "BashReadonlyArgs",
    "BashTestArgs",
    "Command",
    "EditArgs",
    "GlobArgs",
    "GrepArgs",
    "GrepOptions",
    "MusnLogArgs",
    "Options",
    "PathArg",
    "Path_",
    "RawArgs",
    "ReadArgs",
    "ReadOptions",
    "ShellArgs",
    "ShellOptions",
    "Text",
    "ToolArgs",
    "WebFetchArgs",
    "WriteArgs",
    "args_schema",
    "parse_args",
    "register_args",
]
