"""Folios and pages: reference counts, mapcounts, pins, anon mapping and freeing.

Models the parts of ``struct folio``/``struct page`` (include/linux/mm_types.h,
include/linux/mm.h) that exclusivity depends on:

* ``refcount``: one per mapping, per FOLL_GET reference (pipes), per swap-cache entry, and
  ``GUP_PIN_COUNTING_BIAS`` (1024) per FOLL_PIN of a small folio; a large folio counts a pin
  as 1 and keeps ``pincount`` instead.
* per page ``mapcount`` (the kernel's ``_mapcount + 1``), and for large folios
  ``entire_mapcount`` (PMD mappings) and ``large_mapcount``.
* ``anon``/``ksm`` (``folio->mapping`` type), the shared zero page, ``hugetlb``.
* ``data``: the tag a page holds (what user space would read), per page.

Freeing (``free_pages_prepare``) clears every flag bit of every page, PG_anon_exclusive
included. Pages are numbered in order of allocation; that number is their identity.
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.errors import KernelBug

GUP_PIN_COUNTING_BIAS = 1024


class Page:
    """One ``struct page``: its flag word, its own mapcount and its contents."""

    __slots__ = ("data", "flags", "folio", "index", "mapcount")

    def __init__(self, folio: Folio, index: int, flags: int = 0, mapcount: int = 0,
                 data: str = "") -> None:
        self.folio = folio
        self.index = index
        self.flags = flags
        self.mapcount = mapcount
        self.data = data

    @property
    def name(self) -> str:
        f = self.folio
        return f"pfn#{f.pfn}" if f.order == 0 else f"pfn#{f.pfn}+{self.index}"


class Folio:
    """A ``struct folio``: one or more pages with shared reference counts."""

    __slots__ = ("anon", "entire_mapcount", "freed", "hugetlb", "ksm", "large_mapcount",
                 "layout", "mm_counts", "mm_shared", "order", "pages", "pfn", "pincount",
                 "refcount", "swap", "zero")

    def __init__(self, pfn: int, order: int = 0,
                 layout: pf.Layout = pf.CURRENT_LAYOUT, pages: bool = True) -> None:
        """*pages*: make the folio's pages (a copy of a folio brings its own)."""
        self.pfn = pfn
        self.layout = layout
        self.order = order
        self.pages = [Page(self, i) for i in range(1 << order)] if pages else []
        self.refcount = 0
        self.pincount = 0
        self.entire_mapcount = 0
        self.large_mapcount = 0
        self.anon = False
        self.ksm = False
        self.hugetlb = False
        self.zero = False
        self.freed = False
        self.swap: int | None = None  # swap slot while in the swap cache
        # large folios (6.15+ CONFIG_MM_ID): two (mm id, mapcount) slots and the shared bit
        self.mm_counts: dict[str, int] = {}
        self.mm_shared = False

    @property
    def large(self) -> bool:
        return self.order > 0

    @property
    def nr(self) -> int:
        return 1 << self.order

    def test(self, name: pf.PageFlagName) -> bool:
        """``folio_test_X()``: the head page's flag (second page for PF_SECOND flags)."""
        return pf.test_page_flag(self.pages[0], name)

    def mapcount_total(self) -> int:
        """``folio_mapcount()``."""
        if self.large:
            return self.large_mapcount
        return self.pages[0].mapcount

    def maybe_mapped_shared(self) -> bool:
        """``folio_maybe_mapped_shared()`` for a large folio: the MM-ID shared bit."""
        return self.mm_shared

    def mm_add(self, mm: str, n: int = 1) -> None:
        """``folio_add_return_large_mapcount()``'s MM-ID part, after large_mapcount grew
        by *n*: count in this mm's slot, take a free slot (the folio becomes "maybe shared"
        if it was mapped already), or, with both slots taken by others, set the bit."""
        if not self.large:
            return
        before = self.large_mapcount - n
        if mm in self.mm_counts:
            self.mm_counts[mm] += n
        elif len(self.mm_counts) < 2:
            self.mm_counts[mm] = n
            if before > 0:
                self.mm_shared = True
        else:
            self.mm_shared = True

    def mm_sub(self, mm: str, n: int = 1) -> None:
        """``folio_sub_return_large_mapcount()``'s MM-ID part, after large_mapcount shrank:
        the slot's count drops (an empty slot is freed), and the shared bit clears once one
        slot owns every remaining mapping."""
        if not self.large:
            return
        if mm in self.mm_counts:
            self.mm_counts[mm] -= n
            if self.mm_counts[mm] <= 0:
                del self.mm_counts[mm]
        if self.mm_shared and (self.large_mapcount == 0 or any(
                c == self.large_mapcount for c in self.mm_counts.values())):
            self.mm_shared = False


def folio_has_pincount(folio: Folio) -> bool:
    """``folio_has_pincount()``: on 64-bit every large folio keeps a separate pincount."""
    return folio.large


def folio_maybe_dma_pinned(folio: Folio) -> bool:
    """``folio_maybe_dma_pinned()`` (include/linux/mm.h): a small folio with >= 1024
    references looks pinned (false positives are allowed, false negatives are not)."""
    if folio_has_pincount(folio):
        return folio.pincount > 0
    return folio.refcount >= GUP_PIN_COUNTING_BIAS


def folio_precise_page_mapcount(page: Page) -> int:
    """``folio_precise_page_mapcount()``: the page's PTE mappings plus PMD mappings."""
    return page.mapcount + page.folio.entire_mapcount


def page_mapcount(page: Page) -> int:
    """The per-page mapcount older kernels' reuse rules looked at."""
    return folio_precise_page_mapcount(page)


def free_pages_prepare(folio: Folio, keep_exclusive: bool = False) -> None:
    """``free_pages_prepare()`` (mm/page_alloc.c): clear every page's flags, mark it free.

    Under the v1 layout the RFC clears PG_anon_exclusive explicitly *before*
    ``page->mapping`` goes, since a stale bit on a page that is no longer anon reads as
    PG_slab; *keep_exclusive* is the injected fault of a free path that forgets to. Then
    ``check_free_page`` catches the PG_slab bit of the non-anon page as a bad page.
    """
    lay = folio.layout
    if lay.name == "slab" and folio.anon and keep_exclusive:
        folio.anon = False  # page->mapping cleared with the bit still set
        for p in folio.pages:
            if pf.PageSlab(p) and not p.index:
                raise KernelBug("bad_page(): PAGE_FLAGS_CHECK_AT_FREE flag(s) set "
                                "(PG_slab: a stale PG_anon_exclusive, a PageSlab() false "
                                "positive)", p.name, "free_pages_prepare")
    for p in folio.pages:
        if not keep_exclusive or lay.name != "slab":
            p.flags &= ~lay.prep_mask
        p.mapcount = 0
    folio.anon = False
    folio.ksm = False
    folio.freed = True
    folio.mm_counts.clear()
    folio.mm_shared = False
