"""The peripheral specs as they were: their digest, the record the daemon
keeps of each version it ran under, and the lookup the audit replays with.

Contract:

- :func:`spec_digest` is the sha256 of the specs as canonical JSON (ids
  sorted, keys sorted); every session's goal entry records it
  (``spec-sha256``), and so does every hop.
- :func:`record_specs` appends one entry (type ``coordination``, claim
  ``evidence``, tags ``peripheral-specs`` and ``sha256:<digest>``, body
  ``{spec-sha256, specs}``) unless the newest such entry already has the
  digest: the daemon calls it at start and after each reload.
- :class:`SpecsLibrary` finds the specs recorded under a digest (by tag;
  cached, bounded) and rebuilds them; the specs it was given answer their
  own digest without a lookup.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from futon.config.models import PeripheralSpec
from futon.evidence.query import EvidenceQuery
from futon.evidence.store import EvidenceStore
from futon.peripherals.spec import Peripheral
from futon.protocol.errors import FutonError

log = logging.getLogger("futon.audit")

SPECS_TAG = "peripheral-specs"
KEEP_LOOKED_UP = 32  # spec versions a library keeps rebuilt (an --all run meets few)

Specs = Mapping[str, Peripheral]


def canonical_specs(peripherals: Specs) -> dict[str, Any]:
    """The specs as JSON values, ids sorted: what the digest is taken of."""
    return {pid: p.spec.model_dump(mode="json") for pid, p in sorted(peripherals.items())}


def spec_digest(peripherals: Specs) -> str:
    """sha256 of the peripheral specs (canonical JSON, ids and keys sorted)."""
    text = json.dumps(canonical_specs(peripherals), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def digest_tag(digest: str) -> str:
    return f"sha256:{digest}"


async def record_specs(store: EvidenceStore, peripherals: Specs, author: str) -> str:
    """Record the specs unless the newest record has their digest already;
    returns the digest. A failed write is logged, not raised: the daemon
    runs on, and the audit of its sessions falls back (and says so)."""
    digest = spec_digest(peripherals)
    newest = store.query(EvidenceQuery(tags=(SPECS_TAG,), limit=1)).entries
    if newest and _body(newest[0]).get("spec-sha256") == digest:
        return digest
    entry = {
        "subject": {"ref/type": "component", "ref/id": "peripherals"},
        "type": "coordination",
        "claim-type": "evidence",
        "author": author,
        "tags": [SPECS_TAG, digest_tag(digest)],
        "body": {"spec-sha256": digest, "specs": canonical_specs(peripherals)},
    }
    try:
        await store.append(entry)
    except FutonError as exc:
        log.error("could not record the peripheral specs %s: %s", digest[:12], exc)
    return digest


class SpecsLibrary:
    """The specs each digest names: the given ones, else the recorded ones."""

    def __init__(self, store: EvidenceStore, given: Specs) -> None:
        self.store = store
        self.given = given
        self.given_digest = spec_digest(given)
        self._found: OrderedDict[str, Specs | None] = OrderedDict()

    def specs_for(self, digest: str) -> Specs | None:
        """The specs recorded under ``digest``; None when no record holds
        them (or the record no longer validates)."""
        if digest == self.given_digest:
            return self.given
        if digest in self._found:
            self._found.move_to_end(digest)
            return self._found[digest]
        found = self._look_up(digest)
        self._found[digest] = found
        while len(self._found) > KEEP_LOOKED_UP:
            self._found.popitem(last=False)
        return found

    def _look_up(self, digest: str) -> Specs | None:
        query = EvidenceQuery(tags=(SPECS_TAG, digest_tag(digest)), limit=1)
        for entry in self.store.query(query).entries:
            specs = _body(entry).get("specs")
            if not isinstance(specs, dict):
                continue
            try:
                rebuilt = {str(pid): Peripheral(str(pid), PeripheralSpec.model_validate(spec)) for pid, spec in specs.items()}
            except ValidationError:
                log.warning("the specs recorded as %s no longer validate", entry.get("evidence/id"))
                return None
            return rebuilt
        return None


def _body(entry: Mapping[str, Any]) -> dict[str, Any]:
    body = entry.get("evidence/body")
    return body if isinstance(body, dict) else {}
