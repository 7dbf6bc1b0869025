"""futon.peripherals — see ../shared/spec; filled in by later issues."""
