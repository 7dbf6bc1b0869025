"""Peripherals at run time: the validated specs of peripherals.yaml with the
questions the engine asks of them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from futon.config.models import PathsScope, PeripheralsFile, PeripheralSpec

# Tools that take workspace paths (their arguments are scope-checked).
FILE_TOOLS = frozenset({"read", "glob", "grep", "edit", "write"})
WRITE_TOOLS = frozenset({"edit", "write"})


@dataclass(frozen=True)
class Peripheral:
    id: str
    spec: PeripheralSpec

    # Asked on every action: computed once (the spec is immutable once loaded).
    @cached_property
    def tools(self) -> frozenset[str]:
        return frozenset(self.spec.tools)

    @cached_property
    def scope_name(self) -> str:
        return "paths" if isinstance(self.spec.scope, PathsScope) else self.spec.scope

    @cached_property
    def path_prefixes(self) -> list[str] | None:
        """The listed prefixes of a ``paths`` scope; None for other scopes."""
        return list(self.spec.scope.paths) if isinstance(self.spec.scope, PathsScope) else None

    @property
    def read_only(self) -> bool:
        return self.spec.read_only

    def describe(self) -> dict[str, Any]:
        """The public shape (GET /api/alpha/peripherals, peripheral_started)."""
        scope = {"paths": self.path_prefixes} if self.path_prefixes is not None else self.scope_name
        return {
            "id": self.id,
            "tools": list(self.spec.tools),
            "scope": scope,
            "read_only": self.read_only,
            "entry": list(self.spec.entry),
            "exit": list(self.spec.exit),
            "context": list(self.spec.context),
        }


def load_peripherals(file: PeripheralsFile) -> dict[str, Peripheral]:
    return {pid: Peripheral(pid, spec) for pid, spec in file.peripherals.items()}


def normalise_id(raw: str) -> str:
    """futon3c clients send keywords (``:explore``)."""
    return raw[1:] if raw.startswith(":") else raw
