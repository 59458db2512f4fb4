"""GUP: taking references (FOLL_GET) and pins (FOLL_PIN) on user pages.

Models mm/gup.c and mm/internal.h: ``__get_user_pages`` (slow path: follow the PTE, fault
in what is missing or must be written or unshared, then grab), ``can_follow_write_pte``
(FOLL_FORCE writes into read-only private mappings), ``gup_must_unshare`` (a R/O pin of an
anon page that is not exclusive must unshare it first), ``try_grab_folio`` (pin accounting
with ``GUP_PIN_COUNTING_BIAS``), GUP-fast (no VMA; backs off to the slow path) and
``unpin_user_page``.

A pin of an anon page guarantees (5.19+) that the page is PG_anon_exclusive: FOLL_WRITE
breaks COW first, a R/O pin unshares. FOLL_GET guarantees nothing: vmsplice may keep a page
that the mapping later replaces, or shares.
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.errors import Segfault
from anonex.kernel.folio import GUP_PIN_COUNTING_BIAS, Page, folio_has_pincount
from anonex.kernel.memory import handle_mm_fault, vm_normal_page
from anonex.kernel.pgtable import Pte, huge_base
from anonex.kernel.state import (
    FAULT_FLAG_REMOTE,
    FAULT_FLAG_UNSHARE,
    FAULT_FLAG_WRITE,
    MM,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    VMA,
    Kernel,
    is_cow_mapping,
)

FOLL_WRITE = 0x01
FOLL_GET = 0x04
FOLL_FORCE = 0x10
FOLL_REMOTE = 0x2000
FOLL_LONGTERM = 0x10000
FOLL_PIN = 0x40000
FOLL_FAST_ONLY = 0x80000  # anonex: the caller asked for GUP-fast first
_FOLL_COW = 0x4000  # ≤5.19 internal: a write fault was taken for FOLL_FORCE


def gup_must_unshare(k: Kernel, vma: VMA | None, gup_flags: int, page: Page) -> bool:
    """``gup_must_unshare()`` (mm/internal.h): only R/O pins unshare; anon pages that are not
    exclusive always, other pages of COW mappings for long-term pins (6.2+). ``vma`` is None
    under GUP-fast, which then backs off for any non-anon page."""
    if not k.rules.anon_exclusive:
        return False
    if gup_flags & (FOLL_WRITE | FOLL_PIN) != FOLL_PIN:
        return False
    if not page.folio.anon:
        if not k.rules.ro_longterm_unshare_any or not gup_flags & FOLL_LONGTERM:
            return False
        if vma is None:
            return True
        return is_cow_mapping(vma.flags)
    return not pf.PageAnonExclusive(page)


def can_follow_write_pte(k: Kernel, pte: Pte, page: Page | None, vma: VMA,
                         gup_flags: int) -> bool:
    """``can_follow_write_pte()``: may GUP write through this PTE without a fault?"""
    if pte.write:
        return True
    if not gup_flags & FOLL_FORCE:
        return False
    if vma.flags & (VM_SHARED | VM_MAYSHARE) or not vma.flags & VM_MAYWRITE:
        return False
    if vma.flags & VM_WRITE:
        return False
    if k.rules.foll_force_exclusive:
        return page is not None and page.folio.anon and pf.PageAnonExclusive(page)
    return bool(gup_flags & _FOLL_COW) and pte.dirty


def check_vma_flags(vma: VMA, gup_flags: int) -> None:
    """``check_vma_flags()``: EFAULT for accesses the VMA does not permit."""
    if gup_flags & FOLL_WRITE:
        if not vma.flags & VM_WRITE and (not gup_flags & FOLL_FORCE or
                                         not is_cow_mapping(vma.flags)):
            raise Segfault("EFAULT: write GUP on a mapping without PROT_WRITE")
    elif not vma.flags & VM_READ and not (gup_flags & FOLL_FORCE and vma.flags & VM_MAYREAD):
        raise Segfault("EFAULT: GUP on a mapping without PROT_READ")


def try_grab_folio(k: Kernel, page: Page, gup_flags: int) -> None:
    """``try_grab_folio()``: +1 for FOLL_GET; for FOLL_PIN +1024 on a small folio, or +1 and
    pincount+1 on a large one. The zero page is never counted."""
    folio = page.folio
    if folio.zero:
        return
    if gup_flags & FOLL_PIN:
        if folio_has_pincount(folio):
            folio.refcount += 1
            folio.pincount += 1
        else:
            folio.refcount += GUP_PIN_COUNTING_BIAS
    else:
        folio.refcount += 1


def unpin_user_page(k: Kernel, page: Page) -> None:
    """``unpin_user_page()``: undo one FOLL_PIN."""
    folio = page.folio
    if folio.zero:
        return
    if folio_has_pincount(folio):
        folio.pincount -= 1
        k.folio_put(folio, 1)
    else:
        k.folio_put(folio, GUP_PIN_COUNTING_BIAS)


def put_page(k: Kernel, page: Page) -> None:
    """``put_page()``: undo one FOLL_GET."""
    k.folio_put(page.folio)


def _follow_page_pte(k: Kernel, mm: MM, vma: VMA, vpn: int,
                     gup_flags: int) -> Page | str:
    """``follow_page_pte()`` (and ``follow_huge_pmd()``): the page, or why a fault is needed
    ("fault", "unshare")."""
    pmd = mm.pmd_at(vpn)
    if pmd is not None:
        page = pmd.folio.pages[vpn - huge_base(vpn)]
        forced_ok = bool(gup_flags & FOLL_FORCE) and k.rules.foll_force_exclusive and \
            not vma.flags & VM_WRITE and not pmd.folio.hugetlb and \
            pf.PageAnonExclusive(pmd.folio.pages[0])
        if gup_flags & FOLL_WRITE and not pmd.write and not forced_ok:
            return "fault"
        if not pmd.write and gup_must_unshare(k, vma, gup_flags, pmd.folio.pages[0]):
            return "unshare"
        return page
    entry = mm.ptes.get(vpn)
    if not isinstance(entry, Pte):
        return "fault"
    normal = vm_normal_page(k, entry)
    if gup_flags & FOLL_WRITE and not can_follow_write_pte(k, entry, normal, vma, gup_flags):
        return "fault"
    target = entry.page
    if not entry.write and gup_must_unshare(k, vma, gup_flags, target):
        return "unshare"
    return target


def _gup_fast_one(k: Kernel, mm: MM, vpn: int, gup_flags: int) -> Page | None:
    """One PTE of ``gup_fast_pte_range()``: succeed only without any fault or unshare."""
    pmd = mm.pmd_at(vpn)
    if pmd is not None:
        if gup_flags & FOLL_WRITE and not pmd.write:
            return None
        if not pmd.write and gup_must_unshare(k, None, gup_flags, pmd.folio.pages[0]):
            return None
        return pmd.folio.pages[vpn - huge_base(vpn)]
    entry = mm.ptes.get(vpn)
    if not isinstance(entry, Pte):
        return None
    if gup_flags & FOLL_WRITE and not entry.write:
        return None
    if entry.special and gup_flags & FOLL_PIN and gup_flags & FOLL_LONGTERM:
        return None
    if not entry.write and gup_must_unshare(k, None, gup_flags, entry.page):
        return None
    return entry.page


def get_user_pages(k: Kernel, mm: MM, vpns: list[int], gup_flags: int) -> list[Page]:
    """``__get_user_pages()`` (with GUP-fast first when ``FOLL_FAST_ONLY`` is given):
    returns the pages with a reference or pin taken on each."""
    if gup_flags & FOLL_PIN:
        mm.has_pinned = True  # mm_set_has_pinned_flag()
    out: list[Page] = []
    for vpn in vpns:
        vma = mm.vma_or_fault(vpn)
        flags = gup_flags
        if k.rules.gup_forces_cow_break and flags & (FOLL_GET | FOLL_PIN) and \
                is_cow_mapping(vma.flags) and vma.flags & VM_WRITE:
            flags |= FOLL_WRITE  # 5.8: "COW can break either way"
        check_vma_flags(vma, flags)
        if flags & FOLL_FAST_ONLY:
            page = _gup_fast_one(k, mm, vpn, flags)
            if page is not None:
                try_grab_folio(k, page, flags)
                out.append(page)
                continue
        for _ in range(8):
            got = _follow_page_pte(k, mm, vma, vpn, flags)
            if isinstance(got, Page):
                try_grab_folio(k, got, flags)
                out.append(got)
                break
            fault_flags = FAULT_FLAG_REMOTE if flags & FOLL_REMOTE else 0
            if got == "unshare":
                fault_flags |= FAULT_FLAG_UNSHARE
            elif flags & FOLL_WRITE:
                fault_flags |= FAULT_FLAG_WRITE
            handle_mm_fault(k, mm, vpn, fault_flags)
            if fault_flags & FAULT_FLAG_WRITE:
                flags |= _FOLL_COW
        else:  # pragma: no cover - the model always converges
            raise Segfault("GUP did not converge")
    return out
