"""Read and change single config values without losing the user's comments.

A KEY is a dotted path. Its first part picks the file: ``peripherals.…`` is
peripherals.yaml; ``agents.…``, ``routing.…`` and ``irc_access.…`` are
agents.yaml; anything else is futon.yaml. List items are addressed by index
(``irc.networks.0.port`` or ``irc.networks[0].port``) and, in lists of
mappings with an ``id`` (the agents), by id (``agents.claude-1.relay``).

Edits go through ruamel's round-trip document, so comments, key order,
quotes and indentation stay as the user wrote them (Sopel bug #1691 is the
cautionary tale). Every edit is validated as a whole configuration — all
three files, with the edited one replaced by its new text — before anything
is written, and is written atomically, so a refused or interrupted edit
leaves the file byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

from futon.config.loader import ConfigFiles, config_files, error_message, load_config
from futon.config.models import AgentSpec
from futon.config.yamlfile import (
    Problem,
    YamlFile,
    atomic_write,
    dump_yaml,
    find_key,
    is_mapping,
    is_null_text,
    is_sequence,
    item_position,
    key_position,
    node_position,
    read_yaml_file,
    round_trip_yaml,
    to_plain,
)
from futon.protocol.errors import ConfigError

__all__ = [
    "AddedAgent",
    "NewToken",
    "SetResult",
    "add_agent",
    "file_for_key",
    "get_value",
    "new_admin_token",
    "render_value",
    "rotate_agent_token",
    "set_value",
]

_PERIPHERALS_ROOTS = frozenset({"peripherals"})
_AGENTS_ROOTS = frozenset({"agents", "routing", "irc_access"})


@dataclass(frozen=True)
class SetResult:
    """What ``set_value`` changed: ``old`` is None with ``created`` True
    when the key did not exist before."""

    path: Path
    display: str
    key: str
    old: Any
    new: Any
    created: bool


@dataclass(frozen=True)
class AddedAgent:
    """The agent ``add_agent`` appended. ``token`` exists only here: the
    file stores its sha256."""

    agent_id: str
    token: str
    token_sha256: str
    path: Path
    display: str


# --------------------------------------------------------------------- keys


def parse_key(key: str) -> list[str]:
    """``a.b[0].c`` → ``["a", "b", "0", "c"]``. Raises ConfigError on an
    empty key or an empty part (``a..b``)."""
    parts: list[str] = []
    for piece in key.split("."):
        match = re.fullmatch(r"([^\[\]]*)((?:\[-?\d+\])*)", piece)
        if not match or (not match.group(1) and not match.group(2)):
            raise ConfigError(
                f"invalid key {key!r}: expected dotted names like http.port or agents.claude-1.relay"
            )
        if match.group(1):
            parts.append(match.group(1))
        parts.extend(re.findall(r"\[(-?\d+)\]", match.group(2)))
    if not parts or not parts[0] or parts[0].isdigit():
        raise ConfigError(
            f"invalid key {key!r}: expected dotted names like http.port or agents.claude-1.relay"
        )
    return parts


def file_for_key(files: ConfigFiles, key: str) -> tuple[Path, str]:
    """(absolute path, display name) of the file that holds ``key``."""
    root = parse_key(key)[0]
    if root in _PERIPHERALS_ROOTS:
        return files.peripherals_path, files.peripherals_display
    if root in _AGENTS_ROOTS:
        return files.agents_path, files.agents_display
    return files.daemon_path, files.daemon_display


def _open(config_path: str | os.PathLike[str], key: str) -> tuple[ConfigFiles, YamlFile]:
    """The parsed file holding ``key``; ConfigError when it cannot be read
    or is not a mapping at the top."""
    files = config_files(config_path)
    path, display = file_for_key(files, key)
    yaml_file = files.daemon_file if path == files.daemon_path else read_yaml_file(path, display)
    if not yaml_file.ok:
        raise ConfigError(f"cannot read {display}", problems=[str(p) for p in yaml_file.problems])
    if yaml_file.data is None:
        yaml_file.data = CommentedMap()  # an empty file: every key is simply absent
    if not is_mapping(yaml_file.data):
        raise ConfigError(f"{display}: expected a mapping at the top level")
    return files, yaml_file


class _Missing(Exception):
    """Internal: the walk stopped at ``parts[index]``."""

    def __init__(self, index: int, container: Any) -> None:
        super().__init__(index)
        self.index = index
        self.container = container


def _child(container: Any, part: str) -> tuple[bool, Any]:
    """(found, slot) for ``part`` in a mapping (the key) or a sequence (the
    index, by number or by the ``id`` of a mapping item)."""
    if is_mapping(container):
        return find_key(container, part)
    if is_sequence(container):
        if re.fullmatch(r"-?\d+", part):
            index = int(part)
            if -len(container) <= index < len(container):
                return True, index % len(container)
            return False, None
        for index, item in enumerate(container):
            if is_mapping(item) and item.get("id") == part:
                return True, index
    return False, None


def _walk(root: Any, parts: list[str]) -> Any:
    """The node at ``parts``; raises _Missing naming where it stopped."""
    node = root
    for index, part in enumerate(parts):
        found, slot = _child(node, part)
        if not found:
            raise _Missing(index, node)
        node = node[slot]
    return node


def _unknown_key(yaml_file: YamlFile, key: str, parts: list[str], missing: _Missing) -> ConfigError:
    container = missing.container
    prefix = ".".join(parts[: missing.index])
    if is_mapping(container):
        names = ", ".join(str(k) for k in container) or "none"
        hint = f"no such key; keys here: {names}"
    elif is_sequence(container):
        ids = [str(item["id"]) for item in container if is_mapping(item) and "id" in item]
        hint = (
            f"no such item; {len(container)} item(s), indexes 0-{len(container) - 1}"
            if container
            else "no such item; the list is empty"
        )
        if ids:
            hint += f", ids: {', '.join(ids)}"
    else:
        hint = f"{prefix or 'the top level'} is a single value, it has no keys"
    line, col = node_position(container) or (None, None)
    return ConfigError(
        f"unknown key {key!r}", problems=[str(Problem(yaml_file.display, line, col, key, hint))]
    )


# ---------------------------------------------------------------- get / set


def get_value(config_path: str | os.PathLike[str], key: str) -> Any:
    """The value at ``key`` as plain Python (dict, list, str, int, float,
    bool, None). Raises ConfigError naming the key when there is no such
    key. Works on a config that is otherwise invalid, so a user can inspect
    what is wrong."""
    parts = parse_key(key)
    _, yaml_file = _open(config_path, key)
    try:
        return to_plain(_walk(yaml_file.data, parts))
    except _Missing as missing:
        raise _unknown_key(yaml_file, key, parts, missing) from None


def parse_value(value_text: str) -> Any:
    """``value_text`` read as a YAML value: ``7071`` is an int, ``true`` a
    bool, ``null`` None, ``[a, b]`` a (flow) list, ``'x'`` a string. Text
    that YAML reads as nothing but is not a null word (``#futon``: a
    comment to YAML) is taken as the literal string."""
    yaml = round_trip_yaml()
    try:
        value = yaml.load(value_text)
    except Exception as exc:  # any ruamel error: the text is not a YAML value
        detail = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"cannot read {value_text!r} as a YAML value: {detail}") from None
    if value is None and not is_null_text(value_text):
        return value_text
    return value


def set_value(config_path: str | os.PathLike[str], key: str, value_text: str) -> SetResult:
    """Set ``key`` to the YAML value ``value_text`` and write the file back
    with its comments and layout.

    A new key may be added under an existing mapping; a missing mapping on
    the way is an error, as is a list index or agent id that does not exist.
    The whole configuration is validated with the edit applied first; when
    it would be invalid, ConfigError lists the problems and the file is
    left byte-identical."""
    parts = parse_key(key)
    _, yaml_file = _open(config_path, key)
    new_value = parse_value(value_text)
    try:
        parent = _walk(yaml_file.data, parts[:-1])
    except _Missing as missing:
        raise _unknown_key(yaml_file, key, parts, missing) from None
    found, slot = _child(parent, parts[-1])
    if not found and not is_mapping(parent):
        raise _unknown_key(yaml_file, key, parts, _Missing(len(parts) - 1, parent))
    old = to_plain(parent[slot]) if found else None
    if not found:
        slot = parts[-1]  # a new key; whether it is allowed is up to validation
    _replace_value(parent, slot, new_value, existed=found)

    new_text = dump_yaml(round_trip_yaml(yaml_file.text), yaml_file.data)
    _validate_edit(config_path, yaml_file, new_text, f"set {key}")
    if new_text != yaml_file.text:
        atomic_write(yaml_file.path, new_text)
    return SetResult(
        yaml_file.path, yaml_file.display, key, old, to_plain(new_value), created=not found
    )


def _validate_edit(
    config_path: str | os.PathLike[str], yaml_file: YamlFile, new_text: str, what: str
) -> None:
    """Raise ConfigError unless the config is valid with ``yaml_file``
    replaced by ``new_text``."""
    try:
        load_config(config_path, overrides={yaml_file.path: new_text})
    except ConfigError as exc:
        raise ConfigError(
            f"refusing to {what}: the configuration would be invalid ({yaml_file.display} left unchanged)",
            problems=exc.problems,
        ) from None


# ---------------------------------------------------------------- agent add


def add_agent(
    config_path: str | os.PathLike[str],
    agent_id: str,
    agent_type: str,
    *,
    channels: list[str] | None = None,
    relay: str = "mentions",
) -> AddedAgent:
    """Append an agent to agents.yaml with a fresh token.

    The token (``secrets.token_urlsafe(32)``) is returned and never stored:
    the file gets its sha256 hex in ``token_sha256``. Comments stay; a
    comment block that stood after the last agent (e.g. the one introducing
    ``routing:``) stays after the new last agent. Raises ConfigError (and
    writes nothing) when the id is taken or the result would be invalid."""
    channels = list(channels) if channels is not None else ["#futon"]
    try:
        AgentSpec.model_validate(
            {"id": agent_id, "type": agent_type, "channels": channels, "relay": relay}
        )
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc'])}: {error_message(err, AgentSpec)}"
            for err in exc.errors(include_url=False)
        ]
        raise ConfigError(f"cannot add agent {agent_id!r}", problems=problems) from None

    _, yaml_file = _open(config_path, "agents")
    data = yaml_file.data
    found, agents_key = find_key(data, "agents")
    agents = data[agents_key] if found else None
    if agents is None:
        agents = CommentedSeq()
        data[agents_key if found else "agents"] = agents
    if not is_sequence(agents):
        raise ConfigError(
            f"{yaml_file.display}: 'agents' is not a list; fix it before adding agents"
        )
    for index, item in enumerate(agents):
        if is_mapping(item) and item.get("id") == agent_id:
            line, col = key_position(item, "id") or item_position(agents, index) or (None, None)
            raise ConfigError(
                f"agent {agent_id!r} already exists in {yaml_file.display}",
                problems=[
                    str(
                        Problem(
                            yaml_file.display,
                            line,
                            col,
                            f"agents[{index}].id",
                            f"agent {agent_id!r} already exists",
                        )
                    )
                ],
            )

    token, digest = make_token()
    entry = CommentedMap()
    entry["id"] = agent_id
    entry["type"] = agent_type
    entry["token_sha256"] = digest
    channel_list = CommentedSeq(DoubleQuotedScalarString(c) for c in channels)
    channel_list.fa.set_flow_style()  # `channels: ["#futon"]`, as in the shipped file
    entry["channels"] = channel_list
    entry["relay"] = relay
    rest = _detach_trailing(agents[-1], keep_blank=True) if agents else ""
    if not agents and agents.fa.flow_style():
        agents.fa.set_block_style()  # `agents: []` grows into a block list
    agents.append(entry)
    _attach_trailing(agents, len(agents) - 1, rest)

    new_text = dump_yaml(round_trip_yaml(yaml_file.text), data)
    _validate_edit(config_path, yaml_file, new_text, f"add agent {agent_id!r}")
    atomic_write(yaml_file.path, new_text)
    return AddedAgent(agent_id, token, digest, yaml_file.path, yaml_file.display)


# ------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class NewToken:
    """A token just made: ``token`` exists only here, the file at ``key``
    holds ``token_sha256``; ``replaced`` says a token was there before."""

    token: str
    token_sha256: str
    path: Path
    display: str
    key: str
    replaced: bool


def make_token() -> tuple[str, str]:
    """A fresh token (``secrets.token_urlsafe(32)``) and its sha256 hex."""
    token = secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def rotate_agent_token(config_path: str | os.PathLike[str], agent_id: str) -> NewToken:
    """Give agent ``agent_id`` a fresh token: its sha256 replaces the
    agent's ``token_sha256`` in agents.yaml (comments kept; the old token
    stops working at the daemon's next reload). ConfigError, nothing
    written, when there is no such agent."""
    try:
        return _store_digest(
            config_path, f"agents.{agent_id}.token_sha256", f"rotate the token of {agent_id!r}"
        )
    except ConfigError as exc:
        if not exc.message.startswith("unknown key"):
            raise
        display = config_files(config_path).agents_display
        raise ConfigError(f"no agent {agent_id!r} in {display}", problems=exc.problems) from None


def new_admin_token(config_path: str | os.PathLike[str], *, rotate: bool = False) -> NewToken:
    """Make the admin token and store its sha256 in futon.yaml's
    ``http.admin_token_sha256``. When one is set already, ConfigError
    (nothing written) unless ``rotate``."""
    key = "http.admin_token_sha256"
    if not rotate:
        try:
            current = get_value(config_path, key)
        except ConfigError:
            current = None  # the key is absent: there is no admin token yet
        if current is not None:
            files = config_files(config_path)
            raise ConfigError(
                f"{files.daemon_display} already has an admin token ({key} is set); "
                "--rotate replaces it (the old token then stops working)"
            )
    return _store_digest(config_path, key, "store the admin token")


def _store_digest(config_path: str | os.PathLike[str], key: str, what: str) -> NewToken:
    parts = parse_key(key)
    _, yaml_file = _open(config_path, key)
    try:
        parent = _walk(yaml_file.data, parts[:-1])
    except _Missing as missing:
        raise _unknown_key(yaml_file, key, parts, missing) from None
    if not is_mapping(parent):
        raise _unknown_key(yaml_file, key, parts, _Missing(len(parts) - 1, parent))
    found, slot = _child(parent, parts[-1])
    replaced = found and parent[slot] is not None
    token, digest = make_token()
    # A str, never YAML text: 64 hex digits may look like a number to YAML;
    # ruamel quotes such a string when it dumps it.
    _replace_value(parent, slot if found else parts[-1], digest, existed=found)
    new_text = dump_yaml(round_trip_yaml(yaml_file.text), yaml_file.data)
    _validate_edit(config_path, yaml_file, new_text, what)
    atomic_write(yaml_file.path, new_text)
    return NewToken(token, digest, yaml_file.path, yaml_file.display, key, replaced)


# ------------------------------------------------------------------ comments
#
# ruamel attaches the comment lines *between* two entries to the end of the
# first one: "timeout_s: 20\n\n# Tickle section\n" is one token on the last
# key of the block before `tickle:`. Replacing that block, or appending after
# it, would drop or misplace the next section's comment; these helpers move
# such trailing lines to where they still come last.


def _detach_trailing(node: Any, *, keep_blank: bool = False) -> str:
    """Cut the lines that follow the last line of block container ``node``
    (comments and blank lines) and return them; the last line keeps its own
    end-of-line comment. With ``keep_blank`` the leading blank lines stay
    too (they separate ``node`` from what will follow it)."""
    owner, slot, index = _last_comment_slot(node)
    if owner is None:
        return ""
    token = owner.ca.items[slot][index]
    text = token.value
    newline = text.find("\n")
    if newline < 0:
        return ""
    rest = text[newline + 1 :]
    kept = rest[: len(rest) - len(rest.lstrip("\n"))] if keep_blank else ""
    token.value = text[: newline + 1] + kept
    return rest


def _attach_trailing(parent: Any, slot: Any, rest: str) -> None:
    """Put ``rest`` (from :func:`_detach_trailing`) after the value at
    ``parent[slot]``: after its last line when it is a block container,
    else after the ``key: value`` line itself."""
    if not rest:
        return
    value = parent[slot]
    if _is_block(value) and value:
        owner, key = _deepest_last(value)
        parent, slot = owner, key
    index = 2 if is_mapping(parent) else 0
    entry = parent.ca.items.setdefault(slot, [None, None, None, None])
    token = entry[index]
    if token is None:
        entry[index] = CommentToken("\n" + rest, CommentMark(0), None)
    else:
        token.value = (token.value if token.value.endswith("\n") else token.value + "\n") + rest


def _take_key_trailing(parent: Any, slot: Any) -> str:
    """Cut the lines after the first from the comment token of the
    ``key: value`` line at ``parent[slot]`` (a scalar value about to become
    a block, which would otherwise print those lines inside the block)."""
    index = 2 if is_mapping(parent) else 0
    entry = parent.ca.items.get(slot)
    token = entry[index] if entry and len(entry) > index else None
    if token is None:
        return ""
    newline = token.value.find("\n")
    if newline < 0:
        return ""
    rest = token.value[newline + 1 :]
    token.value = token.value[: newline + 1]
    return rest


def _replace_value(parent: Any, slot: Any, new_value: Any, *, existed: bool) -> None:
    """``parent[slot] = new_value`` without losing the comment lines that
    trail the old value."""
    rest = ""
    if existed:
        old = parent[slot]
        if _is_block(old) and old:
            rest = _detach_trailing(old)
            # A comment block after a list can also sit in the list's `end`.
            rest += "".join(token.value for token in (getattr(old.ca, "end", None) or []))
        elif _is_block(new_value) and new_value:
            rest = _take_key_trailing(parent, slot)
    parent[slot] = new_value
    _attach_trailing(parent, slot, rest)


def _is_block(node: Any) -> bool:
    return (is_mapping(node) or is_sequence(node)) and not node.fa.flow_style()


def _deepest_last(node: Any) -> tuple[Any, Any]:
    """(container, key or index) of the last scalar line of block ``node``."""
    while True:
        last = list(node.keys())[-1] if is_mapping(node) else len(node) - 1
        child = node[last]
        if _is_block(child) and child:
            node = child
            continue
        return node, last


def _last_comment_slot(node: Any) -> tuple[Any, Any, int]:
    """The (container, key, index into ca.items[key]) of the comment after
    the last scalar of ``node``, descending into its last child."""
    if is_mapping(node) and node:
        last = list(node.keys())[-1]
        value = node[last]
        if _is_block(value) and value:
            found = _last_comment_slot(value)
            if found[0] is not None:
                return found
        entry = node.ca.items.get(last)
        if entry and len(entry) > 2 and entry[2] is not None:
            return node, last, 2
    elif is_sequence(node) and node:
        last_index = len(node) - 1
        value = node[last_index]
        if _is_block(value) and value:
            found = _last_comment_slot(value)
            if found[0] is not None:
                return found
        entry = node.ca.items.get(last_index)
        if entry and entry[0] is not None:
            return node, last_index, 0
    return None, None, 0


# ---------------------------------------------------------------- rendering


def render_value(value: Any, *, inline: bool = False) -> str:
    """A value as a user would write it in YAML: scalars plain (``null``,
    ``true``, ``7070``, ``#futon``), collections as block YAML, or as one
    flow line (``[a, b]``, ``{k: v}``) with ``inline``."""
    if isinstance(value, dict | list):
        if inline:
            return _flow(value)
        return dump_yaml(round_trip_yaml(), value).rstrip("\n")
    if isinstance(value, str):
        return _flow(value) if inline else value
    return _flow(value)


_PLAIN_STRING = re.compile(r"^[A-Za-z0-9_./@+~-][^:#,\[\]{}'\"]*$")
_NOT_PLAIN = frozenset(
    {"null", "Null", "NULL", "~", "true", "True", "TRUE", "false", "False", "FALSE"}
)


def _flow(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_flow(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, str):
        looks_like_number = (
            re.fullmatch(r"[-+]?(\d[\d_]*)?(\.\d*)?([eE][-+]?\d+)?", value) is not None
        )
        if (
            _PLAIN_STRING.match(value)
            and value not in _NOT_PLAIN
            and not looks_like_number
            and value == value.strip()
        ):
            return value
        return json.dumps(value, ensure_ascii=False)
    return str(value)
