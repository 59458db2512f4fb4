"""Creating and removing mappings: mmap, munmap, mremap, process exit, and the VMA splits
they need.

Models mm/mmap.c, mm/vma.c and mm/memory.c's ``zap_pte_range``: unmapping drops the rmap
and the mapping's reference of each page (the flag stays as it was; a page that is still
referenced elsewhere keeps a stale PG_anon_exclusive until it is freed) and drops the swap
reference of each swap entry.
"""

from __future__ import annotations

import itertools

from anonex.kernel.errors import Segfault
from anonex.kernel.lru import lru_add_drain
from anonex.kernel.pgtable import HPAGE_PMD_NR, Entry, Pte, SwapPte
from anonex.kernel.rmap import folio_remove_rmap_pmd, folio_remove_rmap_pte
from anonex.kernel.state import MM, VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_WRITE, VMA, Kernel
from anonex.kernel.swap import swap_free
from anonex.kernel.thp import split_huge_pmd


def mmap_anon(k: Kernel, mm: MM, start: int, npages: int, extra_flags: int = 0) -> VMA:
    """``mmap(MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, PROT_READ|PROT_WRITE)``."""
    del k
    for v in mm.vmas:
        if v.start < start + npages and start < v.end:
            raise ValueError("EEXIST: the range is already mapped")
    vma = VMA(start, npages, VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | extra_flags)
    mm.vmas.append(vma)
    mm.vmas.sort(key=lambda v: v.start)
    return vma


def vma_flag_changes(mm: MM, start: int, end: int, set_bits: int,
                     clear_bits: int) -> list[tuple[int, int]]:
    """The parts of ``[start, end)``, one per VMA, whose flags setting *set_bits* and
    clearing *clear_bits* would change. ``mprotect_fixup()`` and ``madvise_update_vma()``
    return at once for a VMA whose flags stay the same: they split neither the VMA nor a
    huge PMD in it."""
    return [(max(start, v.start), min(end, v.end)) for v in mm.vmas
            if v.start < end and start < v.end
            and (v.flags | set_bits) & ~clear_bits != v.flags]


def update_vma_flags(k: Kernel, mm: MM, start: int, end: int, set_bits: int,
                     clear_bits: int) -> None:
    """``madvise_update_vma()``: split the VMAs (and huge PMDs) at the edges of each part
    whose flags change, and change them; parts whose flags stay are left alone."""
    spans = vma_flag_changes(mm, start, end, set_bits, clear_bits)
    for a, b in spans:
        split_huge_pmds_at_edges(k, mm, a, b)  # vma_adjust_trans_huge()
        for vma in split_range(mm, a, b):
            vma.flags = (vma.flags | set_bits) & ~clear_bits
    if spans:
        vma_merge(mm)


def split_range(mm: MM, start: int, end: int) -> list[VMA]:
    """Split VMAs at *start* and *end* (``split_vma``) and return those inside the range."""
    out: list[VMA] = []
    new: list[VMA] = []
    for v in mm.vmas:
        if v.end <= start or v.start >= end:
            new.append(v)
            continue
        cuts = sorted({v.start, max(v.start, start), min(v.end, end), v.end})
        for a, b in itertools.pairwise(cuts):
            piece = VMA(a, b - a, v.flags, v.anon_vma, v.ra)
            new.append(piece)
            if start <= a and b <= end:
                out.append(piece)
    new.sort(key=lambda v: v.start)
    mm.vmas = new
    return out


def vma_merge(mm: MM) -> None:
    """``vma_merge()``: adjacent VMAs with the same flags become one again (pieces of one
    split VMA share their anon_vma, so they always qualify)."""
    out: list[VMA] = []
    for v in sorted(mm.vmas, key=lambda v: v.start):
        if out and out[-1].end == v.start and out[-1].flags == v.flags:
            prev = out[-1]
            out[-1] = VMA(prev.start, prev.npages + v.npages, prev.flags,
                          prev.anon_vma or v.anon_vma, prev.ra)
        else:
            out.append(v)
    mm.vmas = out


def zap_entry(k: Kernel, entry: Entry, mm: str = "") -> None:
    """``zap_pte_range()`` for one entry: drop its rmap and reference, or its swap count."""
    if isinstance(entry, Pte):
        if entry.special:
            return
        folio = entry.page.folio
        folio_remove_rmap_pte(folio, entry.page, mm)
        k.folio_put(folio)
    elif isinstance(entry, SwapPte):
        swap_free(k, entry.slot)


def zap_range(k: Kernel, mm: MM, start: int, end: int) -> None:
    """Unmap every page in ``[start, end)`` but keep the VMAs (MADV_DONTNEED). A PMD that
    the range covers only in part is split first (``__split_huge_pmd``)."""
    split_huge_pmds_at_edges(k, mm, start, end)
    for base in [b for b in mm.pmds if start <= b < end]:
        zap_huge_pmd(k, mm, base)
    for vpn in range(start, end):
        e = mm.ptes.pop(vpn, None)
        if e is not None:
            zap_entry(k, e, mm.name)


def munmap(k: Kernel, mm: MM, start: int, end: int) -> None:
    """``munmap()``: zap the pages and remove the VMAs of the range."""
    lru_add_drain(k)  # unmap_region()
    zap_range(k, mm, start, end)
    free_pgtables(mm, start, end)
    gone = split_range(mm, start, end)
    mm.vmas = [v for v in mm.vmas if v not in gone]


def mremap(k: Kernel, mm: MM, start: int, end: int, new_start: int) -> None:
    """``mremap(MREMAP_MAYMOVE|MREMAP_FIXED)``: move PTEs unchanged to a new address."""
    lru_add_drain(k)  # the old range's do_munmap() -> unmap_region()
    split_huge_pmds_at_edges(k, mm, start, end)
    moved = split_range(mm, start, end)
    mm.vmas = [v for v in mm.vmas if v not in moved]
    delta = new_start - start
    for v in moved:
        mm.vmas.append(VMA(v.start + delta, v.npages, v.flags, v.anon_vma))
    mm.vmas.sort(key=lambda v: v.start)
    for vpn in range(start, end):
        e = mm.ptes.pop(vpn, None)
        if e is not None:
            mm.ptes[vpn + delta] = e
    for base in [b for b in mm.pmds if start <= b < end]:
        if (base + delta) % HPAGE_PMD_NR:
            split_huge_pmd(k, mm, base)  # move_huge_pmd() needs an aligned destination
            for vpn in range(base, base + HPAGE_PMD_NR):
                e = mm.ptes.pop(vpn, None)
                if e is not None:
                    mm.ptes[vpn + delta] = e
        else:
            mm.pmds[base + delta] = mm.pmds.pop(base)


def free_pgtables(mm: MM, start: int, end: int) -> None:
    """``free_pgtables()``: the page tables of 2 MiB ranges the unmap covers go."""
    if mm.kept_ptables:
        mm.kept_ptables = frozenset(b for b in mm.kept_ptables
                                    if not (start <= b and b + HPAGE_PMD_NR <= end))


def exit_mmap(k: Kernel, mm: MM) -> None:
    """``exit_mmap()``: the process exits and every mapping goes."""
    lru_add_drain(k)
    for base in sorted(mm.pmds):
        zap_huge_pmd(k, mm, base)
    for vpn in sorted(mm.ptes):
        zap_entry(k, mm.ptes.pop(vpn), mm.name)
    mm.vmas.clear()
    mm.kept_ptables = frozenset()


def zap_huge_pmd(k: Kernel, mm: MM, base: int) -> None:
    """``zap_huge_pmd()`` / ``__unmap_hugepage_range()``: drop a PMD mapping."""
    pmd = mm.pmds.pop(base)
    if pmd.folio.zero:
        return
    folio_remove_rmap_pmd(pmd.folio, mm.name)
    k.folio_put(pmd.folio)


def split_huge_pmds_at_edges(k: Kernel, mm: MM, start: int, end: int) -> None:
    """Split every THP PMD that ``[start, end)`` covers only in part (hugetlb cannot be
    split: a partial operation on it is EINVAL)."""
    for base, pmd in list(mm.pmds.items()):
        if base < end and start < base + HPAGE_PMD_NR and not (start <= base and
                                                                base + HPAGE_PMD_NR <= end):
            if pmd.folio.hugetlb:
                raise Segfault("EINVAL: partial operation on a hugetlb page")
            split_huge_pmd(k, mm, base)

