"""``futon config validate | get | set``.

validate prints ``ok: <files>`` and exits 0, or prints one
``FILE:LINE:COL: KEY: problem`` line per problem on stderr and exits 2.
get prints a value (scalars plain, collections as YAML); set prints
``FILE: KEY: OLD -> NEW``. Errors are ConfigError, which ``futon.cli.main``
turns into exit code 2 without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from futon.cli import add_config_option, add_group
from futon.config.edit import get_value, render_value, set_value
from futon.config.loader import library_problems, load_config
from futon.protocol.errors import ConfigError


def register(subparsers: Any) -> Any:
    """Add the ``config`` command group to the top-level subparsers."""
    sub = add_group(
        subparsers,
        "config",
        help="Validate, read and edit the configuration files.",
        description="Validate, read and edit futon.yaml, peripherals.yaml and agents.yaml.",
    )

    validate = sub.add_parser(
        "validate",
        help="Check the configuration files and the folders they name.",
        description=(
            "Check all three configuration files and the pattern library they name; "
            "each problem names file:line:column and the key."
        ),
    )
    add_config_option(validate)
    validate.set_defaults(func=cmd_validate)

    get = sub.add_parser(
        "get",
        help="Print a value.",
        description=(
            "Print the value at KEY, such as http.port, agents.claude-1.relay or "
            "peripherals.edit.scope."
        ),
    )
    get.add_argument("key", metavar="KEY", help="The dotted key path.")
    add_config_option(get)
    get.set_defaults(func=cmd_get)

    set_ = sub.add_parser(
        "set",
        help="Change a value, keeping the file's comments and layout.",
        description=(
            "Set KEY to VALUE (read as YAML: 7071, true, null, [a, b], 'text'). "
            "The whole configuration is validated first; an invalid result is refused "
            "and nothing is written."
        ),
    )
    set_.add_argument("key", metavar="KEY", help="The dotted key path.")
    set_.add_argument("value", metavar="VALUE", help="The new value, read as YAML.")
    add_config_option(set_)
    set_.set_defaults(func=cmd_set)
    return sub


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        # Plain lines, unindented, so editors and grep can jump to them.
        print(f"futon: {exc.message}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return exc.exit_code
    missing = library_problems(args.config, config)
    if missing:
        print(f"futon: invalid configuration: {len(missing)} problem(s)", file=sys.stderr)
        for problem in missing:
            print(problem, file=sys.stderr)
        return ConfigError.exit_code
    shown = ", ".join(_shown(path) for path in config.files)
    counts = (
        f"{len(config.peripherals.peripherals)} peripherals, {len(config.agents.agents)} agents"
    )
    print(f"ok: {shown} ({counts})")
    return 0


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it lies below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def cmd_get(args: argparse.Namespace) -> int:
    print(render_value(get_value(args.config, args.key)))
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    result = set_value(args.config, args.key, args.value)
    old = "(unset)" if result.created else render_value(result.old, inline=True)
    print(f"{result.display}: {result.key}: {old} -> {render_value(result.new, inline=True)}")
    return 0
