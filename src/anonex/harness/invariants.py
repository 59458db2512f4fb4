"""The kernel's promises (DESIGN §3), checked on the model's state after every step.

Structural checks live here: writable ⇒ exclusive and pinned ⇒ exclusive (5.19+), KSM pages
never exclusive, no swap entry leading to an exclusive swap-cache page, freed pages without
the flag, and the accounting of refcounts and mapcounts against the page tables, pipes, pins
and the swap cache. The data checks (no leak, pin coherence of contents) need to know what
user space should read: the oracle checks each value a step reads, and
:func:`pin_coherence` checks every pin in every state (the model backend after each step, the
explorer in each state: one check).

Each check returns a list of :class:`~anonex.findings.Finding` objects, each built here with
the name of the property it breaks; an empty list means the state is sound.
"""

from __future__ import annotations

from collections import defaultdict

from anonex.findings import (
    ACCOUNTING,
    FREE_SANITY,
    KSM_NOT_EXCLUSIVE,
    PIN_COHERENCE,
    PINNED_EXCLUSIVE,
    SWAP_SANITY,
    WRITABLE_EXCLUSIVE,
    Finding,
)
from anonex.harness.oracle import Oracle
from anonex.kernel import flags as pf
from anonex.kernel.folio import GUP_PIN_COUNTING_BIAS, Folio, Page
from anonex.kernel.gup import FOLL_PIN
from anonex.kernel.pgtable import DeviceExclusivePte, Pte, SwapPte
from anonex.kernel.rmap import maps_page_at
from anonex.kernel.state import Kernel


def _excl(page: Page) -> bool:
    return pf.excl_bit_set(page)


def check(k: Kernel) -> list[Finding]:
    """All structural invariants of the current state."""
    out: list[Finding] = []
    refs: defaultdict[int, int] = defaultdict(int)
    maps: defaultdict[tuple[int, int], int] = defaultdict(int)
    folios: dict[int, Folio] = {}
    new_flag = k.rules.anon_exclusive
    for mm in k.mms.values():
        for base, pmd in mm.pmds.items():
            f = pmd.folio
            if f.zero:
                continue
            folios[f.pfn] = f
            refs[f.pfn] += 1
            if f.freed:
                out.append(Finding(ACCOUNTING, f"use after free: {mm.name} maps freed "
                                               f"{f.pages[0].name}", page=f.pages[0].name))
            if new_flag and pmd.write and f.anon and not _excl(f.pages[0]):
                out.append(Finding(WRITABLE_EXCLUSIVE,
                                   f"writable ⇒ exclusive broken: {mm.name} maps huge "
                                   f"{f.pages[0].name} writable at {base:#x} without "
                                   "PG_anon_exclusive on the head", page=f.pages[0].name))
        for vpn, e in mm.ptes.items():
            if isinstance(e, Pte) and not e.special:
                page = e.page
                f = page.folio
                folios[f.pfn] = f
                refs[f.pfn] += 1
                maps[(f.pfn, page.index)] += 1
                if f.freed:
                    out.append(Finding(ACCOUNTING, f"use after free: {mm.name} maps freed "
                                                   f"{page.name}", page=page.name))
                if new_flag and e.write and f.anon and not _excl(page):
                    out.append(Finding(WRITABLE_EXCLUSIVE,
                                       f"writable ⇒ exclusive broken: {mm.name} maps "
                                       f"{page.name} writable at {vpn:#x} without "
                                       "PG_anon_exclusive", page=page.name))
            elif isinstance(e, DeviceExclusivePte):
                f = e.page.folio
                folios[f.pfn] = f
                refs[f.pfn] += 1
                if k.rules.device_exclusive_mapped:
                    maps[(f.pfn, e.page.index)] += 1
            elif isinstance(e, SwapPte):
                s = k.swap.get(e.slot)
                if s is None:
                    out.append(Finding(ACCOUNTING, f"{mm.name}: swap entry {e.slot} has no "
                                                   "slot"))
                elif s.cache is not None and s.cache.anon and s.cache.swap is not None:
                    page = s.cache.pages[e.slot - s.cache.swap]  # the slot's own page
                    if _excl(page):
                        out.append(Finding(SWAP_SANITY, f"swap sanity broken: swap entry of "
                                                        f"{mm.name} leads to exclusive "
                                                        f"swap-cache {page.name}",
                                           page=page.name))
    for pin in k.pins.values():
        for r in pin.refs:
            f = r.page.folio
            if f.zero:
                continue
            folios[f.pfn] = f
            refs[f.pfn] += GUP_PIN_COUNTING_BIAS if pin.gup_flags & FOLL_PIN and \
                not f.large else 1
            # hugetlb and PMD-mapped THPs keep the flag on the head
            pinned = f.pages[0] if f.hugetlb or f.entire_mapcount else r.page
            # the promise is about mapped pages: a large folio its last mapping left (a
            # zapped PMD keeps the flag on the head, which no PTE looks at) is not checked
            mapped = not f.large or f.entire_mapcount or any(p.mapcount for p in f.pages)
            if new_flag and pin.gup_flags & FOLL_PIN and f.anon and mapped and \
                    not _excl(pinned):
                out.append(Finding(PINNED_EXCLUSIVE, f"pinned ⇒ exclusive broken: "
                                                     f"{r.page.name} is pinned but not "
                                                     "PG_anon_exclusive", page=r.page.name))
    for pipe in k.pipes.values():
        for r in pipe.refs:
            f = r.page.folio
            if f.zero:
                continue
            folios[f.pfn] = f
            refs[f.pfn] += 1
    for s in k.swap.values():
        if s.cache is not None:
            folios[s.cache.pfn] = s.cache
            refs[s.cache.pfn] += 1
    for pfn, f in folios.items():
        if f.ksm and any(_excl(p) for p in f.pages):
            out.append(Finding(KSM_NOT_EXCLUSIVE, f"KSM page {f.pages[0].name} is "
                                                  "PG_anon_exclusive", page=f.pages[0].name))
        if f.refcount != refs[pfn]:
            out.append(Finding(ACCOUNTING, f"accounting: {f.pages[0].name} refcount "
                                           f"{f.refcount}, but mappings, pipes, pins and "
                                           f"swap cache hold {refs[pfn]}",
                               page=f.pages[0].name))
        entire = sum(1 for mm in k.mms.values() for pmd in mm.pmds.values() if pmd.folio is f)
        if f.entire_mapcount != entire:
            out.append(Finding(ACCOUNTING, f"accounting: {f.pages[0].name} entire_mapcount "
                                           f"{f.entire_mapcount}, but {entire} PMDs map it",
                               page=f.pages[0].name))
        if f.large and f.large_mapcount != entire + sum(maps[(pfn, p.index)] for p in f.pages):
            out.append(Finding(ACCOUNTING, f"accounting: {f.pages[0].name} large_mapcount "
                                           f"{f.large_mapcount} does not match its mappings",
                               page=f.pages[0].name))
        for p in f.pages:
            if p.mapcount != maps[(pfn, p.index)]:
                out.append(Finding(ACCOUNTING, f"accounting: {p.name} mapcount {p.mapcount}, "
                                               f"but {maps[(pfn, p.index)]} page-table "
                                               "entries map it", page=p.name))
    for f in k.freed:
        if any(_excl(p) for p in f.pages):
            out.append(Finding(FREE_SANITY, f"free sanity broken: freed {f.pages[0].name} "
                                            "still has PG_anon_exclusive",
                               page=f.pages[0].name))
    k.freed.clear()
    return out


def pin_coherence(k: Kernel, oracle: Oracle) -> list[Finding]:
    """Pin coherence (DESIGN §3) in this state: every page a pin holds, where its owner
    still maps that address, is the page the owner maps there, with the data the owner
    reads there. A pin whose owner removed the mapping (munmap, MADV_DONTNEED, exit) is
    not checked."""
    out: list[Finding] = []
    mem = oracle.mem
    for hname, orefs in oracle.pins.items():
        pin = k.pins.get(hname)
        if pin is None:
            continue
        for i, (ref, oref) in enumerate(zip(pin.refs, orefs, strict=False)):
            if not oref.attached or oref.mm not in k.mms:
                continue
            page = ref.page
            if not maps_page_at(k, oref.mm, oref.vpn, page):
                out.append(Finding(PIN_COHERENCE,
                                   f"pin coherence broken: {oref.mm} no longer maps the page "
                                   f"pinned by '{hname}' ({page.name}) at {oref.vpn:#x}: the "
                                   "kernel replaced it behind the pin (wrong COW)",
                                   page=page.name))
                continue
            want = mem.get((oref.mm, oref.vpn))
            if want is not None and page.data != want:
                out.append(Finding(PIN_COHERENCE,
                                   f"pin coherence broken: pin '{hname}' page {i} holds "
                                   f"{page.data!r}, but {oref.mm} reads {want!r} there",
                                   page=page.name))
    return out
