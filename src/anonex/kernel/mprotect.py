"""mprotect: changing a range's protection, and the write upgrade of exclusive pages.

Models ``mprotect_fixup()`` → ``change_protection()`` → ``change_pte_range()``
(mm/mprotect.c). Removing write permission write-protects every PTE. Adding it maps a PTE
writable at once only if ``can_change_pte_writable()`` holds: for a private mapping the
page must be anon and PG_anon_exclusive (6.0+; before 6.2 the PTE had to be dirty too).
Other pages take a write fault later, which reuses or copies.
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.memory import vm_normal_page
from anonex.kernel.mmap import (
    split_huge_pmds_at_edges,
    split_range,
    vma_flag_changes,
    vma_merge,
)
from anonex.kernel.pgtable import Pmd, Pte
from anonex.kernel.state import MM, VM_READ, VM_WRITE, Kernel

PROT = {"none": 0, "ro": VM_READ, "rw": VM_READ | VM_WRITE}


def can_change_pte_writable(k: Kernel, pte: Pte) -> bool:
    """``can_change_pte_writable()`` for a private mapping."""
    if not k.rules.mprotect_upgrade_exclusive:
        return False
    page = vm_normal_page(k, pte)
    if page is None or not page.folio.anon:
        return False
    if not k.rules.mprotect_upgrade_clean and not pte.dirty:
        return False  # 6.0/6.1 upgraded only dirty PTEs; 6.2 allowed clean exclusive ones
    return pf.PageAnonExclusive(page)


def can_change_pmd_writable(k: Kernel, pmd: Pmd) -> bool:
    """``can_change_pmd_writable()``: a private THP PMD needs an exclusive anon head."""
    if not k.rules.mprotect_upgrade_exclusive or pmd.folio.hugetlb:
        return False
    head = pmd.folio.pages[0]
    if not pmd.folio.anon or (not k.rules.mprotect_upgrade_clean and not pmd.dirty):
        return False
    return pf.PageAnonExclusive(head)


def mprotect_changes(mm: MM, start: int, end: int, prot: str) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` whose protection ``mprotect`` changes: one per VMA
    that does not have *prot* already. ``mprotect_fixup()`` returns at once for a VMA
    whose flags would not change: it splits neither the VMA nor a huge PMD, and leaves
    its PTEs alone (a read-only PTE of an exclusive page stays read-only)."""
    new = PROT[prot]
    return vma_flag_changes(mm, start, end, new, (VM_READ | VM_WRITE) & ~new)


def mprotect(k: Kernel, mm: MM, start: int, end: int, prot: str) -> None:
    """``mprotect(start, len, prot)`` with prot one of none, ro, rw."""
    for a, b in mprotect_changes(mm, start, end, prot):
        _change_protection(k, mm, a, b, PROT[prot])


def _change_protection(k: Kernel, mm: MM, start: int, end: int, new: int) -> None:
    """``mprotect_fixup()`` of a range inside one VMA whose protection changes: split the
    VMA and huge PMDs at the edges, then ``change_protection()``."""
    split_huge_pmds_at_edges(k, mm, start, end)
    for base, pmd in mm.pmds.items():
        if start <= base < end:
            if not new & VM_WRITE:
                pmd.write = False
            elif not pmd.write and can_change_pmd_writable(k, pmd):
                pmd.write = True
    vmas = split_range(mm, start, end)
    for vma in vmas:
        vma.flags = (vma.flags & ~(VM_READ | VM_WRITE)) | new
        for vpn in range(vma.start, vma.end):
            e = mm.ptes.get(vpn)
            if not isinstance(e, Pte):
                continue
            if not new & VM_WRITE:
                e.write = False
            elif not e.write and can_change_pte_writable(k, e):
                e.write = True
    vma_merge(mm)
