"""Load and validate futon's three configuration files.

``load_config(path)`` reads ``futon.yaml``, the ``peripherals.yaml`` and
``agents.yaml`` it names, validates each against the pydantic models in
:mod:`futon.config.models`, checks the references between them, and either
returns a :class:`LoadedConfig` or raises one :class:`ConfigError` whose
``problems`` lists *every* problem found, one line each::

    config/futon.yaml:12:9: http.port: expected an integer <= 65535 (got 70000)

Lines and columns are 1-based and point at the offending key (unknown keys,
missing keys: the mapping that lacks them) or value (wrong values). Nothing
in here raises anything but ``ConfigError``: a config file a user wrote by
hand must never produce a traceback.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from futon.config.models import AgentsFile, DaemonConfig, FilesSection, PeripheralsFile
from futon.config.yamlfile import (
    Position,
    Problem,
    YamlFile,
    find_key,
    is_mapping,
    is_sequence,
    item_position,
    key_position,
    node_position,
    read_yaml_file,
    to_plain,
    value_position,
)
from futon.protocol.errors import ConfigError

__all__ = [
    "ConfigFiles",
    "LoadedConfig",
    "config_files",
    "error_message",
    "library_problems",
    "load_config",
    "validate_file",
]


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration.

    Every path is absolute. Relative paths in the files are relative to the
    folder of ``futon.yaml`` (``base_dir``), except ``workspace: null``, which
    means the current directory *at load time* (so a later ``chdir`` does
    not move the workspace under a running daemon)."""

    path: Path
    daemon: DaemonConfig
    peripherals: PeripheralsFile
    agents: AgentsFile
    peripherals_path: Path
    agents_path: Path
    cwd: Path = field(default_factory=Path.cwd, repr=False)

    @property
    def base_dir(self) -> Path:
        """The folder holding futon.yaml."""
        return self.path.parent

    @property
    def data_dir(self) -> Path:
        """Where evidence shards, sessions and state live. Unset: the
        user's state directory (``$XDG_STATE_HOME/futon``, else
        ``~/.local/state/futon``), which is outside any workspace."""
        if self.daemon.data_dir is None:
            return default_data_dir()
        return _absolute(self.base_dir, self.daemon.data_dir)

    @property
    def workspace(self) -> Path:
        """The folder tools act on (the load-time cwd when unset)."""
        if self.daemon.workspace is None:
            return self.cwd
        return _absolute(self.base_dir, self.daemon.workspace)

    @property
    def files(self) -> tuple[Path, Path, Path]:
        """futon.yaml, peripherals.yaml, agents.yaml."""
        return self.path, self.peripherals_path, self.agents_path


def default_data_dir() -> Path:
    """``$XDG_STATE_HOME/futon``, else ``~/.local/state/futon`` (the XDG base
    directory rules: a relative ``XDG_STATE_HOME`` is ignored)."""
    state = os.environ.get("XDG_STATE_HOME", "")
    if state and os.path.isabs(state):
        return Path(os.path.abspath(state)) / "futon"
    return Path(os.path.abspath(_expand_user("~/.local/state"))) / "futon"


def _absolute(base: Path, value: str) -> Path:
    # abspath, not resolve(): keep the user's symlinks, just normalise `..`.
    return Path(os.path.abspath(base / _expand_user(value)))


def _expand_user(value: str) -> str:
    try:
        return os.path.expanduser(value)
    except (RuntimeError, KeyError):  # `~nosuchuser`: leave it as written
        return value


# ----------------------------------------------------------- file locations


@dataclass(frozen=True)
class ConfigFiles:
    """Where the three files are, with the names to show a user.

    ``*_display`` is the path as the user would write it: futon.yaml as
    given on the command line, the others joined to its folder."""

    daemon_path: Path
    daemon_display: str
    peripherals_path: Path
    peripherals_display: str
    agents_path: Path
    agents_display: str
    daemon_file: YamlFile


def config_files(
    path: str | os.PathLike[str], overrides: Mapping[Path, str] | None = None
) -> ConfigFiles:
    """Read futon.yaml (never raises) and work out where the other two
    files are: ``files.peripherals`` / ``files.agents`` when futon.yaml sets
    them to strings, the defaults otherwise."""
    given = os.fspath(path)
    daemon_path = Path(os.path.abspath(_expand_user(given)))
    daemon = read_yaml_file(daemon_path, given, (overrides or {}).get(daemon_path))
    names = {"peripherals": FilesSection().peripherals, "agents": FilesSection().agents}
    files = daemon.data.get("files") if is_mapping(daemon.data) else None
    if is_mapping(files):
        for name in names:
            value = files.get(name)
            if isinstance(value, str) and value.strip():
                names[name] = value
    display_dir = os.path.dirname(given)
    return ConfigFiles(
        daemon_path=daemon_path,
        daemon_display=given,
        peripherals_path=_absolute(daemon_path.parent, names["peripherals"]),
        peripherals_display=os.path.join(display_dir, _expand_user(names["peripherals"])),
        agents_path=_absolute(daemon_path.parent, names["agents"]),
        agents_display=os.path.join(display_dir, _expand_user(names["agents"])),
        daemon_file=daemon,
    )


# ------------------------------------------------------------------ loading


def load_config(
    path: str | os.PathLike[str], *, overrides: Mapping[Path, str] | None = None
) -> LoadedConfig:
    """Load, validate and cross-check the configuration rooted at ``path``.

    ``overrides`` maps an absolute file path to the text to use instead of
    the file's content: ``futon config set`` validates an edit this way
    before writing it. Raises ``ConfigError("invalid configuration",
    problems=[...])`` listing every problem in every file it could read."""
    overrides = overrides or {}
    files = config_files(path, overrides)
    problems: list[Problem] = []

    daemon_file = files.daemon_file
    if not daemon_file.exists:
        raise ConfigError(
            f"config file not found: {files.daemon_display} "
            f"(`futon init {os.path.dirname(files.daemon_display) or '.'}` writes the shipped one)",
            problems=[str(p) for p in daemon_file.problems],
        )
    daemon = validate_file(daemon_file, DaemonConfig, problems)

    # The other two files: a missing one is a problem *of futon.yaml*, at
    # the key that names it, because that is where the user fixes it.
    loaded: dict[str, YamlFile] = {}
    for name, file_path, display in (
        ("peripherals", files.peripherals_path, files.peripherals_display),
        ("agents", files.agents_path, files.agents_display),
    ):
        yaml_file = read_yaml_file(file_path, display, overrides.get(file_path))
        if not yaml_file.exists:
            line, col = _files_key_position(daemon_file.data, name) or (None, None)
            problems.append(
                Problem(
                    files.daemon_display,
                    line,
                    col,
                    f"files.{name}",
                    f"expected an existing {name} file (got {display!r}, which does not exist)",
                )
            )
        loaded[name] = yaml_file

    peripherals_file, agents_file = loaded["peripherals"], loaded["agents"]
    peripherals = (
        validate_file(peripherals_file, PeripheralsFile, problems)
        if peripherals_file.exists
        else None
    )
    if agents_file.exists:
        problems.extend(_agents_file_checks(agents_file))
        agents = validate_file(agents_file, AgentsFile, problems, drop_root=_ROOT_CHECKED_HERE)
    else:
        agents = None
    if peripherals_file.exists and agents_file.exists:
        problems.extend(_cross_file_checks(peripherals_file, agents_file))

    if problems or daemon is None or peripherals is None or agents is None:
        raise ConfigError("invalid configuration", problems=_render(problems, files))
    return LoadedConfig(
        path=files.daemon_path,
        daemon=daemon,
        peripherals=peripherals,
        agents=agents,
        peripherals_path=files.peripherals_path,
        agents_path=files.agents_path,
    )


def _render(problems: list[Problem], files: ConfigFiles) -> list[str]:
    """Problem lines in reading order: file by file (futon.yaml first), then
    by line and column. Duplicates (the same line reached twice) go."""
    order = {files.daemon_display: 0, files.peripherals_display: 1, files.agents_display: 2}
    ranked = sorted(problems, key=lambda p: (order.get(p.display, 3), p.sort_key))
    lines = list(dict.fromkeys(str(p) for p in ranked))
    return lines or ["invalid configuration"]


def _files_key_position(data: Any, name: str) -> Position | None:
    if not is_mapping(data):
        return None
    found, files_key = find_key(data, "files")
    if not found:
        return (1, 1)
    files = data[files_key]
    if is_mapping(files):
        found, key = find_key(files, name)
        if found:
            return key_position(files, key)
    return key_position(data, files_key)


M = typing.TypeVar("M", bound=BaseModel)

_FILE_SHAPES: dict[type[BaseModel], str] = {
    DaemonConfig: "a mapping of daemon settings (http:, irc:, data_dir: ...)",
    PeripheralsFile: "a mapping with the key 'peripherals:'",
    AgentsFile: "a mapping with the keys 'agents:', 'routing:', 'irc_access:'",
}


def validate_file(
    yaml_file: YamlFile,
    model: type[M],
    problems: list[Problem],
    *,
    drop_root: tuple[str, ...] = (),
) -> M | None:
    """Validate one parsed file against ``model``; append problem lines to
    ``problems`` and return the model, or None when the file is invalid.

    ``drop_root`` lists fragments of model-level (whole file) error messages
    that the caller has already reported with a better position."""
    if not yaml_file.ok:
        problems.extend(yaml_file.problems)
        return None
    data = yaml_file.data
    if data is None:
        problems.append(
            Problem(
                yaml_file.display,
                1,
                1,
                "",
                f"the file is empty; expected {_FILE_SHAPES.get(model, 'a mapping')}",
            )
        )
        return None
    if not is_mapping(data):
        line, col = node_position(data) or (1, 1)
        problems.append(
            Problem(
                yaml_file.display,
                line,
                col,
                "",
                f"expected {_FILE_SHAPES.get(model, 'a mapping')} at the top level (got {_describe(to_plain(data))})",
            )
        )
        return None
    try:
        return model.model_validate(to_plain(data))
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, yaml_file, model, drop_root))
        return None
    except (RecursionError, TypeError, ValueError) as exc:  # pathological input, not a config shape
        problems.append(Problem(yaml_file.display, 1, 1, "", f"cannot validate: {exc}"))
        return None


# ---------------------------------------------- pydantic errors → problem lines


@dataclass
class _Located:
    display_path: str
    position: Position
    error: Any  # pydantic ErrorDetails
    union_prefix: tuple[Any, ...] | None  # loc before the first union-branch tag
    union_branch: Any  # that tag (e.g. "str", "PathsScope")
    ends_at_branch: bool  # the error is about the branch's own type


def _validation_problems(
    exc: ValidationError, yaml_file: YamlFile, model: type[BaseModel], drop_root: tuple[str, ...]
) -> list[Problem]:
    located = []
    for error in exc.errors(include_url=False):
        if not error["loc"] and any(fragment in error["msg"] for fragment in drop_root):
            continue
        located.append(_locate(yaml_file.data, error))
    located = _drop_losing_union_branches(located)

    # One line per (position, key): union branches that all failed on the
    # value's type are merged into "expected a string or a mapping".
    groups: dict[tuple[Position, str], list[_Located]] = {}
    for item in located:
        groups.setdefault((item.position, item.display_path), []).append(item)
    lines = []
    for (position, display_path), items in groups.items():
        message = _merge_messages([error_message(item.error, model) for item in items], items)
        lines.append(Problem(yaml_file.display, *position, display_path, message))
    return lines


def _locate(root: Any, error: Any) -> _Located:
    """Walk ``error["loc"]`` through the round-trip nodes to the key path to
    show and the position to point at.

    Components that are not in the document are union-branch tags that
    pydantic inserts (``scope.str``, ``scope.PathsScope.paths``) and are
    skipped — except a final missing key, which is shown (the position is
    then the mapping that lacks it)."""
    loc = tuple(error["loc"])
    node = root
    parts: list[str] = []
    anchor: Position = (1, 1)  # the key/item through which we reached `node`
    value_pos: Position | None = None
    is_key_error = error["type"] in {"extra_forbidden", "invalid_key"}
    union_prefix: tuple[Any, ...] | None = None
    union_branch: Any = None
    ends_at_branch = False
    for index, comp in enumerate(loc):
        last = index == len(loc) - 1
        if comp == "[key]":  # an error about a mapping key itself
            is_key_error = True
            continue
        if is_mapping(node):
            found, key = find_key(node, comp)
            if found:
                anchor = key_position(node, key) or anchor
                value_pos = value_position(node, key)
                parts.append(_key_text(comp))
                node = node[key]
                continue
            if last and error["type"] == "missing":
                parts.append(_key_text(comp))
                break
        elif is_sequence(node) and isinstance(comp, int) and 0 <= comp < len(node):
            anchor = item_position(node, comp) or anchor
            value_pos = anchor
            parts.append(f"[{comp}]")
            node = node[comp]
            continue
        # Not in the document: a union-branch tag.
        if union_prefix is None:
            union_prefix, union_branch, ends_at_branch = loc[:index], comp, last
    if error["type"] == "missing":
        position = anchor
    elif is_key_error or is_mapping(node) or is_sequence(node):
        position = anchor  # containers and keys: point at the key line
    else:
        position = value_pos or anchor
    return _Located(_join(parts), position, error, union_prefix, union_branch, ends_at_branch)


def _key_text(comp: Any) -> str:
    return str(comp)


def _join(parts: list[str]) -> str:
    out = ""
    for part in parts:
        out += part if part.startswith("[") or not out else "." + part
    return out


_TYPE_ERRORS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "none_required": "null",
}


def _drop_losing_union_branches(located: list[_Located]) -> list[_Located]:
    """When a value fails every branch of a union, pydantic reports each
    branch. A branch that failed only because the value is of another type
    is noise when another branch got further (``scope: {paths: []}`` is
    clearly meant as a paths scope; "expected a string" helps nobody)."""
    keep = []
    for item in located:
        if (
            item.union_prefix is not None
            and item.ends_at_branch
            and item.error["type"] in _TYPE_ERRORS
        ):
            deeper = any(
                other.union_prefix == item.union_prefix
                and other.union_branch != item.union_branch
                and not other.ends_at_branch
                for other in located
            )
            if deeper:
                continue
        keep.append(item)
    return keep


def _merge_messages(messages: list[str], items: list[_Located]) -> str:
    if len(items) > 1 and all(item.error["type"] in _TYPE_ERRORS for item in items):
        expected = " or ".join(dict.fromkeys(_TYPE_ERRORS[item.error["type"]] for item in items))
        return f"expected {expected} (got {_describe(items[0].error.get('input'))})"
    return "; ".join(dict.fromkeys(messages))


def error_message(error: Any, model: type[BaseModel]) -> str:
    """``error`` as "what was expected (got X)"."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = _describe(error.get("input"))
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        allowed = _allowed_keys(model, loc[:-1])
        hint = difflib.get_close_matches(name, allowed, n=1)
        did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
        known = f"expected one of {', '.join(allowed)}" if allowed else "expected no such key"
        return f"unknown key: {known} (got {name!r}{did_you_mean})"
    if kind == "invalid_key":
        return f"expected a string key (got {got})"
    if kind == "missing":
        return "required key is missing"
    if kind == "value_error":
        text = str(error["msg"]).removeprefix("Value error, ")
        return text
    if kind == "literal_error":
        return f"expected {ctx.get('expected', 'one of the allowed values')} (got {got})"
    if kind in _TYPE_ERRORS:
        return f"expected {_TYPE_ERRORS[kind]} (got {got})"
    bounds = {
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
    }
    if kind in bounds:
        op, name = bounds[kind]
        return f"expected a number {op} {_describe(ctx.get(name))} (got {got})"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        if pattern == r"^[0-9a-f]{64}$":
            return f"expected a sha256 in hex (64 lowercase hex digits) or null (got {got})"
        return f"expected a string matching {pattern} (got {got})"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s) (got {ctx.get('actual_length', got)})"
    text = str(error["msg"])
    if text.startswith("Input should be "):
        text = "expected " + text.removeprefix("Input should be ")
    return f"{text} (got {got})"


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model that ``loc`` leads to inside ``model``
    (empty when it does not lead to a model)."""
    tp: Any = model
    for comp in loc:
        tp = _unwrap(tp, comp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field_info = tp.model_fields.get(comp) if isinstance(comp, str) else None
            if field_info is not None:
                tp = field_info.annotation
            # else: a union-branch tag; stay on this model
            continue
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is list and args:
            tp = args[0]
        elif origin is dict and len(args) == 2:
            tp = args[1]
        else:
            return []
    tp = _unwrap(tp, None)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _unwrap(tp: Any, comp: Any) -> Any:
    """For ``X | None`` or ``str | Model``: the member a loc can descend
    into (the model named by ``comp`` if it is a branch tag, else the first
    model or container member)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        for member in members:
            if getattr(member, "__name__", None) == comp:
                return member
        for member in members:
            if (isinstance(member, type) and issubclass(member, BaseModel)) or typing.get_origin(
                member
            ) in (list, dict):
                return member
        return members[0] if members else tp
    return tp


def _describe(value: Any) -> str:
    """A short rendering of a YAML value for "(got X)"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return repr(text)
    return str(value)


# ---------------------------------------------------- checks pydantic can't place


# Model-level messages of AgentsFile that _agents_file_checks reports itself,
# with the position of the offending item.
_ROOT_CHECKED_HERE = ("appears twice", "routing needs a 'default' entry")


def _agents_file_checks(agents_file: YamlFile) -> list[Problem]:
    """Duplicate agent ids and the routing default, with positions (the
    model checks them too, but only as a whole-file error, and only when
    every agent is otherwise valid)."""
    data = agents_file.data
    if not agents_file.ok or not is_mapping(data):
        return []
    problems = []
    found, agents_key = find_key(data, "agents")
    agents = data[agents_key] if found else None
    if is_sequence(agents):
        first_seen: dict[str, int] = {}
        for index, item in enumerate(agents):
            if not is_mapping(item):
                continue
            has_id, id_key = find_key(item, "id")
            agent_id = item[id_key] if has_id else None
            if not isinstance(agent_id, str):
                continue
            if agent_id in first_seen:
                line, col = value_position(item, id_key) or item_position(agents, index) or (1, 1)
                problems.append(
                    Problem(
                        agents_file.display,
                        line,
                        col,
                        f"agents[{index}].id",
                        f"expected a unique agent id (got {agent_id!r}, already used by agents[{first_seen[agent_id]}])",
                    )
                )
            else:
                first_seen[agent_id] = index
    found, routing_key = find_key(data, "routing")
    routing = data[routing_key] if found else None
    if is_mapping(routing) and not find_key(routing, "default")[0]:
        line, col = key_position(data, routing_key) or (1, 1)
        problems.append(
            Problem(
                agents_file.display,
                line,
                col,
                "routing",
                "expected a 'default' entry (the peripheral for agent types not listed)",
            )
        )
    return problems


def _cross_file_checks(peripherals_file: YamlFile, agents_file: YamlFile) -> list[Problem]:
    """Every peripheral named in agents.yaml (routing values,
    ``agents[].peripherals``) must exist in peripherals.yaml. Runs on the raw
    documents so these problems show up alongside any others."""
    pdata, adata = peripherals_file.data, agents_file.data
    if not (peripherals_file.ok and agents_file.ok and is_mapping(pdata) and is_mapping(adata)):
        return []
    found, pkey = find_key(pdata, "peripherals")
    if not found or not is_mapping(pdata[pkey]):
        return []
    known = [str(k) for k in pdata[pkey]]
    known_set = set(known)
    problems = []

    def check(name: Any, where: str, position: Position | None) -> None:
        if isinstance(name, str) and name not in known_set:
            hint = difflib.get_close_matches(name, known, n=1)
            did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
            line, col = position or (1, 1)
            problems.append(
                Problem(
                    agents_file.display,
                    line,
                    col,
                    where,
                    f"expected a peripheral defined in {peripherals_file.display} (got {name!r}{did_you_mean})",
                )
            )

    found, rkey = find_key(adata, "routing")
    routing = adata[rkey] if found else None
    if is_mapping(routing):
        for agent_type, target in routing.items():
            check(target, f"routing.{agent_type}", value_position(routing, agent_type))
    found, akey = find_key(adata, "agents")
    agents = adata[akey] if found else None
    if is_sequence(agents):
        for index, item in enumerate(agents):
            if not is_mapping(item):
                continue
            has, key = find_key(item, "peripherals")
            allowed = item[key] if has else None
            if is_sequence(allowed):
                for j, name in enumerate(allowed):
                    check(name, f"agents[{index}].peripherals[{j}]", item_position(allowed, j))
    return problems


# ------------------------------------------- folders the files name (validate)

# The scope of the discipline tools: a peripheral with it reads the pattern
# library (futon/peripherals/domain/discipline.py).
_LIBRARY_SCOPE = "discipline-records"


def library_problems(path: str | os.PathLike[str], config: LoadedConfig) -> list[str]:
    """Problem lines for a pattern library that is not there, for
    ``futon config validate``: when a peripheral has the discipline scope,
    the folder it reads (its own ``config.patterns_dir`` against the
    workspace, else ``discipline.patterns_dir`` beside futon.yaml, as the
    daemon resolves them) must hold at least one pattern file (``<id>.md``
    other than README.md). ``path`` is futon.yaml as the user gave it, for
    the file names shown. Separate from :func:`load_config` because it reads
    the disk beyond the three files: a folder may appear between a
    validation and a start."""
    users = [
        (pid, spec)
        for pid, spec in config.peripherals.peripherals.items()
        if spec.scope == _LIBRARY_SCOPE
    ]
    if not users:
        return []
    files = config_files(path)
    problems: list[Problem] = []
    daemon_checked = False
    for pid, spec in users:
        own = spec.config.get("patterns_dir")
        if isinstance(own, str) and own:
            folder = Path(config.workspace) / Path(own).expanduser()
            where = f"peripherals.{pid}.config.patterns_dir"
            pdata = read_yaml_file(files.peripherals_path, files.peripherals_display).data
            position = _nested_position(pdata, ["peripherals", pid, "config", "patterns_dir"])
            display = files.peripherals_display
            value = own
        elif daemon_checked:
            continue
        else:
            daemon_checked = True
            value = config.daemon.discipline.patterns_dir
            folder = config.base_dir / value
            where = "discipline.patterns_dir"
            position = _nested_position(files.daemon_file.data, ["discipline", "patterns_dir"])
            display = files.daemon_display
        reason = _library_gap(folder)
        if reason:
            problems.append(
                Problem(
                    display,
                    *(position or (1, 1)),
                    where,
                    f"expected a folder of pattern files for the {pid} peripheral (got {value!r}: "
                    f"{folder} {reason}); `futon init` writes the shipped library",
                )
            )
    return [str(p) for p in problems]


def _library_gap(folder: Path) -> str | None:
    """Why ``folder`` is no pattern library, or None when it is one."""
    if not folder.is_dir():
        return "does not exist" if not folder.exists() else "is not a folder"
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not any(
        n.endswith(".md") and n.lower() != "readme.md" and not n.startswith((".", "_"))
        for n in names
    ):
        return "holds no pattern file (<id>.md)"
    return None


def _nested_position(data: Any, keys: list[str]) -> Position | None:
    """The position of the deepest of ``keys`` found in ``data``."""
    position: Position | None = None
    node = data
    for key in keys:
        if not is_mapping(node):
            break
        found, slot = find_key(node, key)
        if not found:
            break
        position = key_position(node, slot) or position
        node = node[slot]
    return position
