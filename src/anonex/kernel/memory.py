"""Page faults on private anonymous memory: new pages, swap-in, write and unshare faults.

Models mm/memory.c. ``handle_mm_fault`` hands hugetlb VMAs to ``hugetlb_fault``
(:mod:`anonex.kernel.hugetlb`); ``__handle_mm_fault`` tries the PMD level first
(``do_huge_pmd_anonymous_page`` and ``do_huge_pmd_wp_page`` in :mod:`anonex.kernel.thp`),
and when that returns ``VM_FAULT_FALLBACK`` (the PMD was split, or no THP fits)
``handle_pte_fault`` takes the fault: ``do_anonymous_page`` (a read fault maps the shared
zero page, a write fault a new exclusive folio), ``do_swap_page``, and ``do_wp_page`` for a
write or unshare fault on a present read-only PTE: reuse the page (set PG_anon_exclusive; map
it writable unless it is an unshare fault) or copy it (``wp_page_copy``). Also here, as in
the kernel: the restore of a device-exclusive entry (``remove_device_exclusive_entry``).
fork's ``copy_page_range`` is in :mod:`anonex.kernel.fork`, ``zap_pte_range`` in
:mod:`anonex.kernel.mmap`.

The reuse rule is the part that changed most over time (see the version table):

* ≤5.8: reuse when mapcount + swapcount ≤ 1 (``reuse_swap_page``), references ignored;
  5.1–5.8 also reuse a KSM page mapped once (``reuse_ksm_page``);
* 5.9–5.17: reuse only when ``page_count == 1`` (and mapcount 1);
* 5.18+: ``wp_can_reuse_anon_folio`` (drain LRU, free the swap cache, then refcount == 1);
* 5.19+: an exclusive page is reused at once, without looking at any count.

Swap-in (``do_swap_page``) maps the page exclusive when the swap entry's exclusive bit says
so, or when the folio is fresh (the zram bypass of the swap cache, until 7.0), or when no one
else holds a reference. From 7.0 every swap-in goes through the swap cache, which a
synchronous device (zram) drops once the page is mapped. Pages come back as small folios, or
from 6.12 as one mTHP when the VMA allows that order and the entries are consecutive and
aligned (``alloc_swap_folio``).

Every function returns the outcome it produced: ``"new"``, ``"reused"``, ``"copied"``,
``"swapin"`` or ``"none"`` (spurious), or ``VM_FAULT_FALLBACK`` from the PMD level.
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.errors import KernelBug, Segfault
from anonex.kernel.folio import Folio, Page, page_mapcount
from anonex.kernel.hugetlb import hugetlb_fault
from anonex.kernel.lru import lru_batch_ref, lru_cache_add
from anonex.kernel.pgtable import HPAGE_PMD_NR, DeviceExclusivePte, Pte, SwapPte, huge_base
from anonex.kernel.rmap import (
    RMAP_EXCLUSIVE,
    RMAP_NONE,
    folio_add_anon_rmap_pte,
    folio_add_new_anon_rmap,
    folio_move_anon_rmap,
    folio_remove_rmap_pte,
)
from anonex.kernel.state import (
    FAULT_FLAG_UNSHARE,
    FAULT_FLAG_WRITE,
    MM,
    VM_FAULT_FALLBACK,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_NOHUGEPAGE,
    VM_SHARED,
    VM_WRITE,
    VMA,
    Kernel,
)
from anonex.kernel.swap import (
    add_to_swap_cache,
    folio_free_swap,
    free_swap_slot_if_unused,
    swap_cache_hit,
    swap_count,
    swap_vma_readahead,
)
from anonex.kernel.thp import do_huge_pmd_anonymous_page, do_huge_pmd_wp_page


def vm_normal_page(k: Kernel, pte: Pte) -> Page | None:
    """``vm_normal_page()``: the page behind a PTE, or None for the zero page (special)."""
    del k
    return None if pte.special else pte.page


def handle_mm_fault(k: Kernel, mm: MM, vpn: int, flags: int) -> str:
    """``handle_mm_fault()``: a fault at *vpn* with ``FAULT_FLAG_*`` *flags*."""
    k.nr_faults += 1
    vma = mm.vma_or_fault(vpn)
    if vma.flags & VM_HUGETLB:
        return hugetlb_fault(k, mm, vma, vpn, flags)
    return __handle_mm_fault(k, mm, vma, vpn, flags)


def __handle_mm_fault(k: Kernel, mm: MM, vma: VMA, vpn: int, flags: int) -> str:
    """``__handle_mm_fault()``: the PMD level first; on ``VM_FAULT_FALLBACK`` the PTE level."""
    pmd = mm.pmd_at(vpn)
    if pmd is None and thp_vma_suitable(mm, vma, vpn):
        ret = do_huge_pmd_anonymous_page(k, mm, vma, vpn, flags)  # create_huge_pmd()
        if ret != VM_FAULT_FALLBACK:
            return ret
    elif pmd is not None:
        if flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE) and not pmd.write:
            ret = wp_huge_pmd(k, mm, vma, vpn, flags)
            if ret != VM_FAULT_FALLBACK:
                return ret
        else:
            if flags & FAULT_FLAG_WRITE:
                pmd.dirty = True  # huge_pmd_set_accessed()
            return "none"
    return handle_pte_fault(k, mm, vma, vpn, flags)


def wp_huge_pmd(k: Kernel, mm: MM, vma: VMA, vpn: int, flags: int) -> str:
    """``wp_huge_pmd()``: a write or unshare fault on a read-only PMD of an anon VMA goes to
    ``do_huge_pmd_wp_page()``, which reuses the THP or splits the PMD and falls back."""
    return do_huge_pmd_wp_page(k, mm, vma, vpn, flags)


def handle_pte_fault(k: Kernel, mm: MM, vma: VMA, vpn: int, flags: int) -> str:
    """``handle_pte_fault()``: no entry (``do_anonymous_page``), a swap entry
    (``do_swap_page``), a device-exclusive entry (restored first), or a present PTE that a
    write or unshare fault finds read-only (``do_wp_page``)."""
    entry = mm.ptes.get(vpn)
    if entry is None:
        return do_anonymous_page(k, mm, vma, vpn, flags)
    if isinstance(entry, SwapPte):
        return do_swap_page(k, mm, vma, vpn, entry, flags)
    if isinstance(entry, DeviceExclusivePte):
        entry = restore_exclusive_pte(k, mm, vpn)  # remove_device_exclusive_entry()
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
        folio_free_swap(k, folio)
    if folio.ksm or folio.refcount != 1:
        return False
    folio_move_anon_rmap(folio)
    return True


def wp_can_reuse_large_anon_folio(k: Kernel, mm: MM, folio: Folio) -> bool:
    """``__wp_can_reuse_large_anon_folio()`` (6.15+): reuse a PTE-mapped large folio when
    only this mm maps it, more than one page is mapped, and nothing but the mappings holds a
    reference."""
    if folio.large_mapcount <= 1:
        return False
    if folio.maybe_mapped_shared():
        return False
    if folio.swap is not None:
        folio_free_swap(k, folio)
    if folio.large_mapcount != folio.refcount:
        return False
    del mm
    return True


def _reuse_swap_page(k: Kernel, page: Page) -> bool:
    """``reuse_swap_page()`` (≤5.17): mapcount + swapcount ≤ 1; frees the swap cache.

    For a THP the count is the largest (subpage mapcount + subpage swap count) over all
    subpages plus the PMD mapcount (``page_trans_huge_mapcount``), so a THP is reused only
    when no subpage is mapped twice."""
    folio = page.folio

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


def do_swap_page(k: Kernel, mm: MM, vma: VMA, vpn: int, entry: SwapPte, flags: int,
                 whole: bool = True) -> str:
    """``do_swap_page()`` (mm/memory.c, 6.12–6.18 structure). *whole*: a large folio found
    in the swap cache may be mapped whole (6.10+); False for its other pages."""
    r = k.rules
    s = k.swap[entry.slot]
    folio = s.cache
    fresh = False
    if folio is not None:
        swap_cache_hit(vma, vpn, folio)
        if whole and folio.large and r.swapcache_map_large:
            _map_rest_of_cached_folio(k, mm, vma, vpn, entry, folio)
    bypass = r.swapin_sync_bypass and s.count == 1
    if folio is None and r.mthp_swapin and (bypass or r.swapin_through_cache) and \
            _swapin_large_folio(k, mm, vma, vpn, entry):
        pte = mm.ptes[vpn]
        assert isinstance(pte, Pte)
        if flags & FAULT_FLAG_WRITE and not pte.write:
            do_wp_page(k, mm, vma, vpn, pte, flags)  # a shared entry maps read-only
        return "swapin"
    if folio is None:
        folio = k.alloc_folio(0)
        folio.pages[0].data = s.data[0]
        lru_cache_add(k, folio)
        if bypass:
            fresh = True  # SWP_SYNCHRONOUS_IO: skip the swap cache
        else:
            add_to_swap_cache(k, folio, entry.slot)
            if not r.swapin_through_cache:  # 7.0+: swapin_sync(), no readahead on zram
                swap_vma_readahead(k, mm, vma, vpn)
    else:
        k.folio_get(folio)  # the reference the new mapping will own
    page = folio.pages[0] if folio.swap is None else folio.pages[entry.slot - folio.swap]
    if "fs-mappedtodisk" in k.injected and not folio.anon:
        # injected: a filesystem sets PG_mappedtodisk on a page in the swap cache
        pf.SetPageMappedToDisk(folio.pages[0])
    if r.anon_exclusive and k.layout.name in ("mappedtodisk", "owner_2"):
        if folio.anon and pf.PageAnonExclusive(page):
            raise KernelBug("BUG_ON(folio_test_anon(folio) && PageAnonExclusive(page)) in "
                            "do_swap_page", page.name)
        if not folio.anon and pf.PageMappedToDisk(page):
            raise KernelBug("BUG_ON(!folio_test_anon(folio) && folio_test_mappedtodisk(folio))"
                            " in do_swap_page", page.name)
    exclusive = False
    if not folio.ksm:
        exclusive = entry.exclusive or fresh
    write = bool(flags & FAULT_FLAG_WRITE)
    # ≤5.17 reuse_swap_page(): mapcount + swapcount (this entry still counted) ≤ 1.
    old_sole = page.mapcount + s.count <= 1
    # swap_free_nr(): this PTE's swap reference goes before the page is mapped (6.18).
    s.count -= 1
    if folio.swap is not None and write and not folio.ksm and \
            folio.refcount == folio.nr + 1:
        folio_free_swap(k, folio)  # should_try_to_free_swap()
    free_swap_slot_if_unused(k, entry.slot)
    pte = Pte(page, write=False, dirty=False)
    rmap = RMAP_NONE
    if r.anon_exclusive:
        map_writable_ok = not folio.ksm and (exclusive or folio.refcount == 1)
        if map_writable_ok:
            rmap = RMAP_EXCLUSIVE
        map_writable_ok = map_writable_ok and (write or r.writable_swapin_on_read)
    elif r.cow_fixes_part1:
        map_writable_ok = write and not folio.ksm and folio.refcount == 1
    else:
        map_writable_ok = write and not folio.ksm and old_sole
        if map_writable_ok and folio.swap is not None:
            folio_free_swap(k, folio)
    if map_writable_ok and vma.flags & VM_WRITE:
        pte.write = True
        pte.dirty = True
        write = False
    if not folio.anon:
        folio_add_new_anon_rmap(k, folio, rmap, mm.name)
    else:
        folio_add_anon_rmap_pte(k, folio, page, rmap, mm.name)
    mm.ptes[vpn] = pte
    if r.anon_exclusive and pte.write and not pf.PageAnonExclusive(page):
        raise KernelBug("VM_BUG_ON(pte_write(pte) && !PageAnonExclusive(page)) in "
                        "do_swap_page", page.name)
    if r.swapin_through_cache and folio.swap is not None:
        folio_free_swap(k, folio)  # 7.0 should_try_to_free_swap(): always on zram
    if write:
        do_wp_page(k, mm, vma, vpn, pte, flags)
    return "swapin"


def _map_rest_of_cached_folio(k: Kernel, mm: MM, vma: VMA, vpn: int, entry: SwapPte,
                              folio: Folio) -> None:
    """6.10+: a fault that finds a large folio in the swap cache maps all of it when the
    PTEs around the fault are its swap entries, in order, with the same exclusive bit, in
    the VMA and the faulting 2 MiB range (``swap_pte_batch()``); here its other pages are
    mapped one by one like the faulting one (the result is the same for a large folio,
    which the swap cache's references keep from ``folio_ref_count() == 1``)."""
    assert folio.swap is not None
    start = vpn - (entry.slot - folio.swap)
    base = huge_base(vpn)
    if start < max(vma.start, base) or start + folio.nr > min(vma.end, base + HPAGE_PMD_NR):
        return
    ents: list[SwapPte] = []
    for i in range(folio.nr):
        e = mm.ptes.get(start + i)
        if not isinstance(e, SwapPte) or e.slot != folio.swap + i or \
                e.exclusive != entry.exclusive:
            return
        ents.append(e)
    ra = vma.ra
    for i, e in enumerate(ents):
        if start + i != vpn:
            do_swap_page(k, mm, vma, start + i, e, 0, whole=False)
    vma.ra = ra


def _swapin_large_folio(k: Kernel, mm: MM, vma: VMA, vpn: int, entry: SwapPte) -> bool:
    """``alloc_swap_folio()`` (6.12+, synchronous devices): when the VMA allows an mTHP
    order, the faulting entry's slot sits in its range as the page in its block (the slots
    of a large folio are allocated aligned), and the aligned range around the fault holds
    swap entries of consecutive, unshared, uncached slots with the same exclusive bit, swap
    the whole range in as one fresh large folio, every page exclusive.

    From 7.0 (``thp_swapin_suitable_orders()`` + ``swapin_sync()``) the slots may be shared:
    the folio goes through the swap cache, is exclusive only if the entries say so, and
    leaves the cache once mapped if no entry still references it."""
    through_cache = k.rules.swapin_through_cache
    start_probe = vpn
    order = 0
    for o in sorted(k.mthp_orders, reverse=True):
        n = 1 << o
        start = vpn & ~(n - 1)
        if not (vma.flags & VM_HUGEPAGE) or vma.flags & VM_NOHUGEPAGE or \
                start < vma.start or start + n > vma.end:
            continue
        if vpn % n != entry.slot % n:
            continue  # thp_swap_suitable_orders(): slots aligned as when swapped out
        ents = [mm.ptes.get(start + i) for i in range(n)]
        if not all(isinstance(e, SwapPte) for e in ents):
            continue
        first = ents[0]
        assert isinstance(first, SwapPte)
        ok = True
        for i, e in enumerate(ents):
            assert isinstance(e, SwapPte)
            sl = k.swap.get(e.slot)
            if e.slot != first.slot + i or e.exclusive != first.exclusive or sl is None or \
                    (sl.count != 1 and not through_cache) or sl.cache is not None:
                ok = False
                break
        if ok:
            order = o
            start_probe = start
            break
    if order == 0:
        return False
    n = 1 << order
    folio = k.alloc_folio(order)
    k.folio_get(folio, n - 1)
    slots = []
    first = mm.ptes[start_probe]
    assert isinstance(first, SwapPte)
    for i in range(n):
        e = mm.ptes[start_probe + i]
        assert isinstance(e, SwapPte)
        folio.pages[i].data = k.swap[e.slot].data[0]
        slots.append(e.slot)
    exclusive = True
    if through_cache:
        add_to_swap_cache(k, folio, first.slot)
        exclusive = first.exclusive
    folio_add_new_anon_rmap(k, folio, RMAP_EXCLUSIVE if exclusive else RMAP_NONE, mm.name)
    w = exclusive and bool(vma.flags & VM_WRITE) and k.rules.writable_swapin_on_read
    for i, page in enumerate(folio.pages):
        mm.ptes[start_probe + i] = Pte(page, write=w, dirty=w)
    for slot in slots:
        k.swap[slot].count -= 1
        free_swap_slot_if_unused(k, slot)
    if through_cache:
        folio_free_swap(k, folio)
    return True


def restore_exclusive_pte(k: Kernel, mm: MM, vpn: int) -> Pte:
    """``remove_device_exclusive_entry()`` → ``restore_exclusive_pte()``: the CPU takes the
    page back from the device (:mod:`anonex.kernel.device`); the PTE is writable iff the VMA
    allows and the page is exclusive."""
    e = mm.ptes[vpn]
    assert isinstance(e, DeviceExclusivePte)
    page = e.page
    if not k.rules.device_exclusive_mapped:
        # the GUP reference ≤6.14 kept becomes the mapping's
        folio_add_anon_rmap_pte(k, page.folio, page, RMAP_NONE, mm.name)
    vma = mm.vma_or_fault(vpn)
    write = bool(vma.flags & VM_WRITE) and k.rules.anon_exclusive and \
        pf.PageAnonExclusive(page)
    pte = Pte(page, write=write, dirty=pf.PageDirty(page) or write)
    mm.ptes[vpn] = pte
    return pte
