"""Decoding kpageflags words with numpy: page-types' views, PG_anon_exclusive, summaries.

Arrays in, arrays out; no I/O (reading is :mod:`anonex.pagetypes.kpage`). The pieces:

* :func:`well_known` and :func:`expand_overloaded` - the word as page-types shows it
  without and with ``-r`` (:func:`view` picks one);
* :func:`filter_mask` - the ``-b`` filters over an array;
* :func:`anon_states` / :func:`page_info` / :func:`exclusive_of` - what kpageflags says
  about PG_anon_exclusive (bit 34 ``OWNER_2`` on an anonymous, non-KSM page). Since v6.10
  every page of a large folio reports the *head* page's flags, so for a tail page of a
  large anonymous folio that is not known to be mapped as a whole (one PMD, or hugetlb) the
  state is :data:`UNKNOWN`. Slab pages whose ``slab`` fields overlap ``folio->mapping``
  can carry the anonymous bit; they are :data:`SLAB_ANON`, never anonymous;
* :class:`FlagCounts` and :func:`summarize` - pages per distinct flag word, in the row order
  page-types prints (its 8192-slot hash table, filled in order of first appearance).

Counting works on runs of equal words (neighbouring PFNs mostly share their flags), so a
whole machine's 6.5 million words reduce to some ten thousand runs before any sort.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from anonex.kernel.versions import Rules
from anonex.pagetypes import names as nm
from anonex.procfs import kpageflags as kpf
from anonex.procfs import pagemap as pm
from anonex.versions import KernelVersion

Words = NDArray[np.uint64]
Bools = NDArray[np.bool_]

PAGE_SIZE = mmap.PAGESIZE


def _b(bit: int) -> np.uint64:
    return np.uint64(1 << bit)


ANON = _b(kpf.KPF_ANON)
SLAB = _b(kpf.KPF_SLAB)
KSM = _b(kpf.KPF_KSM)
HUGE = _b(kpf.KPF_HUGE)
THP = _b(kpf.KPF_THP)
HEAD = _b(kpf.KPF_COMPOUND_HEAD)
TAIL = _b(kpf.KPF_COMPOUND_TAIL)
ZERO = _b(kpf.KPF_ZERO_PAGE)
SWAPCACHE = _b(kpf.KPF_SWAPCACHE)
OWNER_2 = _b(kpf.KPF_OWNER_2)
ANON_EXCLUSIVE = _b(kpf.bit("ANON_EXCLUSIVE"))
ACTIVE = _b(kpf.KPF_ACTIVE)
ERROR = _b(kpf.bit("ERROR"))
SLUB_FROZEN = _b(kpf.bit("SLUB_FROZEN"))
SLUB_DEBUG = _b(kpf.bit("SLUB_DEBUG"))
RECLAIM = _b(kpf.bit("RECLAIM"))
WRITEBACK = _b(kpf.bit("WRITEBACK"))
READAHEAD = _b(kpf.bit("READAHEAD"))
SOFTDIRTY = _b(kpf.bit("SOFTDIRTY"))
FILE = _b(kpf.bit("FILE"))
SWAP = _b(kpf.bit("SWAP"))
MMAP_EXCLUSIVE = _b(kpf.bit("MMAP_EXCLUSIVE"))
COMPOUND = HEAD | TAIL
_ZERO64 = np.uint64(0)


def words(a: ArrayLike) -> Words:
    """*a* as a 1-D array of native unsigned 64-bit words (no copy when it already is)."""
    return np.ascontiguousarray(np.asarray(a).astype(np.uint64, copy=False)).reshape(-1)


def _bit(w: Words, mask: np.uint64) -> Words:
    """1 where *mask* (a single bit) is set in *w*, else 0."""
    return (w >> np.uint64(int(mask).bit_length() - 1)) & np.uint64(1)


# -- page-types' view of a word --------------------------------------------------------------


def well_known(w: ArrayLike) -> Words:
    """The word without ``-r``: kernel-hacker bits 32-47 hidden, and the compound bits
    hidden except on hugetlb pages."""
    a = words(w) & np.uint64(~nm.HACKER_BITS & nm.U64)
    not_huge = np.uint64(1) - _bit(a, HUGE)
    return a & ~(not_huge * COMPOUND)


def expand_overloaded(w: ArrayLike, pme: ArrayLike | None = None) -> Words:
    """The word with ``-r``: overloaded bits moved to page-types' own slots.

    * anonymous + OWNER_2 (bit 34) -> anon_exclusive (bit 47);
    * on slab pages: active -> slub_frozen (50), error -> slub_debug (51);
    * reclaim without writeback -> readahead (48);
    * from the pagemap entry *pme* (process walks): soft-dirty -> softdirty (40),
      file -> file (61), swap -> swap (62), exclusively mapped -> mmap_exclusive (63).
    """
    a = words(w).copy()
    a ^= (_bit(a, ANON) & _bit(a, OWNER_2)) * (OWNER_2 | ANON_EXCLUSIVE)
    slab = _bit(a, SLAB)
    a ^= (slab & _bit(a, ACTIVE)) * (ACTIVE | SLUB_FROZEN)
    a ^= (slab & _bit(a, ERROR)) * (ERROR | SLUB_DEBUG)
    a ^= (_bit(a, RECLAIM) & (np.uint64(1) - _bit(a, WRITEBACK))) * (RECLAIM | READAHEAD)
    if pme is not None:
        e = words(pme)
        a |= _bit(e, np.uint64(pm.PM_SOFT_DIRTY)) * SOFTDIRTY
        a |= _bit(e, np.uint64(pm.PM_FILE)) * FILE
        a |= _bit(e, np.uint64(pm.PM_SWAP)) * SWAP
        a |= _bit(e, np.uint64(pm.PM_MMAP_EXCLUSIVE)) * MMAP_EXCLUSIVE
    return a


def view(w: ArrayLike, pme: ArrayLike | None = None, *, raw: bool = False) -> Words:
    """The words as page-types shows them: :func:`expand_overloaded` with *raw*, else
    :func:`well_known` (which ignores *pme*, as page-types does)."""
    return expand_overloaded(w, pme) if raw else well_known(w)


def view_one(word: int, pme: int = 0, *, raw: bool = False) -> int:
    """:func:`view` of a single word."""
    return int(view(np.array([word], dtype=np.uint64),
                    np.array([pme], dtype=np.uint64) if raw and pme else None, raw=raw)[0])


def filter_mask(w: Words, filters: Sequence[tuple[int, int]]) -> Bools:
    """Which words pass every ``-b`` filter ``(mask, bits)`` (see
    :func:`anonex.pagetypes.names.parse_bits_spec`)."""
    ok = np.ones(len(w), dtype=np.bool_)
    for mask, bits in filters:
        m = w & np.uint64(mask)
        if bits == nm.ALL_BITS:
            ok &= m != _ZERO64
        else:
            ok &= m == np.uint64(bits)
    return ok


# -- PG_anon_exclusive -----------------------------------------------------------------------

#: :func:`anon_states` codes.
NOT_ANON, EXCLUSIVE, NOT_EXCLUSIVE, UNKNOWN, SLAB_ANON = 0, 1, 2, 3, 4
STATE_NAMES = ("not_anon", "exclusive", "not_exclusive", "unknown", "slab_anon")


def anon_states(w: ArrayLike, whole: ArrayLike | bool | None = None, *,
                head_mirrored: bool = True) -> NDArray[np.int8]:
    """What kpageflags says about each page's PG_anon_exclusive, as a code per word:

    * :data:`NOT_ANON` - no anonymous bit (page cache, free, kernel, zero page …);
    * :data:`SLAB_ANON` - a slab page with the anonymous bit (slab fields overlap
      ``folio->mapping``): not an anonymous page;
    * :data:`EXCLUSIVE` / :data:`NOT_EXCLUSIVE` - bit 34 of an anonymous page; KSM pages
      are never exclusive;
    * :data:`UNKNOWN` - a tail page of a large anonymous folio (THP, mTHP) that is not
      known to be mapped as a whole: with *head_mirrored* (kernels 6.10+) kpageflags
      reports the head page's bit for it, not its own.

    *whole* marks pages known to be mapped as a whole by one PMD (per word, or one value
    for all); hugetlb pages always are. Head pages and small pages show their own bit.
    """
    a = words(w)
    anon = (a & ANON) != _ZERO64
    slab = (a & SLAB) != _ZERO64
    own = ((a & OWNER_2) != _ZERO64) & ((a & KSM) == _ZERO64)
    st = np.zeros(len(a), dtype=np.int8)
    st[anon & slab] = SLAB_ANON
    real = anon & ~slab
    st[real & own] = EXCLUSIVE
    st[real & ~own] = NOT_EXCLUSIVE
    if head_mirrored:
        tail = ((a & TAIL) != _ZERO64) & ((a & HUGE) == _ZERO64) & ((a & KSM) == _ZERO64)
        if whole is not None:
            tail &= ~np.asarray(whole, dtype=np.bool_)
        st[real & tail] = UNKNOWN
    return st


def exclusive_of(word: int, *, whole: bool = False, head_mirrored: bool = True) -> bool | None:
    """PG_anon_exclusive of one page as far as kpageflags tells: ``True``/``False``, or
    ``None`` when unknown (see :func:`anon_states`). Pages that are not anonymous (and
    slab pages with the anonymous bit) are ``False``."""
    st = int(anon_states(np.array([word], dtype=np.uint64), whole,
                         head_mirrored=head_mirrored)[0])
    if st == UNKNOWN:
        return None
    return st == EXCLUSIVE


@dataclass(frozen=True, slots=True)
class PageInfo:
    """Per-page facts decoded from kpageflags words (one entry per input word)."""

    anon: Bools
    ksm: Bools
    thp: Bools
    huge: Bools
    zero: Bools
    slab: Bools
    swapcache: Bools
    head: Bools
    tail: Bools
    #: :func:`anon_states` codes
    state: NDArray[np.int8]

    @property
    def exclusive(self) -> Bools:
        return np.asarray(self.state == EXCLUSIVE, dtype=np.bool_)

    @property
    def unknown(self) -> Bools:
        return np.asarray(self.state == UNKNOWN, dtype=np.bool_)


def page_info(w: ArrayLike, whole: ArrayLike | bool | None = None, *,
              head_mirrored: bool = True) -> PageInfo:
    """Decode kpageflags words into :class:`PageInfo` (anonymous = anonymous bit and not
    slab)."""
    a = words(w)

    def has(mask: np.uint64) -> Bools:
        return np.asarray((a & mask) != _ZERO64, dtype=np.bool_)

    slab = has(SLAB)
    return PageInfo(anon=has(ANON) & ~slab, ksm=has(KSM), thp=has(THP), huge=has(HUGE),
                    zero=has(ZERO), slab=slab, swapcache=has(SWAPCACHE), head=has(HEAD),
                    tail=has(TAIL),
                    state=anon_states(a, whole, head_mirrored=head_mirrored))


def head_mirrored_for(release: str) -> bool:
    """Whether a kernel of this ``uname -r`` release reports a large folio's head flags
    for every page (rule ``kpageflags_from_head`` of the version table). Unparseable
    releases count as yes."""
    try:
        version = KernelVersion.parse(release)
    except ValueError:
        return True
    return Rules(version).kpageflags_from_head


# -- summaries ---------------------------------------------------------------------------------


def runs(w: Words) -> tuple[NDArray[np.intp], NDArray[np.int64], Words]:
    """Runs of equal neighbouring words: ``(starts, lengths, values)``."""
    n = len(w)
    if n == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    starts = np.flatnonzero(w[1:] != w[:-1]) + 1
    starts = np.concatenate((np.zeros(1, dtype=starts.dtype), starts))
    lengths = np.diff(np.append(starts, n)).astype(np.int64)
    return starts, lengths, w[starts]


def distinct(w: Words) -> tuple[Words, NDArray[np.int64], NDArray[np.int64]]:
    """The distinct words of *w*: ``(values, counts, first index)``, values ascending."""
    starts, lengths, vals = runs(w)
    return distinct_runs(starts, lengths, vals)


def distinct_runs(starts: NDArray[Any], lengths: NDArray[np.int64],
                  vals: Words) -> tuple[Words, NDArray[np.int64], NDArray[np.int64]]:
    """:func:`distinct` from runs already found."""
    if len(vals) == 0:
        return vals, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    u, first, inv = np.unique(vals, return_index=True, return_inverse=True)
    counts = np.bincount(inv.reshape(-1), weights=lengths, minlength=len(u))
    return u, np.rint(counts).astype(np.int64), np.asarray(starts)[first].astype(np.int64)


HASH_SLOTS = 1 << 13


@dataclass
class FlagCounts:
    """Pages per distinct (shown) flag word, remembering where each word first appeared.

    page-types prints its rows in the order of a 8192-slot open-addressing hash table
    keyed on the low 13 bits and filled in order of first appearance; :meth:`rows`
    replays that (words beyond the table's capacity, where page-types gives up, follow in
    order of first appearance)."""

    counts: dict[int, list[int]] = field(default_factory=dict)
    total: int = 0

    def add(self, values: Iterable[int], counts: Iterable[int], firsts: Iterable[int]) -> None:
        """Add *counts* pages of each of *values*, first seen at positions *firsts*."""
        for v, c, f in zip(values, counts, firsts, strict=True):
            c = int(c)
            if c <= 0:
                continue
            e = self.counts.get(int(v))
            if e is None:
                self.counts[int(v)] = [c, int(f)]
            else:
                e[0] += c
                if f < e[1]:
                    e[1] = int(f)
            self.total += c

    def add_words(self, w: Words, base: int = 0) -> None:
        """Count every word of *w*; *w[0]* is at walk position *base*."""
        u, c, f = distinct(w)
        self.add(u.tolist(), c.tolist(), (f + base).tolist())

    def rows(self) -> list[tuple[int, int]]:
        """``(flags, pages)`` in page-types' order."""
        order = sorted(self.counts, key=lambda v: self.counts[v][1])
        table = [0] * HASH_SLOTS
        used = [False] * HASH_SLOTS
        overflow: list[int] = []
        for v in order:
            if v == 0:
                used[0] = True
                continue
            k = v & (HASH_SLOTS - 1)
            for _ in range(1, HASH_SLOTS):
                if k == 0 or k >= HASH_SLOTS:
                    k = 1
                if not used[k]:
                    used[k] = True
                    table[k] = v
                    break
                k += 1
            else:
                overflow.append(v)
        out = [(table[k], self.counts[table[k]][0]) for k in range(HASH_SLOTS) if used[k]]
        out.extend((v, self.counts[v][0]) for v in overflow)
        return out


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One row of the summary: a shown flag word and how many pages have it."""

    flags: int
    pages: int

    @property
    def mb(self) -> int:
        return (self.pages * PAGE_SIZE) >> 20

    @property
    def symbolic(self) -> str:
        return nm.symbolic(self.flags)

    @property
    def long_names(self) -> str:
        return nm.long_names(self.flags)

    def json(self) -> dict[str, Any]:
        return {"flags": f"0x{self.flags:016x}", "value": self.flags, "pages": self.pages,
                "mb": self.mb, "symbolic": _symbolic_or_none(self.flags),
                "names": nm.names_of(self.flags), "unnamed_bits": nm.unnamed_bits(self.flags)}


def _symbolic_or_none(word: int) -> str | None:
    try:
        return nm.symbolic(word)
    except nm.UnnamedBit:
        return None


def summarize(w: ArrayLike, pme: ArrayLike | None = None, *, raw: bool = False,
              filters: Sequence[tuple[int, int]] = ()) -> list[SummaryRow]:
    """page-types' summary of kpageflags words *w* (in walk order): the rows it would print
    for these pages, with ``-r`` when *raw*, after the ``-b`` *filters*."""
    a = words(w)
    counts = FlagCounts()
    if pme is None:
        starts, lengths, vals = runs(a)
        u, c, f = distinct_runs(starts, lengths, vals)
        shown = view(u, raw=raw)
        ok = filter_mask(shown, filters)
        counts.add(shown[ok].tolist(), c[ok].tolist(), f[ok].tolist())
    else:
        shown = view(a, pme, raw=raw)
        ok = filter_mask(shown, filters)
        idx = np.flatnonzero(ok)
        u, c, f = distinct(shown[ok])
        counts.add(u.tolist(), c.tolist(), idx[f].tolist())
    return [SummaryRow(v, n) for v, n in counts.rows()]
