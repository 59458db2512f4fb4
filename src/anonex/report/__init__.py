"""anonex.report."""
