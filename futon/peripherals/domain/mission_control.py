"""mission-control: a portfolio view of mission files and devmaps across
repositories, and bulletins to IRC.

**Mission files** are ``holes/missions/M-*.md`` in each repository. A
mission's id is its file name without ``.md``. The scanner reads, anywhere
in the file and case-insensitively (list bullets and ``**bold**`` keys are
fine):

- ``status: …`` — the first one counts; its value is matched by its first
  words against a small vocabulary and normalised to ``complete``
  (complete, completed, done, closed, finished, shipped), ``in-progress``
  (in progress, active, wip, ongoing, started), ``blocked`` (blocked,
  stalled, waiting, on hold), ``ready`` (ready, todo, open, planned,
  queued, not started) — anything else, or no status line, is ``unknown``;
- ``date: …`` — the first one, kept as written;
- ``blocked-by: …`` (every such line) — mission ids (``M-…``, an id may be
  given by a unique prefix such as ``M-003`` for ``M-003-sharding``); text
  without an id (and not ``none``) is an *external* blocker;
- the title: the first Markdown heading (else the id).

A file that cannot be read as text (binary, not UTF-8, over 1 MiB) is a
mission with status ``unknown`` and a gap saying why; nothing in a mission
file can make a tool fail.

**Devmaps** are ``holes/devmaps/*.md``: checklists whose items
(``- [x] …`` done, ``- [ ] …`` open) belong to the missions their text names,
or, when the item names none, to the missions named in the nearest heading
above it.

**Actionable** missions are the ones attention can go to now: status
``in-progress`` or ``ready`` with every blocker complete, plus ``blocked``
missions whose blockers are all complete (a stale block). They are ordered
in-progress, ready, stale-blocked; then by how many unfinished missions
name them as a blocker; then by id.

**Mana** is the portfolio's attention budget, counted, not guessed:
``actionable`` and ``waiting`` missions (waiting: not complete and not
actionable), ``open_items`` (unchecked devmap items of actionable missions:
work that can be spent now), ``held_items`` (unchecked items of waiting
missions), ``done_items``/``total_items``, ``flow`` = done/total items and
``focus`` = actionable/(actionable + waiting), each ``None`` when its
denominator is 0.

**Repositories**: ``repos`` in the peripheral's ``config:`` block wins, then
the ``repos`` given to :func:`install` (the daemon's
``mission_control.repos``), then the workspace. Relative paths are resolved
against the workspace.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from futon.peripherals.domain.mission_control_args import (
    McBulletinArgs,
    McCoverageArgs,
    McDevmapsArgs,
    McInventoryArgs,
    McManaArgs,
    McReviewArgs,
)
from futon.peripherals.tools import ToolContext
from futon.peripherals.tools.backend import RealBackend
from futon.peripherals.tools.beneath import Beneath
from futon.protocol.errors import FutonError, ToolError

STATUSES: tuple[str, ...] = ("complete", "in-progress", "blocked", "ready", "unknown")
MAX_MISSION_FILE = 1024 * 1024
MAX_FILES = 5000
REVIEW_KEY = "mission-control-review"

_STATUS_WORDS: dict[str, tuple[str, ...]] = {
    "complete": ("complete", "completed", "done", "closed", "finished", "shipped"),
    "in-progress": ("in-progress", "inprogress", "active", "wip", "ongoing", "started"),
    "blocked": ("blocked", "stalled", "waiting", "on-hold"),
    "ready": ("ready", "todo", "to-do", "open", "planned", "queued", "not-started"),
}
# Longest spelling first, so "not-started" is not read as "started".
_VOCABULARY = sorted(
    ((word, status) for status, words in _STATUS_WORDS.items() for word in words),
    key=lambda pair: -len(pair[0]),
)
_KEY_LINE = re.compile(
    r"^\s*(?:[-*+]\s+)?[*_]{0,2}(status|date|blocked[-_ ]by)[*_]{0,2}\s*:[*_]{0,2}\s*(.*?)\s*$",
    re.I,
)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_ITEM = re.compile(r"^\s*[-*+]\s+\[([ xX])\]\s+(.*?)\s*$")
_MISSION_REF = re.compile(r"\bM-[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?")
_NO_BLOCKER = frozenset({"", "none", "nothing", "-", "n/a", "na", "nil"})

# ------------------------------------------------------------------ the scan


@dataclass
class Mission:
    id: str
    repo: str
    path: str  # relative to the repo
    title: str
    status: str  # one of STATUSES
    status_raw: str | None = None
    date: str | None = None
    blocked_by: list[str] = field(default_factory=list)  # resolved mission ids
    external_blockers: list[str] = field(default_factory=list)
    unresolved_blockers: list[str] = field(default_factory=list)
    problem: str | None = None  # why the file could not be read

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "status_raw": self.status_raw,
            "date": self.date,
            "blocked_by": self.blocked_by,
            "external_blockers": self.external_blockers,
            "repo": self.repo,
            "path": self.path,
        }


@dataclass
class DevmapItem:
    text: str
    done: bool
    line: int
    missions: list[str]


@dataclass
class Devmap:
    repo: str
    path: str
    title: str
    items: list[DevmapItem]

    def as_dict(self) -> dict[str, Any]:
        done = sum(1 for item in self.items if item.done)
        return {
            "repo": self.repo,
            "path": self.path,
            "title": self.title,
            "items": [vars(item) for item in self.items],
            "done": done,
            "total": len(self.items),
        }


@dataclass
class Survey:
    """One scan of the configured repositories."""

    repos: list[str]
    missions: dict[str, Mission]
    devmaps: list[Devmap]
    gaps: list[dict[str, Any]]


def _gap(
    kind: str, detail: str, *, mission: str | None = None, path: str | None = None
) -> dict[str, Any]:
    return {"kind": kind, "mission": mission, "path": path, "detail": detail}


def _read_text(path: Path, repo: Path, hidden: tuple[Path, ...] = ()) -> tuple[str | None, str | None]:
    """(text, None) or (None, why it cannot be read as text). The file is
    opened beneath the repository (:class:`Beneath`: a folder swapped for a
    symlink after the listing cannot lead outside, futon's own files are
    refused, a FIFO is never opened)."""
    real_repo = os.path.realpath(repo)
    rel = os.path.relpath(os.path.realpath(path), real_repo)
    if rel == ".." or rel.startswith("../"):
        return None, "cannot be read (it moved outside the repository)"
    try:
        with Beneath(Path(real_repo), hidden) as under:
            data = under.read_bytes(rel, MAX_MISSION_FILE + 1, raw=path.name)
    except FutonError as exc:
        return None, f"cannot be read ({exc.message})"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    if len(data) > MAX_MISSION_FILE:
        return None, f"is larger than {MAX_MISSION_FILE // 1024} KiB"
    if b"\x00" in data[:8192]:
        return None, "is a binary file"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"is not UTF-8 text (bad byte at offset {exc.start})"


def normalise_status(raw: str) -> str:
    """``complete`` … ``ready`` from a status value as written, else ``unknown``."""
    value = re.sub(r"[\s_]+", "-", raw.strip().strip("*_`").strip().lower())
    for word, status in _VOCABULARY:
        if value == word or (value.startswith(word) and not value[len(word)].isalnum()):
            return status
    return "unknown"


def _files(
    folder: Path, pattern: str, repo: Path, repo_name: str, gaps: list[dict[str, Any]]
) -> list[Path]:
    """Regular files of ``folder`` matching ``pattern`` whose real path stays in the repo."""
    if not folder.is_dir():
        return []
    real_repo = Path(os.path.realpath(repo))
    out = []
    for path in sorted(folder.glob(pattern))[:MAX_FILES]:
        real = Path(os.path.realpath(path))
        if real != real_repo and real_repo not in real.parents:
            gaps.append(
                _gap(
                    "outside-repo",
                    f"{path.name} points outside {repo_name}; not read",
                    path=_rel(path, repo),
                )
            )
            continue
        if real.is_file():
            out.append(path)
    return out


def _rel(path: Path, repo: Path) -> str:
    try:
        return path.relative_to(repo).as_posix()
    except ValueError:
        return str(path)


def parse_mission(text: str) -> tuple[str | None, str | None, list[str], str | None]:
    """(status value as written, date, blocked-by values, title) of a mission file."""
    status = date = title = None
    blockers: list[str] = []
    for line in text.splitlines():
        if title is None and (heading := _HEADING.match(line)):
            title = heading.group(1).strip()
            continue
        match = _KEY_LINE.match(line)
        if match is None:
            continue
        key, value = match.group(1).lower(), match.group(2)
        if key == "status" and status is None:
            status = value
        elif key == "date" and date is None:
            date = value or None
        elif key.startswith("blocked"):
            blockers.append(value)
    return status, date, blockers, title


def survey(
    repos: Iterable[Path], *, names: dict[Path, str] | None = None, hidden: tuple[Path, ...] = ()
) -> Survey:
    """Scan ``repos`` (blocking; run it in a thread); ``hidden``: paths
    never read (futon's data directory and config files)."""
    gaps: list[dict[str, Any]] = []
    missions: dict[str, Mission] = {}
    raw_blockers: dict[str, list[str]] = {}
    devmap_texts: list[tuple[str, str, str, str]] = []  # repo, path, stem, text
    repo_names: list[str] = []
    for repo in repos:
        name = (names or {}).get(repo, str(repo))
        repo_names.append(name)
        if not repo.is_dir():
            gaps.append(_gap("missing-repo", f"repository {name} does not exist", path=name))
            continue
        mission_dir = repo / "holes" / "missions"
        if not mission_dir.is_dir():
            gaps.append(
                _gap("no-missions", f"repository {name} has no holes/missions folder", path=name)
            )
        for path in _files(mission_dir, "M-*.md", repo, name, gaps):
            mission_id = path.stem
            rel = _rel(path, repo)
            if mission_id in missions:
                other = missions[mission_id]
                gaps.append(
                    _gap(
                        "duplicate-id",
                        f"{mission_id} exists in {other.repo} and {name}; the second is ignored",
                        mission=mission_id,
                        path=rel,
                    )
                )
                continue
            text, problem = _read_text(path, repo, hidden)
            if text is None:
                missions[mission_id] = Mission(
                    mission_id, name, rel, mission_id, "unknown", problem=problem
                )
                gaps.append(
                    _gap(
                        "unreadable",
                        f"{rel} {problem}: its status is unknown",
                        mission=mission_id,
                        path=rel,
                    )
                )
                continue
            status_raw, date, blockers, title = parse_mission(text)
            status = normalise_status(status_raw) if status_raw is not None else "unknown"
            missions[mission_id] = Mission(
                mission_id, name, rel, title or mission_id, status, status_raw, date
            )
            raw_blockers[mission_id] = blockers
            if status_raw is None:
                gaps.append(
                    _gap(
                        "no-status",
                        f"{mission_id} has no 'status:' line",
                        mission=mission_id,
                        path=rel,
                    )
                )
            elif status == "unknown":
                gaps.append(
                    _gap(
                        "unrecognised-status",
                        f"{mission_id} has status {status_raw!r}, which is none of complete, in-progress, blocked, ready",
                        mission=mission_id,
                        path=rel,
                    )
                )
        for path in _files(repo / "holes" / "devmaps", "*.md", repo, name, gaps):
            text, problem = _read_text(path, repo, hidden)
            rel = _rel(path, repo)
            if text is None:
                gaps.append(_gap("unreadable", f"devmap {rel} {problem}", path=rel))
                continue
            devmap_texts.append((name, rel, path.stem, text))
    for mission_id, values in raw_blockers.items():
        _resolve_blockers(missions[mission_id], values, missions, gaps)
    devmaps = [
        _parse_devmap(repo, rel, stem, text, missions, gaps)
        for repo, rel, stem, text in devmap_texts
    ]
    _check_blocks(missions, devmaps, gaps)
    return Survey(repo_names, missions, devmaps, gaps)


def resolve_ref(ref: str, missions: dict[str, Mission]) -> str | None:
    """The mission id ``ref`` names: exact, or a unique ``ref-…`` prefix."""
    ref = ref.removesuffix(".md")
    if ref in missions:
        return ref
    matches = [mid for mid in missions if mid.startswith(ref + "-")]
    return matches[0] if len(matches) == 1 else None


def _resolve_blockers(
    mission: Mission, values: list[str], missions: dict[str, Mission], gaps: list[dict[str, Any]]
) -> None:
    for value in values:
        refs = _MISSION_REF.findall(value)
        if not refs:
            text = value.strip().strip("*_`").strip()
            if text.lower() not in _NO_BLOCKER:
                mission.external_blockers.append(text)
            continue
        for ref in refs:
            found = resolve_ref(ref, missions)
            if found is None:
                mission.unresolved_blockers.append(ref)
                gaps.append(
                    _gap(
                        "unknown-blocker",
                        f"{mission.id} is blocked by {ref}, which is no known mission",
                        mission=mission.id,
                        path=mission.path,
                    )
                )
            elif found == mission.id:
                gaps.append(
                    _gap(
                        "self-blocked",
                        f"{mission.id} names itself as its blocker",
                        mission=mission.id,
                        path=mission.path,
                    )
                )
            elif found not in mission.blocked_by:
                mission.blocked_by.append(found)


def _parse_devmap(
    repo: str,
    rel: str,
    stem: str,
    text: str,
    missions: dict[str, Mission],
    gaps: list[dict[str, Any]],
) -> Devmap:
    title: str | None = None
    heading_refs: list[str] = []
    items: list[DevmapItem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if heading := _HEADING.match(line):
            title = title or heading.group(1).strip()
            heading_refs = _refs(heading.group(1), missions, gaps, rel, number)
            continue
        if item := _ITEM.match(line):
            named = _refs(item.group(2), missions, gaps, rel, number)
            items.append(
                DevmapItem(item.group(2), item.group(1) != " ", number, named or list(heading_refs))
            )
    return Devmap(repo, rel, title or stem, items)


def _refs(
    text: str, missions: dict[str, Mission], gaps: list[dict[str, Any]], rel: str, line: int
) -> list[str]:
    found: list[str] = []
    for ref in _MISSION_REF.findall(text):
        mission_id = resolve_ref(ref, missions)
        if mission_id is None:
            gaps.append(
                _gap(
                    "devmap-unknown-mission",
                    f"{rel}:{line} names {ref}, which is no known mission",
                    path=rel,
                )
            )
        elif mission_id not in found:
            found.append(mission_id)
    return found


def _check_blocks(
    missions: dict[str, Mission], devmaps: list[Devmap], gaps: list[dict[str, Any]]
) -> None:
    items = _items_by_mission(devmaps)
    for mission in missions.values():
        open_blockers = _open_blockers(mission, missions)
        where = {"mission": mission.id, "path": mission.path}
        if (
            mission.status == "blocked"
            and not mission.blocked_by
            and not mission.external_blockers
            and not mission.unresolved_blockers
        ):
            gaps.append(
                _gap(
                    "blocked-without-blocker",
                    f"{mission.id} is blocked but names no blocker (add a 'blocked-by:' line)",
                    **where,
                )
            )
        elif (
            mission.status == "blocked"
            and mission.blocked_by
            and not open_blockers
            and not mission.external_blockers
        ):
            gaps.append(
                _gap(
                    "stale-block",
                    f"{mission.id} is blocked, but its blockers ({', '.join(mission.blocked_by)}) are complete: it could be ready",
                    **where,
                )
            )
        elif mission.status in ("ready", "in-progress") and open_blockers:
            gaps.append(
                _gap(
                    "blocked-by-incomplete",
                    f"{mission.id} is {mission.status} but waits on {', '.join(open_blockers)}, not complete yet",
                    **where,
                )
            )
        mine = items.get(mission.id, [])
        if mission.status in ("ready", "in-progress", "blocked") and not mine:
            gaps.append(
                _gap("no-devmap", f"{mission.id} ({mission.status}) has no devmap items", **where)
            )
        if mission.status == "complete" and any(not item.done for item in mine):
            still = sum(1 for item in mine if not item.done)
            gaps.append(
                _gap(
                    "complete-with-open-items",
                    f"{mission.id} is complete but {still} devmap item(s) are unchecked",
                    **where,
                )
            )
    for cycle in _cycles(missions):
        gaps.append(
            _gap(
                "blocker-cycle",
                f"blocked-by cycle: {' -> '.join([*cycle, cycle[0]])}",
                mission=cycle[0],
            )
        )


def _cycles(missions: dict[str, Mission]) -> list[list[str]]:
    """Each blocked-by cycle once, starting at its smallest id."""
    found: set[tuple[str, ...]] = set()

    def walk(node: str, path: list[str]) -> None:
        for nxt in missions[node].blocked_by:
            if nxt in path:
                cycle = path[path.index(nxt) :]
                start = cycle.index(min(cycle))
                found.add(tuple(cycle[start:] + cycle[:start]))
            elif len(path) < 64:
                walk(nxt, [*path, nxt])

    for mission_id in sorted(missions):
        walk(mission_id, [mission_id])
    return [list(c) for c in sorted(found)]


def _open_blockers(mission: Mission, missions: dict[str, Mission]) -> list[str]:
    return [b for b in mission.blocked_by if missions[b].status != "complete"]


def _items_by_mission(devmaps: list[Devmap]) -> dict[str, list[DevmapItem]]:
    out: dict[str, list[DevmapItem]] = {}
    for devmap in devmaps:
        for item in devmap.items:
            for mission_id in item.missions:
                out.setdefault(mission_id, []).append(item)
    return out


# ------------------------------------------------------------------ views


def inventory(found: Survey) -> dict[str, Any]:
    return {
        "repos": found.repos,
        "missions": [m.as_dict() | {"problem": m.problem} for m in _ordered(found)],
    }


def devmaps(found: Survey) -> dict[str, Any]:
    return {"devmaps": [d.as_dict() for d in found.devmaps]}


def coverage(found: Survey) -> dict[str, Any]:
    items = _items_by_mission(found.devmaps)
    referenced: dict[str, list[str]] = {}
    for devmap in found.devmaps:
        for item in devmap.items:
            for mission_id in item.missions:
                referenced.setdefault(mission_id, [])
                if devmap.path not in referenced[mission_id]:
                    referenced[mission_id].append(devmap.path)
    rows = []
    for mission in _ordered(found):
        mine = items.get(mission.id, [])
        done = sum(1 for i in mine if i.done)
        rows.append(
            {
                "id": mission.id,
                "status": mission.status,
                "items": len(mine),
                "done": done,
                "ratio": _ratio(done, len(mine)),
                "devmaps": referenced.get(mission.id, []),
                "blocks": _blocks(found, mission.id),
            }
        )
    all_items = [i for d in found.devmaps for i in d.items]
    done_all = sum(1 for i in all_items if i.done)
    return {
        "missions": rows,
        "uncovered": [r["id"] for r in rows if r["items"] == 0 and r["status"] != "complete"],
        "orphan_items": [
            {"devmap": d.path, "line": i.line, "text": i.text}
            for d in found.devmaps
            for i in d.items
            if not i.missions
        ],
        "items": {
            "done": done_all,
            "total": len(all_items),
            "ratio": _ratio(done_all, len(all_items)),
        },
    }


def _blocks(found: Survey, mission_id: str) -> list[str]:
    """Unfinished missions that name ``mission_id`` as a blocker."""
    return sorted(
        m.id
        for m in found.missions.values()
        if mission_id in m.blocked_by and m.status != "complete"
    )


def _ratio(done: int, total: int) -> float | None:
    return round(done / total, 3) if total else None


def actionable(found: Survey) -> list[dict[str, Any]]:
    """What attention can go to now, in order (module docstring)."""
    items = _items_by_mission(found.devmaps)
    rank = {"in-progress": 0, "ready": 1, "blocked": 2}
    rows: list[dict[str, Any]] = []
    for mission in found.missions.values():
        if mission.status not in rank or mission.external_blockers or mission.unresolved_blockers:
            continue
        if _open_blockers(mission, found.missions):
            continue
        if mission.status == "blocked" and not mission.blocked_by:
            continue
        mine = items.get(mission.id, [])
        open_items = [i.text for i in mine if not i.done]
        if mission.status == "blocked":
            step = "its blockers are all complete: mark it ready"
        elif open_items:
            step = open_items[0]
        elif mine:
            step = "every devmap item is done: review it for completion"
        else:
            step = "no devmap items: write its next steps down"
        rows.append(
            {
                "id": mission.id,
                "title": mission.title,
                "status": mission.status,
                "unblocks": _blocks(found, mission.id),
                "items": {"done": len(mine) - len(open_items), "total": len(mine)},
                "next": step,
            }
        )
    rows.sort(key=lambda r: (rank[r["status"]], -len(r["unblocks"]), r["id"]))
    return rows


def mana(found: Survey) -> dict[str, Any]:
    items = _items_by_mission(found.devmaps)
    ready_now = {row["id"] for row in actionable(found)}
    waiting = [
        m.id for m in found.missions.values() if m.status != "complete" and m.id not in ready_now
    ]
    open_items = sum(1 for mid in ready_now for i in items.get(mid, []) if not i.done)
    held_items = sum(1 for mid in waiting for i in items.get(mid, []) if not i.done)
    all_items = [i for d in found.devmaps for i in d.items]
    done = sum(1 for i in all_items if i.done)
    return {
        "actionable": len(ready_now),
        "waiting": len(waiting),
        "open_items": open_items,
        "held_items": held_items,
        "done_items": done,
        "total_items": len(all_items),
        "flow": _ratio(done, len(all_items)),
        "focus": _ratio(len(ready_now), len(ready_now) + len(waiting)),
        "explanation": (
            "mana counts where attention can go now: actionable missions (in-progress or ready "
            "with every blocker complete, or blocked only by complete missions) against waiting "
            "ones (unfinished and not actionable); open_items are the unchecked devmap items of "
            "actionable missions, held_items those of waiting ones; flow = done/total devmap "
            "items; focus = actionable/(actionable + waiting)."
        ),
    }


def review(found: Survey) -> dict[str, Any]:
    counts = {status: 0 for status in STATUSES}
    for mission in found.missions.values():
        counts[mission.status] += 1
    next_up = actionable(found)
    items = _items_by_mission(found.devmaps)
    missions = []
    for mission in _ordered(found):
        mine = items.get(mission.id, [])
        missions.append(
            mission.as_dict()
            | {
                "open_blockers": _open_blockers(mission, found.missions),
                "items": {"done": sum(1 for i in mine if i.done), "total": len(mine)},
            }
        )
    return {
        "counts": counts,
        "missions": missions,
        "gaps": found.gaps,
        "actionable": next_up,
        "summary": _summary(found, counts, next_up),
    }


def _summary(found: Survey, counts: dict[str, int], next_up: list[dict[str, Any]]) -> str:
    total = sum(counts.values())
    repos = len(found.repos)
    parts = [
        f"{total} mission(s) in {repos} repo{'s' if repos != 1 else ''}: "
        + ", ".join(f"{counts[s]} {s.replace('-', ' ')}" for s in STATUSES)
        + "."
    ]
    if next_up:
        shown = []
        for row in next_up[:3]:
            bits = [
                "blocked by complete missions only"
                if row["status"] == "blocked"
                else row["status"].replace("-", " ")
            ]
            if row["items"]["total"]:
                bits.append(f"{row['items']['done']}/{row['items']['total']} items done")
            if row["unblocks"]:
                bits.append(f"unblocks {', '.join(row['unblocks'])}")
            shown.append(f"{row['id']} ({'; '.join(bits)})")
        more = f" and {len(next_up) - 3} more" if len(next_up) > 3 else ""
        parts.append(f"Actionable now: {', '.join(shown)}{more}.")
    else:
        parts.append("Nothing is actionable now.")
    waiting = []
    for mission in _ordered(found):
        if mission.status == "complete":
            continue
        on = (
            _open_blockers(mission, found.missions)
            + mission.external_blockers
            + mission.unresolved_blockers
        )
        if on:
            waiting.append(f"{mission.id} on {', '.join(on)}")
    if waiting:
        parts.append(f"Waiting: {'; '.join(waiting[:5])}{'…' if len(waiting) > 5 else ''}.")
    if found.gaps:
        parts.append(f"{len(found.gaps)} gap(s) need attention, first: {found.gaps[0]['detail']}.")
    else:
        parts.append("No gaps found.")
    all_items = [i for d in found.devmaps for i in d.items]
    if all_items:
        done = sum(1 for i in all_items if i.done)
        parts.append(
            f"Devmap items: {done} of {len(all_items)} done ({round(100 * done / len(all_items))}%)."
        )
    return " ".join(parts)


def _ordered(found: Survey) -> list[Mission]:
    return [found.missions[k] for k in sorted(found.missions)]


# ------------------------------------------------------------------ the tools


def resolve_repos(ctx: ToolContext, configured: list[Path] | None = None) -> list[Path]:
    """The repositories to scan (module docstring)."""
    raw = ctx.peripheral_config.get("repos")
    if raw is not None:
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(r, str) and r for r in raw):
            raise ToolError("mission-control: config 'repos' must be a list of paths")
        paths = [Path(r) for r in raw]
    elif configured:
        paths = [Path(p) for p in configured]
    else:
        paths = []
    resolved = [
        p if p.is_absolute() else ctx.workspace / p for p in (q.expanduser() for q in paths)
    ]
    return resolved or [ctx.workspace]


def _display(path: Path, workspace: Path) -> str:
    try:
        rel = path.relative_to(workspace).as_posix()
    except ValueError:
        return str(path)
    return rel or "."


class MissionControlTools:
    def __init__(self, repos: list[Path] | None = None) -> None:
        self.repos = list(repos) if repos else None

    async def survey(self, ctx: ToolContext) -> Survey:
        repos = resolve_repos(ctx, self.repos)
        names = {repo: _display(repo, ctx.workspace) for repo in repos}
        return await asyncio.to_thread(survey, repos, names=names, hidden=ctx.hidden)

    async def mc_inventory(self, args: McInventoryArgs, ctx: ToolContext) -> dict[str, Any]:
        return inventory(await self.survey(ctx))

    async def mc_devmaps(self, args: McDevmapsArgs, ctx: ToolContext) -> dict[str, Any]:
        return devmaps(await self.survey(ctx))

    async def mc_coverage(self, args: McCoverageArgs, ctx: ToolContext) -> dict[str, Any]:
        return coverage(await self.survey(ctx))

    async def mc_mana(self, args: McManaArgs, ctx: ToolContext) -> dict[str, Any]:
        return mana(await self.survey(ctx))

    async def mc_review(self, args: McReviewArgs, ctx: ToolContext) -> dict[str, Any]:
        result = review(await self.survey(ctx))
        ctx.session_context[REVIEW_KEY] = {
            "counts": result["counts"],
            "actionable": [row["id"] for row in result["actionable"]],
            "gaps": len(result["gaps"]),
            "summary": result["summary"],
        }
        return result

    async def mc_bulletin(self, args: McBulletinArgs, ctx: ToolContext) -> dict[str, Any]:
        if ctx.messenger is None:
            raise ToolError("no IRC relay in this daemon", context={"channel": args.channel})
        try:
            await ctx.messenger.post(args.channel, args.text, author=ctx.agent_id)
        except FutonError as exc:
            raise ToolError(
                f"bulletin to {args.channel} failed: {exc.message}", code=exc.code
            ) from None
        return {"posted": args.channel}


def mission_control_fruit(session_context: dict[str, Any], steps: int) -> dict[str, Any]:
    """The mission-control fruit ``{review, steps_taken}``: the last review
    of the session (counts, actionable ids, number of gaps, summary), or
    None when no review ran."""
    last = session_context.get(REVIEW_KEY)
    return {"review": last if isinstance(last, dict) else None, "steps_taken": steps}


def install(backend: RealBackend, *, repos: list[Path] | None = None) -> MissionControlTools:
    """Register the mission-control tools. ``repos``: the daemon's configured
    repositories (relative: against the workspace; empty or None: the
    workspace); the peripheral's ``config: {repos}`` overrides it per call."""
    tools = MissionControlTools(repos)
    backend.register("mc-inventory", tools.mc_inventory)
    backend.register("mc-devmaps", tools.mc_devmaps)
    backend.register("mc-coverage", tools.mc_coverage)
    backend.register("mc-mana", tools.mc_mana)
    backend.register("mc-review", tools.mc_review)
    backend.register("mc-bulletin", tools.mc_bulletin)
    return tools


__all__ = [
    "STATUSES",
    "Devmap",
    "Mission",
    "MissionControlTools",
    "Survey",
    "coverage",
    "devmaps",
    "install",
    "inventory",
    "mana",
    "mission_control_fruit",
    "normalise_status",
    "resolve_repos",
    "review",
    "survey",
]
