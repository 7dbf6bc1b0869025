"""The git allowlist, parsed the way git parses it.

``git <subcommand> [options] [args] [-- pathspecs]``: every token after
the subcommand is classified as git itself would classify it, then checked.

- No global option (anything between ``git`` and the subcommand: ``-c``,
  ``-C``, ``--git-dir``, ``--exec-path``, ``-P`` …): none is needed by the
  allowed subcommands, and each changes which repository, configuration or
  programs git uses.
- Each subcommand has an explicit table of the options it may take
  (:mod:`futon.config.git_grammars`, which config validation reads too), each
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

from futon.config.git_grammars import (
    FLAG,
    GRAMMARS,
    REFUSED_SHORT_EVERYWHERE,
    REWRITES_REMOTE,
    VALUE,
    Arity,
    Grammar,
)
from futon.protocol.errors import PermissionDenied

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
        why = REFUSED_SHORT_EVERYWHERE.get(letter) or self.g.refused_short.get(letter)
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
                raise _refuse(f"git push: refspec {arg!r} is refused: {REWRITES_REMOTE}")
            return
        if arg.startswith(":"):
            raise _refuse(
                f"git {self.sub}: {arg!r} uses ':' pathspec magic, which can reach past the"
                " workspace"
            )
