"""Round-trip YAML: read a config file into ruamel nodes that remember their
line and column and comments, write it back with as little change as
ruamel allows, and turn those nodes into plain Python for validation.

Nothing here knows the shape of futon's configuration; ``loader`` and
``edit`` build on it.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import itertools
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean

__all__ = [
    "Position",
    "Problem",
    "YamlFile",
    "atomic_write",
    "dump_yaml",
    "find_key",
    "item_position",
    "key_position",
    "node_position",
    "read_yaml_file",
    "round_trip_yaml",
    "to_plain",
    "value_position",
]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config file. ``str()`` gives the line a user
    sees: ``FILE:LINE:COL: KEY.PATH: message`` (1-based line and column).
    Without a position the ``LINE:COL`` part is left out; without a key the
    ``KEY.PATH`` part is."""

    display: str
    line: int | None
    col: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = self.display if self.line is None else f"{self.display}:{self.line}:{self.col or 1}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.line or 0, self.col or 0)


# ------------------------------------------------------------------ reading


@dataclass
class YamlFile:
    """One YAML file as read from disk (or an in-memory override).

    ``data`` is the round-trip root node (a ``CommentedMap`` for a sane
    config file) or ``None`` when the file could not be read or parsed; in
    that case ``problems`` says why. ``exists`` is False only when the file
    is missing."""

    path: Path
    display: str
    text: str = ""
    data: Any = None
    exists: bool = True
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


_NULL_WORDS = frozenset({"", "~", "null", "Null", "NULL"})


def _represent_none(representer: Any, _data: None) -> Any:
    # ruamel writes None as an empty value (`key:`); the shipped files spell
    # it `null`, so writing `null` keeps untouched lines identical.
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def _guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) as used by ``text``.

    ruamel does not detect indentation; writing with the wrong one would
    re-indent every line. We look at the first nested mapping and the first
    block sequence and assume the shipped style (2, 4, 2) otherwise."""
    mapping = offset = None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for here, after in itertools.pairwise(lines):
        stripped = re.sub(r"\s+#.*$", "", here).rstrip()
        if not stripped.endswith(":"):
            continue
        # A key opening a block: "key:" or "- key:" (then the key's column counts).
        key_col = len(here) - len(here.lstrip())
        m = re.match(r"^(\s*)(-\s+)+", here)
        if m:
            key_col = m.end()
        child_col = len(after) - len(after.lstrip())
        if child_col < key_col:
            continue
        if after.lstrip().startswith("- "):
            if offset is None:
                offset = child_col - key_col
        elif child_col > key_col and mapping is None:
            mapping = child_col - key_col
        if mapping is not None and offset is not None:
            break
    mapping = mapping or 2
    offset = 2 if offset is None else offset
    return mapping, offset + 2, offset


def round_trip_yaml(text: str = "") -> YAML:
    """A ruamel round-trip YAML configured to write ``text`` back unchanged:
    its indentation, quotes kept, no re-wrapping of long lines, ``null``
    spelled out."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long flow list the user wrote on one line
    mapping, sequence, offset = _guess_indent(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    yaml.representer.add_representer(type(None), _represent_none)
    if re.match(r"^(?:\s*#[^\n]*\n|\s*\n)*---", text):
        yaml.explicit_start = True
    return yaml


def parse_yaml_text(text: str, display: str) -> tuple[Any, list[Problem]]:
    """Parse ``text``; return (root node, problems). Never raises: a parse
    error, a duplicate key or anything else ruamel throws becomes a problem
    line at the position ruamel reports (1:1 when it reports none)."""
    yaml = round_trip_yaml(text)
    try:
        with warnings.catch_warnings():
            # ruamel warns (e.g. reused anchors) on stderr; the config
            # commands report problems themselves.
            warnings.simplefilter("ignore")
            data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        return None, [Problem(display, line, col, "", f"invalid YAML: {_one_line(what)}")]
    except YAMLError as exc:
        return None, [Problem(display, 1, 1, "", f"invalid YAML: {_one_line(str(exc))}")]
    except RecursionError:
        return None, [Problem(display, 1, 1, "", "invalid YAML: nested too deeply")]
    except Exception as exc:  # ruamel lets some value errors through (e.g. a bad date)
        return None, [
            Problem(display, 1, 1, "", f"invalid YAML: {type(exc).__name__}: {_one_line(str(exc))}")
        ]
    return data, []


def read_yaml_file(path: Path, display: str, override: str | None = None) -> YamlFile:
    """Read and parse one file; ``override`` replaces the file's text (used
    to validate an edit before it is written). Never raises."""
    if override is not None:
        text = override
    else:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return YamlFile(
                path,
                display,
                exists=False,
                problems=[Problem(display, None, None, "", "file not found")],
            )
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            return YamlFile(
                path,
                display,
                problems=[
                    Problem(
                        display,
                        None,
                        None,
                        "",
                        f"cannot read: {getattr(exc, 'strerror', None) or exc}",
                    )
                ],
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return YamlFile(
                path,
                display,
                problems=[Problem(display, None, None, "", f"not UTF-8 text (byte {exc.start})")],
            )
    data, problems = parse_yaml_text(text, display)
    return YamlFile(path, display, text=text, data=data, problems=problems)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------ writing


def dump_yaml(yaml: YAML, data: Any) -> str:
    """Render ``data`` with ``yaml`` (from :func:`round_trip_yaml`)."""
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def atomic_write(path: Path, text: str) -> None:
    """Replace the file at ``path`` with ``text`` so that a reader sees the
    old or the new content, never half of it. Follows a symlink (the link
    stays a link) and keeps the file's permission bits, less group and
    world write."""
    target = Path(os.path.realpath(path))
    try:
        mode: int | None = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        # Never group- or world-writable: these files hold the token hashes
        # that say who may connect, so nobody else may put in their own.
        os.chmod(tmp, (mode if mode is not None else 0o644) & ~0o022)
        os.replace(tmp, target)
    except BaseException:
        # Leave no temp file behind whatever went wrong.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# -------------------------------------------------------------- conversion


def to_plain(node: Any) -> Any:
    """The plain-Python value of a round-trip node: dicts, lists, str, int,
    float, bool, None (and datetimes when the YAML had a timestamp).

    ruamel's scalar subclasses are flattened (``ScalarBoolean`` is an *int*
    subclass, so pydantic would accept it as an integer), keys that are
    themselves collections become strings (they could not be config keys
    anyway), and a self-referencing alias is cut at the repeat."""
    return _plain(node, set())


def _plain(node: Any, active: set[int]) -> Any:
    if isinstance(node, dict | list):
        if id(node) in active:
            return None  # `&a [*a]`: an alias cycle; never recurse forever
        active.add(id(node))
        try:
            if isinstance(node, dict):
                return {_plain_key(k): _plain(v, active) for k, v in node.items()}
            return [_plain(v, active) for v in node]
        finally:
            active.discard(id(node))
    if isinstance(node, TaggedScalar):
        return None if node.value is None else str(node.value)
    if isinstance(node, ScalarBoolean):
        return bool(node)
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, datetime.date):
        return node
    return str(node)


def _plain_key(key: Any) -> Any:
    if isinstance(key, str):
        return str(key)
    if isinstance(key, bool) or key is None:
        return key
    if isinstance(key, int | float):
        return key
    return str(key)


def is_null_text(text: str) -> bool:
    """True when ``text`` is YAML's spelling of null."""
    return text.strip() in _NULL_WORDS


# ---------------------------------------------------------------- positions

Position = tuple[int, int]  # 1-based (line, column)


def node_position(node: Any) -> Position | None:
    """Where a mapping or sequence node starts, or None for a scalar."""
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return None
    return lc.line + 1, lc.col + 1


def key_position(mapping: Any, key: Any) -> Position | None:
    """Where ``key`` is written in ``mapping`` (None for a key that came in
    through a merge ``<<`` or was added in memory)."""
    try:
        line, col = mapping.lc.key(key)
    except (AttributeError, KeyError, TypeError):
        return None
    return line + 1, col + 1


def value_position(mapping: Any, key: Any) -> Position | None:
    """Where the value of ``key`` is written in ``mapping``."""
    try:
        line, col = mapping.lc.value(key)
    except (AttributeError, KeyError, TypeError):
        return None
    return line + 1, col + 1


def item_position(sequence: Any, index: int) -> Position | None:
    """Where item ``index`` of ``sequence`` is written."""
    try:
        line, col = sequence.lc.item(index)
    except (AttributeError, KeyError, TypeError, IndexError):
        return None
    return line + 1, col + 1


def find_key(mapping: CommentedMap, name: Any) -> tuple[bool, Any]:
    """(found, actual key) for ``name`` in ``mapping``: the key itself, or a
    non-string YAML key whose text is ``name`` (``1:`` for "1")."""
    try:
        if name in mapping:
            return True, name
    except TypeError:
        return False, None
    for key in mapping:
        if not isinstance(key, str) and str(key) == str(name):
            return True, key
    return False, None


def is_mapping(node: Any) -> TypeGuard[CommentedMap]:
    return isinstance(node, CommentedMap)


def is_sequence(node: Any) -> TypeGuard[CommentedSeq]:
    return isinstance(node, CommentedSeq)
