"""Reclaim of anonymous folios: swap-out.

Models mm/vmscan.c ``shrink_folio_list`` for the folios ``MADV_PAGEOUT`` hands it
(``reclaim_pages``): put the folio in the swap cache (:mod:`anonex.kernel.swap`), unmap each
mapping to a swap entry (``try_to_unmap_one``, :mod:`anonex.kernel.rmap`, which refuses a
maybe-pinned exclusive page from 5.19), write it out and free it once only the swap cache
holds it.
"""

from __future__ import annotations

from anonex.kernel.folio import Folio, folio_maybe_dma_pinned
from anonex.kernel.pgtable import Pte
from anonex.kernel.rmap import try_to_unmap_one
from anonex.kernel.state import Kernel
from anonex.kernel.swap import delete_from_swap_cache, folio_alloc_swap
from anonex.kernel.thp import can_split_folio, split_huge_pmd


def shrink_folio(k: Kernel, folio: Folio) -> bool:
    """``shrink_folio_list()`` for one anon folio (MADV_PAGEOUT): add to swap,
    unmap every mapping (splitting PMDs first), write out, free. Pinned folios are not put
    in the swap cache (5.11, 5.10.9); the unmap fails for them anyway from 5.19. Before, a
    pinned folio is unmapped and stays in the swap cache (the pin holds it). A large folio
    that ``can_split_folio()`` refuses (a pipe or another reference besides its mappings)
    is kept mapped; a small one is unmapped and stays in the swap cache."""
    if folio.hugetlb or (folio_maybe_dma_pinned(folio) and k.rules.pinned_not_swapcached):
        return False
    if folio.large and folio.swap is None and not can_split_folio(folio):
        return False  # a large folio nothing could split is kept (activate_locked)
    if folio.swap is None:
        folio_alloc_swap(k, folio)
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
        delete_from_swap_cache(k, folio)
    return True
