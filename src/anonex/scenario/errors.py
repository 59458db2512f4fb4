"""Errors a user can cause: each says where (file:line:column) and what was expected."""

from __future__ import annotations


class ScenarioError(Exception):
    """A malformed or inconsistent scenario file."""

    def __init__(self, file: str, line: int, column: int, message: str,
                 source_line: str | None = None) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        self.source_line = source_line
        super().__init__(self.render())

    def __reduce__(self) -> tuple[type[ScenarioError], tuple[str, int, int, str, str | None]]:
        # so that a worker process can hand the error back whole
        return (ScenarioError, (self.file, self.line, self.column, self.message,
                                self.source_line))

    def render(self) -> str:
        """The error as the command line prints it, with the offending line and a caret."""
        head = f"{self.file}:{self.line}:{self.column}: error: {self.message}"
        if self.source_line is None:
            return head
        src = self.source_line.rstrip("\r\n").expandtabs(1)
        return f"{head}\n    {src}\n    {' ' * max(self.column - 1, 0)}^"
