"""Reverse mapping of anon pages and the two primitives that clear PG_anon_exclusive.

Models mm/rmap.c and include/linux/rmap.h. Adding a mapping may set the flag (with
``RMAP_EXCLUSIVE``) but never clears it. The flag is cleared only by:

* :func:`folio_try_dup_anon_rmap_pte` (fork): fails with ``-EBUSY`` when the page is
  exclusive, the source mm has ``MMF_HAS_PINNED`` and the folio may be pinned; fork then
  copies the page for the child;
* :func:`folio_try_share_anon_rmap_pte` (swap-out, migration, KSM), called after the PTE was
  cleared: fails while the folio may be pinned, whatever the mm's flag says.
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.errors import KernelBug
from anonex.kernel.folio import Folio, Page, folio_maybe_dma_pinned
from anonex.kernel.state import MM, Kernel

RMAP_NONE = 0
RMAP_EXCLUSIVE = 1
EBUSY = -16


def folio_add_new_anon_rmap(k: Kernel, folio: Folio, rmap_flags: int) -> None:
    """``folio_add_new_anon_rmap()``: first mapping of a brand-new anon folio.

    Marks it swap-backed and anon; a small folio's page gets mapcount 1 and, with
    ``RMAP_EXCLUSIVE`` (5.19+), PG_anon_exclusive.
    """
    folio.anon = True
    pf.set_page_flag(folio.pages[0], "swapbacked")
    if folio.large:
        raise NotImplementedError("large folios: next issue")
    page = folio.pages[0]
    page.mapcount = 1
    if rmap_flags & RMAP_EXCLUSIVE and k.rules.anon_exclusive:
        pf.SetPageAnonExclusive(page)


def folio_add_anon_rmap_pte(k: Kernel, folio: Folio, page: Page, rmap_flags: int) -> None:
    """``folio_add_anon_rmap_pte()``: one more PTE mapping; sets the flag with
    ``RMAP_EXCLUSIVE`` and leaves it alone otherwise."""
    if rmap_flags & RMAP_EXCLUSIVE and page.mapcount > 0 and k.rules.anon_exclusive:
        raise KernelBug("VM_WARN: exclusive anon page with _mapcount > 0 "
                        "(__folio_add_anon_rmap)", page.name)
    page.mapcount += 1
    if folio.large:
        folio.large_mapcount += 1
    if rmap_flags & RMAP_EXCLUSIVE and k.rules.anon_exclusive:
        pf.SetPageAnonExclusive(page)


def folio_remove_rmap_pte(folio: Folio, page: Page) -> None:
    """``folio_remove_rmap_pte()``: one PTE mapping fewer. The flag is not touched."""
    if page.mapcount <= 0:
        raise KernelBug("VM_BUG_ON_PAGE(page_mapcount(page) < 0) in folio_remove_rmap_pte",
                        page.name)
    page.mapcount -= 1
    if folio.large:
        folio.large_mapcount -= 1


def folio_needs_cow_for_dma(src_mm: MM, folio: Folio) -> bool:
    """``folio_needs_cow_for_dma()``: MMF_HAS_PINNED and the folio may be pinned."""
    return src_mm.has_pinned and folio_maybe_dma_pinned(folio)


def folio_try_dup_anon_rmap_pte(k: Kernel, folio: Folio, page: Page, src_mm: MM) -> int:
    """``folio_try_dup_anon_rmap_pte()`` → ``__folio_try_dup_anon_rmap()`` (rmap.h), PTE level.

    Returns ``-EBUSY`` (nothing changed) for an exclusive page of a maybe-pinned folio in an
    mm that has pinned; otherwise clears the flag and counts the child's mapping. Before
    5.19 there is no flag: 5.9+ refuses a maybe-pinned page the same way
    (``page_needs_cow_for_dma``), older kernels never refuse.
    """
    if k.rules.anon_exclusive:
        exclusive = pf.PageAnonExclusive(page)
        if exclusive and folio_needs_cow_for_dma(src_mm, folio):
            return EBUSY
        if exclusive:
            pf.ClearPageAnonExclusive(page)
    elif k.rules.fork_copies_pinned and folio_needs_cow_for_dma(src_mm, folio):
        return EBUSY
    page.mapcount += 1
    if folio.large:
        folio.large_mapcount += 1
    return 0


def folio_try_share_anon_rmap_pte(k: Kernel, folio: Folio, page: Page) -> int:
    """``folio_try_share_anon_rmap_pte()`` → ``__folio_try_share_anon_rmap()`` (rmap.h).

    Called with an exclusive page whose PTE is already cleared. Fails with ``-EBUSY`` while
    the folio may be pinned (no MMF_HAS_PINNED test here), else clears the flag.
    """
    if not pf.PageAnonExclusive(page):
        raise KernelBug("VM_WARN_ON_FOLIO(!PageAnonExclusive(page)) in "
                        "__folio_try_share_anon_rmap", page.name)
    if folio_maybe_dma_pinned(folio):
        return EBUSY
    pf.ClearPageAnonExclusive(page)
    return 0


def folio_move_anon_rmap(folio: Folio) -> None:
    """``folio_move_anon_rmap()``: move the folio to the faulting VMA's anon_vma.

    It does not set PG_anon_exclusive (since 6.x; 5.19's ``page_move_anon_rmap`` did); the
    callers set it. The model has one anon_vma per VMA, so nothing else changes.
    """
    del folio
