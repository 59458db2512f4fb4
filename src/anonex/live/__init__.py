"""anonex.live."""
