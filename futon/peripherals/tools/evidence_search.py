"""evidence-search: full-text search of every session's evidence, so an
agent finds what others already found before it redoes the work."""

from __future__ import annotations

from typing import Any

from futon.evidence.search import SearchHit, SearchRequest, body_text
from futon.peripherals.args import EvidenceSearchArgs
from futon.peripherals.tools import ToolContext
from futon.protocol.errors import ProtocolError, ToolError

DEFAULT_TOOL_LIMIT = 10
SUMMARY_CHARS = (
    300  # of each hit's body text: enough to judge it, small enough for a model's context
)


async def evidence_search(args: EvidenceSearchArgs, ctx: ToolContext) -> dict[str, Any]:
    """Read-only: ``{results: [...]}``, best first, from any agent's
    sessions (ephemeral entries aside). Needs ``ctx.store``."""
    if ctx.store is None:
        raise ToolError("evidence-search needs the evidence store, and this session has none")
    try:
        request = SearchRequest.of(args.query, limit=args.limit or DEFAULT_TOOL_LIMIT)
    except ProtocolError as exc:  # e.g. a query of punctuation only
        raise ToolError(f"evidence-search: {exc.message}") from None
    return {"results": [hit_summary(hit) for hit in ctx.store.search(request)]}


def hit_summary(hit: SearchHit) -> dict[str, Any]:
    """One hit as a tool (or a session-start frame) shows it: the entry's
    identity and a bounded summary, not the whole entry."""
    entry = hit.entry
    return {
        "evidence_id": entry["evidence/id"],
        "type": entry.get("evidence/type"),
        "claim_type": entry.get("evidence/claim-type"),
        "author": entry.get("evidence/author"),
        "session_id": entry.get("evidence/session-id"),
        "at": entry.get("evidence/at"),
        "match": hit.tier,
        "snippet": hit.snippet,
        "summary": body_text(entry.get("evidence/body"))[:SUMMARY_CHARS].replace("\n", " "),
    }
