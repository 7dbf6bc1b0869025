"""The building blocks of tool argument models: :class:`ToolArgs` (fields in
order are the positional arguments), :class:`Options` (the optional trailing
object), :class:`PathArg` (marks a path the scope check resolves) and the
bounded string types.

Kept apart from :mod:`futon.peripherals.args` (the registry of every tool's
model) so each domain peripheral's argument module can build on these
without importing the registry that imports it.
"""

from __future__ import annotations

import functools
import typing
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

MAX_PATH = 4096
MAX_TEXT = 8 * 1024 * 1024  # write/edit content
MAX_COMMAND = 64 * 1024
MAX_PATTERN = 4096


class PathArg:
    """Marks a field as a workspace path the scope check must resolve."""


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
