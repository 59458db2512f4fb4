"""hugetlb: private anonymous 2 MiB hugetlb pages.

Models mm/hugetlb.c; ``handle_mm_fault`` hands every fault in a hugetlb VMA to
``hugetlb_fault``. The flag lives on the head page only (``PageAnonExclusive`` of a tail
reads the head; setting it on a tail is a VM_BUG). A new private page gets the flag
(``hugetlb_add_new_anon_rmap``). ``hugetlb_wp`` reuses a page whose **mapcount** is 1 — it
never looks at references, which is why a vmsplice reference taken in a child still sees the
parent's later writes (the leak the kernel's selftest marks as expected failure).
``copy_hugetlb_page_range`` (fork) shares and write-protects, or copies a pinned exclusive
page for the child (5.12+).
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.errors import KernelBug
from anonex.kernel.folio import Folio
from anonex.kernel.pgtable import HPAGE_PMD_ORDER, Pmd, huge_base
from anonex.kernel.rmap import (
    EBUSY,
    folio_move_anon_rmap,
    folio_remove_rmap_pmd,
    hugetlb_try_dup_anon_rmap,
)
from anonex.kernel.state import (
    FAULT_FLAG_UNSHARE,
    FAULT_FLAG_WRITE,
    MM,
    VM_WRITE,
    VMA,
    Kernel,
    is_cow_mapping,
)


def alloc_hugetlb_folio(k: Kernel) -> Folio:
    """``alloc_hugetlb_folio()``: a new 2 MiB hugetlb folio from the pool."""
    f = k.alloc_folio(HPAGE_PMD_ORDER)
    f.hugetlb = True
    return f


def hugetlb_add_new_anon_rmap(k: Kernel, folio: Folio) -> None:
    """``hugetlb_add_new_anon_rmap()``: anon, mapped once, head exclusive (5.19+)."""
    folio.anon = True
    folio.entire_mapcount = 1
    folio.large_mapcount = 1
    if k.rules.anon_exclusive:
        pf.SetPageAnonExclusive(folio.pages[0])


def hugetlb_fault(k: Kernel, mm: MM, vma: VMA, vpn: int, flags: int) -> str:
    """``hugetlb_fault()``: no huge PTE yet (``hugetlb_no_page``), a write or unshare fault on
    a read-only one (``hugetlb_wp``), or nothing to do but mark it dirty."""
    base = huge_base(vpn)
    pmd = mm.pmds.get(base)
    if pmd is None:
        return hugetlb_no_page(k, mm, vma, base, bool(flags & FAULT_FLAG_WRITE))
    if flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE) and not pmd.write:
        return hugetlb_wp(k, mm, vma, base, bool(flags & FAULT_FLAG_UNSHARE))
    if flags & FAULT_FLAG_WRITE:
        pmd.dirty = True
    return "none"


def hugetlb_no_page(k: Kernel, mm: MM, vma: VMA, base: int, write: bool) -> str:
    """``hugetlb_no_page()`` for a private mapping: a new exclusive page, mapped read-only
    unless this is a write fault (then ``hugetlb_wp`` reuses it at once)."""
    vma.anon_vma = True
    folio = alloc_hugetlb_folio(k)
    hugetlb_add_new_anon_rmap(k, folio)
    pmd = Pmd(folio, write=False, dirty=False)
    mm.pmds[base] = pmd
    if write:
        hugetlb_wp(k, mm, vma, base, unshare=False)
    return "new"


def hugetlb_wp(k: Kernel, mm: MM, vma: VMA, base: int, unshare: bool) -> str:
    """``hugetlb_wp()``: reuse when the page is mapped once (mapcount, not refcount!),
    else copy the whole 2 MiB."""
    pmd = mm.pmds[base]
    old = pmd.folio
    head = old.pages[0]
    if old.mapcount_total() == 1 and old.anon:
        if k.rules.anon_exclusive and not pf.PageAnonExclusive(head):
            folio_move_anon_rmap(old)
            pf.SetPageAnonExclusive(head)
        if not unshare:
            pmd.write = bool(vma.flags & VM_WRITE)
            pmd.dirty = True
        return "reused"
    if k.rules.anon_exclusive and old.anon and pf.PageAnonExclusive(head):
        raise KernelBug("VM_BUG_ON(folio_test_anon(old_folio) && PageAnonExclusive(old_page))"
                        " in hugetlb_wp", head.name)
    new = alloc_hugetlb_folio(k)
    for src, dst in zip(old.pages, new.pages, strict=True):
        dst.data = src.data
    hugetlb_add_new_anon_rmap(k, new)
    mm.pmds[base] = Pmd(new, write=(not unshare) and bool(vma.flags & VM_WRITE),
                        dirty=not unshare)
    folio_remove_rmap_pmd(old)
    k.folio_put(old)
    return "copied"


def copy_hugetlb_pmd(k: Kernel, src: MM, dst: MM, vma: VMA, base: int, pmd: Pmd) -> None:
    """``copy_hugetlb_page_range()`` for one huge PTE."""
    folio = pmd.folio
    if folio.anon and hugetlb_try_dup_anon_rmap(k, folio, src) == EBUSY:
        new = alloc_hugetlb_folio(k)
        for s, d in zip(folio.pages, new.pages, strict=True):
            d.data = s.data
        hugetlb_add_new_anon_rmap(k, new)
        dst.pmds[base] = Pmd(new, write=bool(vma.flags & VM_WRITE), dirty=True)
        return
    k.folio_get(folio)
    if is_cow_mapping(vma.flags):
        pmd.write = False
    dst.pmds[base] = Pmd(folio, write=pmd.write, dirty=pmd.dirty)
