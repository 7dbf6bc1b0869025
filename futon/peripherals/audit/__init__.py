"""Audit (issue 21): sessions replayed against the peripheral specs they ran
under. :mod:`.replay` checks one session, :mod:`.window` a time window,
:mod:`.specs` records and finds the spec versions."""

from futon.peripherals.audit.replay import (
    MAX_AUDIT_ENTRIES,
    AuditReport,
    Violation,
    audit_session,
    session_entries,
)
from futon.peripherals.audit.specs import SPECS_TAG, SpecsLibrary, record_specs, spec_digest
from futon.peripherals.audit.window import (
    MAX_WINDOW_SESSIONS,
    WindowReport,
    audit_sessions,
    audit_sessions_async,
    audit_window,
    audit_window_async,
    sessions_in,
)

__all__ = [
    "MAX_AUDIT_ENTRIES",
    "MAX_WINDOW_SESSIONS",
    "SPECS_TAG",
    "AuditReport",
    "SpecsLibrary",
    "Violation",
    "WindowReport",
    "audit_session",
    "audit_sessions",
    "audit_sessions_async",
    "audit_window",
    "audit_window_async",
    "record_specs",
    "session_entries",
    "sessions_in",
    "spec_digest",
]
