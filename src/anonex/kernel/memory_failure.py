"""memory-failure: how the kernel classifies a page that took a hardware error.

Models ``identify_page_state()`` (mm/memory-failure.c): the first entry of
``error_states`` whose mask and value match the page's flag word decides what the handler
does. With the v1 layout an exclusive anon page carries the PG_slab bit, so the RFC skips
the "kernel slab page" entry for anon pages; without that check such a page would be
treated as slab. anonex reports the class name the kernel would print.
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.folio import Page


def identify_page_state(page: Page, skip_slab_for_anon: bool = True) -> str:
    """The ``action_page_types`` name memory-failure would pick for *page*."""
    folio = page.folio
    lay = folio.layout
    head = folio.pages[0]
    if pf.PageReserved(head):
        return "reserved kernel page"
    slab = lay.bit.get("slab")
    if slab is not None and head.flags >> slab & 1 and \
            not (skip_slab_for_anon and folio.anon):
        return "kernel slab page"
    if folio.hugetlb:
        return "huge page"
    if folio.zero:
        return "reserved kernel page"
    if folio.swap is not None:
        return "swapcache page"
    if folio.anon or pf.PageLRU(head):
        return "LRU page"
    return "unknown page"
