"""futon.daemon — see ../shared/spec; filled in by later issues."""
