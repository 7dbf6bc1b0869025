"""futon.social — the social pipeline, relay, registry and Tickle (docs/)."""
