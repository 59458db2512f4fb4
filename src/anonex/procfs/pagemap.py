"""``/proc/PID/pagemap`` entries: bit constants and pure decoding/encoding.

One 64-bit entry per virtual page (fs/proc/task_mmu.c):

* bits 0-54: the PFN of a present page (0 without CAP_SYS_ADMIN); for a swapped entry
  bits 0-4 are the swap type and bits 5-54 the swap offset;
* 55 soft-dirty, 56 "exclusively mapped" (precise mapcount == 1 under
  CONFIG_PAGE_MAPCOUNT; *not* PG_anon_exclusive), 57 uffd-wp, 58 guard region (6.15+),
  61 file page or shared anon, 62 swapped (any non-present, non-none entry), 63 present.

Pure functions only (no I/O), shared by the live backend and the model. Nothing here fails.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

PM_ENTRY_BYTES = 8

PM_PFN_BITS = 55
PM_PFN_MASK = (1 << PM_PFN_BITS) - 1
PM_SWAP_TYPE_BITS = 5
PM_SWAP_TYPE_MASK = (1 << PM_SWAP_TYPE_BITS) - 1

PM_SOFT_DIRTY = 1 << 55
PM_MMAP_EXCLUSIVE = 1 << 56
PM_UFFD_WP = 1 << 57
PM_GUARD_REGION = 1 << 58
PM_FILE = 1 << 61
PM_SWAP = 1 << 62
PM_PRESENT = 1 << 63

PmState = Literal["present", "swapped", "none"]


@dataclass(frozen=True, slots=True)
class PagemapEntry:
    """One decoded pagemap entry."""

    raw: int

    @property
    def present(self) -> bool:
        return bool(self.raw & PM_PRESENT)

    @property
    def swapped(self) -> bool:
        return bool(self.raw & PM_SWAP)

    @property
    def state(self) -> PmState:
        """``present`` (bit 63, PROT_NONE PTEs included), ``swapped`` (bit 62) or ``none``."""
        if self.present:
            return "present"
        if self.swapped:
            return "swapped"
        return "none"

    @property
    def pfn(self) -> int | None:
        """The PFN of a present page (``None`` otherwise; 0 means the reader lacked rights)."""
        return self.raw & PM_PFN_MASK if self.present else None

    @property
    def swap_type(self) -> int | None:
        return self.raw & PM_SWAP_TYPE_MASK if self.swapped and not self.present else None

    @property
    def swap_offset(self) -> int | None:
        if not self.swapped or self.present:
            return None
        return (self.raw & PM_PFN_MASK) >> PM_SWAP_TYPE_BITS

    @property
    def mmap_exclusive(self) -> bool:
        """Bit 56: the page is mapped exactly once (a mapcount fact, not PG_anon_exclusive)."""
        return bool(self.raw & PM_MMAP_EXCLUSIVE)

    @property
    def file(self) -> bool:
        return bool(self.raw & PM_FILE)

    @property
    def soft_dirty(self) -> bool:
        return bool(self.raw & PM_SOFT_DIRTY)

    @property
    def uffd_wp(self) -> bool:
        return bool(self.raw & PM_UFFD_WP)

    @property
    def guard(self) -> bool:
        return bool(self.raw & PM_GUARD_REGION)


def decode(raw: int) -> PagemapEntry:
    """Decode one 64-bit pagemap entry."""
    return PagemapEntry(raw & 0xFFFF_FFFF_FFFF_FFFF)


def decode_bytes(data: bytes) -> list[PagemapEntry]:
    """Decode consecutive little-endian entries (a pread of ``8 * n`` bytes)."""
    n = len(data) // PM_ENTRY_BYTES
    return [decode(int.from_bytes(data[i * 8:(i + 1) * 8], "little")) for i in range(n)]


def encode_present(pfn: int, *, mmap_exclusive: bool = False, file: bool = False,
                   soft_dirty: bool = False, uffd_wp: bool = False) -> int:
    """The entry of a present page (as the kernel would report it to CAP_SYS_ADMIN)."""
    raw = PM_PRESENT | (pfn & PM_PFN_MASK)
    raw |= PM_MMAP_EXCLUSIVE if mmap_exclusive else 0
    raw |= PM_FILE if file else 0
    raw |= PM_SOFT_DIRTY if soft_dirty else 0
    raw |= PM_UFFD_WP if uffd_wp else 0
    return raw


def encode_swap(swap_type: int, offset: int, *, soft_dirty: bool = False,
                uffd_wp: bool = False) -> int:
    """The entry of a swapped-out page (never carries bit 56)."""
    raw = PM_SWAP | (swap_type & PM_SWAP_TYPE_MASK)
    raw |= (offset << PM_SWAP_TYPE_BITS) & PM_PFN_MASK
    raw |= PM_SOFT_DIRTY if soft_dirty else 0
    raw |= PM_UFFD_WP if uffd_wp else 0
    return raw


# -- PAGEMAP_SCAN (ioctl on a pagemap file, 6.7+) ---------------------------------------------
#
# ``ioctl(pagemap_fd, PAGEMAP_SCAN, struct pm_scan_arg *)`` walks the page tables of the
# file's mm and returns ``struct page_region`` runs ``{start, end, categories}``. Without the
# write-protect flags it changes nothing. ``PAGE_IS_HUGE`` marks entries mapped at PMD level
# (a PMD-mapped THP) and hugetlb entries, which pagemap itself cannot tell from PTEs.

PAGE_IS_WPALLOWED = 1 << 0
PAGE_IS_WRITTEN = 1 << 1
PAGE_IS_FILE = 1 << 2
PAGE_IS_PRESENT = 1 << 3
PAGE_IS_SWAPPED = 1 << 4
PAGE_IS_PFNZERO = 1 << 5
PAGE_IS_HUGE = 1 << 6

PM_SCAN_ARG_SIZE = 96  # struct pm_scan_arg: twelve __u64
PAGE_REGION_SIZE = 24  # struct page_region: start, end, categories
#: _IOWR('f', 16, struct pm_scan_arg)
PAGEMAP_SCAN = (3 << 30) | (PM_SCAN_ARG_SIZE << 16) | (ord("f") << 8) | 16


def encode_scan_arg(start: int, end: int, vec: int, vec_len: int, *, category_mask: int = 0,
                    anyof_mask: int = 0, return_mask: int = PAGE_IS_HUGE) -> bytes:
    """A ``struct pm_scan_arg`` for ``[start, end)`` writing up to *vec_len* regions at
    address *vec* (no write-protect flags: the scan only reads)."""
    return struct.pack("<12Q", PM_SCAN_ARG_SIZE, 0, start, end, 0, vec, vec_len, 0, 0,
                       category_mask, anyof_mask, return_mask)


def decode_regions(data: bytes, count: int) -> list[tuple[int, int, int]]:
    """The first *count* ``struct page_region`` entries of *data* as (start, end, categories)."""
    out: list[tuple[int, int, int]] = []
    for i in range(count):
        start, end, cats = struct.unpack_from("<3Q", data, i * PAGE_REGION_SIZE)
        out.append((start, end, cats))
    return out
