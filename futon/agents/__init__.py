"""futon.agents — see ../shared/spec; filled in by later issues."""
