"""Device-exclusive entries: a device takes a page for itself and the CPU must fault.

Models mm/rmap.c ``make_device_exclusive()`` (6.15+; kept apart from
:mod:`anonex.kernel.rmap` because it calls GUP, which builds on the rmap). The CPU's way back,
``remove_device_exclusive_entry()`` / ``restore_exclusive_pte()``, is mm/memory.c
(:mod:`anonex.kernel.memory`). The page is first made
exclusive and writable by a GUP write fault; its PTE is then replaced by a device-exclusive
entry. Since 6.15 the page stays in the rmap and keeps PG_anon_exclusive (before, the rmap
was removed and the flag left as it was). A CPU access or fork restores a present PTE,
writable iff the VMA allows and the page is exclusive. Not reachable from the scenario
language (no user-space way); the API serves tests and the explorer.
"""

from __future__ import annotations

from anonex.kernel.errors import Segfault
from anonex.kernel.gup import FOLL_GET, FOLL_WRITE, get_user_pages, put_page
from anonex.kernel.pgtable import DeviceExclusivePte, Pte
from anonex.kernel.rmap import folio_remove_rmap_pte
from anonex.kernel.state import MM, Kernel


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
