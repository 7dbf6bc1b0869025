"""The argument models of alfworld-action, bell and whistle (run by
:mod:`futon.peripherals.domain.alfworld`): their wire shapes, and nothing
that runs them, so :mod:`futon.peripherals.args` lists them without a
backend.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from futon.config.models import _AGENT_ID
from futon.peripherals.argtypes import Options, ToolArgs

VERBS: tuple[str, ...] = (
    "go", "take", "put", "open", "close", "toggle", "clean", "heat", "cool",
    "use", "examine", "inventory", "look",
)  # fmt: skip


class AlfworldActionArgs(ToolArgs):
    tool = "alfworld-action"
    summary = "Act in the text environment: a command starting with " + ", ".join(VERBS) + "."
    action: str = Field(
        min_length=1, max_length=500, description="One command, e.g. `open fridge 1`."
    )

    @field_validator("action")
    @classmethod
    def _known_verb(cls, value: str) -> str:
        if "\n" in value or "\r" in value:
            raise ValueError("an action is one line")
        words = value.split()
        if not words:
            raise ValueError("an action needs a verb")
        if words[0].lower() not in VERBS:
            raise ValueError(
                f"unknown verb {words[0]!r}; an action starts with one of: {', '.join(VERBS)}"
            )
        return " ".join([words[0].lower(), *words[1:]])


class BellArgs(ToolArgs):
    tool = "bell"
    summary = "Ring a room: broadcast a message to the agents in it."
    room: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[#&]?[A-Za-z0-9][A-Za-z0-9_.#&-]*$",
        description="The room (a channel; `kitchen` means `#kitchen`).",
    )
    text: str = Field(min_length=1, max_length=4000, description="The message.")


class WhistleOptions(Options):
    timeout_s: float = Field(
        default=60.0, gt=0, le=600, description="How many seconds to wait for the answer."
    )


class WhistleArgs(ToolArgs):
    tool = "whistle"
    summary = "Ask one agent and wait for its answer."
    agent_id: str = Field(
        min_length=1, max_length=30, pattern=_AGENT_ID.pattern, description="The agent to ask."
    )
    text: str = Field(min_length=1, max_length=4000, description="The question.")
    options: WhistleOptions = Field(default_factory=WhistleOptions)


ARG_MODELS: tuple[type[ToolArgs], ...] = (AlfworldActionArgs, BellArgs, WhistleArgs)
