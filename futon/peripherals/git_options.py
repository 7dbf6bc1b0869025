"""The git allowlist, parsed the way git parses it.

``git <subcommand> [options] [args] [-- pathspecs]``: every token after
the subcommand is classified as git itself would classify it, then checked.

- No global option (anything between ``git`` and the subcommand: ``-c``,
  ``-C``, ``--git-dir``, ``--exec-path``, ``-P`` …): none is needed by the
  allowed subcommands, and each changes which repository, configuration or
  programs git uses.
- Each subcommand has an explicit table of the options it may take, each
  with its arity: a flag, a value (``--opt=v``, ``--opt v``, ``-xv``,
  ``-x v``) or an optional value (attached only: ``--opt=v``, ``-xv``).
  No allowed option takes a file name.
- Long options: git's parse-options accepts any unique prefix of a long
  option among ALL of the subcommand's options (and ``--no-`` negations).
  So a prefix is resolved here over git's full option list for that
  subcommand (git 2.39, plus the refused ones): it is accepted only when
  every option it could name is an allowed one and it names exactly one.
  ``--receive-pac=x`` could name ``--receive-pack`` → refused. diff, log
  and show parse their options without abbreviation, so there only the
  full name is accepted.
- Short options: clusters (``-am msg``) for the parse-options subcommands,
  one option per token for diff/log/show; ``-c`` is refused everywhere.
- Arguments (revisions, refspecs, pathspecs; before or after ``--``) may
  not be absolute, climb with ``..``, start with ``-`` or use ``:``
  pathspec magic; push's first argument must be a remote's name (a URL or
  a path would push anywhere).

Where git reads an option's value as the next argument, that argument may
not start with ``-`` (attach it: ``--message=-x``): if a table here were
wrong about an option's arity, the next token would then still be checked,
never waved through as a value.

This is a first wall. Git still runs hooks and reads ``.git/config`` of the
workspace (pager, diff drivers, textconv, fsmonitor): keeping those out of
the agent's reach is the sandbox's job.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from futon.protocol.errors import PermissionDenied

Arity = Literal["flag", "value", "optional"]
FLAG: Arity = "flag"
VALUE: Arity = "value"  # attached, separate or stuck
OPTIONAL: Arity = "optional"  # attached or stuck only

# Refused for every subcommand, whatever its table says.
_REFUSED_EVERYWHERE: dict[str, str] = {
    "config": "it sets git configuration, which can name programs to run",
    "config-env": "it sets git configuration, which can name programs to run",
    "exec-path": "it names the folder git runs its programs from",
    "git-dir": "it points git at another repository",
    "work-tree": "it points git at another working tree",
    "namespace": "it changes the refs git works on",
    "help": "it opens a pager or a browser",
    "help-all": "it opens a pager",
    "end-of-options": "it is not needed here; use '--' before pathspecs",
    "git-completion-helper": "it is internal to git",
    "git-completion-helper-all": "it is internal to git",
}
_REFUSED_SHORT_EVERYWHERE: dict[str, str] = {
    "c": "it is how git is told to set configuration (refused everywhere)",
}

_READS_FILE = "it reads a file, possibly outside the workspace"
_EDITOR = "it opens an editor or an interactive prompt, which could run programs"
_GPG = "it runs gpg"
_REWRITES_REMOTE = "it rewrites or deletes history on the remote; a deploy pushes forward"
_RUNS = "it names a program for git to run"


@dataclass(frozen=True)
class Grammar:
    """How git parses one subcommand's arguments, and what is allowed."""

    long: Mapping[str, Arity]  # allowed long spellings (negations spelled out)
    short: Mapping[str, Arity]  # allowed short options
    refused: Mapping[str, str]  # long option → why it is refused
    refused_short: Mapping[str, str]  # short option → why
    known: frozenset[str]  # every long option git knows here (for prefixes)
    abbreviations: bool = True  # parse-options: unique prefixes are expanded
    clusters: bool = True  # parse-options: -am msg
    numeric: bool = False  # log/show: -3 means -n 3
    push: bool = False  # first argument is a remote, then refspecs

    def spellings(self) -> frozenset[str]:
        """Every long spelling git could match a prefix against."""
        names: set[str] = set(self.long)
        for name in (*self.known, *self.refused, *_REFUSED_EVERYWHERE):
            names.add(name)
            names.add("no-" + name)
            if name.startswith("no-"):
                names.add(name[3:])
        return frozenset(names)

    def why_refused(self, spelling: str) -> str:
        for name in (spelling, spelling.removeprefix("no-"), "no-" + spelling):
            reason = self.refused.get(name) or _REFUSED_EVERYWHERE.get(name)
            if reason:
                return reason
        return "it is not on the allowlist"


def _names(text: str) -> frozenset[str]:
    """``--a --b= --no-c`` (git's --git-completion-helper-all output) → names."""
    return frozenset(word.lstrip("-").rstrip("=") for word in text.split() if word != "--")


# ---------------------------------------------------------------- diff family

# Options of the diff machinery that git diff, log and show all take. Values
# are attached only (``--stat=80``): see the module docstring.
_DIFF_LONG: dict[str, Arity] = {
    **dict.fromkeys(
        (
            "patch", "no-patch", "raw", "patch-with-raw", "patch-with-stat", "numstat",
            "shortstat", "summary", "name-only", "name-status", "check", "compact-summary",
            "no-compact-summary", "binary", "full-index", "no-full-index", "no-prefix",
            "minimal", "no-minimal", "patience", "histogram", "ignore-all-space",
            "ignore-space-change", "ignore-space-at-eol", "ignore-cr-at-eol",
            "ignore-blank-lines", "text", "no-text", "exit-code", "no-exit-code", "quiet",
            "no-quiet", "no-renames", "rename-empty", "no-rename-empty", "irreversible-delete",
            "find-copies-harder", "no-find-copies-harder", "function-context",
            "no-function-context", "no-color", "no-color-moved", "no-color-moved-ws",
            "no-ext-diff", "no-textconv", "pickaxe-all", "pickaxe-regex", "cumulative",
            "follow", "no-follow", "indent-heuristic", "no-indent-heuristic", "no-relative",
            "no-abbrev", "ita-invisible-in-index", "ita-visible-in-index",
        ),
        FLAG,
    ),
    **dict.fromkeys(
        (
            "stat", "stat-width", "stat-name-width", "stat-graph-width", "stat-count",
            "dirstat", "dirstat-by-file", "unified", "color", "color-words", "color-moved",
            "color-moved-ws", "word-diff", "word-diff-regex", "abbrev", "relative",
            "find-renames", "find-copies", "break-rewrites", "submodule", "ignore-submodules",
            "diff-algorithm", "diff-filter", "inter-hunk-context", "src-prefix", "dst-prefix",
            "line-prefix", "anchored", "rotate-to", "skip-to", "find-object",
            "ignore-matching-lines", "ws-error-highlight",
        ),
        OPTIONAL,
    ),
}
_DIFF_SHORT: dict[str, Arity] = {
    **dict.fromkeys("psuzRwbaWD", FLAG),
    **dict.fromkeys("UMBSGI", OPTIONAL),
}
_DIFF_REFUSED: dict[str, str] = {
    "output": "it writes the output to a file anywhere",
    "no-index": "it compares files outside the repository",
    "ext-diff": "it runs an external diff program",
    "textconv": "it runs textconv filter programs",
    "stdin": "it reads more arguments from standard input",
    "show-signature": _GPG,
    "orderfile": _READS_FILE,
}
_DIFF_REFUSED_SHORT: dict[str, str] = {
    "O": _READS_FILE,
    "o": "-o names an output file in git; refused for diff, log and show",
}

# Revision walking and formatting (git log and show).
_LOG_LONG: dict[str, Arity] = {
    **_DIFF_LONG,
    **dict.fromkeys(
        (
            "oneline", "graph", "no-decorate", "source", "no-source", "abbrev-commit",
            "no-abbrev-commit", "all", "first-parent", "merges", "no-merges", "reverse",
            "topo-order", "date-order", "author-date-order", "relative-date", "mailmap",
            "no-mailmap", "use-mailmap", "no-use-mailmap", "no-notes", "left-right",
            "cherry-pick", "cherry-mark", "cherry", "boundary", "simplify-by-decoration",
            "full-history", "dense", "sparse", "ancestry-path", "regexp-ignore-case",
            "invert-grep", "all-match", "extended-regexp", "fixed-strings", "perl-regexp",
            "basic-regexp", "full-diff", "cc", "children", "parents", "clear-decorations",
            "no-min-parents", "no-max-parents", "log-size", "no-walk", "do-walk",
        ),
        FLAG,
    ),
    **dict.fromkeys(
        (
            "decorate", "decorate-refs", "decorate-refs-exclude", "branches", "tags",
            "remotes", "pretty", "format", "date", "notes", "diff-merges", "max-parents",
            "min-parents", "encoding",
        ),
        OPTIONAL,
    ),
    # revision.c reads these as --opt=v or --opt v.
    **dict.fromkeys(
        (
            "max-count", "skip", "since", "after", "until", "before", "author",
            "committer", "grep",
        ),
        VALUE,
    ),
}
_LOG_SHORT: dict[str, Arity] = {
    **_DIFF_SHORT, "n": VALUE, "i": FLAG, "E": FLAG, "P": FLAG, "m": FLAG
}

_DIFF_GRAMMAR = Grammar(
    long={**_DIFF_LONG, "cached": FLAG, "staged": FLAG, "merge-base": FLAG},
    short=_DIFF_SHORT,
    refused=_DIFF_REFUSED,
    refused_short=_DIFF_REFUSED_SHORT,
    known=frozenset(),
    abbreviations=False,
    clusters=False,
)
_LOG_GRAMMAR = Grammar(
    long=_LOG_LONG,
    short=_LOG_SHORT,
    refused=_DIFF_REFUSED,
    refused_short=_DIFF_REFUSED_SHORT,
    known=frozenset(),
    abbreviations=False,
    clusters=False,
    numeric=True,
)

# ---------------------------------------------------------------- parse-options

_STATUS = Grammar(
    long={
        **dict.fromkeys(
            (
                "short", "no-short", "branch", "no-branch", "show-stash", "no-show-stash",
                "long", "no-long", "null", "no-null", "verbose", "no-verbose", "ahead-behind",
                "no-ahead-behind", "renames", "no-renames", "no-untracked-files",
                "no-ignored", "no-ignore-submodules", "no-column", "no-porcelain",
            ),
            FLAG,
        ),
        **dict.fromkeys(
            (
                "porcelain", "untracked-files", "ignored", "ignore-submodules", "column",
                "find-renames",
            ),
            OPTIONAL,
        ),
    },
    short={"s": FLAG, "b": FLAG, "z": FLAG, "v": FLAG, "u": OPTIONAL, "M": OPTIONAL},
    refused={},
    refused_short={},
    known=_names(
        "--verbose --short --branch --show-stash --ahead-behind --porcelain --long --null"
        " --untracked-files --ignored --ignore-submodules --column --no-renames --find-renames"
        " --renames"
    ),
)

_ADD = Grammar(
    long={
        **dict.fromkeys(
            (
                "dry-run", "no-dry-run", "verbose", "no-verbose", "force", "no-force", "update",
                "no-update", "all", "no-all", "ignore-removal", "no-ignore-removal",
                "intent-to-add", "no-intent-to-add", "refresh", "ignore-errors",
                "ignore-missing", "renormalize", "sparse", "no-warn-embedded-repo",
            ),
            FLAG,
        ),
        "chmod": VALUE,
    },
    short={"n": FLAG, "v": FLAG, "f": FLAG, "u": FLAG, "A": FLAG, "N": FLAG},
    refused={
        "interactive": _EDITOR,
        "patch": _EDITOR,
        "edit": _EDITOR,
        "pathspec-from-file": _READS_FILE,
    },
    refused_short={"i": _EDITOR, "p": _EDITOR, "e": _EDITOR},
    known=_names(
        "--dry-run --verbose --interactive --patch --edit --force --update --renormalize"
        " --intent-to-add --all --ignore-removal --refresh --ignore-errors --ignore-missing"
        " --sparse --chmod= --warn-embedded-repo --pathspec-from-file= --pathspec-file-nul"
    ),
)

_COMMIT = Grammar(
    long={
        **dict.fromkeys(
            (
                "all", "no-all", "amend", "no-amend", "quiet", "no-quiet", "verbose",
                "no-verbose", "signoff", "no-signoff", "no-verify", "verify",
                "allow-empty", "allow-empty-message", "reset-author", "no-edit", "dry-run",
                "short", "branch", "porcelain", "long", "null", "only", "include",
                "no-post-rewrite", "post-rewrite", "status", "no-status",
            ),
            FLAG,
        ),
        **dict.fromkeys(
            ("message", "author", "date", "reuse-message", "trailer", "cleanup"),
            VALUE,
        ),
        "untracked-files": OPTIONAL,
    },
    short={
        "m": VALUE, "a": FLAG, "q": FLAG, "v": FLAG, "s": FLAG, "n": FLAG, "o": FLAG,
        "i": FLAG, "z": FLAG, "u": OPTIONAL,
    },
    refused={
        "file": _READS_FILE + " (give the message with -m)",
        "template": _READS_FILE,
        "pathspec-from-file": _READS_FILE,
        "gpg-sign": _GPG,
        "edit": _EDITOR,
        "interactive": _EDITOR,
        "patch": _EDITOR,
        "reedit-message": _EDITOR,
        "fixup": _EDITOR + " (amend:/reword: forms)",
        "squash": _EDITOR,
    },
    refused_short={
        "F": _READS_FILE + " (give the message with -m)",
        "t": _READS_FILE,
        "S": _GPG,
        "e": _EDITOR,
        "p": _EDITOR,
    },
    known=_names(
        "--quiet --verbose --file= --author= --date= --message= --reedit-message="
        " --reuse-message= --fixup= --squash= --reset-author --trailer= --signoff --template="
        " --edit --cleanup= --status --gpg-sign --all --include --interactive --patch --only"
        " --no-verify --dry-run --short --branch --ahead-behind --porcelain --long --null"
        " --amend --no-post-rewrite --untracked-files --pathspec-from-file= --pathspec-file-nul"
        " --allow-empty --allow-empty-message --verify --post-rewrite"
    ),
)

_PUSH = Grammar(
    long={
        **dict.fromkeys(
            (
                "tags", "no-tags", "follow-tags", "no-follow-tags", "dry-run", "no-dry-run",
                "quiet", "no-quiet", "verbose", "no-verbose", "porcelain", "atomic",
                "no-atomic", "set-upstream", "progress", "no-progress", "thin", "no-thin",
                "no-verify", "verify", "all", "ipv4", "ipv6",
            ),
            FLAG,
        ),
    },
    short={"n": FLAG, "q": FLAG, "v": FLAG, "u": FLAG, "4": FLAG, "6": FLAG},
    refused={
        "repo": "it pushes to a repository named on the command line",
        "receive-pack": _RUNS,
        "exec": _RUNS,
        "upload-pack": _RUNS,
        "mirror": _REWRITES_REMOTE,
        "force": _REWRITES_REMOTE,
        "force-with-lease": _REWRITES_REMOTE,
        "force-if-includes": _REWRITES_REMOTE,
        "delete": _REWRITES_REMOTE,
        "prune": _REWRITES_REMOTE,
        "recurse-submodules": "it pushes other repositories",
        "signed": _GPG,
    },
    refused_short={"f": _REWRITES_REMOTE, "d": _REWRITES_REMOTE},
    known=_names(
        "--verbose --quiet --repo= --all --mirror --delete --tags --dry-run --porcelain --force"
        " --force-with-lease --force-if-includes --recurse-submodules= --thin --receive-pack="
        " --exec= --set-upstream --progress --prune --no-verify --follow-tags --signed --atomic"
        " --push-option= --ipv4 --ipv6 --verify"
    ),
    push=True,
)

_TAG = Grammar(
    long={
        **dict.fromkeys(
            (
                "annotate", "no-annotate", "list", "delete", "force", "no-force", "ignore-case",
                "no-ignore-case", "create-reflog", "no-create-reflog", "no-column", "no-color",
                "no-edit", "no-sort", "no-format",
            ),
            FLAG,
        ),
        **dict.fromkeys(("message", "sort", "format", "cleanup"), VALUE),
        **dict.fromkeys(("column", "color"), OPTIONAL),
    },
    short={"a": FLAG, "l": FLAG, "d": FLAG, "f": FLAG, "i": FLAG, "m": VALUE, "n": OPTIONAL},
    refused={
        "file": _READS_FILE + " (give the message with -m)",
        "edit": _EDITOR,
        "sign": _GPG,
        "local-user": _GPG,
        "verify": _GPG,
    },
    refused_short={
        "F": _READS_FILE + " (give the message with -m)",
        "e": _EDITOR,
        "s": _GPG,
        "u": _GPG,
        "v": _GPG,
    },
    known=_names(
        "--list --delete --verify --annotate --message= --file= --edit --sign --cleanup="
        " --local-user= --force --create-reflog --column --contains --no-contains --with"
        " --without --merged --no-merged --sort= --points-at --format= --color --ignore-case"
    ),
)

GRAMMARS: Mapping[str, Grammar] = {
    "status": _STATUS,
    "diff": _DIFF_GRAMMAR,
    "log": _LOG_GRAMMAR,
    "show": _LOG_GRAMMAR,
    "add": _ADD,
    "commit": _COMMIT,
    "push": _PUSH,
    "tag": _TAG,
}
_SPELLINGS: Mapping[str, frozenset[str]] = {sub: g.spellings() for sub, g in GRAMMARS.items()}

_REMOTE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _refuse(message: str) -> PermissionDenied:
    return PermissionDenied(message, code="out-of-scope")


def check_git_argv(argv: Sequence[str], subcommands: Sequence[str]) -> None:
    """Raise out-of-scope unless ``argv`` (``git …``, already split) is an
    allowed subcommand with only allowed options and in-workspace arguments."""
    if argv[0] != "git":
        raise _refuse(f"only git may run here, not {argv[0]!r}")
    if len(argv) < 2:
        raise _refuse(f"git needs a subcommand; allowed: {', '.join(subcommands)}")
    sub = argv[1]
    if sub.startswith("-"):
        raise _refuse(
            f"git option {sub!r} before the subcommand is refused: global options (-c, -C,"
            " --git-dir, --exec-path, …) change which repository, configuration or programs"
            " git uses, and none is needed here"
        )
    if sub not in subcommands or sub not in GRAMMARS:
        raise _refuse(f"git subcommand {sub!r} is not allowed; allowed: {', '.join(subcommands)}")
    _Parser(sub, GRAMMARS[sub], list(argv[2:])).run()


class _Parser:
    def __init__(self, sub: str, grammar: Grammar, args: list[str]) -> None:
        self.sub = sub
        self.g = grammar
        self.args = args
        self.i = 0
        self.positionals = 0

    def run(self) -> None:
        options_end = False
        while self.i < len(self.args):
            arg = self.args[self.i]
            self.i += 1
            if options_end:
                self._positional(arg)
            elif arg == "--":
                options_end = True
            elif arg.startswith("--"):
                self._long(arg[2:])
            elif arg.startswith("-") and arg != "-":
                self._short(arg)
            else:
                self._positional(arg)

    # ------------------------------------------------------------ options

    def _long(self, body: str) -> None:
        name, eq, _ = body.partition("=")
        spelling = self._resolve(name)
        arity = self.g.long[spelling]
        if arity == FLAG and eq:
            raise _refuse(f"git {self.sub}: --{spelling} takes no value")
        if arity == VALUE and not eq:
            self._separate_value(f"--{spelling}")

    def _resolve(self, name: str) -> str:
        """The allowed long spelling ``name`` stands for, as git would
        resolve it, or out-of-scope."""
        spellings = _SPELLINGS[self.sub]
        if name in spellings:
            candidates = [name]
        elif self.g.abbreviations and name:
            candidates = sorted(s for s in spellings if s.startswith(name))
        else:
            candidates = []
        if not candidates:
            hidden = sorted(s for s in spellings if s.startswith(name) and s not in self.g.long)
            if name and hidden:
                raise _refuse(
                    f"git {self.sub}: --{name} is not on the allowlist (it is a prefix of"
                    f" --{hidden[0]}, refused because {self.g.why_refused(hidden[0])})"
                )
            raise _refuse(f"git {self.sub}: option --{name} is not on the allowlist")
        bad = [c for c in candidates if c not in self.g.long]
        if bad:
            # Name a refused option first: it says most about the attempt.
            worst = min(bad, key=lambda c: self.g.why_refused(c) == "it is not on the allowlist")
            why = self.g.why_refused(worst)
            if worst == name:
                raise _refuse(f"git {self.sub}: option --{name} is refused: {why}")
            raise _refuse(f"git {self.sub}: --{name} could mean --{worst}, which is refused: {why}")
        if len(candidates) > 1:
            options = ", ".join("--" + c for c in candidates)
            raise _refuse(f"git {self.sub}: --{name} is ambiguous ({options}); write it in full")
        return candidates[0]

    def _short(self, token: str) -> None:
        if self.g.numeric and token[1:].isdigit():
            return  # log -3
        for at in range(1, len(token)):
            letter = token[at]
            arity = self._short_arity(letter)
            rest = token[at + 1 :]
            if arity == FLAG:
                if not self.g.clusters and rest:
                    for hidden in rest:
                        self._short_arity(hidden)  # names a refused one, if any
                    raise _refuse(
                        f"git {self.sub}: give short options one per argument ({token!r})"
                    )
                continue
            if arity == VALUE and not rest:
                self._separate_value(f"-{letter}")
            return  # the rest of the token, if any, is the value

    def _short_arity(self, letter: str) -> Arity:
        why = _REFUSED_SHORT_EVERYWHERE.get(letter) or self.g.refused_short.get(letter)
        if why:
            raise _refuse(f"git {self.sub}: option -{letter} is refused: {why}")
        arity = self.g.short.get(letter)
        if arity is None:
            raise _refuse(f"git {self.sub}: option -{letter} is not on the allowlist")
        return arity

    def _separate_value(self, option: str) -> None:
        """git takes the next argument as the value, whatever it is."""
        if self.i >= len(self.args):
            raise _refuse(f"git {self.sub}: {option} needs a value")
        value = self.args[self.i]
        self.i += 1
        if value.startswith("-"):
            attached = f"{option}=…" if option.startswith("--") else f"{option}…"
            raise _refuse(
                f"git {self.sub}: the value of {option} may not start with '-' as a separate"
                f" argument; attach it ({attached})"
            )

    # ------------------------------------------------------------ arguments

    def _positional(self, arg: str) -> None:
        first = self.positionals == 0
        self.positionals += 1
        if arg.startswith("-"):
            raise _refuse(f"git {self.sub}: argument {arg!r} may not start with '-'")
        if os.path.isabs(arg):
            raise _refuse(f"git {self.sub}: {arg!r} is an absolute path; paths must be relative")
        if ".." in re.split(r"[/:]", arg):
            raise _refuse(f"git {self.sub}: {arg!r} climbs out with '..'")
        if self.g.push:
            if first and not _REMOTE_NAME.fullmatch(arg):
                raise _refuse(
                    f"git push: {arg!r} is not a remote's name; a URL or path would push"
                    " anywhere (configure a remote instead)"
                )
            if not first and arg.startswith(("+", ":")):
                raise _refuse(f"git push: refspec {arg!r} is refused: {_REWRITES_REMOTE}")
            return
        if arg.startswith(":"):
            raise _refuse(
                f"git {self.sub}: {arg!r} uses ':' pathspec magic, which can reach past the"
                " workspace"
            )
