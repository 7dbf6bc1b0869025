"""The git option tables: for each git subcommand futon may run, how git
parses its arguments and which options are allowed (with why the others are
refused).

Vocabulary, not machinery: config validation checks ``tools.git_subcommands``
against :data:`GRAMMARS`, and :mod:`futon.peripherals.git_options` reads the
tables to check an argv the way git would parse it (its docstring gives the
rules). This module imports nothing of futon.

Long option lists are git 2.39's (``git <sub> --git-completion-helper-all``),
plus the refused ones, so a prefix is resolved over everything git knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

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
REFUSED_SHORT_EVERYWHERE: dict[str, str] = {
    "c": "it is how git is told to set configuration (refused everywhere)",
}

_READS_FILE = "it reads a file, possibly outside the workspace"
_EDITOR = "it opens an editor or an interactive prompt, which could run programs"
_GPG = "it runs gpg"
REWRITES_REMOTE = "it rewrites or deletes history on the remote; a deploy pushes forward"
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
        "mirror": REWRITES_REMOTE,
        "force": REWRITES_REMOTE,
        "force-with-lease": REWRITES_REMOTE,
        "force-if-includes": REWRITES_REMOTE,
        "delete": REWRITES_REMOTE,
        "prune": REWRITES_REMOTE,
        "recurse-submodules": "it pushes other repositories",
        "signed": _GPG,
    },
    refused_short={"f": REWRITES_REMOTE, "d": REWRITES_REMOTE},
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
