"""Audit: replay a session's recorded chain against the peripheral specs.

Post-hoc, from the evidence alone (nothing of the live session is needed):
every step the session recorded is checked against the envelope of the
peripheral it was in at that moment, as the goal entry and the hops
(``mode-transition`` entries) recorded it. A violation names the entry that
shows it. Checked:

- ``chain-broken``: the session's entries (tag ``peripheral``) do not form
  one in-reply-to chain from its goal (an entry cut out or inserted by
  hand). Entries the session's tools and approvals write beside the chain
  (tags ``approval``, ``discipline``…) are not part of it;
- ``unknown-peripheral``: the goal or a hop names a peripheral the specs do
  not have;
- ``tool-not-in-envelope``: a step ran a tool outside the peripheral's tools;
- ``write-in-read-only``: a write tool ran in a read-only peripheral;
- ``path-out-of-scope``: a file tool's path is absolute, climbs with ``..``
  or lies outside a ``paths`` scope's prefixes — checked on the path as the
  agent gave it (lexically) and on the resolved workspace-relative path the
  step recorded beside it (``paths``: a symlink's target shows there);
- ``hop-not-admitted``: a hop the exit and entry rules refuse, or one that
  does not leave the peripheral the session was in;
- ``hop-fact-unsupported``: a hop whose condition names a fact the evidence
  before it does not bear out (``tests-passed``: the session's last test
  run before the hop passed; ``user-request``: the cited entry is a human's
  line to the agent, recorded before the hop; ``from-<p>``: the session was
  in ``p``) — the live check of :func:`futon.peripherals.hop.check_facts`,
  run over the recorded steps;
- ``approval-missing``: the session entered an ``approval: human``
  peripheral (start or hop) or ran a tool its ``ask`` lists with no
  decision ``approved`` (by someone other than the agent) replying to a
  request for exactly that, recorded before the act;
- ``refusal-unrecorded``: a human denied (or nobody decided in time) an
  approval the session asked for, and the session's next entry is not the
  ``tension`` that records the refusal. (Other refusals leave no trace but
  their tension: the dispatcher's refusals are seen only through it, so
  their absence cannot be told from an action never tried.)

The specs: each session is replayed against the specs recorded under the
digest its goal entry holds (``spec-sha256``; a hop that records another
digest switches to that version for its target). When no record holds them
(an older session, a store without the record) the given specs are used
and the report says so: ``specs`` is ``given``, ``specs_changed`` is true
when the digests differ, and ``notes`` explains.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from futon.evidence.model import EntryDict
from futon.evidence.query import MAX_LIMIT, EvidenceQuery
from futon.evidence.store import EvidenceStore
from futon.peripherals.args import parse_args
from futon.peripherals.audit.specs import Specs, SpecsLibrary
from futon.peripherals.fruit import RunSummary, fruit_of_tests, parse_test_output
from futon.peripherals.hop import check_facts, check_hop
from futon.peripherals.spec import FILE_TOOLS, WRITE_TOOLS, Peripheral
from futon.protocol.errors import FutonError, NotFound

MAX_AUDIT_ENTRIES = 100_000  # a session longer than this is audited up to here (reported)
CHAIN_TAG = "peripheral"  # the tag of every entry a session writes in its own chain
APPROVAL_TAG = "approval"


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
    agent_id: str = ""  # the goal's agent
    entries: int = 0
    steps: int = 0
    hops: int = 0
    refusals: int = 0
    approvals: int = 0
    truncated: bool = False
    spec_sha256: str | None = None  # the digest the goal recorded
    specs: str = "given"  # "recorded": replayed against the specs of spec_sha256
    specs_changed: bool = False
    notes: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "agent_id": self.agent_id,
            "clean": self.clean,
            "entries": self.entries,
            "steps": self.steps,
            "hops": self.hops,
            "refusals": self.refusals,
            "approvals": self.approvals,
            "truncated": self.truncated,
            "spec_sha256": self.spec_sha256,
            "specs": self.specs,
            "specs_changed": self.specs_changed,
            "notes": self.notes,
            "violations": [v.to_dict() for v in self.violations],
        }


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
    store: EvidenceStore,
    peripherals: Specs,
    session_id: str,
    *,
    library: SpecsLibrary | None = None,
) -> AuditReport:
    """Replay ``session_id``; raises ``NotFound`` (``session-not-found``)
    when the store holds no entry of it. ``library``: the spec versions to
    replay with (one shared by many audits saves the look-ups)."""
    entries, truncated = session_entries(store, session_id)
    if not entries:
        raise NotFound(f"no session {session_id!r} in the evidence", code="session-not-found")
    replay = _Replay(store, library or SpecsLibrary(store, peripherals), AuditReport(session_id))
    replay.report.entries = len(entries)
    replay.report.truncated = truncated
    for entry in entries:
        replay.see(entry)
    replay.finish()
    return replay.report


class _Flag(Protocol):
    def __call__(self, rule: str, message: str) -> None: ...


@dataclass
class _Approval:
    """An approval request of the session, and its decision once seen."""

    key: tuple[str, str, str | None]  # (kind, peripheral, tool)
    entry: EntryDict
    approved: bool = False


class _Replay:
    """One session's replay, entry by entry (oldest first)."""

    def __init__(self, store: EvidenceStore, library: SpecsLibrary, report: AuditReport) -> None:
        self.store = store
        self.library = library
        self.report = report
        self.specs: Specs = library.given
        self.current: Peripheral | None = None
        self.agent = ""
        self.previous: str | None = None
        self.test_runs: list[dict[str, Any]] = []
        self.requests: dict[str, _Approval] = {}
        self.granted: list[_Approval] = []  # approved, not yet used by an act
        self.start_waits: EntryDict | None = None  # a goal that needs its entry approved
        self.refused: EntryDict | None = None  # a denial the next entry must record

    def flagger(self, entry: EntryDict) -> _Flag:
        def flag(rule: str, message: str) -> None:
            self.report.violations.append(Violation(rule, entry["evidence/id"], entry["evidence/seq"], message))

        return flag

    def see(self, entry: EntryDict) -> None:
        tags = entry.get("evidence/tags") or []
        if CHAIN_TAG not in tags:
            if APPROVAL_TAG in tags:
                self._approval(entry)
            return
        flag = self.flagger(entry)
        body = _body(entry)
        claim = entry.get("evidence/claim-type")
        if self.previous is not None and entry.get("evidence/in-reply-to") != self.previous:
            flag("chain-broken", f"does not reply to the session's previous entry {self.previous}")
        self.previous = entry["evidence/id"]
        self._settle(entry, claim, body)
        if claim == "goal" and self.current is None:
            self._goal(entry, body, flag)
        elif entry.get("evidence/type") == "mode-transition":
            self.report.hops += 1
            self._hop(entry, body, flag)
        elif claim == "tension":
            self.report.refusals += 1
        elif claim == "step" and isinstance(body.get("tool"), str) and body["tool"] != "say":
            self.report.steps += 1
            if self.current is not None:
                self._step(body, flag)
        elif claim == "observation" and body.get("native") == "command" and isinstance(body.get("test_run"), dict):
            # A native agent's run of a test command a check admitted
            # (session.record_item): a test run for the hops' test facts.
            self.test_runs.append(_test_run({"args": [body.get("command", "")], **body}, len(self.test_runs)))

    def finish(self) -> None:
        if self.refused is not None:
            self.flagger(self.refused)(
                "refusal-unrecorded", "the approval was refused, and the session recorded no tension after it"
            )

    # ------------------------------------------------------------- approvals

    def _approval(self, entry: EntryDict) -> None:
        body = _body(entry)
        claim = entry.get("evidence/claim-type")
        if claim == "question":
            kind, pid, tool = str(body.get("kind")), str(body.get("peripheral")), body.get("tool")
            key = (kind, pid, str(tool) if kind == "tool" else None)
            self.requests[entry["evidence/id"]] = _Approval(key, entry)
            return
        if claim != "evidence":
            return
        self.report.approvals += 1
        asked = self.requests.get(str(entry.get("evidence/in-reply-to")))
        outcome = body.get("outcome")
        if outcome == "approved" and asked is not None and not asked.approved:
            if str(entry.get("evidence/author", "")).lower() == self.agent.lower():
                self.flagger(entry)("approval-missing", f"{self.agent} approved its own request")
                return
            asked.approved = True
            self.granted.append(asked)
        elif outcome in ("denied", "expired"):
            self.refused = entry

    def _use_approval(self, key: tuple[str, str, str | None]) -> bool:
        for n, granted in enumerate(self.granted):
            if granted.key == key:
                del self.granted[n]
                return True
        return False

    def _settle(self, entry: EntryDict, claim: Any, body: dict[str, Any]) -> None:
        """What the entry before this one left open: a refusal it must
        record, a start it must have had approved."""
        if self.refused is not None:
            if claim != "tension":
                self.flagger(self.refused)(
                    "refusal-unrecorded",
                    f"the approval was refused, and the session's next entry {entry['evidence/id']} is not a tension",
                )
            self.refused = None
        goal = self.start_waits
        if goal is None:
            return
        self.start_waits = None
        if claim == "conclusion" or (claim == "tension" and body.get("tool") == "peripheral_start"):
            return  # refused (recorded) or stopped before anything ran
        pid = str(_body(goal).get("peripheral"))
        if not self._use_approval(("enter", pid, None)):
            self.flagger(goal)("approval-missing", f"entered {pid} (approval: human) with no approval on record")

    # ------------------------------------------------------------- the chain

    def _goal(self, entry: EntryDict, body: dict[str, Any], flag: _Flag) -> None:
        self.agent = str(body.get("agent") or entry.get("evidence/author") or "")
        self.report.agent_id = self.agent
        recorded = body.get("spec-sha256")
        report = self.report
        report.spec_sha256 = recorded if isinstance(recorded, str) else None
        if report.spec_sha256 is None:
            report.notes.append("the goal records no spec-sha256: replayed against the given specs")
        else:
            found = self.library.specs_for(report.spec_sha256)
            if found is not None:
                self.specs, report.specs = found, "recorded"
            else:
                report.specs_changed = report.spec_sha256 != self.library.given_digest
                report.notes.append(
                    f"no record of the specs {report.spec_sha256[:12]}… the session ran under: "
                    "replayed against the given specs"
                )
        self.current = _peripheral(self.specs, body.get("peripheral"), flag)
        if self.current is not None and self.current.spec.approval == "human":
            self.start_waits = entry

    def _hop(self, entry: EntryDict, body: dict[str, Any], flag: _Flag) -> None:
        digest = body.get("spec-sha256")
        if isinstance(digest, str) and digest != (self.report.spec_sha256 or self.library.given_digest):
            found = self.library.specs_for(digest)  # a reload between the goal and this hop
            if found is not None:
                self.specs = found
        current = self.current
        target = _peripheral(self.specs, body.get("to"), flag)
        self.current = target
        if current is None or target is None:
            return
        exit_condition = str(body.get("exit_condition", ""))
        if body.get("from") != current.id:
            flag("hop-not-admitted", f"hop from {body.get('from')!r}, but the session was in {current.id!r}")
            return
        try:
            check_hop(current, target, exit_condition)
        except FutonError as refused:
            flag("hop-not-admitted", refused.message)
            return
        self._facts(entry, body, current, target, exit_condition, flag)
        if target.spec.approval == "human" and not self._use_approval(("enter", target.id, None)):
            flag("approval-missing", f"hopped into {target.id} (approval: human) with no approval on record")

    def _facts(
        self, entry: EntryDict, body: dict[str, Any], current: Peripheral, target: Peripheral,
        exit_condition: str, flag: _Flag,
    ) -> None:  # fmt: skip
        carried = body.get("carried") if isinstance(body.get("carried"), dict) else {}
        assert isinstance(carried, dict)
        request = body.get("request", carried.get("request"))
        try:
            check_facts(
                current, target, exit_condition, agent_id=self.agent,
                test_result=str(fruit_of_tests(self.test_runs)["result"]),
                context={"request": request}, store=self.store,
            )  # fmt: skip
        except FutonError as refused:
            flag("hop-fact-unsupported", refused.message)
            return
        if exit_condition == "user-request" and isinstance(request, str):
            cited = self.store.get(request)  # check_facts found it
            if cited["evidence/seq"] > entry["evidence/seq"]:
                flag("hop-fact-unsupported", f"the request {request} was recorded after the hop")

    def _step(self, body: dict[str, Any], flag: _Flag) -> None:
        peripheral = self.current
        assert peripheral is not None
        tool = str(body["tool"])
        args = body.get("args")
        if tool not in peripheral.tools:
            flag("tool-not-in-envelope", f"{tool} is not among {peripheral.id}'s tools")
            return
        if tool in peripheral.spec.ask and not self._use_approval(("tool", peripheral.id, tool)):
            flag("approval-missing", f"ran {tool} (ask in {peripheral.id}) with no approval on record")
        if tool in WRITE_TOOLS and peripheral.read_only:
            flag("write-in-read-only", f"{tool} wrote in read-only {peripheral.id}")
        if tool == "bash-test" and body.get("ok") is True:
            self.test_runs.append(_test_run(body, len(self.test_runs)))
        if tool not in FILE_TOOLS:
            return
        try:
            paths = list(parse_args(tool, args if isinstance(args, list) else []).paths())
        except FutonError:
            paths = []  # capped or reshaped arguments: the resolved paths still tell
        resolved = body.get("paths")
        if isinstance(resolved, list):
            # The session resolved each path in the workspace: an absolute
            # one the agent gave is judged by where it resolved to.
            paths = [p for p in paths if not p.startswith("/")]
            paths += [p for p in resolved if isinstance(p, str) and p not in paths]
        for raw in paths:
            problem = _out_of_scope(raw, peripheral.path_prefixes)
            if problem:
                flag("path-out-of-scope", f"{tool} {raw!r}: {problem}")


def _test_run(body: dict[str, Any], n: int) -> dict[str, Any]:
    """A recorded ``bash-test`` step as :func:`fruit_of_tests` reads a run:
    from the outcome the step recorded (``test_run``), else parsed from its
    result. Without a recorded fingerprint each run counts as a new
    workspace (so a fail then a pass is not taken for flaky)."""
    command = " ".join(str(a) for a in body["args"]) if isinstance(body.get("args"), list) else str(body.get("args"))
    recorded = body.get("test_run")
    if isinstance(recorded, dict):
        # Read as the session writes them; anything else (an entry written
        # by hand, over HTTP) counts as nothing rather than crash the audit.
        summary = RunSummary(
            passed=_count(recorded.get("passed")), failed=_count(recorded.get("failed")),
            errors=_count(recorded.get("errors")), parsed=recorded.get("parsed") is True,
        )  # fmt: skip
        workspace = recorded.get("workspace")
        workspace = workspace if isinstance(workspace, str) and workspace else f"unrecorded-{n}"
        return {"command": command, "exit": _exit_code(recorded.get("exit")), "summary": summary,
                "workspace": workspace}  # fmt: skip
    result = body.get("result") if isinstance(body.get("result"), dict) else {}
    assert isinstance(result, dict)
    summary = parse_test_output(str(result.get("out", "")) + "\n" + str(result.get("err", "")))
    return {"command": command, "exit": _exit_code(result.get("exit")), "summary": summary,
            "workspace": f"unrecorded-{n}"}  # fmt: skip


def _count(value: Any) -> int:
    """A recorded test count: a non-negative int, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _exit_code(value: Any) -> int | None:
    """A recorded exit code: an int, else None (not a pass)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _body(entry: Mapping[str, Any]) -> dict[str, Any]:
    body = entry.get("evidence/body")
    return body if isinstance(body, dict) else {}


def _peripheral(peripherals: Specs, pid: Any, flag: _Flag) -> Peripheral | None:
    found = peripherals.get(pid) if isinstance(pid, str) else None
    if found is None:
        flag("unknown-peripheral", f"peripheral {pid!r} is not in the specs")
    return found


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
