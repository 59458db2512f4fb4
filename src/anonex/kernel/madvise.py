"""madvise: fork behaviour, discarding, populating and paging out.

Models mm/madvise.c: ``MADV_DONTFORK``/``DOFORK`` and ``WIPEONFORK``/``KEEPONFORK`` set VMA
flags that fork reads; ``MADV_DONTNEED`` zaps the pages; ``MADV_POPULATE_READ``/``WRITE``
fault pages in like GUP without taking references (a populate-write breaks COW, a
populate-read never unshares); ``MADV_PAGEOUT`` reclaims pages mapped by this process only.
"""

from __future__ import annotations

from anonex.kernel.errors import NotModelled, Segfault
from anonex.kernel.folio import Folio
from anonex.kernel.ksm import break_ksm
from anonex.kernel.lru import lru_add_drain
from anonex.kernel.memory import handle_mm_fault
from anonex.kernel.mmap import update_vma_flags, vma_flag_changes, zap_range
from anonex.kernel.pgtable import HPAGE_PMD_NR, Pte, huge_base
from anonex.kernel.state import (
    FAULT_FLAG_WRITE,
    MM,
    VM_DONTCOPY,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_MERGEABLE,
    VM_NOHUGEPAGE,
    VM_WIPEONFORK,
    VM_WRITE,
    Kernel,
)
from anonex.kernel.thp import madvise_collapse, split_folio
from anonex.kernel.vmscan import shrink_folio

# advice -> (VMA flags set, VMA flags cleared)
_VMA_FLAG = {
    "hugepage": (VM_HUGEPAGE, VM_NOHUGEPAGE),
    "nohugepage": (VM_NOHUGEPAGE, VM_HUGEPAGE),
    "dontfork": (VM_DONTCOPY, 0),
    "dofork": (0, VM_DONTCOPY),
    "wipeonfork": (VM_WIPEONFORK, 0),
    "keeponfork": (0, VM_WIPEONFORK),
    "mergeable": (VM_MERGEABLE, 0),
}


def madvise_changes(mm: MM, start: int, end: int, advice: str) -> bool | None:
    """Whether an advice that sets VMA flags would change any VMA of the range (False: the
    call changes nothing); None for other advices."""
    if advice not in _VMA_FLAG:
        return None
    return bool(vma_flag_changes(mm, start, end, *_VMA_FLAG[advice]))


def _hugetlb_in(mm: MM, start: int, end: int, every: bool = False) -> bool:
    """Whether a hugetlb VMA covers some page (*every*: each page) of the range."""
    hugetlb = (bool(mm.vma_or_fault(v).flags & VM_HUGETLB) for v in range(start, end))
    return all(hugetlb) if every else any(hugetlb)


def madvise(k: Kernel, mm: MM, start: int, end: int, advice: str) -> None:
    """``madvise(start, len, advice)``."""
    if advice == "wipeonfork" and _hugetlb_in(mm, start, end):
        # madvise_vma_behavior(): MADV_WIPEONFORK only on private anon memory, and a
        # hugetlb VMA has a file (found by anonex fuzz on 6.18.44)
        raise Segfault("EINVAL: MADV_WIPEONFORK on a hugetlb VMA")
    if advice in _VMA_FLAG and advice != "mergeable":
        update_vma_flags(k, mm, start, end, *_VMA_FLAG[advice])
        return
    for vpn in range(start, end):
        mm.vma_or_fault(vpn)
    if advice == "dontneed":
        lru_add_drain(k)  # zap_page_range()
        tables = {huge_base(v) for v in mm.ptes if start <= v < end}
        zap_range(k, mm, start, end)
        if not k.rules.pt_reclaim_dontneed:  # the emptied PTE tables stay
            mm.kept_ptables = mm.kept_ptables | tables
    elif advice == "populate-read":
        for vpn in range(start, end):
            if not isinstance(mm.ptes.get(vpn), Pte):
                handle_mm_fault(k, mm, vpn, 0)
    elif advice == "populate-write":
        for vpn in range(start, end):
            vma = mm.vma_or_fault(vpn)
            if not vma.flags & VM_WRITE:
                raise Segfault("EINVAL: MADV_POPULATE_WRITE on a read-only mapping")
            e = mm.ptes.get(vpn)
            if not isinstance(e, Pte) or not e.write:
                handle_mm_fault(k, mm, vpn, FAULT_FLAG_WRITE)
    elif advice == "pageout":
        madvise_pageout(k, mm, start, end)
    elif advice == "mergeable":
        # ksm_madvise(): a hugetlb VMA is left alone, and the mm is not registered for it
        if not _hugetlb_in(mm, start, end, every=True):
            update_vma_flags(k, mm, start, end, *_VMA_FLAG[advice])
            if mm.name not in k.ksm_mms:
                k.ksm_mms.append(mm.name)  # __ksm_enter()
    elif advice == "collapse":
        madvise_collapse(k, mm, start, end)
    elif advice == "unmergeable":
        break_ksm(k, mm, start, end)
        update_vma_flags(k, mm, start, end, 0, VM_MERGEABLE)
    else:
        raise NotModelled(f"madvise {advice}: the model does not know this advice")


def madvise_pageout(k: Kernel, mm: MM, start: int, end: int) -> None:
    """``MADV_PAGEOUT``: reclaim anon pages that only this process maps (others are skipped
    silently, as are the zero page and pinned pages); EINVAL on hugetlb VMAs
    (``can_madv_lru_vma``). A large folio the range covers only in part is split first
    (``split_folio()``, refused when something else holds a reference), and its pages in
    the range are reclaimed as small ones."""
    if _hugetlb_in(mm, start, end):
        raise Segfault("EINVAL: MADV_PAGEOUT on a hugetlb VMA")
    lru_add_drain(k)

    for folio in _pageout_walk(mm, start, end)[1]:
        split_folio(k, folio)
    for folio in pageout_candidates(mm, start, end):
        shrink_folio(k, folio)


def pageout_candidates(mm: MM, start: int, end: int) -> list[Folio]:
    """The folios ``MADV_PAGEOUT`` of ``[start, end)`` reclaims as they are
    (``madvise_cold_or_pageout_pte_range``): anon folios mapped by this process alone and,
    when large, only inside the range."""
    return _pageout_walk(mm, start, end)[0]


def pageout_changes(mm: MM, start: int, end: int) -> bool:
    """Whether ``MADV_PAGEOUT`` of the range has anything to do: a folio to reclaim, or a
    large folio to split first (False: the call changes nothing)."""
    take, split = _pageout_walk(mm, start, end)
    return bool(take or split)


def _pageout_walk(mm: MM, start: int, end: int) -> tuple[list[Folio], list[Folio]]:
    """The anon folios of the range mapped by this process alone: those reclaimed as they
    are, and the large ones the range covers only in part (split first)."""
    take: list[Folio] = []
    split: list[Folio] = []
    seen: set[int] = set()
    for vpn in range(start, end):
        pmd = mm.pmd_at(vpn)
        e = mm.ptes.get(vpn)
        if pmd is not None:
            folio = pmd.folio
        elif isinstance(e, Pte) and not e.special:
            folio = e.page.folio
        else:
            continue
        if id(folio) in seen or not folio.anon:
            continue
        seen.add(id(folio))
        # folio_maybe_mapped_shared() / folio_mapcount() != 1: skip shared folios
        if folio.large:
            if folio.maybe_mapped_shared() or any(
                    p.mapcount > 1 for p in folio.pages) or folio.entire_mapcount > 1:
                continue
            if not _mapped_only_within(mm, folio, start, end):
                if not folio.hugetlb:
                    split.append(folio)
                continue
        elif folio.mapcount_total() != 1:
            continue
        take.append(folio)
    return take, split


def _mapped_only_within(mm: MM, folio: object, start: int, end: int) -> bool:
    for base, pmd in mm.pmds.items():
        if pmd.folio is folio and not (start <= base and base + HPAGE_PMD_NR <= end):
            return False
    return all(start <= vpn < end for vpn, e in mm.ptes.items()
               if isinstance(e, Pte) and e.page.folio is folio)
