"""The one exception of :mod:`anonex.pagetypes`: a usage, input or environment error.

Every failure the command line reports is a :class:`PageTypesError` with a one-line message
that says what was wrong and what was expected; ``main`` prints it and returns
:attr:`~PageTypesError.exit_code` (2 unless said otherwise), never a traceback.
"""

from __future__ import annotations


class PageTypesError(Exception):
    """A clear, one-line error: bad option, bad flag name or range, unreadable input."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
