"""anonex.kernel."""
