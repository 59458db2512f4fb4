"""Swap: the swap device's slots and the swap cache.

Models mm/swapfile.c (slot counts: ``swap_count``, ``swap_free``, ``folio_free_swap``) and
mm/swap_state.c (the swap cache: ``folio_alloc_swap`` + ``add_to_swap_cache``,
``delete_from_swap_cache``, ``swap_cache_get_folio`` and VMA readahead). Swap-out is
``shrink_folio_list`` (:mod:`anonex.kernel.vmscan`) with ``try_to_unmap_one``
(:mod:`anonex.kernel.rmap`); swap-in is ``do_swap_page`` (:mod:`anonex.kernel.memory`); fork
of a swap entry is ``copy_nonpresent_pte`` (:mod:`anonex.kernel.fork`).

Exclusivity survives swap in the swap PTE's exclusive bit, not here: a slot counts the
entries that reference it (``count``) and remembers the folio in the swap cache (``cache``)
that holds one reference per slot. A slot is freed when both are gone.

A large folio is swapped out whole (THP_SWAP): one slot per page, consecutive and aligned to
its size. Slots: from 6.18 the allocator fills cluster 0 first (slot 1 on); before, a fresh
device's first allocation takes the first free cluster (slot 512), which keeps a split THP's
slots aligned with its pages.
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.folio import Folio
from anonex.kernel.lru import lru_add_drain
from anonex.kernel.pgtable import HPAGE_PMD_NR, SwapPte
from anonex.kernel.state import MM, VMA, Kernel, SwapSlot

# ---------------------------------------------------------------------------------------------
# mm/swapfile.c: slots and their counts


def swap_count(k: Kernel, slot: int) -> int:
    """``swap_count()``: how many swap entries reference the slot."""
    s = k.swap.get(slot)
    return 0 if s is None else s.count


def free_swap_slot_if_unused(k: Kernel, slot: int) -> None:
    """The slot goes back to the device once no swap entry and no swap-cache folio
    references it (``swap_entries_free()``: count and ``SWAP_HAS_CACHE`` both gone)."""
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
    delete_from_swap_cache(k, folio)
    return True


def swap_free(k: Kernel, slot: int) -> None:
    """``swap_free()`` / ``free_swap_and_cache()`` for one entry being dropped."""
    s = k.swap[slot]
    s.count -= 1
    cache = s.cache
    if s.count == 0 and cache is not None and cache.mapcount_total() == 0 and \
            not any(p.mapcount for p in cache.pages):
        folio_free_swap(k, cache)
    free_swap_slot_if_unused(k, slot)


def folio_alloc_swap(k: Kernel, folio: Folio) -> int:
    """``folio_alloc_swap()`` + ``add_to_swap_cache()``: nr slots, nr references. A large
    folio gets a range of slots aligned to its size (the swap allocator's per-order
    clusters); small ones get the next slot (where a fresh device starts: see
    ``Kernel.next_slot``)."""
    nr = folio.nr
    base = -(-k.next_slot // nr) * nr
    k.next_slot = base + nr
    for i, p in enumerate(folio.pages):
        k.swap[base + i] = SwapSlot(data=[p.data], count=0, cache=None)
    add_to_swap_cache(k, folio, base)
    return base


# ---------------------------------------------------------------------------------------------
# mm/swap_state.c: the swap cache and swap-in readahead


def add_to_swap_cache(k: Kernel, folio: Folio, slot: int) -> None:
    """``add_to_swap_cache()`` (via ``swapin_readahead()`` / ``swap_cache_alloc_folio()`` on
    swap-in): a new folio read into the swap cache from slots *slot*..+nr."""
    for i in range(folio.nr):
        k.swap[slot + i].cache = folio
    folio.swap = slot
    pf.SetPageSwapCache(folio.pages[0])
    k.folio_get(folio, folio.nr)


def delete_from_swap_cache(k: Kernel, folio: Folio) -> None:
    """``delete_from_swap_cache()``: the folio leaves the swap cache with its nr references;
    slots that no entry references any more are freed."""
    base = folio.swap
    assert base is not None
    for i in range(folio.nr):
        k.swap[base + i].cache = None
        free_swap_slot_if_unused(k, base + i)
    folio.swap = None
    pf.ClearPageSwapCache(folio.pages[0])
    k.folio_put(folio, folio.nr)


SWAP_RA_MAX = 8  # 1 << page_cluster (3)


def swap_cache_hit(vma: VMA, vpn: int, folio: Folio) -> None:
    """``swap_cache_get_folio()``: a fault found its page in the swap cache. The VMA's
    readahead info remembers the address, and counts a hit if readahead brought the page."""
    _, win, hits = vma.ra
    if not folio.large and pf.PageReadahead(folio.pages[0]):
        pf.ClearPageReadahead(folio.pages[0])
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
        add_to_swap_cache(k, f, e.slot)
        pf.SetPageReadahead(f.pages[0])
        k.folio_put(f)  # only the swap cache holds it
