"""Tool arguments: one definition per tool, used three ways.

Tool arguments travel as JSON arrays (docs/tools.md): ``["src/a.py",
{"offset": 10}]``, or as an object of named parameters: ``{"path":
"src/a.py", "offset": 10}``. Each tool has a pydantic model whose fields, in
order, are the positional arguments; a trailing ``options`` field takes the
optional object, whose fields are named parameters too. From that one model
come

- parsing and validation (:func:`parse_args`), which the dispatcher runs
  *after* the tool-set check and *before* any scope check or backend, so a
  backend only ever sees typed, bounded input, and a tool outside the
  envelope is refused as such, never for the shape of its arguments;
- the named form turned positional (:func:`to_positional`: the one
  conversion, used by the dispatcher and the WebSocket transport);
- the list of path arguments the scope check must resolve
  (:meth:`ToolArgs.paths`);
- the JSON Schemas: of the named parameters, which an agent runtime or MCP
  bridge shows a model (:func:`named_schema`), and of the positional array
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

import functools
from typing import Any

from pydantic import Field, ValidationError, field_validator

from futon.peripherals.argtypes import (
    MAX_COMMAND,
    MAX_PATH,
    MAX_PATTERN,
    MAX_TEXT,
    Command,
    InvalidArgument,
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


class ReadOptions(Options):
    offset: int = Field(default=0, ge=0, description="The first line to read, 0-based.")
    limit: int | None = Field(default=None, ge=1, description="How many lines to read at most.")


class ReadArgs(ToolArgs):
    tool = "read"
    summary = "Read a text file (optionally a range of lines)."
    path: Path_ = Field(description="The file, relative to the workspace.")
    options: ReadOptions = Field(default_factory=ReadOptions)


class GlobArgs(ToolArgs):
    tool = "glob"
    summary = "List files matching a glob pattern (** crosses directories; hidden files included)."
    pattern: str = Field(
        min_length=1,
        max_length=MAX_PATTERN,
        description="The glob, relative to the workspace or `base` (e.g. `src/**/*.py`).",
    )
    base: Path_ | None = Field(
        default=None, description="The folder to match under (default: the workspace)."
    )


class GrepOptions(Options):
    case_insensitive: bool = Field(default=False, description="Ignore case when matching.")
    max_matches: int = Field(
        default=500, ge=1, le=5000, description="Stop after this many matching lines."
    )


class GrepArgs(ToolArgs):
    tool = "grep"
    summary = "Search files for a regular expression."
    pattern: str = Field(
        min_length=1,
        max_length=MAX_PATTERN,
        description="The regular expression (RE2 syntax: no backreferences or lookaround).",
    )
    path: Path_ | None = Field(
        default=None, description="A file or folder to search (default: the whole workspace)."
    )
    options: GrepOptions = Field(default_factory=GrepOptions)


class EditArgs(ToolArgs):
    tool = "edit"
    summary = "Replace exactly one occurrence of `old` with `new` in a file."
    path: Path_ = Field(description="The file to change, relative to the workspace.")
    old: Text = Field(
        min_length=1, description="The exact text to replace; it must occur exactly once."
    )
    new: Text = Field(description="The text to put in its place.")


class WriteArgs(ToolArgs):
    tool = "write"
    summary = "Write a file (parents are created)."
    path: Path_ = Field(description="The file to write, relative to the workspace.")
    content: Text = Field(description="The whole new content of the file.")


class ShellOptions(Options):
    timeout_ms: int = Field(
        default=30_000, ge=1, description="Kill the command after this many milliseconds."
    )


class ShellArgs(ToolArgs):
    summary = "Run a command."
    command: Command = Field(description="The command line, run in the workspace.")
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
    url: str = Field(min_length=1, max_length=8192, description="The http(s) URL to fetch.")

    @field_validator("url")
    @classmethod
    def _http_only(cls, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("only http and https URLs may be fetched")
        return value


class MusnLogArgs(ToolArgs):
    tool = "musn-log"
    summary = "The evidence entries of a session (default: this one), oldest first."
    session_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="The session whose log to read (default: this session).",
    )


class EvidenceSearchArgs(ToolArgs):
    tool = "evidence-search"
    summary = (
        "Full-text search of every session's evidence (findings, conclusions, refusals), "
        "best first: {results: [{evidence_id, claim_type, author, session_id, at, match, snippet}]}."
    )
    query: str = Field(min_length=1, max_length=2000, description="words to look for")
    limit: int | None = Field(default=None, ge=1, le=50, description="at most this many (default 10)")


CORE_ARG_MODELS: tuple[type[ToolArgs], ...] = (
    ReadArgs, GlobArgs, GrepArgs, EditArgs, WriteArgs, BashArgs, BashTestArgs,
    BashGitArgs, BashDeployArgs, BashReadonlyArgs, WebFetchArgs, MusnLogArgs,
    EvidenceSearchArgs,
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


def to_positional(tool: str, named: dict[str, Any]) -> list[Any]:
    """The positional array for an object of named parameters (``{"path":
    "README.md", "offset": 10}`` → ``["README.md", {"offset": 10}]``): the
    one conversion from the named form. Checks the names (an unknown or a
    missing parameter raises :class:`InvalidArgument` naming it); the values
    are checked by :func:`parse_args`."""
    model = ARGS.get(tool)
    if model is None:
        raise InvalidArgument(
            tool, None, "takes a JSON array of arguments (it has no named parameters)"
        )
    return model.positional_from_named(named)


def parse_args(tool: str, args: Any) -> ToolArgs:
    """Validate the arguments of ``tool``: a JSON array of positional
    arguments, or an object of named parameters (see :func:`to_positional`).
    Refusals are :class:`InvalidArgument` (``invalid-input``) naming the
    parameter."""
    if isinstance(args, dict):
        args = to_positional(tool, args)
    if not isinstance(args, list):
        raise InvalidArgument(
            tool,
            None,
            "args must be a JSON array or an object of named parameters, "
            f"got {type(args).__name__}",
        )
    model = ARGS.get(tool)
    if model is None:
        return RawArgs(values=args)
    names, most, required = _signature(model)
    if len(args) > most:
        raise InvalidArgument(tool, None, f"takes at most {most} arguments, got {len(args)}")
    if len(args) < required:
        missing = names[len(args)]
        raise InvalidArgument(tool, missing, f"missing argument {missing!r}")
    values: dict[str, Any] = {}
    for index, value in enumerate(args):
        if index < len(names):
            values[names[index]] = value
        else:
            values["options"] = value
    for name, value in values.items():
        if isinstance(value, str) and "\x00" in value:
            raise InvalidArgument(tool, name, f"argument {name!r} contains a NUL byte")
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = [str(p) for p in error["loc"]]
        if loc[:1] == ["options"] and len(loc) > 1:
            loc = loc[1:]  # an option is a parameter of its own (the named form)
        where = ".".join(loc)
        raise InvalidArgument(
            tool, loc[0] if loc else None, f"argument {where!r}: {error['msg']}"
        ) from None


@functools.cache
def _signature(model: type[ToolArgs]) -> tuple[tuple[str, ...], int, int]:
    """``(positional names, most arguments, required count)`` of a model:
    fixed per class, so worked out once rather than on every action."""
    names = tuple(model.positional())
    most = len(names) + (1 if "options" in model.model_fields else 0)
    return names, most, model.required_count()


def named_schema(tool: str) -> dict[str, Any]:
    """JSON Schema of the named parameters of ``tool``: an object, one
    described property per parameter (options included), no ``$ref`` and no
    ``prefixItems`` — what a model is shown."""
    return ARGS[tool].named_schema()


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
    "EvidenceSearchArgs",
    "GlobArgs",
    "GrepArgs",
    "GrepOptions",
    "InvalidArgument",
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
    "named_schema",
    "parse_args",
    "register_args",
    "to_positional",
]
