"""futon.daemon — assembly, lifecycle, reload and metrics (docs/operations.md)."""
