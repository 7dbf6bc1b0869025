"""Plain text tables that fit the terminal, for ``futon status``.

Columns are separated by two spaces and sized to their content. When the
table is wider than the terminal, the widest columns that may be cut are cut
(with an ellipsis) until it fits; columns listed in ``whole`` — ids a user
copies into another command — are never cut, even when the table then stays
wider than the terminal.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from rich.cells import cell_len

from futon.cli.evidence_lines import fit, plain

GAP = "  "
MIN_CUT = 4  # a cut column keeps at least this many cells ("abc…")


def widths(
    headers: Sequence[str], rows: Sequence[Sequence[str]], width: int, whole: frozenset[int]
) -> list[int]:
    """Column widths: natural, then cut (widest first, never below MIN_CUT,
    never a ``whole`` column) until the table fits ``width``; when that is
    not enough, the rightmost columns that may be cut are left out (0)."""
    sizes = [
        max([cell_len(header)] + [cell_len(row[i]) for row in rows])
        for i, header in enumerate(headers)
    ]
    excess = sum(sizes) + len(GAP) * (len(sizes) - 1) - width
    while excess > 0:
        cuttable = [i for i in range(len(sizes)) if i not in whole and sizes[i] > MIN_CUT]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda i: sizes[i])
        sizes[widest] -= 1
        excess -= 1
    for i in reversed(range(len(sizes))):
        if excess <= 0:
            break
        if i not in whole and sizes[i]:
            excess -= sizes[i] + len(GAP)
            sizes[i] = 0
    return sizes


def table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int,
    *,
    whole: frozenset[int] = frozenset(),
) -> list[str]:
    """The lines of a titled table; cells are made plain (one line, no
    control characters) first."""
    clean = [[plain(str(cell)) for cell in row] for row in rows]
    sizes = widths(headers, clean, width, whole)
    lines = [fit(title, width).rstrip()]
    shown = [i for i, size in enumerate(sizes) if size]
    for row in [list(headers), ["-" * size for size in sizes], *clean]:
        cells = [row[i] + " " * (sizes[i] - cell_len(row[i])) if i in whole else fit(row[i], sizes[i])
                 for i in shown]  # fmt: skip
        lines.append(GAP.join(cells).rstrip())
    return lines


def paragraph(text: str, width: int) -> list[str]:
    """``text`` wrapped at word boundaries to ``width``."""
    return textwrap.wrap(plain(text), width) or [""]
