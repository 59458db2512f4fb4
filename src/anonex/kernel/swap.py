"""Swap: unmapping to swap entries, the swap cache, swap-in and fork of swap entries.

Models mm/vmscan.c + mm/rmap.c ``try_to_unmap_one`` (anon branch), mm/swapfile.c
(``swap_duplicate``, ``swap_free``, ``folio_free_swap``) and mm/memory.c ``do_swap_page``.

Exclusivity survives swap in the swap PTE's exclusive bit: unmapping samples
PG_anon_exclusive, clears it with ``folio_try_share_anon_rmap_pte`` (which fails, and aborts
the unmap, while the folio may be pinned) and sets the bit in the entry. Swap-in maps the
page exclusive when the entry says so, or when the folio is fresh (the zram bypass of the
swap cache, until 7.0), or when no one else holds a reference. From 7.0 every swap-in goes
through the swap cache, which a synchronous device (zram) drops once the page is mapped.
fork clears the bit in the parent's entry and gives the child a non-exclusive one.

A large folio is swapped out whole (THP_SWAP): one slot per page, consecutive, the PMD split
first (``TTU_SPLIT_HUGE_PMD``, so every subpage inherits the head's exclusivity). Swap-in
brings pages back as small folios, or from 6.12 as one mTHP when the VMA allows that order and
the entries are consecutive and aligned (``alloc_swap_folio``). Slots: from 6.18 the
allocator fills cluster 0 first (slot 1 on); before, a fresh device's first allocation takes
the first free cluster (slot 512), which keeps a split THP's slots aligned with its pages.
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.errors import KernelBug
from anonex.kernel.folio import Folio, folio_maybe_dma_pinned
from anonex.kernel.lru import lru_add_drain, lru_cache_add
from anonex.kernel.pgtable import HPAGE_PMD_NR, Pte, SwapPte, huge_base
from anonex.kernel.rmap import (
    RMAP_EXCLUSIVE,
    RMAP_NONE,
    folio_add_anon_rmap_pte,
    folio_add_new_anon_rmap,
    folio_remove_rmap_pte,
    folio_try_share_anon_rmap_pte,
)
from anonex.kernel.state import MM, VM_HUGEPAGE, VM_NOHUGEPAGE, VM_WRITE, VMA, Kernel, SwapSlot


def swap_count(k: Kernel, slot: int) -> int:
    """``swap_count()``: how many swap entries reference the slot."""
    s = k.swap.get(slot)
    return 0 if s is None else s.count


def _maybe_release_slot(k: Kernel, slot: int) -> None:
    s = k.swap.get(slot)
    if s is not None and s.count == 0 and s.cache is None:
        del k.swap[slot]


def folio_swapped(k: Kernel, folio: Folio) -> bool:
    """``folio_swapped()``: does any swap entry still reference one of the folio's slots?"""
    assert folio.swap is not None
    return any(swap_count(k, folio.swap + i) for i in range(folio.nr))


def folio_free_swap(k: Kernel, folio: Folio) -> bool:
    """``folio_free_swap()``: drop the folio from the swap cache if no swap entry still
    references its slots."""
    if folio.swap is None or folio_swapped(k, folio):
        return False
    _delete_from_swap_cache(k, folio)
    return True


def _add_to_swap_cache(k: Kernel, folio: Folio) -> int:
    """``folio_alloc_swap()`` + ``add_to_swap_cache()``: nr slots, nr references. A large
    folio gets a range of slots aligned to its size (the swap allocator's per-order
    clusters); small ones get the next slot (where a fresh device starts: see
    ``Kernel.next_slot``)."""
    nr = folio.nr
    base = -(-k.next_slot // nr) * nr
    k.next_slot = base + nr
    for i, p in enumerate(folio.pages):
        k.swap[base + i] = SwapSlot(data=[p.data], count=0, cache=None)
    _add_to_swap_cache_at(k, folio, base)
    return base


def _delete_from_swap_cache(k: Kernel, folio: Folio) -> None:
    base = folio.swap
    assert base is not None
    for i in range(folio.nr):
        k.swap[base + i].cache = None
        _maybe_release_slot(k, base + i)
    folio.swap = None
    pf.clear_page_flag(folio.pages[0], "swapcache")
    k.folio_put(folio, folio.nr)


def swap_free(k: Kernel, slot: int) -> None:
    """``swap_free()`` / ``free_swap_and_cache()`` for one entry being dropped."""
    s = k.swap[slot]
    s.count -= 1
    cache = s.cache
    if s.count == 0 and cache is not None and cache.mapcount_total() == 0 and \
            not any(p.mapcount for p in cache.pages):
        folio_free_swap(k, cache)
    _maybe_release_slot(k, slot)


def try_to_unmap_one(k: Kernel, mm: MM, vpn: int, pte: Pte) -> bool:
    """``try_to_unmap_one()`` for one PTE of an anon page in the swap cache."""
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


def shrink_folio(k: Kernel, folio: Folio) -> bool:
    """Reclaim of one anon folio (``shrink_folio_list`` for MADV_PAGEOUT): add to swap,
    unmap every mapping (splitting PMDs first), write out, free. Pinned folios are not put
    in the swap cache (5.11, 5.10.9); the unmap fails for them anyway from 5.19. Before, a
    pinned folio is unmapped and stays in the swap cache (the pin holds it). A large folio
    that ``can_split_folio()`` refuses (a pipe or another reference besides its mappings)
    is kept mapped; a small one is unmapped and stays in the swap cache."""
    from anonex.kernel.thp import can_split_folio, split_huge_pmd

    if folio.hugetlb or (folio_maybe_dma_pinned(folio) and k.rules.pinned_not_swapcached):
        return False
    if folio.large and folio.swap is None and not can_split_folio(folio):
        return False  # a large folio nothing could split is kept (activate_locked)
    if folio.swap is None:
        _add_to_swap_cache(k, folio)
    for mm in k.mms.values():
        for base, pmd in list(mm.pmds.items()):
            if pmd.folio is folio:
                split_huge_pmd(k, mm, base)  # TTU_SPLIT_HUGE_PMD
    for mm in k.mms.values():
        for vpn, e in sorted(mm.ptes.items()):
            if isinstance(e, Pte) and e.page.folio is folio and \
                    not try_to_unmap_one(k, mm, vpn, e):
                return False
    assert folio.swap is not None
    for i, p in enumerate(folio.pages):  # pageout()
        k.swap[folio.swap + i].data = [p.data]
    if folio.refcount == folio.nr:  # only the swap cache is left: reclaim frees it
        _delete_from_swap_cache(k, folio)
    return True


def copy_swap_pte(k: Kernel, src: MM, dst: MM, vpn: int, entry: SwapPte) -> None:
    """``copy_nonpresent_pte()`` for a swap entry: one more swap reference; the parent's
    entry loses the exclusive bit and the child gets a non-exclusive entry."""
    k.swap[entry.slot].count += 1
    if entry.exclusive:
        src.ptes[vpn] = SwapPte(entry.slot, exclusive=False)
    dst.ptes[vpn] = SwapPte(entry.slot, exclusive=False)


def do_swap_page(k: Kernel, mm: MM, vma: VMA, vpn: int, entry: SwapPte, flags: int,
                 whole: bool = True) -> str:
    """``do_swap_page()`` (mm/memory.c, 6.12–6.18 structure). *whole*: a large folio found
    in the swap cache may be mapped whole (6.10+); False for its other pages."""
    from anonex.kernel.fault import FAULT_FLAG_WRITE, do_wp_page

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
            _add_to_swap_cache_at(k, folio, entry.slot)
            if not r.swapin_through_cache:  # 7.0+: swapin_sync(), no readahead on zram
                swap_vma_readahead(k, mm, vma, vpn)
    else:
        k.folio_get(folio)  # the reference the new mapping will own
    page = folio.pages[0] if folio.swap is None else folio.pages[entry.slot - folio.swap]
    if "fs-mappedtodisk" in k.injected and not folio.anon:
        # injected: a filesystem sets PG_mappedtodisk on a page in the swap cache
        pf.set_page_flag(folio.pages[0], "mappedtodisk")
    if r.anon_exclusive and k.layout.name in ("mappedtodisk", "owner_2"):
        if folio.anon and pf.PageAnonExclusive(page):
            raise KernelBug("BUG_ON(folio_test_anon(folio) && PageAnonExclusive(page)) in "
                            "do_swap_page", page.name)
        if not folio.anon and pf.test_page_flag(page, "mappedtodisk"):
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
    _maybe_release_slot(k, entry.slot)
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
        _add_to_swap_cache_at(k, folio, first.slot)
        exclusive = first.exclusive
    folio_add_new_anon_rmap(k, folio, RMAP_EXCLUSIVE if exclusive else RMAP_NONE, mm.name)
    w = exclusive and bool(vma.flags & VM_WRITE) and k.rules.writable_swapin_on_read
    for i, page in enumerate(folio.pages):
        mm.ptes[start_probe + i] = Pte(page, write=w, dirty=w)
    for slot in slots:
        k.swap[slot].count -= 1
        _maybe_release_slot(k, slot)
    if through_cache:
        folio_free_swap(k, folio)
    return True


SWAP_RA_MAX = 8  # 1 << page_cluster (3)


def swap_cache_hit(vma: VMA, vpn: int, folio: Folio) -> None:
    """``swap_cache_get_folio()``: a fault found its page in the swap cache. The VMA's
    readahead info remembers the address, and counts a hit if readahead brought the page."""
    _, win, hits = vma.ra
    if not folio.large and pf.test_page_flag(folio.pages[0], "readahead"):
        pf.clear_page_flag(folio.pages[0], "readahead")
        hits += 1
    vma.ra = (vpn, win, hits)


def _swapin_nr_pages(prev: int, vpn: int, hits: int, prev_win: int) -> int:
    """``__swapin_nr_pages()``: the readahead window: hits + 2 rounded up to a power of two
    (at least 4), only 1 without hits unless the access is sequential, at most 8, and not
    below half the previous window."""
    pages = hits + 2
    if pages == 2:
        if vpn not in (prev + 1, prev - 1):
            pages = 1
    else:
        roundup = 4
        while roundup < pages:
            roundup <<= 1
        pages = roundup
    pages = min(pages, SWAP_RA_MAX)
    return max(pages, prev_win // 2)


def swap_vma_readahead(k: Kernel, mm: MM, vma: VMA, vpn: int) -> None:
    """``swap_vma_readahead()`` (non-rotational swap, e.g. zram): besides the faulting
    page, read the swap entries of a window of neighbouring addresses into the swap cache
    (not mapped; marked PG_readahead). The window follows the access pattern: forward after
    a sequential fault, backward after a descending one, centred otherwise; it stays inside
    the VMA and the faulting 2 MiB range."""
    prev, prev_win, hits = vma.ra
    win = _swapin_nr_pages(prev, vpn, hits, prev_win)
    vma.ra = (vpn, win, 0)
    if win == 1:
        return
    lru_add_drain(k)  # after reading the window, the faulting page included
    if vpn == prev + 1:
        lo, hi = vpn, vpn + win
    elif prev == vpn + 1:
        lo, hi = vpn - win + 1, vpn + 1
    else:
        left = (win - 1) // 2
        lo, hi = vpn - left, vpn + win - left
    base = vpn & ~511
    lo, hi = max(lo, vma.start, base), min(hi, vma.end, base + HPAGE_PMD_NR)
    for v in range(lo, hi):
        e = mm.ptes.get(v)
        if v == vpn or not isinstance(e, SwapPte):
            continue
        slot = k.swap.get(e.slot)
        if slot is None or slot.cache is not None:
            continue
        f = k.alloc_folio(0)
        f.pages[0].data = slot.data[0]
        _add_to_swap_cache_at(k, f, e.slot)
        pf.set_page_flag(f.pages[0], "readahead")
        k.folio_put(f)  # only the swap cache holds it


def _add_to_swap_cache_at(k: Kernel, folio: Folio, slot: int) -> None:
    """``swapin_readahead()`` / ``swap_cache_alloc_folio()``: a new folio read into the swap
    cache from slots *slot*..+nr."""
    for i in range(folio.nr):
        k.swap[slot + i].cache = folio
    folio.swap = slot
    pf.set_page_flag(folio.pages[0], "swapcache")
    k.folio_get(folio, folio.nr)
