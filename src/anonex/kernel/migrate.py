"""Migration: moving a folio to a new physical page behind the processes' backs.

Models mm/rmap.c ``try_to_migrate_one`` and mm/migrate.c (``migrate_folio``,
``remove_migration_pte``). Each mapping is replaced by a migration entry that carries
exclusivity: ``writable`` (exclusive and writable), ``readable_exclusive`` (exclusive,
read-only) or ``readable`` (maybe shared). An exclusive page first has its flag cleared with
``folio_try_share_anon_rmap_pte``, which fails while the folio may be pinned: pinned pages are
never migrated. The move also needs the reference count to be exactly the expected one. The
new folio starts with clear flags; ``remove_migration_pte`` gives each new page its
exclusivity back from the entry kind alone.
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.folio import Folio
from anonex.kernel.lru import lru_add_drain, lru_cache_add
from anonex.kernel.pgtable import MigrationKind, MigrationPte, Pte
from anonex.kernel.rmap import (
    RMAP_EXCLUSIVE,
    RMAP_NONE,
    folio_add_anon_rmap_pte,
    folio_remove_rmap_pte,
    folio_try_share_anon_rmap_pte,
)
from anonex.kernel.state import MM, Kernel


def folio_mappings(k: Kernel, folio: Folio) -> list[tuple[MM, int, Pte]]:
    """The rmap walk: every PTE that maps a page of *folio*."""
    out: list[tuple[MM, int, Pte]] = []
    for mm in k.mms.values():
        for vpn, e in mm.ptes.items():
            if isinstance(e, Pte) and e.page.folio is folio:
                out.append((mm, vpn, e))
    return out


def try_to_migrate_one(k: Kernel, mm: MM, vpn: int, pte: Pte) -> bool:
    """Replace one PTE with a migration entry of the right kind."""
    page = pte.page
    folio = page.folio
    anon_exclusive = folio.anon and k.rules.anon_exclusive and pf.PageAnonExclusive(page)
    del mm.ptes[vpn]  # ptep_clear_flush
    if anon_exclusive and folio_try_share_anon_rmap_pte(k, folio, page) != 0:
        mm.ptes[vpn] = pte
        return False
    kind: MigrationKind
    if pte.write:
        kind = "writable"
    elif anon_exclusive:
        kind = "readable_exclusive"
    else:
        kind = "readable"
    mm.ptes[vpn] = MigrationPte(page, kind)
    folio_remove_rmap_pte(folio, page, mm.name)
    k.folio_put(folio)
    return True


def remove_migration_pte(k: Kernel, mm: MM, vpn: int, entry: MigrationPte, new: Folio) -> None:
    """Map the page of *new* where the entry was; exclusive unless the entry is readable."""
    page = new.pages[entry.page.index]
    flags = RMAP_EXCLUSIVE if entry.kind != "readable" and new.anon else RMAP_NONE
    folio_add_anon_rmap_pte(k, new, page, flags, mm.name)
    k.folio_get(new)
    mm.ptes[vpn] = Pte(page, write=entry.kind == "writable", dirty=entry.kind == "writable")


def migrate_folio(k: Kernel, folio: Folio) -> bool:
    """``migrate_pages()`` for one small anon folio: unmap, move, remap. False if it stays."""
    if folio.large or folio.zero or not folio.anon or folio.ksm:
        return False
    lru_add_drain(k)  # migrate_prep(): lru_add_drain_all()
    done: list[tuple[MM, int]] = []
    ok = True
    for mm, vpn, pte in folio_mappings(k, folio):
        if not try_to_migrate_one(k, mm, vpn, pte):
            ok = False
            break
        done.append((mm, vpn))
    swapcache = int(folio.swap is not None)
    target = folio
    if ok and folio.refcount == swapcache:  # folio_migrate_mapping(): no other references
        new = k.alloc_folio(0)
        new.refcount = 0
        new.anon = True
        for s, d in zip(folio.pages, new.pages, strict=True):
            d.data = s.data
        pf.SetPageSwapBacked(new.pages[0])
        k.folio_get(folio, 1)  # held across the move, dropped when freed below
        target = new
    for mm, vpn in done:
        entry = mm.ptes[vpn]
        assert isinstance(entry, MigrationPte)
        remove_migration_pte(k, mm, vpn, entry, target)
    if target is not folio:
        lru_cache_add(k, target)  # putback_lru_page()
        k.folio_put(folio, 1)
        return True
    return False
