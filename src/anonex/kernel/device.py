"""Device-exclusive entries: a device takes a page for itself and the CPU must fault.

Models mm/rmap.c ``make_device_exclusive()`` (6.15+) and mm/memory.c
``remove_device_exclusive_entry()`` / ``restore_exclusive_pte()``. The page is first made
exclusive and writable by a GUP write fault; its PTE is then replaced by a device-exclusive
entry. Since 6.15 the page stays in the rmap and keeps PG_anon_exclusive (before, the rmap
was removed and the flag left as it was). A CPU access or fork restores a present PTE,
writable iff the VMA allows and the page is exclusive. Not reachable from the scenario
language (no user-space way); the API serves tests and the explorer.
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.errors import Segfault
from anonex.kernel.gup import FOLL_GET, FOLL_WRITE, get_user_pages, put_page
from anonex.kernel.pgtable import DeviceExclusivePte, Pte
from anonex.kernel.rmap import RMAP_NONE, folio_add_anon_rmap_pte, folio_remove_rmap_pte
from anonex.kernel.state import MM, VM_WRITE, Kernel


def make_device_exclusive(k: Kernel, mm: MM, vpn: int) -> None:
    """``make_device_exclusive()``: GUP the page writable, then install the entry."""
    page = get_user_pages(k, mm, [vpn], FOLL_GET | FOLL_WRITE)[0]
    if page.folio.large or not page.folio.anon:
        put_page(k, page)
        raise Segfault("EOPNOTSUPP: device-exclusive needs a small anon page")
    pte = mm.ptes[vpn]
    assert isinstance(pte, Pte) and pte.write
    mm.ptes[vpn] = DeviceExclusivePte(page)
    if not k.rules.device_exclusive_mapped:
        # ≤6.14: the rmap and the mapping's reference go, the GUP reference stays
        folio_remove_rmap_pte(page.folio, page, mm.name)
        put_page(k, page)
    else:
        put_page(k, page)  # the mapping's reference stays with the entry


def restore_exclusive_pte(k: Kernel, mm: MM, vpn: int) -> Pte:
    """``remove_device_exclusive_entry()`` → ``restore_exclusive_pte()``."""
    e = mm.ptes[vpn]
    assert isinstance(e, DeviceExclusivePte)
    page = e.page
    if not k.rules.device_exclusive_mapped:
        # the GUP reference ≤6.14 kept becomes the mapping's
        folio_add_anon_rmap_pte(k, page.folio, page, RMAP_NONE, mm.name)
    vma = mm.vma_or_fault(vpn)
    write = bool(vma.flags & VM_WRITE) and k.rules.anon_exclusive and \
        pf.PageAnonExclusive(page)
    pte = Pte(page, write=write, dirty=pf.test_page_flag(page, "dirty") or write)
    mm.ptes[vpn] = pte
    return pte
