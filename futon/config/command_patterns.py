"""The grammar of a test-command pattern (``tools.test_commands`` in
futon.yaml): literal tokens plus the placeholders ``{path}`` and ``{paths}``.

Config validation parses every entry at load, so a bad pattern fails there;
:mod:`futon.peripherals.scope` matches an agent's command against the parsed
tokens. This module imports nothing of futon.
"""

from __future__ import annotations

import shlex

# Placeholders of a test-command pattern (tools.test_commands).
PATH_SLOT = "{path}"  # exactly one in-workspace relative path
PATHS_SLOT = "{paths}"  # zero or more of them; only as the last token


def parse_test_pattern(entry: str) -> list[str]:
    """Tokens of one ``tools.test_commands`` entry; ValueError when it is not
    a valid pattern (used by the config model, so a bad entry fails at load)."""
    try:
        tokens = shlex.split(entry)
    except ValueError as exc:
        raise ValueError(f"test command {entry!r} does not split into arguments: {exc}") from None
    if not tokens:
        raise ValueError("a test command may not be empty")
    for at, token in enumerate(tokens):
        if token in (PATH_SLOT, PATHS_SLOT):
            if at == 0:
                raise ValueError(f"test command {entry!r} must start with a program, not {token}")
            if token == PATHS_SLOT and at != len(tokens) - 1:
                raise ValueError(
                    f"in test command {entry!r}, {PATHS_SLOT} may only be the last token"
                )
        elif "{" in token or "}" in token:
            raise ValueError(
                f"test command {entry!r}: {token!r} is not a placeholder; use {PATH_SLOT} or"
                f" {PATHS_SLOT} as a whole token"
            )
    return tokens
