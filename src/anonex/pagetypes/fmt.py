"""Formatting many list rows at once with numpy.

A row of ``-l``/``-L`` is numbers in hex or decimal (with fixed text around them) and the
symbolic flags, tab-separated. Python's ``%`` formatting costs about half a microsecond a
row; here rows are grouped into runs whose numbers have the same widths, and each run is
written as one 2-D byte array (one column per character). Runs of rows come out in the
order given. When widths change too often for that to pay (runs shorter than 64 rows on
average: random PFNs of a process, lengths of ranges), rows are formatted one by one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Words = NDArray[np.uint64]

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_LIMITS = np.array([16 ** k for k in range(1, 16)], dtype=np.uint64)
_DEC_LIMITS = np.array([10 ** k for k in range(1, 20)], dtype=np.uint64)


@dataclass(frozen=True, slots=True)
class Num:
    """A number column: *values* in hex or decimal, with *before* and *after* text."""

    values: Words
    hex: bool
    before: bytes = b""
    after: bytes = b"\t"

    def widths(self) -> NDArray[np.intp]:
        limits = _HEX_LIMITS if self.hex else _DEC_LIMITS
        return np.searchsorted(limits, self.values, side="right") + 1


@dataclass(frozen=True, slots=True)
class Text:
    """A column of fixed-width text: row *i* is ``table[codes[i]]`` (bytes, same width)."""

    table: NDArray[np.uint8]
    codes: NDArray[np.intp]


def _put_digits(out: NDArray[np.uint8], pos: int, values: Words, width: int,
                hexa: bool) -> None:
    """Write *values* as *width* digits into columns ``pos …`` of *out*."""
    if hexa:
        for j in range(width):
            shift = np.uint64(4 * (width - 1 - j))
            out[:, pos + j] = _HEX[((values >> shift) & np.uint64(15)).astype(np.intp)]
        return
    v = values.copy()
    ten = np.uint64(10)
    for j in range(width - 1, -1, -1):
        out[:, pos + j] = _HEX[(v % ten).astype(np.intp)]
        v //= ten


def _python(columns: Sequence[Num | Text], lo: int, hi: int) -> bytes:
    parts: list[list[bytes]] = []
    for col in columns:
        if isinstance(col, Num):
            f = b"%x" if col.hex else b"%d"
            vals = col.values[lo:hi].tolist()
            parts.append([col.before + (f % v) + col.after for v in vals])
        else:
            rows = [bytes(r) for r in col.table]
            parts.append([rows[c] for c in col.codes[lo:hi].tolist()])
    return b"".join(b"".join(row) for row in zip(*parts, strict=True))


def format_rows(columns: Sequence[Num | Text]) -> list[bytes | NDArray[np.uint8]]:
    """The rows of *columns* (all the same length), as pieces to write in order (byte
    strings, or C-contiguous 2-D byte arrays whose memory is the text)."""
    n = len(columns[0].values) if isinstance(columns[0], Num) else len(columns[0].codes)
    if n == 0:
        return []
    nums = [c for c in columns if isinstance(c, Num)]
    widths = [c.widths() for c in nums]
    if widths:
        change = np.zeros(n, dtype=np.bool_)
        change[0] = True
        for w in widths:
            change[1:] |= w[1:] != w[:-1]
        starts = np.flatnonzero(change)
    else:
        starts = np.zeros(1, dtype=np.intp)
    if len(starts) * 64 > n:
        return [_python(columns, 0, n)]
    bounds = [*starts.tolist(), n]
    pieces: list[bytes | NDArray[np.uint8]] = []
    for lo, hi in itertools.pairwise(bounds):
        ws = [int(w[lo]) for w in widths]
        length = sum(len(c.before) + len(c.after) for c in nums) + sum(ws) + sum(
            c.table.shape[1] for c in columns if isinstance(c, Text))
        out = np.empty((hi - lo, length), dtype=np.uint8)
        pos = 0
        k = 0
        for col in columns:
            if isinstance(col, Num):
                for b in col.before:
                    out[:, pos] = b
                    pos += 1
                _put_digits(out, pos, col.values[lo:hi], ws[k], col.hex)
                pos += ws[k]
                k += 1
                for b in col.after:
                    out[:, pos] = b
                    pos += 1
            else:
                width = col.table.shape[1]
                out[:, pos:pos + width] = col.table[col.codes[lo:hi]]
                pos += width
        pieces.append(out)
    return pieces
