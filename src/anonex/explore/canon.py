"""The canonical key of an explored state, with symmetry reduction.

A state is the model's :class:`~anonex.kernel.state.Kernel` plus the oracle's shadow memory
(what each process, pipe and pin may read). Its key is a flat list of small integers packed
into ``bytes``, built like :func:`anonex.kernel.codec.encode` (processes, page tables,
pipes, pins, folios, swap slots) with four identities made canonical:

* **physical pages** (folios) are numbered in order of first sight, so the page-frame
  numbers an allocation order produced do not matter;
* **swap slots** likewise; a slot in the swap cache is named by its folio and offset
  (``folio->swap + i``), so large-folio slot ranges keep their shape;
* **tags** (page contents) are numbered in order of first sight, "" (never written) being
  0: tags are interchangeable, the model only compares them;
* **processes** other than P0 are interchangeable: the key is the least encoding over the
  orders of the children (at most 3! orders; past three children, a signature sort).

Pages of a large folio past the explored page indexes are not encoded one by one: every
operation the explorer generates touches them all alike (whole-region steps), so the first
of them stands for the rest (``tests/test_explore_state.py`` checks this).

Everything the model's behaviour depends on must be in the key, or two different states
would be merged. :data:`ENCODED` lists the fields read here; the tests compare it with the
model's classes, and check on explored states that equal keys mean equal successors.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from anonex.kernel.folio import Folio
from anonex.kernel.oracle import Oracle
from anonex.kernel.pgtable import DeviceExclusivePte, MigrationPte, Pte, SwapPte
from anonex.kernel.state import MM, REGION_BASE_VPN, Kernel

# The fields of the model's state the key reads, by class (the rest are identities or
# derived: pfn, page index, back pointers, names, counters that only count).
ENCODED: dict[str, frozenset[str]] = {
    "Folio": frozenset({"order", "pages", "refcount", "pincount", "entire_mapcount",
                        "large_mapcount", "anon", "ksm", "hugetlb", "zero", "freed", "swap",
                        "mm_counts"}),
    "Page": frozenset({"flags", "mapcount", "data"}),
    "Pte": frozenset({"page", "write", "dirty", "special"}),
    "SwapPte": frozenset({"slot", "exclusive"}),
    "MigrationPte": frozenset({"page", "kind"}),
    "DeviceExclusivePte": frozenset({"page"}),
    "Pmd": frozenset({"folio", "write", "dirty"}),
    "VMA": frozenset({"start", "npages", "flags", "anon_vma"}),
    "MM": frozenset({"vmas", "ptes", "has_pinned", "pmds"}),
    "PageRef": frozenset({"page", "mm", "vpn"}),
    "Pipe": frozenset({"refs", "holders"}),
    "Pin": frozenset({"refs", "holders", "gup_flags"}),
    "SwapSlot": frozenset({"data", "count", "cache"}),
    "_Ref": frozenset({"mm", "vpn", "attached", "accepted"}),
    "Kernel": frozenset({"mms", "zero_folio", "pipes", "pins", "swap", "ksm_mms",
                         "ksm_use_zero_pages"}),
    "Oracle": frozenset({"mem", "pipes", "pins"}),
}
# Fields that do not change what the model does next (or are constant in one search).
IGNORED: dict[str, frozenset[str]] = {
    "Folio": frozenset({"pfn"}),
    "Page": frozenset({"folio", "index"}),
    "MM": frozenset({"name"}),
    "Kernel": frozenset({"version", "rules", "next_pfn", "next_slot", "regions", "freed",
                         "nr_faults", "mthp_orders"}),
}

_MIG = {"readable": 0, "readable_exclusive": 1, "writable": 2}


@dataclass(frozen=True, slots=True)
class Layout:
    """What the key needs to know about the search space.

    ``vpns``: the virtual pages that are encoded one by one (every page of a small-page
    region, the explored indexes and one more of a huge region), ascending; ``explicit``:
    how many leading pages of a large folio are encoded; ``handles``: pipe and pin names;
    ``ksm``: whether process creation order matters (KSM scans in that order).
    """

    vpns: tuple[int, ...]
    explicit: int
    handles: tuple[str, ...]
    ksm: bool = False


def proc_index(name: str) -> int:
    """``P3`` -> 3."""
    return int(name[1:])


def orders(k: Kernel) -> list[list[str]]:
    """The process orders the key minimises over: P0 first, then every order of the
    children (a signature sort past three children)."""
    names = sorted(k.mms, key=proc_index)
    head = names[:1] if names and names[0] == "P0" else []
    kids = names[len(head):]
    if len(kids) <= 1:
        return [names]
    if len(kids) <= 3:
        return [head + list(p) for p in itertools.permutations(kids)]
    return [head + sorted(kids, key=lambda n: _signature(k.mms[n]))]


def _signature(mm: MM) -> tuple[int, ...]:
    out = [len(mm.vmas), len(mm.ptes), len(mm.pmds), int(mm.has_pinned)]
    for vpn in sorted(mm.ptes):
        e = mm.ptes[vpn]
        out.append(vpn)
        out.append(type(e).__name__.__len__())
        if type(e) is Pte:
            out.append(e.write * 2 + e.dirty)
    return tuple(out)


def key(k: Kernel, oracle: Oracle, lay: Layout) -> bytes:
    """The canonical key of the state (*k*, *oracle*)."""
    best: list[int] | None = None
    for order in orders(k):
        enc = encode(k, oracle, lay, order)
        if best is None or enc < best:
            best = enc
    assert best is not None
    try:
        return array("i", best).tobytes()
    except OverflowError:
        return b"q" + array("q", best).tobytes()


def encode(k: Kernel, oracle: Oracle, lay: Layout, order: Sequence[str]) -> list[int]:
    """The state as a flat list of integers, processes in *order*."""
    base = REGION_BASE_VPN
    vpns = lay.vpns
    explicit = lay.explicit
    handles = lay.handles
    pidx = {n: i for i, n in enumerate(order)}
    fidx: dict[int, int] = {id(k.zero_folio): -1}
    folios: list[Folio] = []
    tags: dict[str, int] = {"": 0}
    sidx: dict[int, int] = {}
    swap = k.swap
    out: list[int] = []
    ap = out.append
    ext = out.extend

    def fid(f: Folio) -> int:
        i = fidx.get(id(f))
        if i is None:
            i = fidx[id(f)] = len(folios)
            folios.append(f)
        return i

    def tag(s: str) -> int:
        t = tags.get(s)
        if t is None:
            t = tags[s] = len(tags)
        return t

    def slot(s: int) -> None:
        sl = swap.get(s)
        if sl is None:
            ext((-3, s))
            return
        c = sl.cache
        if c is not None and c.swap is not None:
            ext((fid(c), s - c.swap))
            return
        i = sidx.get(s)
        if i is None:
            i = sidx[s] = len(sidx)
        ext((-2, i))

    # processes
    ap(len(order))
    for name in order:
        mm = k.mms[name]
        vmas = mm.vmas
        ap(len(vmas))
        for v in vmas:
            ext((v.start - base, v.npages, v.flags, v.anon_vma))
        ap(mm.has_pinned)
        pmds = mm.pmds
        ap(len(pmds))
        for b in sorted(pmds):
            p = pmds[b]
            ext((b - base, fid(p.folio), p.write, p.dirty))
        pt = mm.ptes
        ap(len(pt))
        for vpn in vpns:
            e = pt.get(vpn)
            if e is None:
                ap(-1)
                continue
            t = e.__class__
            if t is Pte:
                pg = e.page
                ext((0, fid(pg.folio), pg.index, e.write, e.dirty, e.special))
            elif t is SwapPte:
                ap(1)
                slot(e.slot)
                ap(e.exclusive)
            elif t is MigrationPte:
                pg = e.page
                ext((2, fid(pg.folio), pg.index, _MIG[e.kind]))
            elif t is DeviceExclusivePte:
                pg = e.page
                ext((3, fid(pg.folio), pg.index))
            else:
                raise TypeError(f"explore: page-table entry {t.__name__} is not in the key; "
                                "teach anonex.explore.canon about it")
    # pipes and pins
    for table, is_pin in ((k.pipes, False), (k.pins, True)):
        ap(len(table))
        for hname in sorted(table):
            h = table[hname]
            ap(handles.index(hname))
            hold = sorted(pidx.get(x, -1) for x in h.holders)
            ap(len(hold))
            ext(hold)
            if is_pin:
                ap(h.gup_flags)  # type: ignore[union-attr]
            ap(len(h.refs))
            for r in h.refs:
                pg = r.page
                ext((fid(pg.folio), pg.index, pidx.get(r.mm, -1), r.vpn - base))
    # the swap device: slots held only by the swap cache, then KSM registration
    for s in sorted(swap):
        c = swap[s].cache
        if c is not None:
            fid(c)
    ap(len(swap))
    if lay.ksm or k.ksm_mms:
        ksm = [pidx[n] for n in k.ksm_mms if n in pidx]
        ap(len(ksm))
        ext(ksm)
        mms_order = [pidx[n] for n in k.mms]
        ext(mms_order)
    ap(k.ksm_use_zero_pages)
    # folios, in order of first sight (the list grows while it is walked: swap caches)
    zp = k.zero_folio.pages[0]
    ext((zp.flags, zp.mapcount, tag(zp.data), k.zero_folio.refcount))
    i = 0
    while i < len(folios):
        f = folios[i]
        i += 1
        ext((f.order, f.refcount, f.pincount, f.entire_mapcount, f.large_mapcount, f.anon,
             f.ksm, f.hugetlb, f.zero, f.freed))
        pages = f.pages
        if len(pages) == 1:
            p = pages[0]
            ext((p.flags, p.mapcount, tag(p.data)))
        else:
            for p in pages[:explicit]:
                ext((p.flags, p.mapcount, tag(p.data)))
            mc = f.mm_counts
            if mc:
                counts = sorted((pidx.get(n, -1), c) for n, c in mc.items())
                ap(len(counts))
                for a, b in counts:
                    ext((a, b))
            else:
                ap(0)
        sw = f.swap
        if sw is None:
            ap(-1)
        else:
            for j in range(min(len(pages), explicit)):
                sl = swap.get(sw + j)
                if sl is None:
                    ap(-3)
                else:
                    ext((sl.count, len(sl.data)))
                    ext([tag(d) for d in sl.data])
                    ap(sl.cache is f)
    # swap slots without a cache, in order of first sight
    by_id = sorted(sidx.items(), key=lambda kv: kv[1])
    for s, _ in by_id:
        sl = swap[s]
        ext((sl.count, len(sl.data)))
        ext([tag(d) for d in sl.data])
    # the oracle: each process's memory, what pipes may show, where pins point
    mem = oracle.mem
    for name in order:
        for vpn in vpns:
            t_ = mem.get((name, vpn))
            ap(-1 if t_ is None else tag(t_))
    for otable, is_pin in ((oracle.pipes, False), (oracle.pins, True)):
        ap(len(otable))
        for hname in sorted(otable):
            refs = otable[hname]
            ext((handles.index(hname), len(refs)))
            for r in refs:
                if r.attached:
                    ext((1, pidx.get(r.mm, -1), r.vpn - base))
                else:
                    ap(0)
                if not is_pin:
                    acc = sorted(tag(x) for x in sorted(r.accepted))
                    ap(len(acc))
                    ext(acc)
    return out
