"""``/proc/kpageflags`` and ``/proc/kpagecount``: bit numbers, names and pure decoding.

One table, :data:`KPF_TABLE`, lists every bit user space can meet in a kpageflags word:
the kernel's public bits (``include/uapi/linux/kernel-page-flags.h``), its kernel-hacker
bits (``include/linux/kernel-page-flags.h``) and the slots ``tools/mm/page-types`` uses
for overloaded and pagemap-derived flags (47 and up, not kernel ABI). Each row carries the
kernel's name, page-types' one-letter code and long name, and what the bit means.

Everything here is pure (no I/O), so the model can use it to *encode* a kpageflags word and
the live backend to *decode* one. Nothing here fails except :func:`bit` on an unknown name
(``KeyError``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

KpfKind = Literal["public", "hacker", "tool"]


@dataclass(frozen=True, slots=True)
class KpfBit:
    """One bit of a kpageflags word.

    ``name`` is the kernel's ``KPF_<name>``; ``letter`` and ``tool_name`` are page-types'
    ``"letter:tool_name"`` (``None`` where page-types has no entry); ``kind`` says whether
    the kernel exports it as ABI (``public``), as a kernel-hacker bit (``hacker``, shown by
    page-types only with ``-r``), or whether only page-types assigns it (``tool``).
    """

    bit: int
    name: str
    letter: str | None
    tool_name: str | None
    kind: KpfKind
    meaning: str


KPF_TABLE: tuple[KpfBit, ...] = (
    KpfBit(0, "LOCKED", "L", "locked", "public", "folio lock held (PG_locked)"),
    KpfBit(1, "ERROR", "E", "error", "public", "I/O error (PG_error; no longer set)"),
    KpfBit(2, "REFERENCED", "R", "referenced", "public", "recently referenced (PG_referenced)"),
    KpfBit(3, "UPTODATE", "U", "uptodate", "public", "contents valid (PG_uptodate)"),
    KpfBit(4, "DIRTY", "D", "dirty", "public", "needs writeback (PG_dirty)"),
    KpfBit(5, "LRU", "l", "lru", "public", "on an LRU list (flips with per-CPU LRU batches)"),
    KpfBit(6, "ACTIVE", "A", "active", "public", "on the active LRU list"),
    KpfBit(7, "SLAB", "S", "slab", "public", "slab page"),
    KpfBit(8, "WRITEBACK", "W", "writeback", "public", "under writeback"),
    KpfBit(9, "RECLAIM", "I", "reclaim", "public", "reclaim after writeback (PG_reclaim)"),
    KpfBit(10, "BUDDY", "B", "buddy", "public", "free, in the buddy allocator"),
    KpfBit(11, "MMAP", "M", "mmap", "public", "mapped into some page table (folio_mapped)"),
    KpfBit(12, "ANON", "a", "anonymous", "public", "anonymous page (mapping has the ANON bit)"),
    KpfBit(13, "SWAPCACHE", "s", "swapcache", "public", "in the swap cache"),
    KpfBit(14, "SWAPBACKED", "b", "swapbacked", "public", "backed by swap/RAM (PG_swapbacked)"),
    KpfBit(15, "COMPOUND_HEAD", "H", "compound_head", "public", "head page of a large folio"),
    KpfBit(16, "COMPOUND_TAIL", "T", "compound_tail", "public", "tail page of a large folio"),
    KpfBit(17, "HUGE", "G", "huge", "public", "hugetlb page"),
    KpfBit(18, "UNEVICTABLE", "u", "unevictable", "public", "on the unevictable list"),
    KpfBit(19, "HWPOISON", "X", "hwpoison", "public", "hardware-poisoned page"),
    KpfBit(20, "NOPAGE", "n", "nopage", "public", "no struct page at this PFN"),
    KpfBit(21, "KSM", "x", "ksm", "public", "KSM-merged page"),
    KpfBit(22, "THP", "t", "thp", "public", "part of a large anon folio (PMD THP or mTHP)"),
    KpfBit(23, "OFFLINE", "o", "offline", "public", "logically offline page"),
    KpfBit(24, "ZERO_PAGE", "z", "zero_page", "public", "the shared zero page (or huge zero page)"),
    KpfBit(25, "IDLE", "i", "idle_page", "public", "idle (page_idle tracking)"),
    KpfBit(26, "PGTABLE", "g", "pgtable", "public", "page-table page"),
    KpfBit(32, "RESERVED", "r", "reserved", "hacker", "PG_reserved"),
    KpfBit(33, "MLOCKED", "m", "mlocked", "hacker", "PG_mlocked"),
    KpfBit(34, "OWNER_2", "d", "owner_2", "hacker",
           "PG_owner_2 (was MAPPEDTODISK); on an anon, non-KSM page: PG_anon_exclusive"),
    KpfBit(35, "PRIVATE", "P", "private", "hacker", "PG_private (fs data attached)"),
    KpfBit(36, "PRIVATE_2", "p", "private_2", "hacker", "PG_private_2"),
    KpfBit(37, "OWNER_PRIVATE", "O", "owner_private", "hacker", "PG_owner_priv_1"),
    KpfBit(38, "ARCH", "h", "arch", "hacker", "PG_arch_1"),
    KpfBit(39, "UNCACHED", None, None, "hacker", "PG_uncached (unused)"),
    KpfBit(40, "SOFTDIRTY", "f", "softdirty", "hacker",
           "soft-dirty (never set by the kernel; page-types fills it from pagemap bit 55)"),
    KpfBit(41, "ARCH_2", "H", "arch_2", "hacker", "PG_arch_2"),
    KpfBit(42, "ARCH_3", None, None, "hacker", "PG_arch_3"),
    KpfBit(47, "ANON_EXCLUSIVE", "d", "anon_exclusive", "tool",
           "page-types: OWNER_2 moved here when ANON is set (-r)"),
    KpfBit(48, "READAHEAD", "I", "readahead", "tool", "page-types: RECLAIM without WRITEBACK"),
    KpfBit(50, "SLUB_FROZEN", "A", "slub_frozen", "tool", "page-types: ACTIVE on a slab page"),
    KpfBit(51, "SLUB_DEBUG", "E", "slub_debug", "tool", "page-types: ERROR on a slab page"),
    KpfBit(61, "FILE", "F", "file", "tool", "page-types: pagemap bit 61 (file/shared page)"),
    KpfBit(62, "SWAP", "w", "swap", "tool", "page-types: pagemap bit 62 (swapped)"),
    KpfBit(63, "MMAP_EXCLUSIVE", "1", "mmap_exclusive", "tool",
           "page-types: pagemap bit 56 (precise mapcount == 1; not exclusivity)"),
)

_BY_NAME: dict[str, KpfBit] = {b.name: b for b in KPF_TABLE}
_BY_BIT: dict[int, KpfBit] = {b.bit: b for b in KPF_TABLE}


def bit(name: str) -> int:
    """The bit number of ``KPF_<name>`` (``KeyError`` if there is none)."""
    return _BY_NAME[name].bit


def info(bitno: int) -> KpfBit | None:
    """The table row of bit *bitno*, if the bit is known."""
    return _BY_BIT.get(bitno)


KPF_LOCKED = bit("LOCKED")
KPF_REFERENCED = bit("REFERENCED")
KPF_DIRTY = bit("DIRTY")
KPF_LRU = bit("LRU")
KPF_ACTIVE = bit("ACTIVE")
KPF_SLAB = bit("SLAB")
KPF_MMAP = bit("MMAP")
KPF_ANON = bit("ANON")
KPF_SWAPCACHE = bit("SWAPCACHE")
KPF_SWAPBACKED = bit("SWAPBACKED")
KPF_COMPOUND_HEAD = bit("COMPOUND_HEAD")
KPF_COMPOUND_TAIL = bit("COMPOUND_TAIL")
KPF_HUGE = bit("HUGE")
KPF_NOPAGE = bit("NOPAGE")
KPF_KSM = bit("KSM")
KPF_THP = bit("THP")
KPF_ZERO_PAGE = bit("ZERO_PAGE")
KPF_OWNER_2 = bit("OWNER_2")
KPF_ANON_EXCLUSIVE_TOOL = bit("ANON_EXCLUSIVE")

#: Bits whose value depends on timing (per-CPU LRU batches, reclaim): ignore when comparing.
KPF_VOLATILE: frozenset[int] = frozenset(
    {KPF_LRU, KPF_ACTIVE, KPF_REFERENCED, KPF_DIRTY, bit("IDLE"), KPF_LOCKED}
)


def has(word: int, bitno: int) -> bool:
    """Whether bit *bitno* is set in the kpageflags *word*."""
    return bool((word >> bitno) & 1)


def encode(names: Iterable[str]) -> int:
    """A kpageflags word with the named bits set (e.g. ``encode(["ANON", "MMAP"])``)."""
    word = 0
    for n in names:
        word |= 1 << bit(n)
    return word


def names(word: int) -> list[str]:
    """The kernel names of the bits set in *word*, lowest first (unknown bits as ``BIT<n>``)."""
    out: list[str] = []
    for b in range(64):
        if has(word, b):
            row = _BY_BIT.get(b)
            out.append(row.name if row is not None else f"BIT{b}")
    return out


def anon_exclusive(word: int) -> bool:
    """PG_anon_exclusive as kpageflags shows it: OWNER_2 on an ANON page that is not KSM.

    (For a page of a large folio, a v6.10+ kernel reports the head page's bit; the caller
    decides whether that is the page's own truth.)
    """
    return has(word, KPF_ANON) and not has(word, KPF_KSM) and has(word, KPF_OWNER_2)


def is_large(word: int) -> bool:
    """Whether the page belongs to a large folio (THP/mTHP, or a compound hugetlb page)."""
    return has(word, KPF_THP) or has(word, KPF_COMPOUND_HEAD) or has(word, KPF_COMPOUND_TAIL)


def letters(word: int) -> str:
    """page-types' flag string for the bits of *word* (``_`` for clear bits), e.g.
    ``___U_lA____Ma_b___________________``. Only bits with a letter get a column."""
    cols = [b for b in KPF_TABLE if b.letter is not None]
    return "".join(b.letter if has(word, b.bit) and b.letter else "_" for b in cols)
