"""anonex.explore."""
