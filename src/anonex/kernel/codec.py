"""The model's whole state as one compact, hashable, canonical value, and back.

:func:`encode` walks the state in a fixed order (processes by name, page tables by address,
then pipes, pins and the swap device) and numbers folios and swap slots in order of first
sight, so two states that differ only in physical page numbers or slot numbers encode to the
same value. The value is nested tuples of ints, bools and strings: hashable, comparable,
cheap to keep millions of. :func:`decode` rebuilds an equivalent :class:`Kernel`.
"""

from __future__ import annotations

from typing import Any

from anonex.kernel.folio import Folio, Page
from anonex.kernel.pgtable import DeviceExclusivePte, Entry, MigrationPte, Pmd, Pte, SwapPte
from anonex.kernel.state import MM, VMA, Kernel, PageRef, Pin, Pipe, SwapSlot
from anonex.versions import KernelVersion

State = tuple[Any, ...]


class _Enc:
    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.fidx: dict[int, int] = {}
        self.folios: list[Folio] = []
        self.sidx: dict[int, int] = {}
        self.slots: list[int] = []

    def folio(self, f: Folio) -> int:
        if f.zero:
            return -1 if f.order == 0 else -3
        i = self.fidx.get(id(f))
        if i is None:
            i = self.fidx[id(f)] = len(self.folios)
            self.folios.append(f)
        return i

    def slot(self, s: int) -> int:
        i = self.sidx.get(s)
        if i is None:
            i = self.sidx[s] = len(self.slots)
            self.slots.append(s)
            cache = self.k.swap[s].cache
            if cache is not None:
                self.folio(cache)
        return i

    def page(self, p: Page) -> tuple[int, int]:
        return (self.folio(p.folio), p.index)

    def entry(self, e: Entry) -> tuple[Any, ...]:
        if isinstance(e, Pte):
            return (0, *self.page(e.page), e.write, e.dirty, e.special)
        if isinstance(e, SwapPte):
            return (1, self.slot(e.slot), e.exclusive)
        if isinstance(e, MigrationPte):
            return (2, *self.page(e.page), e.kind)
        return (3, *self.page(e.page))


def _cache_index(enc: _Enc, f: Folio | None) -> int:
    return -2 if f is None else enc.folio(f)


def encode(k: Kernel) -> State:
    """The canonical value of the kernel's state."""
    enc = _Enc(k)
    mms = tuple(
        (mm.name, mm.has_pinned,
         tuple((v.start, v.npages, v.flags, v.anon_vma, v.ra) for v in mm.vmas),
         tuple((b, enc.folio(mm.pmds[b].folio), mm.pmds[b].write, mm.pmds[b].dirty)
               for b in sorted(mm.pmds)),
         tuple((vpn, enc.entry(mm.ptes[vpn])) for vpn in sorted(mm.ptes)))
        for mm in sorted(k.mms.values(), key=lambda m: m.name)
    )
    pipes = tuple(
        (name, tuple(sorted(p.holders)),
         tuple((*enc.page(r.page), r.mm, r.vpn) for r in p.refs))
        for name, p in sorted(k.pipes.items())
    )
    pins = tuple(
        (name, tuple(sorted(p.holders)), p.gup_flags,
         tuple((*enc.page(r.page), r.mm, r.vpn) for r in p.refs))
        for name, p in sorted(k.pins.items())
    )
    for s in sorted(k.swap):  # slots held only by their cache, in slot order
        enc.slot(s)
    slots = tuple(
        (tuple(k.swap[s].data), k.swap[s].count, _cache_index(enc, k.swap[s].cache))
        for s in enc.slots
    )
    folios = tuple(
        (f.order, f.refcount, f.pincount, f.entire_mapcount, f.large_mapcount, f.anon, f.ksm,
         f.hugetlb, -1 if f.swap is None else enc.sidx[f.swap],
         tuple((p.flags, p.mapcount, p.data) for p in f.pages),
         tuple(sorted(f.mm_counts.items())), f.mm_shared)
        for f in enc.folios
    )
    regions = tuple(sorted(k.regions.items()))
    return (mms, pipes, pins, slots, folios, regions)


def decode(value: State, version: KernelVersion, layout: str | None = None) -> Kernel:
    """A :class:`Kernel` whose :func:`encode` is *value*."""
    mms_v, pipes_v, pins_v, slots_v, folios_v, regions_v = value
    k = Kernel(version, layout)
    folios: list[Folio] = []
    for i, (order, ref, pin, ent, large, anon, ksm, huge, _swap, pages, mmc, mms) in \
            enumerate(folios_v):
        f = Folio(i + 1, order, k.layout)
        f.refcount, f.pincount, f.entire_mapcount, f.large_mapcount = ref, pin, ent, large
        f.anon, f.ksm, f.hugetlb = anon, ksm, huge
        f.mm_counts = dict(mmc)
        f.mm_shared = mms
        for p, (flags, mc, data) in zip(f.pages, pages, strict=True):
            p.flags, p.mapcount, p.data = flags, mc, data
        folios.append(f)
    k.next_pfn = sum(1 << f.order for f in folios) + len(folios) + 1
    for i, (data, count, cache) in enumerate(slots_v):
        slot = SwapSlot(list(data), count, folios[cache] if cache >= 0 else None)
        k.swap[i + 1] = slot
    for f, fv in zip(folios, folios_v, strict=True):
        f.swap = None if fv[8] < 0 else fv[8] + 1
    k.next_slot = len(slots_v) + 1

    def page(fi: int, pi: int) -> Page:
        if fi == -3:
            return k.huge_zero_folio.pages[pi]
        return k.zero_page if fi < 0 else folios[fi].pages[pi]

    for name, has_pinned, vmas, pmds, ptes in mms_v:
        mm = MM(name, [VMA(*v) for v in vmas], {}, has_pinned)
        for b, fi, w, d in pmds:
            mm.pmds[b] = Pmd(k.huge_zero_folio if fi == -3 else folios[fi], w, d)
        for vpn, e in ptes:
            kind = e[0]
            if kind == 0:
                mm.ptes[vpn] = Pte(page(e[1], e[2]), e[3], e[4], e[5])
            elif kind == 1:
                mm.ptes[vpn] = SwapPte(e[1] + 1, e[2])
            elif kind == 2:
                mm.ptes[vpn] = MigrationPte(page(e[1], e[2]), e[3])
            else:
                mm.ptes[vpn] = DeviceExclusivePte(page(e[1], e[2]))
        k.mms[name] = mm
    for name, holders, refs in pipes_v:
        k.pipes[name] = Pipe([PageRef(page(a, b), m, v) for a, b, m, v in refs], set(holders))
    for name, holders, flags, refs in pins_v:
        k.pins[name] = Pin([PageRef(page(a, b), m, v) for a, b, m, v in refs], set(holders),
                           flags)
    k.regions = dict(regions_v)
    return k
