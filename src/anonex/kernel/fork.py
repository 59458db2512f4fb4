"""fork: duplicating an mm.

Models ``dup_mmap()`` (kernel/fork.c; mm/mmap.c in recent kernels) → ``copy_page_range()``
→ ``copy_present_ptes()`` / ``copy_nonpresent_pte()`` (mm/memory.c); PMDs go to
``copy_huge_pmd`` (:mod:`anonex.kernel.thp`) and ``copy_hugetlb_page_range``
(:mod:`anonex.kernel.hugetlb`). VM_DONTCOPY VMAs are not copied; VM_WIPEONFORK VMAs
are copied empty. For each present anon page ``folio_try_dup_anon_rmap_pte`` clears
PG_anon_exclusive and both PTEs become read-only; when it fails (exclusive, MMF_HAS_PINNED,
maybe pinned) ``copy_present_page`` gives the child its own copy at once and leaves the
parent's PTE writable (5.9+). Swap entries lose their exclusive bit.
"""

from __future__ import annotations

from anonex.kernel.hugetlb import copy_hugetlb_pmd
from anonex.kernel.memory import restore_exclusive_pte, vm_normal_page
from anonex.kernel.pgtable import DeviceExclusivePte, MigrationPte, Pte, SwapPte
from anonex.kernel.rmap import (
    EBUSY,
    RMAP_EXCLUSIVE,
    folio_add_new_anon_rmap,
    folio_try_dup_anon_rmap_pte,
)
from anonex.kernel.state import (
    MM,
    VM_DONTCOPY,
    VM_WIPEONFORK,
    VM_WRITE,
    VMA,
    Kernel,
    is_cow_mapping,
)
from anonex.kernel.thp import copy_huge_pmd


def copy_present_page(k: Kernel, dst: MM, dst_vma: VMA, vpn: int, pte: Pte) -> None:
    """``copy_present_page()``: the child gets a new exclusive copy, writable iff the VMA
    is; the parent's PTE is not touched."""
    new = k.alloc_folio(0)
    new.pages[0].data = pte.page.data
    folio_add_new_anon_rmap(k, new, RMAP_EXCLUSIVE)
    dst_vma.anon_vma = True
    w = bool(dst_vma.flags & VM_WRITE)
    dst.ptes[vpn] = Pte(new.pages[0], write=w, dirty=True)


def copy_present_pte(k: Kernel, src: MM, dst: MM, src_vma: VMA, dst_vma: VMA, vpn: int,
                     pte: Pte) -> None:
    """``copy_present_ptes()`` for one small page."""
    page = vm_normal_page(k, pte)
    if page is not None and page.folio.anon:
        if folio_try_dup_anon_rmap_pte(k, page.folio, page, src, dst.name) == EBUSY:
            copy_present_page(k, dst, dst_vma, vpn, pte)
            return
        k.folio_get(page.folio)
    child = Pte(pte.page, write=pte.write, dirty=pte.dirty, special=pte.special)
    if is_cow_mapping(src_vma.flags) and pte.write:
        pte.write = False
        child.write = False
    dst.ptes[vpn] = child


def copy_migration_pte(src: MM, dst: MM, vma: VMA, vpn: int, e: MigrationPte) -> None:
    """``copy_nonpresent_pte()`` for a migration entry: in a COW mapping a writable or
    readable-exclusive entry becomes readable in parent and child (the page is shared)."""
    kind = e.kind
    if kind != "readable" and is_cow_mapping(vma.flags):
        kind = "readable"
        src.ptes[vpn] = MigrationPte(e.page, kind)
    dst.ptes[vpn] = MigrationPte(e.page, kind)


def copy_swap_pte(k: Kernel, src: MM, dst: MM, vpn: int, entry: SwapPte) -> None:
    """``copy_nonpresent_pte()`` for a swap entry: one more swap reference; the parent's
    entry loses the exclusive bit and the child gets a non-exclusive entry."""
    k.swap[entry.slot].count += 1
    if entry.exclusive:
        src.ptes[vpn] = SwapPte(entry.slot, exclusive=False)
    dst.ptes[vpn] = SwapPte(entry.slot, exclusive=False)


def dup_mmap(k: Kernel, src: MM, child_name: str) -> MM:
    """``dup_mmap()``: a new mm for the child with copies of the parent's VMAs."""
    dst = MM(child_name)
    if src.name in k.ksm_mms:
        k.ksm_mms.append(child_name)  # ksm_fork()
    for vma in src.vmas:
        if vma.flags & VM_DONTCOPY:
            continue
        dvma = VMA(vma.start, vma.npages, vma.flags, vma.anon_vma, vma.ra)
        dst.vmas.append(dvma)
        if vma.flags & VM_WIPEONFORK:
            dvma.anon_vma = False
            continue
        if not vma.anon_vma:
            continue
        for base in sorted(b for b in src.pmds if vma.start <= b < vma.end):
            pmd = src.pmds[base]
            if pmd.folio.hugetlb:
                copy_hugetlb_pmd(k, src, dst, dvma, base, pmd)
            else:
                copy_huge_pmd(k, src, dst, dvma, base, pmd)  # on failure: now PTE-mapped
        for vpn in range(vma.start, vma.end):
            e = src.ptes.get(vpn)
            if isinstance(e, DeviceExclusivePte):
                e = restore_exclusive_pte(k, src, vpn)  # try_restore_exclusive_pte()
            elif isinstance(e, MigrationPte):
                copy_migration_pte(src, dst, vma, vpn, e)
                continue
            if isinstance(e, Pte):
                copy_present_pte(k, src, dst, vma, dvma, vpn, e)
            elif isinstance(e, SwapPte):
                copy_swap_pte(k, src, dst, vpn, e)
    return dst
