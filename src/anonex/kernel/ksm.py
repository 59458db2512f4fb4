"""KSM: merging identical anonymous pages into one write-protected KSM page.

Models mm/ksm.c. ``ksm-scan`` runs ksmd for two full scans over the mergeable VMAs of the
registered mms (in registration order, addresses ascending). The first scan only records
checksums; in the second, a page equal to a stable KSM page is merged into it
(``replace_page``), and a page equal to one already in the unstable tree becomes a new KSM
page in place while the tree's page is replaced by it (``try_to_merge_two_pages``).

Before either, ``write_protect_page`` write-protects the page; for an exclusive page it
first checks that no one but the mappings (and the swap cache) holds a reference, then
clears PG_anon_exclusive with ``folio_try_share_anon_rmap_pte``, which fails while the folio
may be pinned: KSM never merges a pinned page. A KSM page is never exclusive and never
reused on a write fault (5.9+); ``MADV_UNMERGEABLE`` breaks it with an unshare fault.
One KSM page takes at most ``max_page_sharing`` mappings (256, the default); more copies of
the same content make another KSM page of the same stable node chain (4.13+).
"""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.errors import KernelBug
from anonex.kernel.folio import Folio
from anonex.kernel.lru import lru_add_drain
from anonex.kernel.memory import handle_mm_fault
from anonex.kernel.pgtable import Pte
from anonex.kernel.rmap import (
    RMAP_NONE,
    folio_add_anon_rmap_pte,
    folio_remove_rmap_pte,
    folio_try_share_anon_rmap_pte,
)
from anonex.kernel.state import FAULT_FLAG_REMOTE, FAULT_FLAG_UNSHARE, MM, VM_MERGEABLE, Kernel
from anonex.kernel.thp import split_folio


def _candidates(k: Kernel) -> list[tuple[MM, int, Pte]]:
    out: list[tuple[MM, int, Pte]] = []
    for name in k.ksm_mms:
        mm = k.mms.get(name)
        if mm is None:
            continue
        for vma in mm.vmas:
            if not vma.flags & VM_MERGEABLE:
                continue
            for vpn in range(vma.start, vma.end):
                e = mm.ptes.get(vpn)
                if isinstance(e, Pte) and not e.special and e.page.folio.anon and \
                        not e.page.folio.hugetlb:
                    out.append((mm, vpn, e))
            for base, pmd in mm.pmds.items():
                if vma.start <= base < vma.end and pmd.folio.anon and not pmd.folio.hugetlb:
                    out.extend((mm, base + i, Pte(pmd.folio.pages[i]))
                               for i in range(pmd.folio.nr))
    return out


def write_protect_page(k: Kernel, mm: MM, vpn: int, pte: Pte) -> bool:
    """``write_protect_page()``: make the PTE read-only and clean, and the page shared."""
    page = pte.page
    folio = page.folio
    exclusive = k.rules.anon_exclusive and pf.PageAnonExclusive(page)
    if pte.write or pte.dirty or exclusive:
        swapcache = int(folio.swap is not None)
        if folio.mapcount_total() + swapcache != folio.refcount:
            return False  # a GUP reference (O_DIRECT, vmsplice, pin) is in flight
        if exclusive and folio_try_share_anon_rmap_pte(k, folio, page) != 0:
            return False
        pte.write = False
        pte.dirty = False
        pf.SetPageDirty(page)
    del mm, vpn
    return True


def replace_page(k: Kernel, mm: MM, vpn: int, pte: Pte, kfolio: Folio) -> None:
    """``replace_page()``: map the KSM page read-only where *pte* mapped its twin."""
    page = pte.page
    kpage = kfolio.pages[0]
    if k.rules.anon_exclusive and pf.PageAnonExclusive(page):
        raise KernelBug("VM_BUG_ON_PAGE(PageAnonExclusive(page)) in replace_page", page.name)
    folio_add_anon_rmap_pte(k, kfolio, kpage, RMAP_NONE)
    k.folio_get(kfolio)
    mm.ptes[vpn] = Pte(kpage, write=False, dirty=False)
    folio_remove_rmap_pte(page.folio, page)
    k.folio_put(page.folio)


def _make_stable(k: Kernel, folio: Folio) -> None:
    """``folio_set_stable_node()``: the folio's mapping becomes KSM."""
    folio.ksm = True
    if "ksm-exclusive" in k.injected and k.rules.anon_exclusive:
        # injected: a buggy path marks the new KSM page exclusive
        pf.SetPageAnonExclusive(folio.pages[0])


def _folio_at(mm: MM, vpn: int) -> Folio | None:
    pmd = mm.pmd_at(vpn)
    if pmd is not None:
        return pmd.folio
    e = mm.ptes.get(vpn)
    return e.page.folio if isinstance(e, Pte) else None


def _page_data(mm: MM, vpn: int) -> str:
    pmd = mm.pmd_at(vpn)
    if pmd is not None:
        return pmd.folio.pages[vpn & (pmd.folio.nr - 1)].data
    e = mm.ptes.get(vpn)
    return e.page.data if isinstance(e, Pte) else ""


def _small_pte(k: Kernel, mm: MM, vpn: int) -> Pte | None:
    """The PTE of a small folio at *vpn*, after splitting a large one (None if it cannot)."""
    if not _small_page_at(k, mm, vpn):
        return None
    e = mm.ptes.get(vpn)
    return e if isinstance(e, Pte) else None


def _small_page_at(k: Kernel, mm: MM, vpn: int) -> bool:
    """``try_to_merge_one_page()`` first splits a large folio (a THP's PMD too); False if
    the page cannot be made a small folio (a pinned large folio, the swap cache)."""
    pmd = mm.pmd_at(vpn)
    folio = pmd.folio if pmd is not None else None
    e = mm.ptes.get(vpn)
    if folio is None and isinstance(e, Pte):
        folio = e.page.folio
    if folio is None:
        return False
    if not folio.large:
        return True
    if folio.zero or folio.hugetlb:
        return False
    return split_folio(k, folio)


def ksm_scan(k: Kernel) -> int:
    """Two full scans of ksmd; returns the number of pages merged."""
    lru_add_drain(k)  # scan_get_next_rmap_item(): lru_add_drain_all() as a scan starts
    merged = 0
    stable: dict[str, list[Folio]] = {}  # a stable node chain: its KSM pages (dups)
    for mm in k.mms.values():
        for entry in mm.ptes.values():
            if isinstance(entry, Pte) and entry.page.folio.ksm:
                dups = stable.setdefault(entry.page.data, [])
                if entry.page.folio not in dups:
                    dups.append(entry.page.folio)
    unstable: dict[str, tuple[MM, int]] = {}
    for mm, vpn, _ in _candidates(k):
        folio = _folio_at(mm, vpn)
        if folio is None or folio.ksm:
            continue
        data = _page_data(mm, vpn)
        if data == "" and k.ksm_use_zero_pages:
            # use_zero_pages: an all-zero page is replaced by the shared zero page
            e = _small_pte(k, mm, vpn)
            if e is not None and write_protect_page(k, mm, vpn, e):
                mm.ptes[vpn] = Pte(k.zero_page, write=False, special=True)
                folio_remove_rmap_pte(e.page.folio, e.page)
                k.folio_put(e.page.folio)
                merged += 1
            continue
        kf = stable_node_dup(k, stable.get(data, []))
        if kf is not None:
            e = _small_pte(k, mm, vpn)
            if e is None or kf is e.page.folio:
                continue
            if write_protect_page(k, mm, vpn, e):
                replace_page(k, mm, vpn, e, kf)
                merged += 1
            continue
        other = unstable.get(data)
        if other is None:
            unstable[data] = (mm, vpn)
            continue
        omm, ovpn = other
        same_large = folio.large and _folio_at(omm, ovpn) is folio
        e = _small_pte(k, mm, vpn)
        oe = _small_pte(k, omm, ovpn)
        if oe is None or oe.page.data != data:
            unstable[data] = (mm, vpn)
            continue
        if e is None or oe.page.folio is e.page.folio:
            continue
        if same_large:
            # cmp_and_merge_page(): the page and its tree twin were one large folio; the
            # folio is split now, and this page's merge waits for the next scan
            continue
        page = e.page
        # try_to_merge_two_pages(): this page becomes the KSM page in place …
        if not write_protect_page(k, mm, vpn, e):
            continue
        _make_stable(k, page.folio)
        # … and the tree's page is replaced by it.
        if not write_protect_page(k, omm, ovpn, oe):
            # break_cow(): undo, the new KSM page is unshared again
            handle_mm_fault(k, mm, vpn, FAULT_FLAG_UNSHARE | FAULT_FLAG_REMOTE)
            continue
        replace_page(k, omm, ovpn, oe, page.folio)
        merged += 1
        del unstable[data]
        stable.setdefault(data, []).append(page.folio)  # stable_tree_insert()
    return merged


def stable_node_dup(k: Kernel, dups: list[Folio]) -> Folio | None:
    """``stable_node_dup()``: of the KSM pages with this content, the one with the most
    mappings still below ``max_page_sharing``; None when every one is full, so the page
    goes to the unstable tree and a twin makes a new KSM page (a new dup in the chain)."""
    best: Folio | None = None
    for f in dups:
        n = f.mapcount_total()
        if n < k.ksm_max_page_sharing and (best is None or n > best.mapcount_total()):
            best = f
    return best


def break_ksm(k: Kernel, mm: MM, start: int, end: int) -> None:
    """``unmerge_ksm_pages()`` → ``break_ksm()``: an unshare fault on every KSM page."""
    for vpn in range(start, end):
        e = mm.ptes.get(vpn)
        if isinstance(e, Pte) and e.page.folio.ksm:
            handle_mm_fault(k, mm, vpn, FAULT_FLAG_UNSHARE | FAULT_FLAG_REMOTE)
