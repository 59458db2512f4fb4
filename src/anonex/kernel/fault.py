"""Page faults on private anonymous memory: new pages, write faults, unshare faults.

Models mm/memory.c: ``handle_mm_fault`` → ``handle_pte_fault`` → ``do_anonymous_page`` (a
read fault maps the shared zero page, a write fault a new exclusive page), ``do_swap_page``
(in :mod:`anonex.kernel.swap`), and ``do_wp_page`` for a write or unshare fault on a present
read-only PTE: reuse the page (set PG_anon_exclusive; map it writable unless it is an unshare
fault) or copy it (``wp_page_copy``).

The reuse rule is the part that changed most over time (see the version table):

* ≤5.8: reuse when mapcount + swapcount ≤ 1 (``reuse_swap_page``), references ignored;
  5.1–5.8 also reuse a KSM page mapped once (``reuse_ksm_page``);
* 5.9–5.17: reuse only when ``page_count == 1`` (and mapcount 1);
* 5.18+: ``wp_can_reuse_anon_folio`` (drain LRU, free the swap cache, then refcount == 1);
* 5.19+: an exclusive page is reused at once, without looking at any count.

Every function returns the outcome it produced: ``"new"``, ``"reused"``, ``"copied"``,
``"swapin"`` or ``"none"`` (spurious).
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.errors import KernelBug, Segfault
from anonex.kernel.folio import Folio, Page, page_mapcount
from anonex.kernel.lru import lru_batch_ref, lru_cache_add
from anonex.kernel.pgtable import HPAGE_PMD_NR, DeviceExclusivePte, Pmd, Pte, SwapPte, huge_base
from anonex.kernel.rmap import (
    RMAP_EXCLUSIVE,
    folio_add_new_anon_rmap,
    folio_move_anon_rmap,
    folio_remove_rmap_pte,
)
from anonex.kernel.state import (
    MM,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_NOHUGEPAGE,
    VM_SHARED,
    VM_WRITE,
    VMA,
    Kernel,
)

FAULT_FLAG_WRITE = 0x1
FAULT_FLAG_REMOTE = 0x80
FAULT_FLAG_UNSHARE = 0x400


def vm_normal_page(k: Kernel, pte: Pte) -> Page | None:
    """``vm_normal_page()``: the page behind a PTE, or None for the zero page (special)."""
    del k
    return None if pte.special else pte.page


def handle_mm_fault(k: Kernel, mm: MM, vpn: int, flags: int) -> str:
    """``handle_mm_fault()`` → ``handle_pte_fault()`` for a private anonymous VMA."""
    k.nr_faults += 1
    vma = mm.vma_or_fault(vpn)
    pmd = mm.pmd_at(vpn)
    if pmd is not None:
        return _huge_pmd_fault(k, mm, vma, vpn, pmd, flags)
    entry = mm.ptes.get(vpn)
    if entry is None:
        if vma.flags & VM_HUGETLB:
            from anonex.kernel.hugetlb import hugetlb_no_page

            return hugetlb_no_page(k, mm, vma, huge_base(vpn), bool(flags & FAULT_FLAG_WRITE))
        if thp_vma_suitable(mm, vma, vpn):
            from anonex.kernel.thp import do_huge_pmd_anonymous_page, do_huge_zero_page_read

            if flags & FAULT_FLAG_WRITE:
                return do_huge_pmd_anonymous_page(k, mm, vma, huge_base(vpn))
            if k.thp_use_zero_page:
                return do_huge_zero_page_read(k, mm, huge_base(vpn))
        return do_anonymous_page(k, mm, vma, vpn, flags)
    if isinstance(entry, SwapPte):
        from anonex.kernel.swap import do_swap_page

        return do_swap_page(k, mm, vma, vpn, entry, flags)
    if isinstance(entry, DeviceExclusivePte):
        from anonex.kernel.device import restore_exclusive_pte

        entry = restore_exclusive_pte(k, mm, vpn)
    if not isinstance(entry, Pte):
        raise Segfault("fault on a migration entry: migration is atomic in the model")
    if flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE):
        if not entry.write:
            return do_wp_page(k, mm, vma, vpn, entry, flags)
        if flags & FAULT_FLAG_WRITE:
            entry.dirty = True
    return "none"


def thp_vma_suitable(mm: MM, vma: VMA, vpn: int) -> bool:
    """``thp_vma_allowable_order()`` in madvise mode: VM_HUGEPAGE, the aligned 2 MiB inside
    the VMA, and no page table there yet (not even an empty one MADV_DONTNEED left)."""
    if not vma.flags & VM_HUGEPAGE or vma.flags & VM_NOHUGEPAGE:
        return False
    base = huge_base(vpn)
    if base < vma.start or base + HPAGE_PMD_NR > vma.end:
        return False
    if mm.kept_ptables and base in mm.kept_ptables:
        return False
    return not any(v in mm.ptes for v in range(base, base + HPAGE_PMD_NR))


def _huge_pmd_fault(k: Kernel, mm: MM, vma: VMA, vpn: int, pmd: Pmd, flags: int) -> str:
    """``__handle_mm_fault()`` at PMD level: THP write/unshare, or hugetlb."""
    if not flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE) or pmd.write:
        if flags & FAULT_FLAG_WRITE:
            pmd.dirty = True
        return "none"
    if pmd.folio.hugetlb:
        from anonex.kernel.hugetlb import hugetlb_wp

        return hugetlb_wp(k, mm, vma, huge_base(vpn), bool(flags & FAULT_FLAG_UNSHARE))
    from anonex.kernel.thp import do_huge_pmd_wp_page

    return do_huge_pmd_wp_page(k, mm, vma, vpn, flags)


def do_anonymous_page(k: Kernel, mm: MM, vma: VMA, vpn: int, flags: int) -> str:
    """``do_anonymous_page()``: a read fault maps the shared zero page read-only; a write
    fault maps a new zeroed folio, exclusive, writable and dirty if the VMA allows writes."""
    if not flags & FAULT_FLAG_WRITE and not vma.flags & VM_SHARED:
        mm.ptes[vpn] = Pte(k.zero_page, write=False, special=True)
        return "new"
    vma.anon_vma = True
    writable = bool(vma.flags & VM_WRITE)
    order = alloc_anon_folio_order(k, mm, vma, vpn)
    folio = k.alloc_folio(order)
    k.folio_get(folio, folio.nr - 1)  # folio_ref_add(folio, nr_pages - 1)
    folio_add_new_anon_rmap(k, folio, RMAP_EXCLUSIVE, mm.name)
    lru_cache_add(k, folio)
    start = vpn & ~((1 << order) - 1)
    for i, page in enumerate(folio.pages):
        mm.ptes[start + i] = Pte(page, write=writable, dirty=writable)
    return "new"


def alloc_anon_folio_order(k: Kernel, mm: MM, vma: VMA, vpn: int) -> int:
    """``alloc_anon_folio()``: the largest enabled mTHP order whose aligned range lies in
    the VMA with no PTE yet (madvise mode: only in VM_HUGEPAGE VMAs), else 0."""
    if not vma.flags & VM_HUGEPAGE or vma.flags & VM_NOHUGEPAGE:
        return 0
    for order in sorted(k.mthp_orders, reverse=True):
        n = 1 << order
        start = vpn & ~(n - 1)
        if start >= vma.start and start + n <= vma.end and \
                not any(v in mm.ptes for v in range(start, start + n)):
            return order
    return 0


def wp_can_reuse_anon_folio(k: Kernel, folio: Folio, mm: MM | None = None) -> bool:
    """``wp_can_reuse_anon_folio()`` (mm/memory.c, 5.18+).

    No KSM page, no reference but the mapping's (after freeing the swap cache if no swap
    entry still needs it). Large folios: 6.15+ reuse by MM-ID ownership
    (``__wp_can_reuse_large_anon_folio``), 6.9–6.14 never, before that only when the folio
    has a single reference like a small one.
    """
    if folio.large:
        if k.rules.mm_id_large_reuse:
            from anonex.kernel.thp import wp_can_reuse_large_anon_folio

            return wp_can_reuse_large_anon_folio(k, mm or MM(""), folio)
        if k.rules.no_large_folio_refcount_reuse:
            return False
    if folio.ksm or folio.refcount > 3:
        return False
    # lru_add_drain(): the model keeps no per-CPU LRU batch references.
    in_swapcache = folio.swap is not None
    if folio.refcount > 1 + int(in_swapcache):
        return False
    if in_swapcache:
        from anonex.kernel.swap import folio_free_swap

        folio_free_swap(k, folio)
    if folio.ksm or folio.refcount != 1:
        return False
    folio_move_anon_rmap(folio)
    return True


def _reuse_swap_page(k: Kernel, page: Page) -> bool:
    """``reuse_swap_page()`` (≤5.17): mapcount + swapcount ≤ 1; frees the swap cache.

    For a THP the count is the largest (subpage mapcount + subpage swap count) over all
    subpages plus the PMD mapcount (``page_trans_huge_mapcount``), so a THP is reused only
    when no subpage is mapped twice."""
    folio = page.folio
    from anonex.kernel.swap import folio_free_swap, swap_count

    def swaps(i: int) -> int:
        return swap_count(k, folio.swap + i) if folio.swap is not None else 0

    if folio.large and not folio.hugetlb:
        count = max(p.mapcount + swaps(p.index) for p in folio.pages) + folio.entire_mapcount
    else:
        count = page_mapcount(page) + swaps(0)
    if count > 1:
        return False
    if folio.swap is not None:
        folio_free_swap(k, folio)
    return True


def _old_can_reuse(k: Kernel, page: Page) -> bool:
    """The reuse decision of kernels without PG_anon_exclusive (≤5.18)."""
    folio = page.folio
    r = k.rules
    if r.cow_fixes_part1:
        return wp_can_reuse_anon_folio(k, folio)
    if r.reuse_by_page_count:
        # page_count(): the local LRU batch's reference counts too (not drained before 5.18)
        if folio.ksm or folio.refcount + lru_batch_ref(k, folio) != 1:
            return False
        return page_mapcount(page) == 1
    if folio.ksm:
        return r.ksm_reuse and folio.refcount == 1 and page_mapcount(page) == 1
    return _reuse_swap_page(k, page)


def do_wp_page(k: Kernel, mm: MM, vma: VMA, vpn: int, pte: Pte, flags: int) -> str:
    """``do_wp_page()``: write or unshare fault on a present, read-only PTE."""
    unshare = bool(flags & FAULT_FLAG_UNSHARE)
    page = vm_normal_page(k, pte)
    if vma.flags & VM_SHARED:
        raise Segfault("shared mappings are not modelled")
    if page is not None and page.folio.anon:
        folio = page.folio
        if k.rules.anon_exclusive:
            if pf.PageAnonExclusive(page) or wp_can_reuse_anon_folio(k, folio, mm):
                if not pf.PageAnonExclusive(page):
                    pf.SetPageAnonExclusive(page)
                if unshare:
                    return "reused"
                wp_page_reuse(k, vma, pte)
                return "reused"
        elif _old_can_reuse(k, page):
            wp_page_reuse(k, vma, pte)
            return "reused"
    return wp_page_copy(k, mm, vma, vpn, pte, unshare)


def wp_page_reuse(k: Kernel, vma: VMA, pte: Pte) -> None:
    """``wp_page_reuse()``: the PTE becomes dirty and, if the VMA allows, writable."""
    page = pte.page
    if k.rules.anon_exclusive and page.folio.anon and not pf.PageAnonExclusive(page):
        raise KernelBug("VM_BUG_ON(PageAnon(page) && !PageAnonExclusive(page)) in "
                        "wp_page_reuse", page.name)
    pte.dirty = True
    pte.write = bool(vma.flags & VM_WRITE)


def wp_page_copy(k: Kernel, mm: MM, vma: VMA, vpn: int, pte: Pte, unshare: bool) -> str:
    """``wp_page_copy()``: a new exclusive page with the old contents (zeroed if the zero
    page was mapped); read-only for an unshare fault. The old page loses one mapping and a
    reference; its flag is left as it was."""
    old = vm_normal_page(k, pte)
    vma.anon_vma = True
    new = k.alloc_folio(0)
    new.pages[0].data = "" if old is None else old.data
    folio_add_new_anon_rmap(k, new, RMAP_EXCLUSIVE)
    lru_cache_add(k, new)
    writable = (not unshare) and bool(vma.flags & VM_WRITE)
    if unshare and writable:
        raise KernelBug("BUG_ON(unshare && pte_write(entry)) in wp_page_copy")
    mm.ptes[vpn] = Pte(new.pages[0], write=writable, dirty=not unshare)
    if old is not None:
        folio_remove_rmap_pte(old.folio, old, mm.name)
        k.folio_put(old.folio)
    return "copied"
