"""The building blocks of tool argument models: :class:`ToolArgs` (fields in
order are the positional arguments), :class:`Options` (the optional trailing
object), :class:`PathArg` (marks a path the scope check resolves) and the
bounded string types.

A tool is called two ways, one model for both: the wire's positional array
(``["README.md", {"offset": 10}]``) and a model's named parameters
(``{"path": "README.md", "offset": 10}``: the positional fields and the
options' fields side by side). :meth:`ToolArgs.positional_from_named` turns
the second into the first and :meth:`ToolArgs.named_schema` is its JSON
Schema; both refuse with :class:`InvalidArgument` naming the parameter.

Kept apart from :mod:`futon.peripherals.args` (the registry of every tool's
model) so each domain peripheral's argument module can build on these
without importing the registry that imports it.
"""

from __future__ import annotations

import copy
import functools
import typing
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from futon.protocol.errors import ProtocolError

MAX_PATH = 4096
MAX_TEXT = 8 * 1024 * 1024  # write/edit content
MAX_COMMAND = 64 * 1024
MAX_PATTERN = 4096


class PathArg:
    """Marks a field as a workspace path the scope check must resolve."""


# A parameter name kept free: ``{"args": [...]}`` is how futon tools were
# called before they had named parameters (see futon.agents.tooldefs).
RESERVED_NAME = "args"


class InvalidArgument(ProtocolError):
    """A tool's arguments do not fit its model: ``invalid-input`` with the
    tool and the parameter (``field``) in the context."""

    default_code = "invalid-input"

    def __init__(self, tool: str, field: str | None, message: str) -> None:
        context: dict[str, Any] = {"tool": tool}
        if field is not None:
            context["field"] = field
        super().__init__(f"{tool}: {message}", code="invalid-input", context=context)
        self.tool = tool
        self.field = field


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ToolArgs(BaseModel):
    """Base of every tool's arguments. Subclasses list positional fields in
    order; ``options`` (when declared) is the optional trailing object."""

    model_config = ConfigDict(extra="forbid", strict=True)
    tool: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    @classmethod
    def positional(cls) -> list[str]:
        return [name for name in cls.model_fields if name != "options"]

    @classmethod
    def required_count(cls) -> int:
        return sum(1 for name in cls.positional() if cls.model_fields[name].is_required())

    @classmethod
    def path_fields(cls) -> tuple[str, ...]:
        """Fields annotated with :class:`PathArg` (looking inside ``X | None``)."""
        return _path_fields(cls)

    def paths(self) -> list[str]:
        """Values of the path fields that are present."""
        return [value for name in self.path_fields() if (value := getattr(self, name)) is not None]

    @classmethod
    def options_model(cls) -> type[Options] | None:
        """The model of the trailing options object, if the tool has one."""
        return _options_model(cls)

    @classmethod
    def named(cls) -> list[str]:
        """The named parameters: the positional fields, then the options' fields."""
        options = cls.options_model()
        return [*cls.positional(), *(options.model_fields if options else ())]

    @classmethod
    def positional_from_named(cls, named: Mapping[str, Any]) -> list[Any]:
        """The positional array for named parameters. Checks the names only
        (unknown, missing), not the values: :func:`futon.peripherals.args.parse_args`
        validates the array. A positional argument left out before one that
        is given takes its default; the options object comes last, only
        when an option is given."""
        tool = cls.tool or cls.__name__
        names = cls.positional()
        options = cls.options_model()
        option_names = list(options.model_fields) if options else []
        unknown = [key for key in named if key not in names and key not in option_names]
        if unknown:
            takes = ", ".join(cls.named()) or "no parameters"
            raise InvalidArgument(
                tool, str(unknown[0]), f"unknown parameter {unknown[0]!r} (takes: {takes})"
            )
        for name in names:
            if name not in named and cls.model_fields[name].is_required():
                raise InvalidArgument(tool, name, f"missing parameter {name!r}")
        given = {key: named[key] for key in option_names if key in named}
        last = (
            len(names) - 1
            if given
            else max((i for i, name in enumerate(names) if name in named), default=-1)
        )
        values: list[Any] = [
            named[name]
            if name in named
            else cls.model_fields[name].get_default(call_default_factory=True)
            for name in names[: last + 1]
        ]
        if given:
            values.append(given)
        return values

    @classmethod
    def named_schema(cls) -> dict[str, Any]:
        """The JSON Schema of the named parameters: an object with one
        described property per parameter, nested models inlined (no
        ``$ref``, no ``prefixItems``), optional parameters not required."""
        return copy.deepcopy(_named_schema(cls))


@functools.cache
def _options_model(model: type[ToolArgs]) -> type[Options] | None:
    info = model.model_fields.get("options")
    if info is None:
        return None
    annotation = info.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, Options) else None


@functools.cache
def _named_schema(model: type[ToolArgs]) -> dict[str, Any]:
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    props = schema.get("properties", {})
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name in model.positional():
        field = model.model_fields[name]
        properties[name] = _parameter(props[name], defs, optional=not field.is_required())
        if field.is_required():
            required.append(name)
    options = model.options_model()
    if options is not None:
        option_schema = _inline(props["options"], defs)
        for name, prop in option_schema.get("properties", {}).items():
            if name in properties:  # would make the named form ambiguous
                raise TypeError(f"{model.__name__}: option {name!r} shadows an argument")
            properties[name] = _parameter(prop, defs, optional=True)
    if RESERVED_NAME in properties:
        raise TypeError(f"{model.__name__}: {RESERVED_NAME!r} is reserved for the positional form")
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    if model.summary:
        out["description"] = model.summary
    return out


def _parameter(prop: dict[str, Any], defs: dict[str, Any], *, optional: bool) -> dict[str, Any]:
    """One parameter's schema, refs inlined; an optional ``X | None`` with
    a null default is shown as plain ``X`` (leaving it out means null)."""
    prop = _inline(prop, defs)
    branches = prop.get("anyOf")
    if optional and prop.get("default", ...) is None and isinstance(branches, list):
        kept = [b for b in branches if b != {"type": "null"}]
        if len(kept) == 1:
            rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
            prop = {**kept[0], **rest}
    return prop


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``$ref`` into ``defs`` replaced by its target and
    pydantic's ``title`` keys dropped (the names say it)."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = _inline(defs[ref.rsplit("/", 1)[-1]], defs)
        return {**target, **{k: _inline(v, defs) for k, v in node.items() if k != "$ref"}}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _inline(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _inline(value, defs)
    return out


@functools.cache
def _path_fields(model: type[ToolArgs]) -> tuple[str, ...]:
    names = []
    for name, info in model.model_fields.items():
        marks = list(info.metadata)
        for arg in typing.get_args(info.annotation):
            marks += list(getattr(arg, "__metadata__", ()))
        if any(m is PathArg or isinstance(m, PathArg) for m in marks):
            names.append(name)
    return tuple(names)


Path_ = Annotated[str, Field(min_length=1, max_length=MAX_PATH), PathArg]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Command = Annotated[str, Field(min_length=1, max_length=MAX_COMMAND)]
