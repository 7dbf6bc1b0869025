"""The argument models of the discipline tools (psr-search … par-punctuate,
run by :mod:`futon.peripherals.domain.discipline`): their wire shapes, and
nothing that runs them, so :mod:`futon.peripherals.args` lists them without a
backend.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from futon.peripherals.argtypes import Options, ToolArgs

PATTERN_ID_RE = r"^[a-z0-9][a-z0-9-]*$"
MAX_PATTERN_ID = 128
MAX_NOTE = 16 * 1024
DEFAULT_TOP_K = 5

PatternId = Field(
    min_length=1,
    max_length=MAX_PATTERN_ID,
    pattern=PATTERN_ID_RE,
    description="The id of the pattern (lower-case kebab, as psr-search shows it).",
)


class PsrSearchOptions(Options):
    top_k: int = Field(
        default=DEFAULT_TOP_K, ge=1, le=50, description="How many candidates at most."
    )


class PsrSearchArgs(ToolArgs):
    tool = "psr-search"
    summary = "Rank the library's patterns for a description of the situation."
    query: str = Field(min_length=1, max_length=4096, description="A description of the situation.")
    options: PsrSearchOptions = Field(default_factory=PsrSearchOptions)


class PsrSelectOptions(Options):
    rationale: str = Field(default="", max_length=MAX_NOTE, description="Why this pattern.")


class PsrSelectArgs(ToolArgs):
    tool = "psr-select"
    summary = "Record the selection of a pattern (PSR)."
    pattern_id: str = PatternId
    options: PsrSelectOptions = Field(default_factory=PsrSelectOptions)


class PurUpdateOptions(Options):
    notes: str = Field(default="", max_length=MAX_NOTE, description="What happened.")


class PurUpdateArgs(ToolArgs):
    tool = "pur-update"
    summary = "Record the outcome of applying a selected pattern (PUR)."
    pattern_id: str = PatternId
    outcome: Literal["pass", "fail", "partial"] = Field(
        description="How applying the pattern went."
    )
    options: PurUpdateOptions = Field(default_factory=PurUpdateOptions)


class PurMarkPivotArgs(ToolArgs):
    tool = "pur-mark-pivot"
    summary = "Record a pivot away from a selected pattern (a correction)."
    pattern_id: str = PatternId
    reason: str = Field(min_length=1, max_length=MAX_NOTE, description="Why the pivot.")


class ParPunctuateArgs(ToolArgs):
    tool = "par-punctuate"
    summary = "Write a post-action review (PAR) of this session's pattern work."
    # Named ``text``: ``summary`` is every ToolArgs' description.
    text: str = Field(min_length=1, max_length=MAX_NOTE, description="The review.")


ARG_MODELS: tuple[type[ToolArgs], ...] = (
    PsrSearchArgs, PsrSelectArgs, PurUpdateArgs, PurMarkPivotArgs, ParPunctuateArgs,
)  # fmt: skip
