"""mission-control on the real engine: the sample repository of
tests/fixtures/missions scanned through a runner with RealBackend, a review
with counts, gaps, actionable missions and a summary, and a bulletin through
a recording messenger."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from futon.config.models import ToolsSection
from futon.evidence import MemoryStore
from futon.evidence.store import EvidenceStore
from futon.peripherals.domain import mission_control as mc
from futon.peripherals.runner import PeripheralRunner
from futon.peripherals.tools import Messenger, ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.protocol.errors import FutonError, ProtocolError
from tests.peripherals.support import REPO, session_entries, shipped_peripherals

SAMPLE = REPO / "tests" / "fixtures" / "missions"


class RecordingMessenger:
    """Records posts; ``fail_with`` makes every post raise it."""

    def __init__(self, fail_with: FutonError | None = None) -> None:
        self.posts: list[tuple[str, str, str]] = []
        self.fail_with = fail_with

    async def post(self, channel: str, text: str, *, author: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.posts.append((channel, text, author))

    async def ring(self, room: str, text: str, *, author: str) -> list[str]:
        raise AssertionError("mission-control never rings")

    async def ask(self, agent_id: str, text: str, *, author: str, timeout_s: float) -> Any:
        raise AssertionError("mission-control never asks")


def make_runner(
    workspace: Path,
    store: EvidenceStore,
    messenger: Messenger | None = None,
    **options: Any,
) -> PeripheralRunner:
    backend = RealBackend()
    mc.install(backend, **options)
    return PeripheralRunner(
        shipped_peripherals(), backend, store, ToolsSection(), workspace, messenger=messenger
    )


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A copy of the sample repository (tests may damage it)."""
    return Path(shutil.copytree(SAMPLE, tmp_path / "sample")).resolve()


def ctx_for(workspace: Path, config: dict[str, Any] | None = None) -> ToolContext:
    return ToolContext(
        workspace=workspace,
        settings=ToolsSection(),
        session_id="sess-t",
        agent_id="tickle-1",
        peripheral_config=config or {},
    )


def kinds(gaps: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(g["kind"], g["mission"]) for g in gaps]


# ----------------------------------------------------------------- a session


async def test_review_session_over_the_sample_repo(sample: Path) -> None:
    """The whole mechanism: every mc tool through the dispatcher, the review
    of eight missions, a bulletin posted through the messenger, and the
    session's evidence."""
    store = MemoryStore()
    messenger = RecordingMessenger()
    runner = make_runner(sample, store, messenger)
    session = await runner.start("tickle-1", "mission-control")

    inventory = await session.step("mc-inventory", [])
    assert inventory.ok and inventory.result["repos"] == ["."]
    missions = {m["id"]: m for m in inventory.result["missions"]}
    assert len(missions) == 8
    assert missions["M-peripheral-engine"]["title"] == "M-peripheral-engine: Capability envelopes"
    assert missions["M-peripheral-engine"]["status_raw"] == "In Progress"
    assert missions["M-peripheral-engine"]["date"] == "2024-04-11"
    assert missions["M-peripheral-engine"]["blocked_by"] == ["M-evidence-store", "M-config-loader"]
    assert missions["M-dashboard"]["blocked_by"] == ["M-bulletins", "M-peripheral-engine"]
    assert missions["M-tickle"]["blocked_by"] == ["M-evidence-store"]  # "Blocked by:" spelling
    assert missions["M-config-loader"]["status"] == "complete"  # "**Status:** Done"

    devmaps = await session.step("mc-devmaps", [])
    by_path = {d["path"]: d for d in devmaps.result["devmaps"]}
    assert (
        by_path["holes/devmaps/futon-devmap.md"]["done"],
        by_path["holes/devmaps/futon-devmap.md"]["total"],
    ) == (4, 12)
    first = by_path["holes/devmaps/futon-devmap.md"]["items"][0]
    assert first == {
        "text": "session lifecycle start/step/stop",
        "done": True,
        "line": 4,
        "missions": ["M-peripheral-engine"],
    }

    coverage = await session.step("mc-coverage", [])
    rows = {r["id"]: r for r in coverage.result["missions"]}
    assert (rows["M-peripheral-engine"]["done"], rows["M-peripheral-engine"]["items"]) == (2, 4)
    assert rows["M-peripheral-engine"]["ratio"] == 0.5
    assert rows["M-irc-relay"]["blocks"] == ["M-bulletins"]
    assert coverage.result["uncovered"] == ["M-dashboard", "M-scratch"]
    assert [o["text"] for o in coverage.result["orphan_items"]] == [
        "write the release notes", "M-webhooks: outgoing webhooks for bulletins",
    ]  # fmt: skip

    mana = await session.step("mc-mana", [])
    assert {k: mana.result[k] for k in ("actionable", "waiting", "open_items", "held_items")} == {
        "actionable": 3, "waiting": 3, "open_items": 5, "held_items": 1,
    }  # fmt: skip
    assert mana.result["focus"] == 0.5 and "attention" in mana.result["explanation"]

    review = await session.step("mc-review", [])
    result = review.result
    assert result["counts"] == {
        "complete": 2,
        "in-progress": 1,
        "blocked": 3,
        "ready": 1,
        "unknown": 1,
    }
    assert kinds(result["gaps"]) == [
        ("no-status", "M-scratch"),
        ("unknown-blocker", "M-dashboard"),
        ("devmap-unknown-mission", None),
        ("complete-with-open-items", "M-config-loader"),
        ("no-devmap", "M-dashboard"),
        ("stale-block", "M-tickle"),
    ]
    assert [(a["id"], a["status"]) for a in result["actionable"]] == [
        ("M-peripheral-engine", "in-progress"), ("M-irc-relay", "ready"), ("M-tickle", "blocked"),
    ]  # fmt: skip
    assert result["actionable"][0]["next"] == "hop protocol carries context"
    assert result["actionable"][1]["unblocks"] == ["M-bulletins"]
    summary = result["summary"]
    assert summary.startswith(
        "8 mission(s) in 1 repo: 2 complete, 1 in progress, 3 blocked, 1 ready, 1 unknown."
    )
    assert (
        "Actionable now: M-peripheral-engine (in progress; 2/4 items done; unblocks M-dashboard)"
        in summary
    )
    assert "M-dashboard on M-bulletins, M-peripheral-engine, M-auth" in summary
    assert "6 gap(s) need attention" in summary and "Devmap items: 4 of 13 done" in summary
    assert "\n" not in summary  # one paragraph

    posted = await session.step("mc-bulletin", [summary])
    assert posted.ok and posted.result == {"posted": "#futon"}
    elsewhere = await session.step("mc-bulletin", ["review done", "#missions"])
    assert elsewhere.result == {"posted": "#missions"}
    assert messenger.posts == [
        ("#futon", summary, "tickle-1"),
        ("#missions", "review done", "tickle-1"),
    ]

    fruit = mc.mission_control_fruit(session.state.context, session.state.steps)
    assert fruit["steps_taken"] == 7
    assert fruit["review"]["actionable"] == ["M-peripheral-engine", "M-irc-relay", "M-tickle"]
    await session.stop("review-complete")
    entries = session_entries(store, session.id)
    assert [e["evidence/claim-type"] for e in entries] == ["goal"] + ["step"] * 7 + ["conclusion"]
    assert entries[5]["evidence/body"]["result"]["counts"]["blocked"] == 3
    assert (SAMPLE / "holes" / "missions" / "M-scratch.md").exists()  # nothing was written


async def test_malformed_mission_files_are_unknown_with_a_gap(tmp_path: Path) -> None:
    missions = tmp_path / "repo" / "holes" / "missions"
    missions.mkdir(parents=True)
    (missions / "M-binary.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00status: complete")
    (missions / "M-latin1.md").write_bytes("# Café\nstatus: ready\n".encode("latin-1"))
    (missions / "M-empty.md").write_text("")
    (missions / "M-someday.md").write_text("# Someday\nstatus: someday, maybe\n")
    (missions / "M-noise.md").write_text("\x1b[31m}{][ status; complete ::: \n" * 50)
    (missions / "M-huge.md").write_bytes(b"status: ready\n" + b"x" * (mc.MAX_MISSION_FILE + 10))
    (missions / "M-ok.md").write_text("# Fine\nstatus: ready\n")
    (missions / "notes.md").write_text("status: complete\n")  # not M-*.md: ignored
    (missions / "M-folder.md").mkdir()  # not a file: ignored
    (tmp_path / "secret.md").write_text("status: complete\n")
    (missions / "M-link.md").symlink_to(tmp_path / "secret.md")  # leaves the repo: not read
    found = mc.survey([tmp_path / "repo"])
    result = mc.review(found)
    assert ("outside-repo", None) in kinds(result["gaps"])
    assert result["counts"] == {
        "complete": 0,
        "in-progress": 0,
        "blocked": 0,
        "ready": 1,
        "unknown": 6,
    }
    details = {g["mission"]: g["detail"] for g in result["gaps"] if g["kind"] != "no-devmap"}
    assert "binary" in details["M-binary"]
    assert "not UTF-8" in details["M-latin1"]
    assert "larger than" in details["M-huge"]
    assert details["M-empty"] == "M-empty has no 'status:' line"
    assert "'someday, maybe'" in details["M-someday"]
    assert "no 'status:' line" in details["M-noise"]
    assert [a["id"] for a in result["actionable"]] == ["M-ok"]


async def test_blocker_cycles_and_missing_repos_are_gaps(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    missions = repo / "holes" / "missions"
    missions.mkdir(parents=True)
    (missions / "M-a.md").write_text("status: blocked\nblocked-by: M-b\n")
    (missions / "M-b.md").write_text("status: blocked\nblocked-by: M-c\n")
    (missions / "M-c.md").write_text("status: in-progress\nblocked-by: M-a\n")
    (missions / "M-d.md").write_text("status: blocked\nblocked-by: waiting for the vendor's API\n")
    (missions / "M-e.md").write_text("status: blocked\n")
    result = mc.review(mc.survey([repo, tmp_path / "gone"]))
    gap_kinds = kinds(result["gaps"])
    assert ("blocker-cycle", "M-a") in gap_kinds
    assert any(g["detail"] == "blocked-by cycle: M-a -> M-b -> M-c -> M-a" for g in result["gaps"])
    assert ("blocked-without-blocker", "M-e") in gap_kinds
    assert ("missing-repo", None) in gap_kinds
    assert result["actionable"] == []
    assert "M-d on waiting for the vendor's API" in result["summary"]
    assert "Nothing is actionable now." in result["summary"]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("complete", "complete"), ("**Done**", "complete"), ("completed 2024-01-02", "complete"),
        ("In Progress", "in-progress"), ("WIP", "in-progress"), ("active (phase 2)", "in-progress"),
        ("blocked", "blocked"), ("on hold", "blocked"), ("ready", "ready"), ("not started", "ready"),
        ("todo", "ready"), ("opened", "unknown"), ("someday", "unknown"), ("", "unknown"),
    ],
)  # fmt: skip
def test_status_vocabulary(raw: str, status: str) -> None:
    assert mc.normalise_status(raw) == status


def test_repos_come_from_config_then_install_then_workspace(tmp_path: Path) -> None:
    ws = tmp_path.resolve()
    assert mc.resolve_repos(ctx_for(ws)) == [ws]
    assert mc.resolve_repos(ctx_for(ws), []) == [ws]
    assert mc.resolve_repos(ctx_for(ws), [Path("a"), Path("/abs/b")]) == [ws / "a", Path("/abs/b")]
    assert mc.resolve_repos(ctx_for(ws, {"repos": ["c"]}), [Path("a")]) == [ws / "c"]


async def test_several_repos_in_one_inventory(sample: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    (other / "holes" / "missions").mkdir(parents=True)
    (other / "holes" / "missions" / "M-elsewhere.md").write_text(
        "# Elsewhere\nstatus: ready\nblocked-by: M-irc-relay\n"
    )
    (other / "holes" / "missions" / "M-tickle.md").write_text(
        "status: complete\n"
    )  # a duplicate id
    runner = make_runner(tmp_path, MemoryStore(), repos=[sample, Path("other")])
    session = await runner.start("tickle-1", "mission-control")
    review = (await session.step("mc-review", [])).result
    assert sum(review["counts"].values()) == 9
    elsewhere = next(m for m in review["missions"] if m["id"] == "M-elsewhere")
    assert (elsewhere["repo"], elsewhere["blocked_by"]) == ("other", ["M-irc-relay"])
    assert ("duplicate-id", "M-tickle") in kinds(review["gaps"])
    assert "in 2 repos" in review["summary"]


async def test_bulletin_without_a_relay_or_with_a_bad_channel(sample: Path) -> None:
    runner = make_runner(sample, MemoryStore())  # no messenger
    session = await runner.start("tickle-1", "mission-control")
    alone = await session.step("mc-bulletin", ["hello"])
    assert not alone.ok and alone.result["error"] == "no IRC relay in this daemon"
    for args in (["hello", "futon"], ["hello", "#two words"], ["   "], [], ["x", "#c", "extra"]):
        with pytest.raises(ProtocolError):
            await session.step("mc-bulletin", args)
    with pytest.raises(ProtocolError, match="at most 0"):
        await session.step("mc-review", ["everything"])


async def test_bulletin_relay_failure_is_a_tool_error(sample: Path) -> None:
    messenger = RecordingMessenger(FutonError("relay down", code="agent-unreachable"))
    runner = make_runner(sample, MemoryStore(), messenger)
    session = await runner.start("tickle-1", "mission-control")
    failed = await session.step("mc-bulletin", ["hello"])
    assert not failed.ok and failed.result == {
        "error": "bulletin to #futon failed: relay down",
        "code": "agent-unreachable",
    }


def test_install_without_options_and_fruit_before_a_review() -> None:
    backend = RealBackend()
    mc.install(backend)
    assert {
        "mc-inventory",
        "mc-devmaps",
        "mc-coverage",
        "mc-mana",
        "mc-review",
        "mc-bulletin",
    } <= backend.tools()
    assert mc.mission_control_fruit({}, 2) == {"review": None, "steps_taken": 2}
