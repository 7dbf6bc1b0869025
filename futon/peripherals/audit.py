"""Audit: replay a session's recorded chain against the peripheral specs.

Post-hoc, from the evidence alone (nothing of the live session is needed):
every step the session recorded is checked against the envelope of the
peripheral it was in at that moment, as the goal entry and the hops
(``mode-transition`` entries) recorded it. A violation names the entry that
shows it. Checked:

- ``chain-broken``: the session's entries do not form one in-reply-to chain
  from its goal (an entry cut out or inserted by hand);
- ``unknown-peripheral``: the goal or a hop names a peripheral the specs do
  not have;
- ``tool-not-in-envelope``: a step ran a tool outside the peripheral's tools;
- ``write-in-read-only``: a write tool ran in a read-only peripheral;
- ``path-out-of-scope``: a file tool's path is absolute, climbs with ``..``
  or lies outside a ``paths`` scope's prefixes (checked on the path as
  recorded, lexically);
- ``hop-not-admitted``: a hop the exit and entry rules refuse, or one that
  does not leave the peripheral the session was in.

The specs are the ones given (the running daemon's, or the config's for
the CLI). When a session's goal entry records the digest of the specs it
ran under (``spec-sha256``, :func:`spec_digest`; sessions do not record it
yet) and it differs from the specs given, the report says so
(``specs_changed``). Approvals and the fact conditions of hops are not
replayed yet.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from futon.evidence.model import EntryDict
from futon.evidence.query import MAX_LIMIT, EvidenceQuery
from futon.evidence.store import EvidenceStore
from futon.peripherals.args import parse_args
from futon.peripherals.hop import check_hop
from futon.peripherals.spec import FILE_TOOLS, WRITE_TOOLS, Peripheral
from futon.protocol.errors import FutonError, NotFound

MAX_AUDIT_ENTRIES = 100_000  # a session longer than this is audited up to here (reported)


@dataclass(frozen=True)
class Violation:
    """One broken rule and the entry that shows it."""

    rule: str
    evidence_id: str
    seq: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "evidence_id": self.evidence_id,
            "seq": self.seq,
            "message": self.message,
        }


@dataclass
class AuditReport:
    session_id: str
    entries: int = 0
    steps: int = 0
    hops: int = 0
    refusals: int = 0
    truncated: bool = False
    specs_changed: bool = False
    violations: list[Violation] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "clean": self.clean,
            "entries": self.entries,
            "steps": self.steps,
            "hops": self.hops,
            "refusals": self.refusals,
            "truncated": self.truncated,
            "specs_changed": self.specs_changed,
            "violations": [v.to_dict() for v in self.violations],
        }


def spec_digest(peripherals: Mapping[str, Peripheral]) -> str:
    """sha256 of the peripheral specs (canonical JSON, ids sorted)."""
    canonical = {pid: p.spec.model_dump(mode="json") for pid, p in sorted(peripherals.items())}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def session_entries(store: EvidenceStore, session_id: str) -> tuple[list[EntryDict], bool]:
    """Every entry of the session, oldest first (bounded); and whether the
    bound cut it."""
    entries: list[EntryDict] = []
    after = 0
    while len(entries) < MAX_AUDIT_ENTRIES:
        query = EvidenceQuery(
            session_id=session_id, include_ephemeral=True, after_seq=after, limit=MAX_LIMIT
        )
        page = store.query(query).entries
        entries.extend(page)
        if len(page) < MAX_LIMIT:
            return entries, False
        after = page[-1]["evidence/seq"]
    return entries[:MAX_AUDIT_ENTRIES], True


def audit_session(
    store: EvidenceStore, peripherals: Mapping[str, Peripheral], session_id: str
) -> AuditReport:
    """Replay ``session_id``; raises ``NotFound`` (``session-not-found``)
    when the store holds no entry of it."""
    entries, truncated = session_entries(store, session_id)
    if not entries:
        raise NotFound(f"no session {session_id!r} in the evidence", code="session-not-found")
    report = AuditReport(session_id, entries=len(entries), truncated=truncated)
    current: Peripheral | None = None
    previous: str | None = None
    for entry in entries:
        body = entry.get("evidence/body") if isinstance(entry.get("evidence/body"), dict) else {}
        assert isinstance(body, dict)
        claim = entry.get("evidence/claim-type")

        def flag(rule: str, message: str, entry: EntryDict = entry) -> None:
            report.violations.append(
                Violation(rule, entry["evidence/id"], entry["evidence/seq"], message)
            )

        if previous is not None and entry.get("evidence/in-reply-to") != previous:
            flag("chain-broken", f"does not reply to the session's previous entry {previous}")
        previous = entry["evidence/id"]
        if claim == "goal" and current is None:
            current = _peripheral(peripherals, body.get("peripheral"), flag)
            recorded = body.get("spec-sha256")
            report.specs_changed = recorded is not None and recorded != spec_digest(peripherals)
        elif entry.get("evidence/type") == "mode-transition":
            report.hops += 1
            current = _hop(peripherals, current, body, flag)
        elif claim == "tension":
            report.refusals += 1
        elif claim == "step" and isinstance(body.get("tool"), str) and body["tool"] != "say":
            report.steps += 1
            if current is not None:
                _step(current, body["tool"], body.get("args"), flag)
    return report


def _peripheral(peripherals: Mapping[str, Peripheral], pid: Any, flag: Any) -> Peripheral | None:
    found = peripherals.get(pid) if isinstance(pid, str) else None
    if found is None:
        flag("unknown-peripheral", f"peripheral {pid!r} is not in the specs")
    return found


def _hop(
    peripherals: Mapping[str, Peripheral],
    current: Peripheral | None,
    body: dict[str, Any],
    flag: Any,
) -> Peripheral | None:
    target = _peripheral(peripherals, body.get("to"), flag)
    if current is not None and body.get("from") != current.id:
        flag(
            "hop-not-admitted",
            f"hop from {body.get('from')!r}, but the session was in {current.id!r}",
        )
    elif current is not None and target is not None:
        try:
            check_hop(current, target, str(body.get("exit_condition", "")))
        except FutonError as refused:
            flag("hop-not-admitted", refused.message)
    return target


def _step(peripheral: Peripheral, tool: str, args: Any, flag: Any) -> None:
    if tool not in peripheral.tools:
        flag("tool-not-in-envelope", f"{tool} is not among {peripheral.id}'s tools")
        return
    if tool in WRITE_TOOLS and peripheral.read_only:
        flag("write-in-read-only", f"{tool} wrote in read-only {peripheral.id}")
    if tool not in FILE_TOOLS:
        return
    try:
        paths = parse_args(tool, args if isinstance(args, list) else []).paths()
    except FutonError:
        return  # capped or reshaped arguments: nothing to check the scope on
    for raw in paths:
        problem = _out_of_scope(raw, peripheral.path_prefixes)
        if problem:
            flag("path-out-of-scope", f"{tool} {raw!r}: {problem}")


def _out_of_scope(raw: str, prefixes: list[str] | None) -> str | None:
    if raw.startswith("/"):
        return "an absolute path"
    normal = posixpath.normpath(raw)
    if normal == ".." or normal.startswith("../"):
        return "climbs out of the workspace"
    if prefixes is None:
        return None
    for prefix in prefixes:
        stem = posixpath.normpath(prefix)
        if normal == stem or normal.startswith(stem.rstrip("/") + "/"):
            return None
    return f"outside {', '.join(prefixes)}"
