"""The scenario language: grammar, parser, steps and expectations, runner and verdicts."""
