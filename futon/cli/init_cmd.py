"""``futon init [DIR]``: write the shipped configuration into DIR.

The three files (futon.yaml, peripherals.yaml, agents.yaml) and the pattern
library (patterns/*.md, which ``discipline.patterns_dir: patterns`` finds
beside futon.yaml) are copied from the installed package (:mod:`futon.data`),
so a pip-installed futon needs no checkout. Nothing is overwritten unless
``--force``: an existing file is a ConfigError (exit 2) naming every one.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from futon.data import CONFIG_FILES, SHIPPED_CONFIG
from futon.protocol.errors import ConfigError, FutonError

DEFAULT_DIR = "config"


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "init",
        help="Write the shipped configuration and pattern library into a folder.",
        description=(
            "Write futon.yaml, peripherals.yaml, agents.yaml and the pattern library "
            "(patterns/*.md) into DIR, each file commented key by key. Existing files "
            "are never overwritten unless --force is given."
        ),
    )
    parser.add_argument(
        "directory",
        nargs="?",
        default=DEFAULT_DIR,
        metavar="DIR",
        help=f"The folder to write into, created when missing (default: {DEFAULT_DIR}).",
    )
    parser.add_argument(
        "--force", action="store_true", help="Overwrite files that already exist."
    )
    parser.set_defaults(func=cmd_init)


def shipped_files() -> list[Path]:
    """Every shipped file, relative to the shipped folder: the three
    configuration files first, then the pattern library."""
    patterns = sorted(
        p.relative_to(SHIPPED_CONFIG) for p in (SHIPPED_CONFIG / "patterns").glob("*.md")
    )
    return [Path(name) for name in CONFIG_FILES] + patterns


def init_config(directory: Path, *, force: bool = False) -> list[Path]:
    """Copy the shipped files into ``directory``; return the paths written.
    Raises ConfigError (writing nothing) when a file exists and not
    ``force``, FutonError when the folder cannot be written."""
    names = shipped_files()
    if not (SHIPPED_CONFIG / CONFIG_FILES[0]).is_file():
        raise FutonError(f"the shipped configuration is missing from this install ({SHIPPED_CONFIG})")
    targets = [directory / name for name in names]
    existing = [t for t in targets if t.exists() or t.is_symlink()]
    if existing and not force:
        raise ConfigError(
            f"refusing to overwrite {len(existing)} existing file(s) in {directory} "
            "(--force overwrites them)",
            problems=[f"{path}: already exists" for path in existing],
        )
    written = []
    try:
        for name, target in zip(names, targets, strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()  # --force replaces the link, never the file it points at
            shutil.copyfile(SHIPPED_CONFIG / name, target)
            # Whatever the umask: nobody else may write the files that say
            # which tokens the daemon accepts.
            target.chmod(target.stat().st_mode & 0o7755)
            written.append(target)
    except OSError as exc:
        raise FutonError(f"cannot write {exc.filename or directory}: {exc.strerror or exc}") from None
    return written


def cmd_init(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    written = init_config(directory, force=args.force)
    config = directory / CONFIG_FILES[0]
    patterns = sum(1 for path in written if path.parent.name == "patterns")
    print(f"wrote {', '.join(str(directory / n) for n in CONFIG_FILES)}")
    print(f"and {patterns} files of the pattern library in {directory / 'patterns'}")
    quoted = shlex.quote(str(config))
    print("next:", file=sys.stderr)
    print(f"  futon config validate --config {quoted}", file=sys.stderr)
    print(f"  futon serve --config {quoted}", file=sys.stderr)
    return 0
