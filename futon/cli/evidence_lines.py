"""Evidence entries as one terminal line each, for ``futon evidence
query|tail|chain`` without ``--wide`` or ``--json``.

A line is ``TIME AUTHOR TYPE/CLAIM SUBJECT SUMMARY`` in columns whose widths
depend only on the terminal's width (``COLUMNS``, else the terminal, else 80),
never on the entries, so ``tail -f`` keeps them steady; no line is wider than
the terminal. Times are UTC; a line ``-- DAY (UTC) --`` starts each day.
The summary says what happened: for a tool step the tool, ok, failed or
refused (with the code), then its arguments (``edit refused out-of-scope:
/etc/passwd``); for a message its text; else the body as JSON.
Entry content is printed as plain text: control characters (a terminal's
escape sequences included) become spaces.
"""

from __future__ import annotations

import json
import shutil
import sys
import unicodedata
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.cells import cell_len, set_cell_size

from futon.evidence.model import EntryDict

MIN_WIDTH = 40
ELLIPSIS = "…"

# Short names of the entry types for the TYPE/CLAIM column (claims stay
# whole); --wide and --json show the full ones.
SHORT_TYPES = {
    "coordination": "coord",
    "gate-traversal": "gate",
    "pattern-selection": "psr",
    "pattern-outcome": "pur",
    "reflection": "reflect",
    "forum-post": "post",
    "mode-transition": "mode",
    "presence-event": "presence",
}


def terminal_width() -> int:
    """``COLUMNS``, else the terminal's width, else 80; at least MIN_WIDTH."""
    return max(MIN_WIDTH, shutil.get_terminal_size((80, 24)).columns)


def plain(text: str) -> str:
    """``text`` on one line, with control and format characters as spaces
    and runs of whitespace folded."""
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text)
    return " ".join(cleaned.split())


def fit(text: str, width: int) -> str:
    """``text`` padded or cut (with an ellipsis) to exactly ``width`` cells."""
    if width <= 0:
        return ""
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + ELLIPSIS
    return set_cell_size(text, width)


def _arg_text(value: Any) -> str:
    if isinstance(value, str) and value and not any(ch.isspace() for ch in value) and '"' not in value:
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def summary(entry: EntryDict) -> str:
    """What the entry says, in one line (not yet cut to a width)."""
    body = entry.get("evidence/body")
    claim = entry.get("evidence/claim-type")
    if isinstance(body, dict) and isinstance(body.get("tool"), str):
        args = body.get("args")
        if isinstance(args, list):
            shown = " ".join(_arg_text(a) for a in args)
        elif args is None:
            shown = ""
        else:
            shown = _arg_text(args)
        if claim == "tension" or ("code" in body and "ok" not in body):
            outcome = f"refused {body.get('code', '?')}"
        elif "ok" in body:
            outcome = "ok" if body["ok"] else "failed"
        else:
            outcome = ""
        if isinstance(body.get("text"), str):  # `say`: a message from a session
            shown = f"to {body.get('to', '?')}: {body['text']}"
        # The outcome before the arguments: a long argument list is what gets cut.
        head = " ".join(part for part in (body["tool"], outcome) if part)
        return plain(f"{head}: {shown}" if shown else head)
    if isinstance(body, dict) and isinstance(body.get("text"), str):
        return plain(body["text"])
    if body is None:
        return ""
    return plain(json.dumps(body, ensure_ascii=False, separators=(",", ":")))


@dataclass
class Columns:
    """Widths of the fixed columns for a terminal ``width`` cells wide; the
    summary takes what is left."""

    width: int
    time: int = 8
    author: int = 10
    kind: int = 16
    subject: int = 11

    def __post_init__(self) -> None:
        spare = self.width - 80
        if spare > 0:  # wider terminals: give the narrow columns room first
            grow = min(spare // 3, 12)
            self.kind += grow // 2
            self.subject += grow - grow // 2
            self.author += min(spare // 6, 8)
        elif spare < 0:  # narrow ones: shrink them, down to a few cells each
            self.kind = max(10, self.kind + spare // 3)
            self.subject = max(8, self.subject + spare // 3)
            self.author = max(6, self.author + spare // 3)

    @property
    def summary(self) -> int:
        used = self.time + self.author + self.kind + self.subject + 4  # four single spaces
        return max(0, self.width - used)


@dataclass
class LinePrinter:
    """Prints entries as lines; keep one per command so a follow keeps its
    columns and day headers."""

    width: int = field(default_factory=terminal_width)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    # Dated: the time column shows the day (YYYY-MM-DD) and no day headers
    # are printed — for search hits, which come by rank, not by time.
    dated: bool = False
    _day: str | None = None
    _header_done: bool = False

    def __post_init__(self) -> None:
        self.columns = Columns(self.width, time=10 if self.dated else 8)

    def header(self) -> None:
        if self._header_done:
            return
        self._header_done = True
        c = self.columns
        cells = [fit("day" if self.dated else "time", c.time), fit("author", c.author), fit("type/claim", c.kind),
                 fit("subject", c.subject), fit("match" if self.dated else "summary", c.summary)]  # fmt: skip
        self.out.write(" ".join(cells).rstrip() + "\n")

    def line(self, entry: EntryDict, text: str | None = None) -> str:
        """One entry; ``text`` (a search snippet) replaces its summary."""
        at = str(entry.get("evidence/at", ""))
        subject = entry.get("evidence/subject") or {}
        entry_type = str(entry.get("evidence/type", ""))
        kind = f"{SHORT_TYPES.get(entry_type, entry_type)}/{entry.get('evidence/claim-type', '')}"
        if isinstance(subject, dict):
            about = f"{subject.get('ref/type', '')}:{subject.get('ref/id', '')}"
        else:
            about = str(subject)
        c = self.columns
        cells = [
            fit(at[:10] if self.dated else at[11:19] if len(at) >= 19 else at, c.time),
            fit(plain(str(entry.get("evidence/author", ""))), c.author),
            fit(plain(kind), c.kind),
            fit(plain(about), c.subject),
            fit(summary(entry) if text is None else plain(text), c.summary),
        ]
        return " ".join(cells).rstrip()

    def print_hits(self, hits: list[tuple[EntryDict, str]]) -> None:
        """Search hits (entry, snippet), in the order given, no day headers."""
        for entry, snippet in hits:
            self.out.write(self.line(entry, snippet) + "\n")
        self.out.flush()

    def print(self, entries: list[EntryDict]) -> None:
        for entry in entries:
            at = str(entry.get("evidence/at", ""))
            day = at[:10] if len(at) >= 10 else None
            if day and day != self._day:
                self._day = day
                self.out.write(fit(f"-- {day} (UTC) --", self.width).rstrip() + "\n")
            self.out.write(self.line(entry) + "\n")
        self.out.flush()
