"""Related prior work: the earlier conclusions and refusals most relevant
to a new session's goal, so an agent does not redo what another already
found (or was already refused).

Found by full-text search (:mod:`futon.evidence.search`) over the entries
whose claim is ``conclusion`` (a session's end, a finding) or ``tension``
(a refusal), any agent's, best first. The goal may be long (a pasted
request): only its first :data:`~futon.evidence.search.MAX_QUERY_CHARS`
characters and :data:`~futon.evidence.search.MAX_QUERY_WORDS` words are
searched; a goal without words finds nothing, never an error.
"""

from __future__ import annotations

from typing import Any

from futon.evidence.query import EvidenceQuery
from futon.evidence.search import (
    MAX_QUERY_CHARS,
    TIERS,
    SearchHit,
    SearchRequest,
    body_text,
    words_of,
)
from futon.evidence.store import EvidenceStore

RELATED_LIMIT = 3
SUMMARY_CHARS = 200
CLAIMS = ("conclusion", "tension")


def related_work(
    store: EvidenceStore, goal: str, *, limit: int = RELATED_LIMIT
) -> list[dict[str, Any]]:
    """``[{evidence_id, summary}]``, at most ``limit``, best first."""
    text = goal[:MAX_QUERY_CHARS]
    if not words_of(text):
        return []
    hits: list[SearchHit] = []
    for claim in CLAIMS:
        hits.extend(
            store.search(SearchRequest.of(text, query=EvidenceQuery(claim_type=claim), limit=limit))
        )
    # Both searches score against the same index, so their scores compare.
    hits.sort(key=lambda hit: (TIERS.index(hit.tier), hit.score))
    return [
        {"evidence_id": hit.entry["evidence/id"], "summary": summary_of(hit)}
        for hit in hits[:limit]
    ]


def summary_of(hit: SearchHit) -> str:
    """One line: the claim, the author, then the matched text (the search
    snippet, else the body's text), cut to :data:`SUMMARY_CHARS`."""
    entry = hit.entry
    text = " ".join((hit.snippet or body_text(entry.get("evidence/body"))).split())
    line = f"{entry.get('evidence/claim-type')} by {entry.get('evidence/author')}: {text}"
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"
