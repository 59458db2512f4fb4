"""Where the checkers remember the states they have seen.

:class:`StateStore` keeps every canonical key (``bytes``, a few hundred bytes each) in a
set: exact. :class:`FingerprintStore` keeps a 64-bit fingerprint per state: recent ones in a
set, the rest merged (with numpy) into a sorted array of 64-bit integers (8 bytes a state,
searched by bisection); two different states share a fingerprint with probability
~n²/2⁶⁵ (one in 10⁸ for a million states). Both report the bytes they use per stored state.

Fingerprints are ``hash()`` of the key: randomised per interpreter, so a fingerprint is
only compared with those the same process made (each partition of a parallel search keeps
its own store, of the keys it owns).
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from typing import Protocol

_MASK = (1 << 64) - 1


class Store(Protocol):
    """A set of explored states."""

    def __contains__(self, key: bytes) -> bool: ...

    def add(self, key: bytes) -> None: ...

    def __len__(self) -> int: ...

    def compact(self) -> None:
        """Reorganise for lookups (between BFS levels)."""

    def bytes_per_state(self) -> float: ...


class StateStore:
    """Whole canonical keys in a set."""

    def __init__(self) -> None:
        self._set: set[bytes] = set()
        self._payload = 0

    def __contains__(self, key: bytes) -> bool:
        return key in self._set

    def add(self, key: bytes) -> None:
        if key not in self._set:
            self._set.add(key)
            self._payload += sys.getsizeof(key)

    def __len__(self) -> int:
        return len(self._set)

    def compact(self) -> None:
        pass

    def bytes_per_state(self) -> float:
        n = len(self._set)
        return (sys.getsizeof(self._set) + self._payload) / n if n else 0.0


class FingerprintStore:
    """64-bit fingerprints: a set for recent ones, a sorted array for the rest (looked up
    by bisection: 0.6 µs, against 1.6 µs for a numpy search of one value)."""

    def __init__(self, flush_at: int = 1 << 20) -> None:
        self._recent: set[int] = set()
        self._sorted = array("Q")
        self._flush_at = flush_at

    @staticmethod
    def fingerprint(key: bytes) -> int:
        return hash(key) & _MASK

    def __contains__(self, key: bytes) -> bool:
        fp = hash(key) & _MASK
        if fp in self._recent:
            return True
        arr = self._sorted
        i = bisect_left(arr, fp)
        return i < len(arr) and arr[i] == fp

    def add(self, key: bytes) -> None:
        if key in self:
            return
        self._recent.add(hash(key) & _MASK)
        if len(self._recent) >= self._flush_at:
            self.compact()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def compact(self) -> None:
        if self._recent:
            import numpy as np

            old = np.frombuffer(self._sorted, dtype=np.uint64) if self._sorted else \
                np.zeros(0, dtype=np.uint64)
            new = np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))
            merged = array("Q")
            merged.frombytes(np.union1d(old, new).astype(np.uint64).tobytes())
            self._sorted = merged
            self._recent = set()

    def fingerprints(self) -> list[int]:
        """Every fingerprint stored."""
        self.compact()
        return list(self._sorted)

    def bytes_per_state(self) -> float:
        n = len(self)
        if not n:
            return 0.0
        recent = sys.getsizeof(self._recent) + 32 * len(self._recent) if self._recent else 0
        return (len(self._sorted) * self._sorted.itemsize + recent) / n


def make_store(fingerprints: bool) -> StateStore | FingerprintStore:
    """The store a search uses."""
    return FingerprintStore() if fingerprints else StateStore()
