"""Native actions: judging what an agent's OWN tools are about to do.

A native agent (Codex through its App Server) runs commands and applies
patches with the tools it was trained on; before each one it asks, and
futon answers from the active session's envelope (``tool_check``,
docs/ws-protocol.md). Nothing here runs anything: it maps a native request
onto the futon tool that would admit it, through the session's own
:meth:`Session.admit <futon.peripherals.session.Session.admit>` (so the
tool set, argument parsing, test/git/deploy allowlists, scope, read-only
and hidden paths are the very rules ``tool_action`` obeys), and adds the one
rule futon's own tools leave to their sandbox:

- **read-only commands.** futon's ``bash-readonly`` may run any command
  line, because futon's sandbox leaves nothing writable. A native command
  runs in the agent's sandbox instead, so here a command is admitted under
  ``bash-readonly`` only when it reads, as :func:`check_readonly_command`
  defines it: simple commands of :data:`READONLY_PROGRAMS` (without their
  writing options) joined by ``|``, ``&&``, ``||`` or ``;``; no
  redirection, substitution, expansion of variables, ``~`` or braces; every
  argument that names a path resolves inside the workspace and outside
  futon's hidden paths. Anything else is ``out-of-scope`` — a wall that
  errs towards refusing.

A command is tried against the session's process tools in
:data:`COMMAND_TOOLS` order; the first that admits it names the step. The
allowlisted ones (bash-test, bash-git, bash-deploy) run in the workspace
root only, as futon runs them.
"""

from __future__ import annotations

import fnmatch
import glob
import itertools
import json
import os
import re
import shlex
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from futon.peripherals.dispatch import Admitted
from futon.peripherals.scope import is_within, out_of_scope, resolve_in_workspace
from futon.protocol.errors import FutonError, ProtocolError

NativeKind = Literal["command", "file_change", "tool"]
ItemKind = Literal["agent_message", "command", "file_change", "plan", "reasoning"]

ITEM_MAX_BYTES = 16 * 1024  # a native item's body as compact JSON
# Item body keys only the daemon writes (dropped from the agent's).
DAEMON_KEYS = frozenset({"test_run"})
# Process tools, in the order a native command is tried against them: the
# broadest first (bash admits anything it may run), the read-only last.
COMMAND_TOOLS = ("bash", "bash-test", "bash-git", "bash-deploy", "bash-readonly")
ROOT_ONLY = frozenset(
    {"bash-test", "bash-git", "bash-deploy"}
)  # futon runs them in the workspace root


@dataclass(frozen=True)
class NativeCheck:
    """One ``tool_check``: what the native agent is about to do."""

    kind: NativeKind
    command: str | None = None
    cwd: str | None = None
    paths: tuple[str, ...] = ()
    tool: str | None = None
    args: Any = None
    source: str | None = None


@dataclass(frozen=True)
class Judged:
    """What admits a native action: one :class:`Admitted` per step to
    record (a file change: one per path), and the args each records."""

    admitted: tuple[Admitted, ...]
    recorded_args: tuple[Any, ...]


Admit = Callable[[str, Any], Admitted]


def judge(
    check: NativeCheck,
    admit: Admit,
    tools: Collection[str],
    workspace: Path,
    hidden: Sequence[Path],
    read_only: bool,
) -> Judged:
    """The futon tool(s) that admit ``check`` in the envelope ``admit``
    checks against (``tools``: the envelope's tool set; ``workspace``: a real
    path). Raises the refusal — the first process tool's, for a command —
    with ``context["tool"]`` naming the tool that refused."""
    if check.kind == "tool":
        assert check.tool is not None
        return Judged((admit(check.tool, check.args),), (check.args,))
    if check.kind == "file_change":
        return _judge_file_change(check.paths, admit, tools, workspace)
    assert check.command is not None
    return _judge_command(check.command, check.cwd, admit, tools, workspace, hidden, read_only)


def _judge_file_change(
    paths: Sequence[str], admit: Admit, tools: Collection[str], workspace: Path
) -> Judged:
    tool = "edit" if "edit" in tools and "write" not in tools else "write"
    admitted: list[Admitted] = []
    recorded: list[Any] = []
    for raw in paths:
        # The content is the native agent's, unknown here; the args parse
        # (and replay in an audit) as the tool's own.
        placeholder = [raw, "…", ""] if tool == "edit" else [raw, ""]
        one: Admitted = _tagged(tool, admit, tool, placeholder)
        real = one.resolved[0] if one.resolved else Path(raw)
        relative = os.path.relpath(real, workspace) if is_within(real, workspace) else raw
        admitted.append(one)
        recorded.append([relative, "…", ""] if tool == "edit" else [relative, ""])
    return Judged(tuple(admitted), tuple(recorded))


def _judge_command(
    command: str,
    cwd_raw: str | None,
    admit: Admit,
    tools: Collection[str],
    workspace: Path,
    hidden: Sequence[Path],
    read_only: bool,
) -> Judged:
    cwd = _cwd(cwd_raw, workspace, hidden)
    command = unwrap_shell(command)
    candidates = [t for t in COMMAND_TOOLS if t in tools]
    if not candidates:
        # The dispatcher's own tool-not-allowed, naming the envelope's tools.
        _tagged("bash", admit, "bash", [command])
    first: FutonError | None = None
    for tool in candidates:
        try:
            admitted: Admitted = _tagged(tool, admit, tool, [command])
            if tool in ROOT_ONLY and cwd != workspace:
                raise _refused(
                    tool,
                    out_of_scope(
                        f"{tool} commands run in the workspace root only, not in {cwd_raw!r}"
                    ),
                )
            if tool == "bash-readonly" or (tool == "bash" and read_only):
                _tagged(tool, check_readonly_command, command, cwd, workspace, hidden)
            return Judged((admitted,), ([command],))
        except FutonError as refusal:
            first = first or refusal
    assert first is not None
    raise first


# `bash -lc SCRIPT` / `sh -c SCRIPT` as the whole command (how agents wrap
# theirs): SCRIPT is what runs, so SCRIPT is judged.
_SHELLS = frozenset({"bash", "sh", "/bin/bash", "/bin/sh", "/usr/bin/bash", "/usr/bin/sh"})


def unwrap_shell(command: str) -> str:
    """SCRIPT when ``command`` is exactly ``bash|sh -c|-lc SCRIPT``; else ``command``."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return command
    if len(argv) == 3 and argv[0] in _SHELLS and argv[1] in ("-c", "-lc") and argv[2].strip():
        return argv[2]
    return command


def _cwd(raw: str | None, workspace: Path, hidden: Sequence[Path]) -> Path:
    if raw is None or raw in ("", "."):
        return workspace
    cwd = resolve_in_workspace(workspace, raw)
    _not_hidden(cwd, raw, workspace, hidden)
    if not cwd.is_dir():
        raise out_of_scope(f"cwd {raw!r} is not a directory in the workspace", path=raw)
    return cwd


def _tagged(tool: str, work: Callable[..., Any], *args: Any) -> Any:
    """``work(*args)``; a refusal gets ``context["tool"]`` (the tension names it)."""
    try:
        return work(*args)
    except FutonError as refusal:
        raise _refused(tool, refusal) from None


def _refused(tool: str, refusal: FutonError) -> FutonError:
    context = dict(refusal.context or {})
    context.setdefault("tool", tool)
    refusal.context = context
    return refusal


# ------------------------------------------------------------ read-only commands

# Program → options it must not get (an option refused also in its
# ``--name=value`` form and as a prefix of a long option). Programs not
# listed are refused: an editor, an interpreter, a shell, cp/mv/rm/tee …
# Refused too: options that follow symbolic links while walking (a link in
# the workspace would lead the walk out of it; the paths given are checked
# through their links already), that read the list of files to read from a
# file (--files0-from: those paths are not checked), or that run a program.
_FOLLOW_GREP = ("-R", "--dereference-recursive")
READONLY_PROGRAMS: dict[str, frozenset[str]] = {
    name: frozenset(refused)
    for name, refused in {
        "cat": (), "head": (), "tail": (), "nl": (), "cut": (), "tr": (),
        "stat": (), "df": (), "pwd": (),
        "echo": (), "printf": (), "true": (), "false": (), "basename": (), "dirname": (),
        "realpath": (), "readlink": (), "cmp": (), "comm": (), "which": (),
        "ls": ("-L", "--dereference"),
        "grep": _FOLLOW_GREP, "egrep": _FOLLOW_GREP, "fgrep": _FOLLOW_GREP,
        "wc": ("--files0-from",),
        "du": ("--files0-from", "-L", "--dereference"),
        "diff": ("-r", "--recursive"),  # a recursive diff follows links
        "file": ("-C", "--compile", "-f", "--files-from"),
        "rg": ("--pre", "-L", "--follow", "--hostname-bin"),
        "sort": ("-o", "--output", "-T", "--temporary-directory", "--compress-program",
                 "--files0-from"),
        "tree": ("-o", "-l", "-R"),  # -R reruns tree with `-o 00Tree.html` in each folder
        "find": ("-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls",
                 "-L", "-follow", "-files0-from"),
        "uniq": (),  # at most one file (a second is its output): checked below
        "sed": (),  # only `sed -n 'N[,M]p' FILE…`: checked below
        # --textconv/--filters run the conversion programs a config names.
        "git": ("--output", "-O", "--open-files-in-pager", "--ext-diff", "--textconv", "--filters"),
    }.items()
}  # fmt: skip
READONLY_GIT = frozenset(
    {"status", "log", "show", "diff", "blame", "ls-files", "ls-tree", "rev-parse", "grep", "shortlog",
     "describe", "cat-file"}
)  # fmt: skip
SEPARATORS = frozenset({"|", "&&", "||", ";"})
# Refused anywhere in the line, quoted or not (a simple rule to state and
# audit): substitution and expansion ($, `), braces (bash expands {a,..}),
# newlines (bash separates commands at them). A word starting with ~ (a
# home directory) is refused where words are checked.
_NEVER = ("$", "`", "{", "}", "\n", "\r", "\x00")
# stderr sent away or merged: common in agents' commands, writes nothing.
_STDERR = re.compile(r"(?<=\s)2>(?:/dev/null|&1)(?=\s|$)")
_SED_PRINT = re.compile(r"[0-9]+(,[0-9]+)?p")
_GLOB = re.compile(r"[*?\[]")
GLOB_MATCHES_CHECKED = 10_000  # a glob matching more is refused rather than walked


def check_readonly_command(
    command: str, cwd: Path, workspace: Path, hidden: Sequence[Path]
) -> None:
    """``out-of-scope`` unless ``command`` only reads, inside the workspace
    (module doc). ``cwd`` and ``workspace`` are real paths."""
    for token in _NEVER:
        if token in command:
            raise out_of_scope(
                f"{token!r} is not allowed in a read-only command (no substitution, expansion or second line)"
            )
    lexer = shlex.shlex(_STDERR.sub("", command), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # a '#' stays a word: 'ls # ; rm x' is then refused for rm
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise out_of_scope(f"command does not split into arguments: {exc}") from None
    argv: list[str] = []
    for token in [*tokens, ";"]:
        if token in SEPARATORS:
            if argv:
                _check_simple(argv, cwd, workspace, hidden)
            argv = []
        elif token and set(token) <= set("();<>|&"):
            raise out_of_scope(
                f"shell syntax {token!r} is not allowed in a read-only command (no redirection)"
            )
        else:
            argv.append(token)
    if not any(t not in SEPARATORS for t in tokens):
        raise out_of_scope("empty command")


def _check_simple(argv: list[str], cwd: Path, workspace: Path, hidden: Sequence[Path]) -> None:
    program = argv[0]
    refused_options = READONLY_PROGRAMS.get(program)
    if refused_options is None:
        raise out_of_scope(
            f"{program!r} is not a read-only program here (read-only: {', '.join(sorted(READONLY_PROGRAMS))})"
        )
    deep = _recursive(program, argv[1:])
    positionals: list[str] = []
    options_end = False  # after `--` every word is an operand (`cat -- -x` reads the file -x)
    for arg in argv[1:]:
        if arg == "--" and not options_end:
            options_end = True
            continue
        if arg.startswith("-") and arg != "-" and not options_end:
            name = arg.split("=", 1)[0]
            if any(_names(name, r) for r in refused_options):
                raise out_of_scope(
                    f"{program} {name} may write or run a program; not in a read-only command"
                )
            if program == "git" and not positionals:
                raise out_of_scope(
                    f"git options before the subcommand ({arg!r}) are not allowed here"
                )
            if "=" in arg:
                _check_path(arg.split("=", 1)[1], cwd, workspace, hidden, deep)
            elif "/" in arg:
                raise out_of_scope(f"option {arg!r} carries a path; give it as its own argument")
            continue
        positionals.append(arg)
        if deep and program == "git" and arg.startswith(":"):
            # pathspec magic (`:/`, `:(top)`) names folders the path check cannot see
            raise out_of_scope(f"git pathspec magic {arg!r} is not allowed here", path=arg)
        _check_path(arg, cwd, workspace, hidden, deep)
    if deep and not _names_a_root(program, argv[1:], positionals):
        _check_holds_nothing_hidden(cwd, ".", workspace, hidden)  # it walks the cwd
    if program == "git" and (not positionals or positionals[0] not in READONLY_GIT):
        sub = positionals[0] if positionals else "(none)"
        raise out_of_scope(
            f"git {sub} is not read-only here (read-only: {', '.join(sorted(READONLY_GIT))})"
        )
    if program == "uniq" and len(positionals) > 1:
        raise out_of_scope("uniq writes its second file; give it one file at most")
    if program == "sed":
        options = [a for a in argv[1:] if a.startswith("-")]
        if not positionals or set(options) - {"-n", "--quiet", "--silent", "-E", "-r"} or "-n" not in options \
                or not _SED_PRINT.fullmatch(positionals[0]):  # fmt: skip
            raise out_of_scope("sed is read-only here only as sed -n 'N,Mp' FILE…")


def _names(option: str, refused: str) -> bool:
    """``option`` as typed names the ``refused`` option: equal, a prefix of
    a long one (getopt accepts those), or a bundle of short ones (-uo)."""
    if option == refused:
        return True
    if refused.startswith("--"):
        return option.startswith("--") and len(option) > 2 and refused.startswith(option)
    if len(refused) == 2 and option.startswith("-") and not option.startswith("--"):
        return refused[1] in option[1:]
    return False


# Programs that walk folders: a folder they are given (or the cwd they walk
# without one) must not hold futon's hidden files. git is left out: it reads
# the repository (its history included), as futon's own sandbox lets it.
_ALWAYS_DEEP = frozenset({"rg", "find", "du", "tree"})
_DEEP_WITH = {
    "grep": ("-r", "-R", "--recursive", "--dereference-recursive", "--directories"),
    "egrep": ("-r", "-R", "--recursive", "--dereference-recursive", "--directories"),
    "fgrep": ("-r", "-R", "--recursive", "--dereference-recursive", "--directories"),
    "ls": ("-R", "--recursive"),
    # Without the index git reads the folders themselves, ignored files included.
    "git": ("--no-index", "--untracked"),
}
_PATTERN_OPTIONS = ("-e", "-f", "--regexp", "--file")  # grep/rg: the pattern given as an option


def _recursive(program: str, args: list[str]) -> bool:
    if program in _ALWAYS_DEEP:
        return True
    options = _DEEP_WITH.get(program, ())
    return any(
        arg.startswith("-") and any(_names(arg.split("=", 1)[0], o) for o in options)
        for arg in args
    )


def _names_a_root(program: str, args: list[str], positionals: list[str]) -> bool:
    """Whether a walking program was given where to walk (else: the cwd)."""
    if program == "find":
        return bool(args) and not args[0].startswith("-") and args[0] not in ("(", "!")
    if program in ("rg", "grep", "egrep", "fgrep"):
        pattern_given = any(a.split("=", 1)[0] in _PATTERN_OPTIONS for a in args)
        return len(positionals) > (0 if pattern_given else 1)
    if program == "git":  # git grep PATTERN [PATH…], git diff --no-index PATH PATH
        pattern_given = any(a.split("=", 1)[0] in _PATTERN_OPTIONS for a in args)
        taken = 2 if positionals[:1] == ["grep"] and not pattern_given else 1
        return len(positionals) > taken
    return bool(positionals)


def _check_holds_nothing_hidden(
    root: Path, raw: str, workspace: Path, hidden: Sequence[Path]
) -> None:
    for secret in hidden:
        if (
            is_within(secret, root)
            and secret != root
            and not (secret != workspace and is_within(workspace, secret))
        ):
            shown = (
                os.path.relpath(secret, workspace) if is_within(secret, workspace) else str(secret)
            )
            raise out_of_scope(
                f"{raw!r} holds futon's own data or configuration ({shown}), which no tool may show;"
                " name a folder that does not",
                path=raw,
            )


def _check_path(
    arg: str, cwd: Path, workspace: Path, hidden: Sequence[Path], deep: bool = False
) -> None:
    """An argument that may name a path (any word: a pattern like 'a/b' is
    checked too, erring towards refusing) must stay in the workspace, out of
    futon's hidden paths, and — for a program that walks folders (``deep``)
    — not be a folder holding one. A glob is checked as bash would expand
    it (its matches, at most :data:`GLOB_MATCHES_CHECKED`, else refused)."""
    if not arg or arg == "-":
        return
    if arg.startswith("~") or "=~" in arg or ":~" in arg:
        raise out_of_scope(f"{arg!r} would expand '~' to a home directory", path=arg)
    if os.path.isabs(arg):
        raise out_of_scope(
            f"{arg!r} is an absolute path; a read-only command reads inside the workspace", path=arg
        )
    if _GLOB.search(arg):
        for part in arg.split("/"):
            # bash globs never match a leading dot unless the pattern starts with one.
            if part.startswith(".") and _GLOB.search(part) and fnmatch.fnmatchcase("..", part):
                raise out_of_scope(f"glob {arg!r} could climb out with '..'", path=arg)
    try:
        real = Path(os.path.realpath(cwd / arg))
    except OSError:
        raise out_of_scope(f"path {arg!r} cannot be resolved", path=arg) from None
    if not is_within(real, workspace):
        raise out_of_scope(f"{arg!r} resolves outside the workspace", path=arg)
    _not_hidden(real, arg, workspace, hidden)
    matches = [real]
    if _GLOB.search(arg):
        # The words bash puts in place of the glob (relative to the cwd, as typed).
        words = list(itertools.islice(glob.iglob(arg, root_dir=cwd), GLOB_MATCHES_CHECKED + 1))
        if len(words) > GLOB_MATCHES_CHECKED:
            raise out_of_scope(
                f"glob {arg!r} matches more than {GLOB_MATCHES_CHECKED} paths", path=arg
            )
        for word in words:
            if word.startswith("-"):
                # `sort *` beside a file named `-o` runs `sort -o …`: it writes.
                raise out_of_scope(
                    f"glob {arg!r} expands to {word!r}, which the program would take for an"
                    f" option; write ./{arg}",
                    path=arg,
                )
        matches = [Path(os.path.realpath(cwd / word)) for word in words]
    for match in matches:
        if not is_within(match, workspace):
            raise out_of_scope(f"{arg!r} resolves outside the workspace", path=arg)
        _not_hidden(match, arg, workspace, hidden)
        if deep and match.is_dir():
            _check_holds_nothing_hidden(match, arg, workspace, hidden)


def _not_hidden(path: Path, raw: str, workspace: Path, hidden: Sequence[Path]) -> None:
    """As the dispatcher's hidden-path wall (a hidden folder holding the
    whole workspace hides nothing inside it)."""
    for secret in hidden:
        if is_within(path, secret) and not (secret != workspace and is_within(workspace, secret)):
            raise out_of_scope(
                f"path {raw!r} is futon's own data or configuration, which no tool may touch",
                path=raw,
            )


# ------------------------------------------------------------ native items


def item_body(kind: str, body: Any) -> dict[str, Any]:
    """The entry body of a ``native_item``: the given object plus
    ``{"native": kind}``. ``invalid-input`` when it is not a JSON object or
    is larger than :data:`ITEM_MAX_BYTES` as compact JSON."""
    if not isinstance(body, dict):
        raise ProtocolError(
            "native_item body must be a JSON object",
            code="invalid-input",
            context={"field": "body"},
        )
    try:
        size = len(
            json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(
                "utf-8", "surrogatepass"
            )
        )
    except (TypeError, ValueError):
        raise ProtocolError(
            "native_item body is not JSON", code="invalid-input", context={"field": "body"}
        ) from None
    if size > ITEM_MAX_BYTES:
        raise ProtocolError(
            f"native_item body is {size} bytes; at most {ITEM_MAX_BYTES}",
            code="invalid-input",
            context={"field": "body", "bytes": size, "max_bytes": ITEM_MAX_BYTES},
        )
    # test_run is the daemon's word that an admitted test command ran
    # (Session.record_item); the audit counts it. Never the agent's.
    return {**{k: v for k, v in body.items() if k not in DAEMON_KEYS}, "native": kind}


# Keys a driver may use for a command item's exit code and output (Codex
# App Server items say exitCode / aggregatedOutput; futon's own say exit / out).
_EXIT_KEYS = ("exit_code", "exitCode", "exit")
_OUTPUT_KEYS = ("output", "aggregated_output", "aggregatedOutput", "out")


def command_outcome(body: dict[str, Any]) -> tuple[str, int, str] | None:
    """``(command, exit code, output)`` of a ``command`` item, when it says
    all three plainly (the command unwrapped as :func:`judge` judged it)."""
    command = body.get("command")
    code = next((body[k] for k in _EXIT_KEYS if k in body), None)
    output = next((body[k] for k in _OUTPUT_KEYS if isinstance(body.get(k), str)), "")
    if not isinstance(command, str) or isinstance(code, bool) or not isinstance(code, int):
        return None
    return unwrap_shell(command), code, output
