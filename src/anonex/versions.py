"""Kernel version numbers as the scenario language and the model use them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_RX = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


@total_ordering
@dataclass(frozen=True, slots=True)
class KernelVersion:
    """``major.minor[.patch]``; a missing patch sorts as ``.0``."""

    major: int
    minor: int
    patch: int | None = None

    @classmethod
    def parse(cls, text: str) -> KernelVersion:
        """Parse ``6.18``, ``6.18.44`` or a ``uname -r`` string like ``6.18.44-fc-v657``."""
        m = _RX.match(text.strip())
        if not m:
            raise ValueError(f"not a kernel version: {text!r} (expected e.g. 6.18 or 5.19.3)")
        patch = int(m.group(3)) if m.group(3) is not None else None
        return cls(int(m.group(1)), int(m.group(2)), patch)

    @property
    def major_minor(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def _key(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch or 0)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, KernelVersion):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KernelVersion):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}"
        return base if self.patch is None else f"{base}.{self.patch}"


CURRENT = KernelVersion(6, 18)
