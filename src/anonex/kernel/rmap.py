"""Reverse mapping of anon pages and the two primitives that clear PG_anon_exclusive.

Models mm/rmap.c and include/linux/rmap.h. Adding a mapping may set the flag (with
``RMAP_EXCLUSIVE``) but never clears it: at PTE level on each mapped page, at PMD level on
the head only (a PMD mapping is described by the head's bit), and for hugetlb on the head.
The flag is cleared only by:

* ``folio_try_dup_anon_rmap_*`` (fork): fails with ``-EBUSY`` when the page is exclusive,
  the source mm has ``MMF_HAS_PINNED`` and the folio may be pinned; fork then copies;
* ``folio_try_share_anon_rmap_*`` (swap-out, migration, KSM, THP freeze), called after the
  entry was cleared: fails while the folio may be pinned, whatever the mm's flag says.

``try_to_unmap_one`` (reclaim) is here too; ``try_to_migrate_one`` is with migration
(:mod:`anonex.kernel.migrate`), ``make_device_exclusive`` in :mod:`anonex.kernel.device`.

Large folios count mappings three ways: each page's own ``mapcount`` (PTE mappings),
``entire_mapcount`` (PMD mappings), and ``large_mapcount`` (all of them), plus the per-mm
counts that stand for the MM-ID slots of 6.15+.
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.errors import KernelBug
from anonex.kernel.folio import Folio, Page, folio_maybe_dma_pinned
from anonex.kernel.pgtable import HPAGE_PMD_NR, HPAGE_PMD_ORDER, Pte, SwapPte
from anonex.kernel.state import MM, Kernel

RMAP_NONE = 0
RMAP_EXCLUSIVE = 1
EBUSY = -16


def _new_flag(k: Kernel, rmap_flags: int) -> bool:
    return bool(rmap_flags & RMAP_EXCLUSIVE) and k.rules.anon_exclusive


def folio_add_new_anon_rmap(k: Kernel, folio: Folio, rmap_flags: int, mm: str = "",
                            pmd: bool = False) -> None:
    """``folio_add_new_anon_rmap()``: first mapping of a brand-new anon folio.

    Marks it swap-backed and anon. A small folio's page, or every page of an mTHP, gets
    mapcount 1; a PMD-mapped THP gets entire_mapcount 1. With ``RMAP_EXCLUSIVE`` (5.19+)
    the flag goes on each PTE-mapped page, or on the head of a PMD mapping.
    """
    folio.anon = True
    pf.SetPageSwapBacked(folio.pages[0])
    excl = _new_flag(k, rmap_flags)
    if not folio.large:
        folio.pages[0].mapcount = 1
        if excl:
            pf.SetPageAnonExclusive(folio.pages[0])
        return
    pf.SetPageLargeRmappable(folio.pages[0])
    if pmd and folio.order == HPAGE_PMD_ORDER:
        folio.entire_mapcount = 1
        folio.large_mapcount = 1
        folio.mm_add(mm)
        if excl:
            pf.SetPageAnonExclusive(folio.pages[0])
        return
    for p in folio.pages:
        p.mapcount = 1
        if excl:
            pf.SetPageAnonExclusive(p)
    folio.large_mapcount = folio.nr
    folio.mm_add(mm, folio.nr)


def folio_add_anon_rmap_pte(k: Kernel, folio: Folio, page: Page, rmap_flags: int,
                            mm: str = "") -> None:
    """``folio_add_anon_rmap_pte()``: one more PTE mapping; sets the flag with
    ``RMAP_EXCLUSIVE`` and leaves it alone otherwise."""
    if _new_flag(k, rmap_flags) and page.mapcount > 0:
        raise KernelBug("VM_WARN: exclusive anon page with _mapcount > 0 "
                        "(__folio_add_anon_rmap)", page.name)
    page.mapcount += 1
    if folio.large:
        folio.large_mapcount += 1
        folio.mm_add(mm)
    if _new_flag(k, rmap_flags):
        pf.SetPageAnonExclusive(page)


def folio_remove_rmap_pte(folio: Folio, page: Page, mm: str = "") -> None:
    """``folio_remove_rmap_pte()``: one PTE mapping fewer. The flag is not touched."""
    if page.mapcount <= 0:
        raise KernelBug("VM_BUG_ON_PAGE(page_mapcount(page) < 0) in folio_remove_rmap_pte",
                        page.name)
    page.mapcount -= 1
    if folio.large:
        folio.large_mapcount -= 1
        folio.mm_sub(mm)
        if folio.large_mapcount > 0 and not folio.hugetlb and folio.entire_mapcount == 0:
            pf.SetPagePartiallyMapped(folio.pages[0])  # deferred_split_folio()


def folio_remove_rmap_pmd(folio: Folio, mm: str = "") -> None:
    """``folio_remove_rmap_pmd()`` (and ``hugetlb_remove_rmap``): one PMD mapping fewer."""
    if folio.entire_mapcount <= 0:
        raise KernelBug("VM_BUG_ON_FOLIO(entire_mapcount < 0) in folio_remove_rmap_pmd",
                        folio.pages[0].name)
    folio.entire_mapcount -= 1
    folio.large_mapcount -= 1
    folio.mm_sub(mm)


def folio_needs_cow_for_dma(src_mm: MM, folio: Folio) -> bool:
    """``folio_needs_cow_for_dma()``: MMF_HAS_PINNED and the folio may be pinned."""
    return src_mm.has_pinned and folio_maybe_dma_pinned(folio)


def folio_try_dup_anon_rmap_pte(k: Kernel, folio: Folio, page: Page, src_mm: MM,
                                dst: str = "") -> int:
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
        folio.mm_add(dst)
    return 0


def _try_dup_head(k: Kernel, folio: Folio, src_mm: MM, early_cow: bool) -> int:
    """The try_dup rule on a folio's head (PMD mappings and hugetlb): refuse an exclusive,
    maybe-pinned head of an mm that has pinned; else clear the flag and count the mapping.
    Before 5.19 *early_cow* says whether fork already copied pinned pages."""
    head = folio.pages[0]
    if k.rules.anon_exclusive:
        if pf.PageAnonExclusive(head):
            if folio_needs_cow_for_dma(src_mm, folio):
                return EBUSY
            pf.ClearPageAnonExclusive(head)
    elif early_cow and folio_needs_cow_for_dma(src_mm, folio):
        return EBUSY
    folio.entire_mapcount += 1
    folio.large_mapcount += 1
    return 0


def folio_try_dup_anon_rmap_pmd(k: Kernel, folio: Folio, src_mm: MM, dst: str = "") -> int:
    """``folio_try_dup_anon_rmap_pmd()``: the same rule on the head of a PMD mapping."""
    ret = _try_dup_head(k, folio, src_mm, k.rules.fork_copies_pinned)
    if ret == 0:
        folio.mm_add(dst)
    return ret


def hugetlb_try_dup_anon_rmap(k: Kernel, folio: Folio, src_mm: MM) -> int:
    """``hugetlb_try_dup_anon_rmap()``: the rule on the hugetlb head (early COW of pinned
    hugetlb pages from 5.12)."""
    return _try_dup_head(k, folio, src_mm, k.rules.hugetlb_fork_copies_pinned)


def folio_try_share_anon_rmap_pte(k: Kernel, folio: Folio, page: Page) -> int:
    """``folio_try_share_anon_rmap_pte()`` → ``__folio_try_share_anon_rmap()`` (rmap.h).

    Called with an exclusive page whose PTE is already cleared. Fails with ``-EBUSY`` while
    the folio may be pinned (no MMF_HAS_PINNED test here), else clears the flag. The PMD
    variant passes the head.
    """
    del k
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


def try_to_unmap_one(k: Kernel, mm: MM, vpn: int, pte: Pte) -> bool:
    """``try_to_unmap_one()`` (reclaim) for one PTE of an anon page in the swap cache.

    Exclusivity moves into the swap entry: PG_anon_exclusive is sampled, cleared with
    ``folio_try_share_anon_rmap_pte`` after the PTE was cleared (failing, and restoring the
    PTE, while the folio may be pinned), and the entry gets the exclusive bit. Returns False
    when the unmap was refused."""
    page = pte.page
    folio = page.folio
    assert folio.swap is not None
    slot = folio.swap + page.index
    anon_exclusive = k.rules.anon_exclusive and pf.PageAnonExclusive(page)
    del mm.ptes[vpn]  # ptep_clear_flush
    k.swap[slot].count += 1  # swap_duplicate
    if anon_exclusive and folio_try_share_anon_rmap_pte(k, folio, page) != 0:
        k.swap[slot].count -= 1
        mm.ptes[vpn] = pte
        return False
    mm.ptes[vpn] = SwapPte(slot, exclusive=anon_exclusive)
    folio_remove_rmap_pte(folio, page, mm.name)
    k.folio_put(folio)
    return True


def maps_page_at(k: Kernel, mm_name: str, vpn: int, page: Page) -> bool:
    """Whether process *mm_name* maps *page* at *vpn*: by a present PTE or PMD, or by a swap
    entry whose slot the page still backs in the swap cache (the next fault maps that same
    page again: reclaim kept a pinned page there before 5.10.9/5.11)."""
    mm = k.mms.get(mm_name)
    if mm is None:
        return False
    pmd = mm.pmd_at(vpn) if mm.pmds else None
    if pmd is not None:
        return pmd.folio.pages[vpn % HPAGE_PMD_NR] is page
    e = mm.ptes.get(vpn)
    if type(e) is Pte:
        return e.page is page
    if type(e) is SwapPte:
        s = k.swap.get(e.slot)
        c = None if s is None else s.cache
        return c is page.folio and c.swap is not None and c.pages[e.slot - c.swap] is page
    return False
