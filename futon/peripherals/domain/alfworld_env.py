"""A small ALFWorld-compatible text environment: the game model, pure (no I/O).

One :class:`Game` is one household room (a kitchen, living room, bedroom or
bathroom) of numbered receptacles (``countertop 1``, ``fridge 1``,
``drawer 2`` …) holding numbered objects (``apple 1``, ``mug 2`` …), and a
goal of one of ALFWorld's six task types (:data:`TASK_TYPES`)::

    pick_and_place_simple            put a mug in cabinet.
    pick_clean_then_place_in_recep   put a clean apple in fridge.
    pick_heat_then_place_in_recep    put a hot potato in countertop.
    pick_cool_then_place_in_recep    put a cool tomato in diningtable.
    look_at_obj_in_light             look at book under the desklamp.
    pick_two_obj_and_place           put two keychain in dresser.

**Commands** are ALFWorld's, lower case, one per step: ``look``,
``inventory``, ``go to R``, ``open R``, ``close R``, ``take O from R``,
``put O in/on R``, ``clean O with R`` (a sink or bathtub basin), ``heat O
with R`` (a microwave), ``cool O with R`` (a fridge), ``use L`` / ``toggle
L`` (a desk lamp), ``examine X``. The agent holds one object at a time, must
stand at a receptacle to use it, and a closed receptacle must be opened
before anything goes in or out. Whatever is not a valid command here —
an unknown verb, a thing that is not there — answers ``Nothing happens.``
and still costs a step, as in ALFWorld. ``admissible_commands`` lists the
commands that do something.

**Determinism**: :func:`new_game` builds the same room and goal from the same
``seed`` (and ``task_type``), and the same commands then give the same
observations. **Bounds**: a game ends, not won, after ``max_steps`` steps
(default :data:`MAX_STEPS`, ALFWorld's evaluation budget); an action longer
than :data:`MAX_ACTION` characters is :class:`ValueError` (the server turns
that into a 400).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

MAX_STEPS = 50
MAX_ACTION = 500
NOTHING = "Nothing happens."
WELCOME = "-= Welcome to TextWorld, ALFRED! =-"

PICK_AND_PLACE = "pick_and_place_simple"
PICK_CLEAN = "pick_clean_then_place_in_recep"
PICK_HEAT = "pick_heat_then_place_in_recep"
PICK_COOL = "pick_cool_then_place_in_recep"
LOOK_IN_LIGHT = "look_at_obj_in_light"
PICK_TWO = "pick_two_obj_and_place"
TASK_TYPES: tuple[str, ...] = (
    PICK_AND_PLACE, PICK_CLEAN, PICK_HEAT, PICK_COOL, LOOK_IN_LIGHT, PICK_TWO,
)  # fmt: skip

# ------------------------------------------------------------------ catalogue

OPENABLE = frozenset({"fridge", "microwave", "cabinet", "drawer", "safe"})
# The appliance each treatment needs (ALFWorld: sinks clean, the microwave
# heats, the fridge cools).
TREATMENT = {"clean": ("sinkbasin", "bathtubbasin"), "heat": ("microwave",), "cool": ("fridge",)}
LAMP = "desklamp"
LAMP_HOLDERS = frozenset({"sidetable", "desk", "dresser"})


@dataclass(frozen=True)
class Scene:
    """A room type: its receptacles (kind → (fewest, most)), the objects
    that may lie about, which of them each treatment accepts, the receptacle
    kinds a goal may name, and the task types the room supports."""

    name: str
    receptacles: dict[str, tuple[int, int]]
    objects: tuple[str, ...]
    cleanable: tuple[str, ...]
    heatable: tuple[str, ...]
    coolable: tuple[str, ...]
    goal_places: tuple[str, ...]
    task_types: tuple[str, ...]


SCENES: tuple[Scene, ...] = (
    Scene(
        "kitchen",
        {
            "cabinet": (2, 6), "countertop": (1, 3), "drawer": (1, 4), "fridge": (1, 1),
            "microwave": (1, 1), "sinkbasin": (1, 1), "stoveburner": (2, 4), "diningtable": (1, 1),
            "coffeemachine": (1, 1), "toaster": (1, 1), "garbagecan": (1, 1), "shelf": (0, 2),
        },
        objects=(
            "apple", "bread", "egg", "lettuce", "potato", "tomato", "mug", "cup", "plate", "bowl",
            "pan", "pot", "knife", "fork", "spoon", "spatula", "ladle", "butterknife", "kettle",
            "saltshaker", "peppershaker", "dishsponge", "soapbottle", "winebottle",
        ),
        cleanable=(
            "apple", "egg", "lettuce", "potato", "tomato", "mug", "cup", "plate", "bowl", "pan",
            "pot", "knife", "fork", "spoon", "spatula", "ladle", "butterknife", "kettle",
        ),
        heatable=("apple", "bread", "egg", "potato", "tomato", "mug", "cup", "plate"),
        coolable=(
            "apple", "bread", "lettuce", "potato", "tomato", "mug", "cup", "plate", "bowl", "pan",
            "pot", "winebottle",
        ),
        goal_places=(
            "fridge", "countertop", "diningtable", "cabinet", "drawer", "shelf", "garbagecan",
            "stoveburner", "microwave", "sinkbasin", "coffeemachine",
        ),
        task_types=(PICK_AND_PLACE, PICK_CLEAN, PICK_HEAT, PICK_COOL, PICK_TWO),
    ),
    Scene(
        "livingroom",
        {
            "sofa": (1, 1), "armchair": (1, 2), "coffeetable": (1, 1), "sidetable": (1, 2),
            "tvstand": (1, 1), "drawer": (1, 3), "cabinet": (1, 2), "shelf": (1, 3),
            "garbagecan": (1, 1), "dresser": (0, 1),
        },
        objects=(
            "remotecontrol", "keychain", "creditcard", "newspaper", "pillow", "statue", "vase",
            "box", "laptop", "watch", "cellphone", "book", "tissuebox", "plate",
        ),
        cleanable=(),
        heatable=(),
        coolable=(),
        goal_places=(
            "sofa", "armchair", "coffeetable", "sidetable", "tvstand", "drawer", "cabinet",
            "shelf", "garbagecan", "dresser",
        ),
        task_types=(PICK_AND_PLACE, LOOK_IN_LIGHT, PICK_TWO),
    ),
    Scene(
        "bedroom",
        {
            "bed": (1, 1), "desk": (1, 1), "dresser": (0, 1), "drawer": (2, 6), "shelf": (1, 4),
            "sidetable": (1, 2), "garbagecan": (1, 1), "laundryhamper": (0, 1), "safe": (0, 1),
        },
        objects=(
            "alarmclock", "book", "cd", "cellphone", "creditcard", "keychain", "laptop", "pen",
            "pencil", "pillow", "baseballbat", "tennisracket", "teddybear", "mug", "bowl",
        ),
        cleanable=(),
        heatable=(),
        coolable=(),
        goal_places=(
            "bed", "desk", "dresser", "drawer", "shelf", "sidetable", "safe", "garbagecan",
        ),
        task_types=(PICK_AND_PLACE, LOOK_IN_LIGHT, PICK_TWO),
    ),
    Scene(
        "bathroom",
        {
            "toilet": (1, 1), "sinkbasin": (1, 2), "bathtubbasin": (0, 1), "countertop": (1, 1),
            "cabinet": (1, 4), "drawer": (0, 3), "garbagecan": (1, 1), "towelholder": (1, 1),
            "handtowelholder": (0, 1), "toiletpaperhanger": (1, 1), "shelf": (0, 2),
        },
        objects=(
            "soapbar", "soapbottle", "spraybottle", "toiletpaper", "candle", "cloth", "handtowel",
            "towel", "tissuebox", "plunger", "scrubbrush", "dishsponge",
        ),
        cleanable=("soapbar", "cloth", "dishsponge", "handtowel"),
        heatable=(),
        coolable=(),
        goal_places=("toilet", "countertop", "cabinet", "drawer", "garbagecan", "shelf"),
        task_types=(PICK_AND_PLACE, PICK_CLEAN, PICK_TWO),
    ),
)  # fmt: skip

# ------------------------------------------------------------------ the model


@dataclass
class Receptacle:
    name: str
    kind: str
    openable: bool
    is_open: bool
    contents: list[str] = field(default_factory=list)


@dataclass
class Thing:
    name: str
    kind: str
    clean: bool = False
    hot: bool = False
    cool: bool = False
    lit: bool = False  # lamps only
    fixed: bool = False  # lamps: used in place, never taken


@dataclass(frozen=True)
class Task:
    """The goal: ``target`` objects (``count`` of them, treated as
    ``treatment`` says) in a receptacle of kind ``place``; for
    look_at_obj_in_light, a ``target`` held under a lit lamp."""

    type: str
    target: str
    place: str | None
    count: int = 1
    treatment: str | None = None  # clean | heat | cool

    @property
    def text(self) -> str:
        if self.type == LOOK_IN_LIGHT:
            return f"look at {self.target} under the {LAMP}."
        if self.type == PICK_TWO:
            return f"put two {self.target} in {self.place}."
        adjective = {"clean": "clean ", "heat": "hot ", "cool": "cool "}.get(
            self.treatment or "", ""
        )
        return f"put a {adjective}{self.target} in {self.place}."


class Game:
    """One episode. :meth:`step` plays a command and returns the
    observation; :meth:`state` is the wire's state document."""

    def __init__(
        self,
        seed: int,
        scene: str,
        task: Task,
        receptacles: list[Receptacle],
        things: list[Thing],
        *,
        max_steps: int = MAX_STEPS,
    ) -> None:
        self.seed = seed
        self.scene = scene
        self.task = task
        self.receptacles = {r.name: r for r in receptacles}
        self.things = {t.name: t for t in things}
        self.max_steps = max_steps
        self.location: str | None = None
        self.holding: str | None = None
        self.steps = 0
        self.actions: list[str] = []  # at most max_steps
        self.won = False
        self.observation = self.intro()

    @property
    def done(self) -> bool:
        return self.won or self.steps >= self.max_steps

    @property
    def task_text(self) -> str:
        return f"Your task is to: {self.task.text}"

    # ---------------------------------------------------------------- views

    def intro(self) -> str:
        seen = _listing(list(self.receptacles))
        return (
            f"{WELCOME}\n\nYou are in the middle of a room. Looking quickly around you, "
            f"you see {seen}.\n\n{self.task_text}"
        )

    def state(self) -> dict[str, Any]:
        return {
            "observation": self.observation,
            "task": self.task_text,
            "task_type": self.task.type,
            "step": self.steps,
            "done": self.done,
            "won": self.won,
            "score": 1.0 if self.won else 0.0,
            "max_score": 1.0,
            "admissible_commands": self.admissible(),
            "seed": self.seed,
        }

    def admissible(self) -> list[str]:
        if self.done:
            return []
        out = ["look", "inventory"]
        out += [f"go to {name}" for name in self.receptacles if name != self.location]
        here = self._here()
        held = self.holding
        if held is not None:
            out.append(f"examine {held}")
        if here is not None:
            out.append(f"examine {here.name}")
            if here.openable:
                out.append(f"{'close' if here.is_open else 'open'} {here.name}")
            if here.is_open:
                for name in here.contents:
                    thing = self.things[name]
                    if thing.fixed:
                        out.append(f"use {name}")
                    elif held is None:
                        out.append(f"take {name} from {here.name}")
                if held is not None:
                    out.append(f"put {held} in/on {here.name}")
            if held is not None:
                for verb, kinds in TREATMENT.items():
                    if here.kind in kinds:
                        out.append(f"{verb} {held} with {here.name}")
        return sorted(out)

    def _here(self) -> Receptacle | None:
        return self.receptacles.get(self.location) if self.location else None

    def _describe(self, place: Receptacle) -> str:
        if place.openable and not place.is_open:
            return f"The {place.name} is closed."
        seen = _listing(place.contents) if place.contents else "nothing"
        if place.openable:
            return f"The {place.name} is open. In it, you see {seen}."
        return f"On the {place.name}, you see {seen}."

    # ---------------------------------------------------------------- rules

    def step(self, action: str) -> str:
        """Play one command; the observation. ``ValueError`` for an action
        that is not one line of at most :data:`MAX_ACTION` characters, or a
        step after the game is over (the caller checks :attr:`done`)."""
        if len(action) > MAX_ACTION or "\n" in action or "\r" in action:
            raise ValueError(f"an action is one line of at most {MAX_ACTION} characters")
        if self.done:
            raise ValueError("the game is over")
        self.steps += 1
        self.actions.append(action)
        self.observation = self._act(" ".join(action.lower().split()))
        self.won = self._goal_met()
        return self.observation

    def _act(self, command: str) -> str:
        verb, _, rest = command.partition(" ")
        here = self._here()
        if command == "look":
            where = (
                f"You are facing the {here.name}. " if here else "You are in the middle of a room. "
            )
            return where + "Next to it, you see nothing."
        if command == "inventory":
            return (
                f"You are carrying: a {self.holding}."
                if self.holding
                else "You are not carrying anything."
            )
        if verb == "go" and rest.startswith("to "):
            target = self.receptacles.get(rest[3:])
            if target is None or target is here:
                return NOTHING
            self.location = target.name
            return f"You arrive at {target.name}. " + self._describe(target)
        if verb in ("open", "close"):
            if here is None or rest != here.name or not here.openable:
                return NOTHING
            if here.is_open == (verb == "open"):
                return NOTHING
            here.is_open = verb == "open"
            if verb == "close":
                return f"You close the {here.name}."
            return f"You open the {here.name}. " + self._describe(here)
        if verb == "examine":
            return self._examine(rest, here)
        if verb == "take":
            return self._take(rest, here)
        if verb == "put":
            return self._put(rest, here)
        if verb in TREATMENT:
            return self._treat(verb, rest, here)
        if verb in ("use", "toggle"):
            lamp = self.things.get(rest)
            if here is None or lamp is None or not lamp.fixed or rest not in here.contents:
                return NOTHING
            lamp.lit = not lamp.lit
            return f"You turn {'on' if lamp.lit else 'off'} the {rest}."
        return NOTHING

    def _examine(self, name: str, here: Receptacle | None) -> str:
        if here is not None and name == here.name:
            return self._describe(here)
        visible = here is not None and here.is_open and name in here.contents
        if name != self.holding and not visible:
            return NOTHING
        thing = self.things[name]
        if thing.fixed:
            return f"The {name} is {'on' if thing.lit else 'off'}."
        marks = [
            word
            for word, on in (("clean", thing.clean), ("hot", thing.hot), ("cool", thing.cool))
            if on
        ]
        return f"There's nothing special about {name}." + "".join(f" It is {m}." for m in marks)

    def _take(self, rest: str, here: Receptacle | None) -> str:
        name, sep, source = rest.partition(" from ")
        if not sep or here is None or source != here.name or not here.is_open:
            return NOTHING
        thing = self.things.get(name)
        if self.holding is not None or thing is None or thing.fixed or name not in here.contents:
            return NOTHING
        here.contents.remove(name)
        self.holding = name
        return f"You pick up the {name} from the {here.name}."

    def _put(self, rest: str, here: Receptacle | None) -> str:
        name, sep, target = rest.partition(" in/on ")
        if not sep or here is None or target != here.name or not here.is_open:
            return NOTHING
        if self.holding is None or name != self.holding:
            return NOTHING
        here.contents.append(name)
        self.holding = None
        return f"You put the {name} in/on the {here.name}."

    def _treat(self, verb: str, rest: str, here: Receptacle | None) -> str:
        name, sep, tool = rest.partition(" with ")
        if not sep or here is None or tool != here.name or here.kind not in TREATMENT[verb]:
            return NOTHING
        if self.holding is None or name != self.holding:
            return NOTHING
        thing = self.things[name]
        if verb == "clean":
            thing.clean = True
        elif verb == "heat":
            thing.hot, thing.cool = True, False
        else:
            thing.cool, thing.hot = True, False
        return f"You {verb} the {name} using the {tool}."

    def _goal_met(self) -> bool:
        task = self.task
        if task.type == LOOK_IN_LIGHT:
            here = self._here()
            held = self.things.get(self.holding) if self.holding else None
            if here is None or held is None or held.kind != task.target:
                return False
            return any(self.things[n].fixed and self.things[n].lit for n in here.contents)
        for place in self.receptacles.values():
            if place.kind != task.place:
                continue
            fitting = [n for n in place.contents if self._fits(self.things[n])]
            if len(fitting) >= task.count:
                return True
        return False

    def _fits(self, thing: Thing) -> bool:
        if thing.kind != self.task.target:
            return False
        treatment = self.task.treatment
        if treatment == "clean":
            return thing.clean
        if treatment == "heat":
            return thing.hot
        if treatment == "cool":
            return thing.cool
        return True


def _listing(names: list[str]) -> str:
    """ALFWorld's list: ``a x 1``, ``a x 1, and a y 2``, ``a x 1, a y 2, and a z 1``."""
    items = [f"a {name}" for name in names]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


# ------------------------------------------------------------------ generation


def new_game(seed: int, task_type: str | None = None, *, max_steps: int = MAX_STEPS) -> Game:
    """The game of ``seed``: a room, its contents and a solvable goal that
    is not met at the start. ``task_type`` (one of :data:`TASK_TYPES`)
    fixes the goal's type; otherwise the seed picks it. ``ValueError`` for
    an unknown task type or a ``max_steps`` below 1."""
    if task_type is not None and task_type not in TASK_TYPES:
        raise ValueError(f"unknown task type {task_type!r}; one of: {', '.join(TASK_TYPES)}")
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    rng = random.Random(seed)
    kind = task_type or rng.choice(TASK_TYPES)
    scene = rng.choice([s for s in SCENES if kind in s.task_types])
    receptacles = _furnish(rng, scene, needs_lamp=kind == LOOK_IN_LIGHT)
    task = _goal(rng, scene, kind, receptacles)
    things = _fill(rng, scene, task, receptacles)
    return Game(seed, scene.name, task, receptacles, things, max_steps=max_steps)


def _furnish(rng: random.Random, scene: Scene, *, needs_lamp: bool) -> list[Receptacle]:
    out: list[Receptacle] = []
    for kind in sorted(scene.receptacles):
        low, high = scene.receptacles[kind]
        if needs_lamp and kind in LAMP_HOLDERS:
            low = max(low, 1)  # somewhere to stand the lamp
        for number in range(1, rng.randint(low, high) + 1):
            openable = kind in OPENABLE
            out.append(Receptacle(f"{kind} {number}", kind, openable, is_open=not openable))
    return out


def _goal(rng: random.Random, scene: Scene, kind: str, receptacles: list[Receptacle]) -> Task:
    present = sorted({r.kind for r in receptacles})
    if kind == LOOK_IN_LIGHT:
        return Task(kind, rng.choice(scene.objects), None)
    treatment = {PICK_CLEAN: "clean", PICK_HEAT: "heat", PICK_COOL: "cool"}.get(kind)
    pool = {"clean": scene.cleanable, "heat": scene.heatable, "cool": scene.coolable}.get(
        treatment or "", scene.objects
    )
    # A treated object is not put back into the appliance that treated it.
    appliances = set(TREATMENT[treatment]) if treatment else set()
    places = [p for p in scene.goal_places if p in present and p not in appliances]
    return Task(
        kind, rng.choice(pool), rng.choice(places), count=2 if kind == PICK_TWO else 1,
        treatment=treatment,
    )  # fmt: skip


def _fill(
    rng: random.Random, scene: Scene, task: Task, receptacles: list[Receptacle]
) -> list[Thing]:
    """Objects in receptacles: the goal's objects (two or three for
    pick_two) never already in a goal receptacle, a lamp for the light task,
    and 6-12 others of the room's kinds."""
    kinds = [task.target] * (rng.randint(2, 3) if task.count == 2 else 1)
    others = [k for k in scene.objects if k != task.target]
    kinds += [rng.choice(others) for _ in range(rng.randint(6, 12))]
    numbers: dict[str, int] = {}
    things: list[Thing] = []
    for kind in kinds:
        numbers[kind] = numbers.get(kind, 0) + 1
        name = f"{kind} {numbers[kind]}"
        spots = receptacles
        if kind == task.target:
            spots = [r for r in receptacles if r.kind != task.place]
        rng.choice(spots).contents.append(name)
        things.append(Thing(name, kind))
    if task.type == LOOK_IN_LIGHT or rng.random() < 0.5:
        holders = [r for r in receptacles if r.kind in LAMP_HOLDERS]
        if holders:
            rng.choice(holders).contents.append(f"{LAMP} 1")
            things.append(Thing(f"{LAMP} 1", LAMP, fixed=True))
    return things


__all__ = [
    "MAX_ACTION",
    "MAX_STEPS",
    "NOTHING",
    "SCENES",
    "TASK_TYPES",
    "Game",
    "Receptacle",
    "Task",
    "Thing",
    "new_game",
]
