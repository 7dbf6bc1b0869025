"""The shipped ALFWorld-style game model (futon/peripherals/domain/alfworld_env.py),
played without any I/O: each task type won by a scripted run, the commands
that do nothing answering "Nothing happens." as in ALFWorld, the same game
for the same seed, and the bounds."""

from __future__ import annotations

import copy

import pytest

from futon.peripherals.domain.alfworld_env import (
    LOOK_IN_LIGHT,
    MAX_ACTION,
    NOTHING,
    PICK_AND_PLACE,
    PICK_CLEAN,
    PICK_COOL,
    PICK_HEAT,
    PICK_TWO,
    TASK_TYPES,
    TREATMENT,
    Game,
    new_game,
)
from futon.peripherals.domain.alfworld_server import GameTable
from tests.peripherals.domain.test_alfworld import CLASSIC_SEED  # the game played over HTTP


def solve(game: Game) -> list[str]:
    """A winning run for ``game``, planned from its layout (as an agent that
    had looked everywhere would)."""
    where = {name: r for r in game.receptacles.values() for name in r.contents}
    at: list[str | None] = [None]
    opened: set[str] = set()
    run: list[str] = []

    def go(place: str) -> None:
        if at[0] != place:
            run.append(f"go to {place}")
            at[0] = place
        receptacle = game.receptacles[place]
        if receptacle.openable and place not in opened:
            run.append(f"open {place}")
            opened.add(place)

    def take(name: str) -> None:
        go(where[name].name)
        run.append(f"take {name} from {where[name].name}")

    def put(name: str, kind: str) -> None:
        place = next(r.name for r in game.receptacles.values() if r.kind == kind)
        go(place)
        run.append(f"put {name} in/on {place}")

    task = game.task
    targets = sorted(n for n, t in game.things.items() if t.kind == task.target)
    if task.type == LOOK_IN_LIGHT:
        take(targets[0])
        go(where["desklamp 1"].name)
        run.append("use desklamp 1")
        return run
    for name in targets[: task.count]:
        take(name)
        if task.treatment:
            tool = next(
                r.name for r in game.receptacles.values() if r.kind in TREATMENT[task.treatment]
            )
            go(tool)
            run.append(f"{task.treatment} {name} with {tool}")
        assert task.place is not None
        put(name, task.place)
    return run


def play(game: Game, run: list[str]) -> list[str]:
    return [game.step(action) for action in run]


# ----------------------------------------------------------------- winning


def test_the_classic_seed() -> None:
    """The game the HTTP tests play, step by step."""
    game = new_game(CLASSIC_SEED)
    assert game.scene == "kitchen" and game.task.type == PICK_CLEAN
    assert game.task_text == "Your task is to: put a clean apple in fridge."
    assert game.observation.startswith(
        "-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. "
        "Looking quickly around you, you see a cabinet 1, a cabinet 2,"
    )
    assert game.observation.endswith(
        ", and a toaster 1.\n\nYour task is to: put a clean apple in fridge."
    )
    seen = play(
        game,
        [
            "look",
            "go to countertop 1",
            "take apple 1 from countertop 1",
            "inventory",
            "go to sinkbasin 1",
            "clean apple 1 with sinkbasin 1",
            "examine apple 1",
            "go to fridge 1",
            "open fridge 1",
            "put apple 1 in/on fridge 1",
        ],
    )
    assert seen == [
        "You are in the middle of a room. Next to it, you see nothing.",
        "You arrive at countertop 1. On the countertop 1, you see a apple 1, a cup 1, and a cup 2.",
        "You pick up the apple 1 from the countertop 1.",
        "You are carrying: a apple 1.",
        "You arrive at sinkbasin 1. On the sinkbasin 1, you see a ladle 1.",
        "You clean the apple 1 using the sinkbasin 1.",
        "There's nothing special about apple 1. It is clean.",
        "You arrive at fridge 1. The fridge 1 is closed.",
        "You open the fridge 1. The fridge 1 is open. In it, you see nothing.",
        "You put the apple 1 in/on the fridge 1.",
    ]
    state = game.state()
    assert state["won"] and state["done"] and state["score"] == 1.0 and state["step"] == 10
    assert state["task_type"] == "pick_clean_then_place_in_recep" and state["seed"] == CLASSIC_SEED
    assert state["admissible_commands"] == []


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_each_task_type_is_won_by_a_scripted_run(task_type: str) -> None:
    for seed in range(40):
        game = new_game(seed, task_type)
        assert game.task.type == task_type
        run = solve(game)
        seen = play(game, run)
        assert NOTHING not in seen, (seed, run, seen)
        assert game.won and game.done, (seed, game.task_text, run, seen)
        assert game.steps == len(run)


def test_scripts_for_each_task_type_read_like_alfworld() -> None:
    """One literal run per task type, observations and all."""
    cases: dict[str, tuple[int, str, list[str], str]] = {}
    for task_type in TASK_TYPES:
        seed = next(s for s in range(100) if new_game(s).task.type == task_type)
        game = new_game(seed)
        run = solve(game)
        last = play(game, run)[-1]
        assert game.won
        cases[task_type] = (seed, game.task.text, run, last)
    assert cases[PICK_AND_PLACE][1].startswith("put a ")
    assert cases[PICK_CLEAN][1].startswith("put a clean ")
    assert cases[PICK_HEAT][1].startswith("put a hot ")
    assert cases[PICK_COOL][1].startswith("put a cool ")
    assert cases[LOOK_IN_LIGHT][1].endswith(" under the desklamp.")
    assert cases[PICK_TWO][1].startswith("put two ")
    assert cases[LOOK_IN_LIGHT][3] == "You turn on the desklamp 1."
    assert any(a.startswith("heat ") for a in cases[PICK_HEAT][2])
    assert any(a.startswith("cool ") for a in cases[PICK_COOL][2])
    assert sum(a.startswith("put ") for a in cases[PICK_TWO][2]) == 2


def test_a_treatment_must_come_before_placing() -> None:
    game = new_game(CLASSIC_SEED)
    play(
        game,
        ["go to countertop 1", "take apple 1 from countertop 1", "go to fridge 1", "open fridge 1"],
    )
    assert game.step("put apple 1 in/on fridge 1") == "You put the apple 1 in/on the fridge 1."
    assert not game.won and not game.done  # not clean yet
    assert game.step("cool apple 1 with fridge 1") == NOTHING  # not holding it any more
    assert game.step("take apple 1 from fridge 1") == "You pick up the apple 1 from the fridge 1."
    assert game.step("cool apple 1 with fridge 1") == "You cool the apple 1 using the fridge 1."
    assert game.step("examine apple 1") == "There's nothing special about apple 1. It is cool."


def test_heating_undoes_cooling() -> None:
    game = new_game(0, PICK_HEAT)
    run = solve(game)
    treat = next(i for i, a in enumerate(run) if a.startswith("heat "))
    play(game, run[:treat])
    held = game.holding
    assert held is not None
    play(game, ["go to fridge 1", f"cool {held} with fridge 1"])
    assert game.things[held].cool and not game.things[held].hot
    play(game, ["go to microwave 1", f"heat {held} with microwave 1"])
    assert game.things[held].hot and not game.things[held].cool


# ----------------------------------------------------------------- nothing happens


def test_what_does_nothing_says_nothing_happens_and_costs_a_step() -> None:
    game = new_game(CLASSIC_SEED)
    wrong = [
        "dance",
        "",
        "go to",
        "go to the moon 1",
        "go countertop 1",
        "take apple 1 from countertop 1",  # not there yet
        "examine fridge 1",  # not there
        "open countertop 1",
        "put apple 1 in/on fridge 1",  # not holding it
        "clean apple 1 with sinkbasin 1",
        "use desklamp 1",
        "toggle fridge 1",
    ]
    assert play(game, wrong) == [NOTHING] * len(wrong)
    assert game.steps == len(wrong) and game.actions == wrong and not game.done
    play(game, ["go to countertop 1"])
    assert play(game, ["go to countertop 1"]) == [NOTHING]  # already here
    assert play(game, ["take apple 1 from sinkbasin 1", "take apple 9 from countertop 1"]) == [
        NOTHING,
        NOTHING,
    ]
    assert (
        game.step("TAKE  Apple 1 from countertop 1")
        == "You pick up the apple 1 from the countertop 1."
    )
    assert (
        play(
            game,
            [
                "take cup 1 from countertop 1",  # hands full
                "put apple 1 in countertop 1",  # ALFWorld says in/on
                "clean apple 1 with countertop 1",
                "heat apple 1 with countertop 1",
                "cool apple 1 with countertop 1",
                "go to fridge 1",
                "put apple 1 in/on fridge 1",  # closed
                "close fridge 1",  # already closed
                "heat apple 1 with fridge 1",
            ],
        )
        == [NOTHING] * 5 + ["You arrive at fridge 1. The fridge 1 is closed."] + [NOTHING] * 3
    )


def test_every_admissible_command_does_something() -> None:
    for seed in range(12):
        game = new_game(seed)
        for action in solve(game)[:-1]:
            for command in game.admissible():
                trial = copy.deepcopy(game)
                assert trial.step(command) != NOTHING, (seed, command)
            game.step(action)


def test_the_goal_is_never_met_at_the_start() -> None:
    for seed in range(300):
        game = new_game(seed)
        assert not game.won and not game._goal_met()
        assert game.observation.endswith(game.task_text)
        assert "look" in game.admissible()


# ----------------------------------------------------------------- determinism and bounds


def test_the_same_seed_is_the_same_game() -> None:
    for seed in (0, 1, 99, CLASSIC_SEED, 2**40):
        one, two = new_game(seed), new_game(seed)
        assert one.state() == two.state()
        run = solve(one)
        assert play(one, run) == play(two, run)
        assert one.state() == two.state()
    games = {new_game(seed).observation for seed in range(20)}
    assert len(games) > 15  # seeds do differ
    assert new_game(5, PICK_TWO).state() == new_game(5, PICK_TWO).state()


def test_a_game_ends_unwon_after_its_step_budget() -> None:
    game = new_game(1, max_steps=3)
    play(game, ["look", "look", "look"])
    assert game.done and not game.won and game.state()["score"] == 0.0
    with pytest.raises(ValueError, match="over"):
        game.step("look")
    assert game.steps == 3


def test_actions_are_one_bounded_line() -> None:
    game = new_game(1)
    for action in ("x" * (MAX_ACTION + 1), "look\nlook", "look\r"):
        with pytest.raises(ValueError, match="one line"):
            game.step(action)
    assert game.steps == 0
    with pytest.raises(ValueError, match="unknown task type"):
        new_game(1, "pick_and_juggle")
    with pytest.raises(ValueError, match="max_steps"):
        new_game(1, max_steps=0)


def test_the_table_plays_seeds_in_order_and_keeps_a_bounded_number_of_games() -> None:
    table = GameTable(10, max_games=3)
    seeds = [table.reset(f"s{i}").seed for i in range(5)]
    assert seeds == [10, 11, 12, 13, 14]
    assert list(table.games) == ["s2", "s3", "s4"] and table.resets == 5
    assert table.get("s0") is None
    assert table.get("s2") is not None  # touched: now the newest
    table.reset("s5")
    assert list(table.games) == ["s4", "s2", "s5"]
    again = table.reset("s2", seed=CLASSIC_SEED)
    assert again.seed == CLASSIC_SEED and table.next_seed == 16
    assert list(table.games) == ["s4", "s5", "s2"]
    assert table.reset("x", task_type=LOOK_IN_LIGHT).task.type == LOOK_IN_LIGHT
    with pytest.raises(ValueError):
        GameTable(max_games=0)
