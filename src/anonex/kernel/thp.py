"""Transparent huge pages: PMD-mapped THP, PMD splits, and PTE-mapped large folios.

Models mm/huge_memory.c, and ``MADV_COLLAPSE`` of mm/khugepaged.c. A PMD-mapped THP keeps
PG_anon_exclusive on its head only, and that bit describes the whole PMD mapping.
``__split_huge_pmd`` (partial munmap, mprotect, MADV_DONTNEED, mremap, the write-fault
fallback, fork of a pinned THP) remaps it with 512 PTEs; every subpage then gets the head's
exclusivity. From then on the flag lives per page.

The fault handlers here are called from ``__handle_mm_fault`` (:mod:`anonex.kernel.memory`)
and, like the kernel's, return ``VM_FAULT_FALLBACK`` when the fault is to be handled at the
PTE level instead:

* :func:`do_huge_pmd_anonymous_page`: a new THP, head exclusive, PMD writable; or the huge
  zero page for a read fault.
* :func:`do_huge_pmd_wp_page`: reuse the whole THP (head exclusive, or the only reference),
  else split the PMD and fall back, so that the PTE level copies the faulting 4 KiB page
  (5.8+; before, the whole 2 MiB was copied). A write fault on the huge zero page gets a new
  THP (6.13+) or falls back the same way.
* :func:`copy_huge_pmd`: fork shares the THP and clears the head flag, or, for a pinned
  exclusive THP, splits the parent's PMD and lets the PTE path copy each page.
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.errors import KernelBug, Segfault
from anonex.kernel.folio import Folio, free_pages_prepare
from anonex.kernel.lru import lru_add_drain, lru_cache_add
from anonex.kernel.pgtable import HPAGE_PMD_NR, HPAGE_PMD_ORDER, Pmd, Pte, huge_base
from anonex.kernel.rmap import (
    EBUSY,
    RMAP_EXCLUSIVE,
    folio_add_new_anon_rmap,
    folio_move_anon_rmap,
    folio_remove_rmap_pmd,
    folio_remove_rmap_pte,
    folio_try_dup_anon_rmap_pmd,
)
from anonex.kernel.state import (
    FAULT_FLAG_UNSHARE,
    FAULT_FLAG_WRITE,
    MM,
    VM_FAULT_FALLBACK,
    VM_NOHUGEPAGE,
    VM_WRITE,
    VMA,
    Kernel,
)


def split_huge_pmd(k: Kernel, mm: MM, base: int) -> None:
    """``__split_huge_pmd_locked(freeze=false)``: the PMD becomes 512 PTEs with the same
    write/dirty bits; with an exclusive head every subpage gets the flag."""
    pmd = mm.pmds.pop(base)
    folio = pmd.folio
    if folio.hugetlb:
        raise KernelBug("VM_BUG_ON(is_vm_hugetlb_page(vma)) in __split_huge_pmd",
                        folio.pages[0].name)
    if folio.zero:
        # __split_huge_zero_page_pmd(): 512 PTEs of the small zero page
        for i in range(HPAGE_PMD_NR):
            mm.ptes[base + i] = Pte(k.zero_page, write=False, special=True)
        return
    head = folio.pages[0]
    exclusive = k.rules.anon_exclusive and pf.PageAnonExclusive(head)
    k.folio_get(folio, HPAGE_PMD_NR - 1)  # folio_ref_add(folio, nr - 1)
    folio.entire_mapcount -= 1
    folio.large_mapcount -= 1
    folio.mm_sub(mm.name)
    for i, page in enumerate(folio.pages):
        # folio_add_anon_rmap_ptes(…, exclusive ? RMAP_EXCLUSIVE : RMAP_NONE)
        page.mapcount += 1
        if exclusive:
            pf.SetPageAnonExclusive(page)
        mm.ptes[base + i] = Pte(page, write=pmd.write, dirty=pmd.dirty)
    folio.large_mapcount += HPAGE_PMD_NR
    folio.mm_add(mm.name, HPAGE_PMD_NR)


def do_huge_pmd_anonymous_page(k: Kernel, mm: MM, vma: VMA, vpn: int, flags: int) -> str:
    """``do_huge_pmd_anonymous_page()`` where a PMD THP fits: a read fault maps the huge
    zero page when ``use_zero_page`` is on; any other fault maps a new THP (writable in a
    writable VMA, even for a read fault)."""
    base = huge_base(vpn)
    if not flags & FAULT_FLAG_WRITE and k.thp_use_zero_page:
        mm.pmds[base] = Pmd(k.huge_zero_folio, write=False, dirty=False)  # set_huge_zero_folio
        return "new"
    return __do_huge_pmd_anonymous_page(k, mm, vma, base)


def __do_huge_pmd_anonymous_page(k: Kernel, mm: MM, vma: VMA, base: int) -> str:
    """``__do_huge_pmd_anonymous_page()``: a new THP, head exclusive, mapped by one PMD."""
    vma.anon_vma = True
    folio = k.alloc_folio(HPAGE_PMD_ORDER)
    folio_add_new_anon_rmap(k, folio, RMAP_EXCLUSIVE, mm.name, pmd=True)
    lru_cache_add(k, folio)  # a large folio: the batch is flushed
    w = bool(vma.flags & VM_WRITE)
    mm.pmds[base] = Pmd(folio, write=w, dirty=w)
    return "new"


def _reuse_pmd(k: Kernel, vma: VMA, pmd: Pmd, unshare: bool) -> str:
    head = pmd.folio.pages[0]
    if k.rules.anon_exclusive and not pf.PageAnonExclusive(head):
        pf.SetPageAnonExclusive(head)
    if not unshare:
        pmd.dirty = True
        pmd.write = bool(vma.flags & VM_WRITE)
    return "reused"


def do_huge_pmd_wp_page(k: Kernel, mm: MM, vma: VMA, vpn: int, flags: int) -> str:
    """``do_huge_pmd_wp_page()``: write or unshare fault on a read-only THP PMD. Reuse the
    THP, or split the PMD and return ``VM_FAULT_FALLBACK`` (≤5.7: copy the whole THP)."""
    base = huge_base(vpn)
    pmd = mm.pmds[base]
    folio = pmd.folio
    unshare = bool(flags & FAULT_FLAG_UNSHARE)
    r = k.rules
    if folio.zero:
        if r.thp_zero_wp_alloc:
            return do_huge_zero_wp_pmd(k, mm, vma, base)
        split_huge_pmd(k, mm, base)
        return VM_FAULT_FALLBACK
    if r.anon_exclusive and pf.PageAnonExclusive(folio.pages[0]):
        return _reuse_pmd(k, vma, pmd, unshare)
    if r.cow_fixes_part1:
        swapcache = folio.swap is not None
        if folio.refcount <= 1 + int(swapcache) * folio.nr and folio.refcount == 1:
            folio_move_anon_rmap(folio)
            return _reuse_pmd(k, vma, pmd, unshare)
    elif folio.mapcount_total() == 1 and max(p.mapcount for p in folio.pages) == 0:
        return _reuse_pmd(k, vma, pmd, unshare)  # reuse_swap_page() on the whole THP
    if not r.thp_wp_split_fallback:
        return _copy_huge_pmd_page(k, mm, vma, base, pmd)
    split_huge_pmd(k, mm, base)
    return VM_FAULT_FALLBACK


def do_huge_zero_wp_pmd(k: Kernel, mm: MM, vma: VMA, base: int) -> str:
    """``do_huge_zero_wp_pmd()`` (6.13+, 1ced09e0331f): a write or unshare fault on the
    huge zero page maps a new THP in its place, writable in a writable VMA whichever fault
    it was (``map_anon_folio_pmd_pf``). Before 6.13 ``do_huge_pmd_wp_page()`` splits the PMD
    into zero-page PTEs and falls back, and the PTE level copies the faulting page."""
    del mm.pmds[base]
    __do_huge_pmd_anonymous_page(k, mm, vma, base)
    return "copied"


def _copy_huge_pmd_page(k: Kernel, mm: MM, vma: VMA, base: int, pmd: Pmd) -> str:
    """≤5.7 ``do_huge_pmd_wp_page_fallback``-era behaviour: copy the whole THP."""
    old = pmd.folio
    new = k.alloc_folio(HPAGE_PMD_ORDER)
    for src, dst in zip(old.pages, new.pages, strict=True):
        dst.data = src.data
    folio_add_new_anon_rmap(k, new, RMAP_EXCLUSIVE, mm.name, pmd=True)
    w = bool(vma.flags & VM_WRITE)
    mm.pmds[base] = Pmd(new, write=w, dirty=True)
    folio_remove_rmap_pmd(old, mm.name)
    k.folio_put(old)
    return "copied"


def copy_huge_pmd(k: Kernel, src: MM, dst: MM, vma: VMA, base: int, pmd: Pmd) -> bool:
    """``copy_huge_pmd()``: share the THP with the child, or split the parent's PMD when
    the dup fails (pinned) and return False so the caller copies PTE by PTE."""
    folio = pmd.folio
    if folio.zero:  # the huge zero page is shared as it is
        dst.pmds[base] = Pmd(folio, write=False, dirty=False)
        return True
    if folio_try_dup_anon_rmap_pmd(k, folio, src, dst.name) == EBUSY:
        split_huge_pmd(k, src, base)
        return False
    k.folio_get(folio)
    pmd.write = False
    dst.pmds[base] = Pmd(folio, write=False, dirty=pmd.dirty)
    del vma
    return True


def madvise_collapse(k: Kernel, mm: MM, start: int, end: int) -> None:
    """``MADV_COLLAPSE`` (mm/khugepaged.c ``collapse_huge_page``): copy each fully covered,
    PTE-mapped 2 MiB range into a new THP, head exclusive, mapped by one PMD.

    Every PTE must map an anon page that only the mapping references (extra references, such
    as pins, make ``__collapse_huge_page_isolate`` fail); pages shared with other processes
    are allowed (MADV_COLLAPSE does not apply khugepaged's ``max_ptes_shared``) and stay
    with them. Fails with EINVAL before 6.1, where the advice does not exist, and before
    6.18 when no PTE of the range is writable (SCAN_PAGE_RO).
    """
    if not k.rules.madv_collapse:
        raise Segfault("EINVAL: MADV_COLLAPSE does not exist before 6.1")
    lru_add_drain(k)  # lru_add_drain_all()
    base = (start + HPAGE_PMD_NR - 1) & ~(HPAGE_PMD_NR - 1)
    while base + HPAGE_PMD_NR <= end:
        if base in mm.pmds:
            base += HPAGE_PMD_NR
            continue
        vma = mm.vma_or_fault(base)
        if vma.start > base or vma.end < base + HPAGE_PMD_NR:
            raise Segfault("EINVAL: the range is not one VMA")
        if vma.flags & VM_NOHUGEPAGE:
            raise Segfault("EINVAL: MADV_COLLAPSE in a VM_NOHUGEPAGE VMA "
                           "(thp_vma_allowable_order)")
        old: list[Pte | None] = []
        for vpn in range(base, base + HPAGE_PMD_NR):
            e = mm.ptes.get(vpn)
            if e is None or (isinstance(e, Pte) and e.special):
                old.append(None)  # MADV_COLLAPSE ignores max_ptes_none: zero-filled
                continue
            if not isinstance(e, Pte) or not e.page.folio.anon or e.page.folio.ksm:
                raise Segfault("EINVAL: MADV_COLLAPSE needs anon pages (swap-in not modelled)")
            f = e.page.folio
            if f.refcount != f.mapcount_total() + (0 if f.swap is None else f.nr) and \
                    not f.large:
                raise Segfault("EAGAIN: a page has extra references (pinned?)")
            old.append(e)
        if not k.rules.collapse_readonly_ptes and not any(e is not None and e.write
                                                          for e in old):
            # hpage_collapse_scan_pmd(): SCAN_PAGE_RO, which madvise_collapse_errno() maps
            # to EINVAL (gone in 6.18)
            raise Segfault("EINVAL: no writable PTE in the range (SCAN_PAGE_RO)")
        new = k.alloc_folio(HPAGE_PMD_ORDER)
        for e, page in zip(old, new.pages, strict=True):
            page.data = e.page.data if e is not None else ""
        folio_add_new_anon_rmap(k, new, RMAP_EXCLUSIVE, mm.name, pmd=True)
        for vpn, e in zip(range(base, base + HPAGE_PMD_NR), old, strict=True):
            mm.ptes.pop(vpn, None)
            if e is None:
                continue
            folio_remove_rmap_pte(e.page.folio, e.page, mm.name)
            k.folio_put(e.page.folio)
        w = bool(vma.flags & VM_WRITE)
        mm.pmds[base] = Pmd(new, write=w, dirty=True)
        mm.kept_ptables = mm.kept_ptables - {base}  # collapse_huge_page() frees the table
        base += HPAGE_PMD_NR


def can_split_folio(folio: Folio) -> bool:
    """``can_split_folio()`` (mm/huge_memory.c) for an anon folio outside the swap cache:
    only its mappings hold references (no pin, no pipe, no GUP reference)."""
    maps = sum(p.mapcount for p in folio.pages) + folio.entire_mapcount
    return folio.refcount == maps


def split_folio(k: Kernel, folio: Folio) -> bool:
    """``split_folio()`` (``__folio_split``) of a large anon folio into order-0 folios.

    Refused (False) for hugetlb, for a folio in the swap cache, and when anything but the
    mappings holds a reference (``folio_expected_ref_count`` + 1 != refcount: a pin, a
    pipe). PMD mappings are split first; every PTE mapping is then frozen — exclusivity goes
    into the (migration) entry, not the flag, which a split never copies — and remapped to
    its page's new small folio, exclusive as the entry says; from 6.12 a zero-filled page
    (never written) is mapped as the shared zero page instead.
    """
    if not folio.large or folio.hugetlb or folio.swap is not None or not folio.anon:
        return False
    if not can_split_folio(folio):
        return False
    for mm in list(k.mms.values()):
        for base, pmd in list(mm.pmds.items()):
            if pmd.folio is folio:
                split_huge_pmd(k, mm, base)
    frozen: list[tuple[MM, int, int, bool, bool, bool]] = []
    for mm in k.mms.values():
        for vpn, e in list(mm.ptes.items()):
            if isinstance(e, Pte) and e.page.folio is folio:
                excl = k.rules.anon_exclusive and pf.PageAnonExclusive(e.page)
                frozen.append((mm, vpn, e.page.index, excl, e.write, e.dirty))
    small: dict[int, Folio] = {}
    zero_remap = k.rules.split_zero_remap
    for mm, vpn, idx, excl, write, dirty in frozen:
        if zero_remap and folio.pages[idx].data == "":
            # remap_page(RMP_USE_SHARED_ZEROPAGE): a zero-filled page is not remapped but
            # replaced by the shared zero page (try_to_map_unused_to_zeropage)
            mm.ptes[vpn] = Pte(k.zero_page, write=False, special=True)
            continue
        nf = small.get(idx)
        if nf is None:
            # the page keeps its frame: the new order-0 folio is the old page itself
            nf = small[idx] = Folio(folio.pfn + idx, 0, folio.layout)
            nf.anon = True
            nf.pages[0].data = folio.pages[idx].data
            pf.SetPageSwapBacked(nf.pages[0])
        nf.refcount += 1
        nf.pages[0].mapcount += 1
        if excl:
            pf.SetPageAnonExclusive(nf.pages[0])
        mm.ptes[vpn] = Pte(nf.pages[0], write=write, dirty=dirty)
    folio.refcount = 0
    for p in folio.pages:
        p.mapcount = 0
    folio.large_mapcount = 0
    folio.mm_counts.clear()
    folio.mm_shared = False
    free_pages_prepare(folio)
    k.freed.append(folio)
    return True
