"""futon.social — see ../shared/spec; filled in by later issues."""
