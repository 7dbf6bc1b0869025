"""The argument models of the mission-control tools (mc-*, run by
:mod:`futon.peripherals.domain.mission_control`): their wire shapes, and
nothing that runs them, so :mod:`futon.peripherals.args` lists them without a
backend.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from futon.peripherals.argtypes import ToolArgs

DEFAULT_CHANNEL = "#futon"


class McInventoryArgs(ToolArgs):
    tool = "mc-inventory"
    summary = "Every mission file of the configured repositories, parsed."


class McDevmapsArgs(ToolArgs):
    tool = "mc-devmaps"
    summary = "The devmaps (checklists) of the configured repositories."


class McCoverageArgs(ToolArgs):
    tool = "mc-coverage"
    summary = "Which missions have devmap items, how far along they are, what is uncovered."


class McManaArgs(ToolArgs):
    tool = "mc-mana"
    summary = "The attention budget: actionable versus waiting missions and items."


class McReviewArgs(ToolArgs):
    tool = "mc-review"
    summary = "A portfolio review: counts, missions, gaps, actionable next steps and a summary."


class McBulletinArgs(ToolArgs):
    tool = "mc-bulletin"
    summary = "Post a bulletin to an IRC channel (default #futon)."
    text: str = Field(min_length=1, max_length=4000, description="The bulletin.")
    channel: str = Field(
        default=DEFAULT_CHANNEL,
        pattern=r"^[#&][^\s,\x07]{1,63}$",
        description="The IRC channel to post to.",
    )

    @field_validator("text")
    @classmethod
    def _has_words(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a bulletin needs some text")
        return value


ARG_MODELS: tuple[type[ToolArgs], ...] = (
    McInventoryArgs, McDevmapsArgs, McCoverageArgs, McManaArgs, McReviewArgs, McBulletinArgs,
)  # fmt: skip
