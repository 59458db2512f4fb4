"""anonex.procfs."""
