"""musn-log: a session's evidence, oldest first, all of it."""

from __future__ import annotations

from futon.evidence.model import EntryDict
from futon.evidence.query import MAX_LIMIT, EvidenceQuery
from futon.peripherals.args import MusnLogArgs
from futon.peripherals.tools import ToolContext
from futon.protocol.errors import ToolError


async def musn_log(args: MusnLogArgs, ctx: ToolContext) -> list[EntryDict]:
    """Every entry of session ``args.session_id`` (default: the current
    session), ephemeral ones included, in seq order. Needs ``ctx.store``."""
    if ctx.store is None:
        raise ToolError("musn-log needs the evidence store, and this session has none")
    session_id = args.session_id or ctx.session_id
    entries: list[EntryDict] = []
    after = 0
    # after_seq pages come oldest first; a short page is the last one.
    while True:
        query = EvidenceQuery(
            session_id=session_id, include_ephemeral=True, after_seq=after, limit=MAX_LIMIT
        )
        page = ctx.store.query(query).entries
        entries.extend(page)
        if len(page) < MAX_LIMIT:
            return entries
        after = page[-1]["evidence/seq"]
