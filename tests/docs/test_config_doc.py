"""docs/configuration.md names every key of the three configuration files:
the key list comes from the models (futon/config/models.py), so a field
added there without a line on the page fails here."""

from __future__ import annotations

import typing
from collections.abc import Iterator

from pydantic import BaseModel

from futon.config import models
from tests.support import REPO

PAGE = REPO / "docs" / "configuration.md"


def _model_in(annotation: object) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        for inner in (candidate, *typing.get_args(candidate)):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Dotted keys of ``model`` and its sections; list items as ``[]``."""
    for name, info in model.model_fields.items():
        key = prefix + name
        yield key
        inner = _model_in(info.annotation)
        if inner is not None:
            is_list = typing.get_origin(info.annotation) is list
            yield from keys(inner, key + ("[]." if is_list else "."))


def all_keys() -> list[str]:
    found = [*keys(models.DaemonConfig), *keys(models.AgentsFile), "peripherals"]
    found += list(keys(models.PeripheralSpec, "peripherals.<id>."))
    return found


def test_every_config_key_is_on_the_page() -> None:
    page = PAGE.read_text()
    missing = [key for key in all_keys() if f"`{key}`" not in page]
    assert not missing, f"docs/configuration.md does not describe: {', '.join(missing)}"


def test_the_key_walk_sees_nested_sections() -> None:
    found = set(all_keys())
    assert {"http.port", "irc.networks[].sasl.password_env", "peripherals.<id>.sandbox.env",
            "irc_access.rules[].allow", "agents[].relay"} <= found  # fmt: skip
