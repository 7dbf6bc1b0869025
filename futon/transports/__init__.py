"""futon.transports — see ../shared/spec; filled in by later issues."""
