"""The names a peripheral spec may use: every tool futon has a backend for,
and every named scope.

Vocabulary, not machinery: it imports nothing, so config validation (this
package) can check a spec against it while the peripherals engine, one layer
up, implements exactly these names (``tests/peripherals/test_envelope.py``
and ``tests/test_layers.py`` hold the two lists together)."""

from __future__ import annotations

CORE_TOOLS: frozenset[str] = frozenset(
    {
        "read", "glob", "grep", "edit", "write",
        "bash", "bash-test", "bash-git", "bash-deploy", "bash-readonly",
        "web-fetch", "musn-log", "evidence-search",
    }
)  # fmt: skip

CYCLE_TOOLS: frozenset[str] = frozenset(
    {
        "proof-load", "proof-save", "ledger-query", "ledger-upsert",
        "mission-load", "mission-save", "obligation-query", "obligation-upsert",
        "dag-check", "dag-impact",
        "canonical-get", "canonical-update", "mission-spec-get", "mission-spec-update",
        "cycle-begin", "cycle-advance", "cycle-get", "cycle-list",
        "failed-route-add", "failed-approach-add",
        "status-validate", "gate-check", "corpus-check", "evidence-query",
    }
)  # fmt: skip

DISCIPLINE_TOOLS: frozenset[str] = frozenset(
    {"psr-search", "psr-select", "pur-update", "pur-mark-pivot", "par-punctuate"}
)

MISSION_CONTROL_TOOLS: frozenset[str] = frozenset(
    {"mc-inventory", "mc-devmaps", "mc-coverage", "mc-mana", "mc-review", "mc-bulletin"}
)

ALFWORLD_TOOLS: frozenset[str] = frozenset({"alfworld-action", "bell", "whistle"})

KNOWN_TOOLS: frozenset[str] = (
    CORE_TOOLS | CYCLE_TOOLS | DISCIPLINE_TOOLS | MISSION_CONTROL_TOOLS | ALFWORLD_TOOLS
)

# Named scopes (docs/peripherals.md, scopes). A scope may also be `{paths: [...]}`.
NAMED_SCOPES: frozenset[str] = frozenset(
    {
        "full-codebase",
        "test-commands-only",
        "git-push-only",
        "session-log-only",
        "discipline-records",
        "irc-rooms",
        "alfworld-simulation",
    }
)
