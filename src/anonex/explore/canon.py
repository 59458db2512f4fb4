"""The canonical key of an explored state, with symmetry reduction.

A state is the model's :class:`~anonex.kernel.state.Kernel` plus the oracle's shadow memory
(what each process, pipe and pin may read). Its key is a flat list of small integers packed
into ``bytes`` (processes, page tables, pipes, pins, folios, swap slots) with four
identities made canonical:

* **physical pages** (folios) are numbered in order of first sight, so the page-frame
  numbers an allocation order produced do not matter;
* **swap slots** likewise; a slot in the swap cache is named by its folio and offset
  (``folio->swap + i``), so large-folio slot ranges keep their shape; other slots keep
  their number modulo the largest mTHP size, which mTHP swap-in looks at
  (:func:`slot_residue`);
* **tags** (page contents) are numbered in order of first sight, "" (never written) being
  0: tags are interchangeable, the model only compares them;
* **processes** are interchangeable, P0 included (it may exit and leave a child in its
  place): they are ordered by a signature without names, and the key is the least
  encoding over the orders of processes whose signatures tie.

Pages of a large folio past the explored page indexes are not encoded one by one: every
operation the explorer generates touches them all alike (whole-region steps), except at
the edges of mTHP-sized blocks, so the key spells out the pages up to one past the largest
block and lets that one stand for the rest (``tests/test_explore_state.py`` checks this
on every state of small bounds).

Everything the model's behaviour depends on must be in the key, or two different states
would be merged. :data:`ENCODED` lists the fields read here; the tests compare it with the
model's classes, and check on explored states that equal keys mean equal successors.
"""

from __future__ import annotations

import itertools
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

from anonex.explore.deadfields import DIRTY, HAS_PINNED
from anonex.harness.oracle import Oracle
from anonex.kernel.folio import Folio
from anonex.kernel.pgtable import DeviceExclusivePte, MigrationPte, Pte, SwapPte
from anonex.kernel.state import MM, REGION_BASE_VPN, Kernel, SwapSlot
from anonex.scenario.ast import proc_index

# The fields of the model's state the key reads, by class (the rest are identities or
# derived: pfn, page index, back pointers, names, counters that only count).
ENCODED: dict[str, frozenset[str]] = {
    "Folio": frozenset({"order", "pages", "refcount", "pincount", "entire_mapcount",
                        "large_mapcount", "anon", "ksm", "hugetlb", "zero", "freed", "swap",
                        "mm_counts", "mm_shared"}),
    "Page": frozenset({"flags", "mapcount", "data"}),
    "Pte": frozenset({"page", "write", "dirty", "special"}),
    "SwapPte": frozenset({"slot", "exclusive"}),
    "MigrationPte": frozenset({"page", "kind"}),
    "DeviceExclusivePte": frozenset({"page"}),
    "Pmd": frozenset({"folio", "write", "dirty"}),
    "VMA": frozenset({"start", "npages", "flags", "anon_vma", "ra"}),
    "MM": frozenset({"vmas", "ptes", "has_pinned", "pmds", "kept_ptables"}),
    "PageRef": frozenset({"page", "mm", "vpn"}),
    "Pipe": frozenset({"refs", "holders"}),
    "Pin": frozenset({"refs", "holders", "gup_flags"}),
    "SwapSlot": frozenset({"data", "count", "cache"}),
    "_Ref": frozenset({"mm", "vpn", "attached", "accepted"}),
    "Kernel": frozenset({"mms", "zero_folio", "pipes", "pins", "swap", "ksm_mms",
                         "ksm_use_zero_pages", "thp_use_zero_page", "lru_pending",
                         # only modulo the largest mTHP: see slot_residue()
                         "next_slot"}),
    "Oracle": frozenset({"mem", "pipes", "pins"}),
}
# Fields that do not change what the model does next (or are constant in one search).
IGNORED: dict[str, frozenset[str]] = {
    "Folio": frozenset({"pfn", "layout"}),
    "Page": frozenset({"folio", "index"}),
    "MM": frozenset({"name"}),
    "Kernel": frozenset({"version", "rules", "next_pfn", "regions", "freed",
                         "nr_faults", "mthp_orders", "layout", "injected",
                         "ksm_max_page_sharing", "lru_batch_refs",
                         # the huge zero folio, allocated on first use; PMDs that map it
                         # are encoded like any other
                         "_huge_zero"}),
}
# Classes whose unknown fields (the model gained them after this module was written) are
# encoded generically, when they hold immutable values; elsewhere they are an error.
GENERIC = ("Folio", "Page", "MM", "VMA", "Kernel")


def unknown_fields() -> dict[str, tuple[str, ...]]:
    """Fields of the model that the key neither encodes nor ignores, by class name."""
    out = {}
    from anonex.explore.clone import model_fields

    for name, fields in model_fields().items():
        known = ENCODED.get(name, frozenset()) | IGNORED.get(name, frozenset())
        extra = tuple(sorted(set(fields) - known))
        if extra:
            out[name] = extra
    return out


def _check_unknown() -> dict[str, tuple[str, ...]]:
    extra = unknown_fields()
    bad = {c: f for c, f in extra.items() if c not in GENERIC}
    if bad:
        c, f = next(iter(bad.items()))
        raise TypeError(f"explore: the model's {c} has field(s) {', '.join(f)} that the "
                        "state key does not know: add them to anonex.explore.canon "
                        "(ENCODED and encode(), or IGNORED)")
    return extra


_MIG = {"readable": 0, "readable_exclusive": 1, "writable": 2}


@dataclass(frozen=True, slots=True)
class Layout:
    """What the key needs to know about the search space.

    ``vpns``: the virtual pages that are encoded one by one (every page of a small-page
    region, the explored indexes and one more of a huge region), ascending; ``explicit``:
    how many leading pages of a large folio are encoded; ``handles``: pipe and pin names;
    ``ksm``: whether process creation order matters (KSM scans in that order);
    ``extra``: fields of the model this module does not know yet, encoded generically;
    ``slots_mod``: the mTHP block size where an mTHP swap-in can happen, else 1 (see
    :func:`slot_residue`); ``dead``: fields the key leaves out, because no rule of the
    search's kernel version reads them (:mod:`anonex.explore.deadfields`).
    """

    vpns: tuple[int, ...]
    explicit: int
    handles: tuple[str, ...]
    ksm: bool = False
    extra: dict[str, tuple[str, ...]] = field(default_factory=_check_unknown)
    slots_mod: int = 1
    dead: frozenset[str] = frozenset()


def orders(k: Kernel, lay: Layout) -> list[list[str]]:
    """The process orders the key minimises over. Every process is interchangeable (P0
    too: once it exits, a child plays its part): processes are sorted by a signature that
    does not depend on names, and only processes with equal signatures are permuted."""
    names = list(k.mms)
    if len(names) <= 1:
        return [names]
    dirty, pinned = DIRTY not in lay.dead, HAS_PINNED not in lay.dead
    sig = {n: _signature(k.mms[n], dirty, pinned) for n in names}
    names.sort(key=sig.__getitem__)
    groups: list[list[str]] = []
    for n in names:
        if groups and sig[groups[-1][0]] == sig[n]:
            groups[-1].append(n)
        else:
            groups.append([n])
    if all(len(g) == 1 for g in groups):
        return [names]
    out: list[list[str]] = []
    for combo in itertools.product(*(itertools.permutations(g) for g in groups)):
        out.append([n for g in combo for n in g])
        if len(out) >= 24:  # more ties than that: not fully canonical, still sound
            break
    return out


_KIND = {Pte: 0, SwapPte: 1, MigrationPte: 2, DeviceExclusivePte: 3}


def _signature(mm: MM, dirty: bool, pinned: bool) -> tuple[int, ...]:
    """What a process looks like without names: its VMAs, and its entries' kinds and bits
    and the counts of the pages they map (dirty bits and MMF_HAS_PINNED when live)."""
    out = [len(mm.vmas), len(mm.ptes), len(mm.pmds), int(mm.has_pinned and pinned)]
    for v in mm.vmas:
        out.extend((v.start, v.npages, v.flags, v.anon_vma))
    for b in sorted(mm.pmds):
        p = mm.pmds[b]
        f = p.folio
        out.extend((b, p.write, p.dirty and dirty, f.refcount, f.entire_mapcount))
    for vpn in sorted(mm.ptes):
        e = mm.ptes[vpn]
        t = type(e)
        out.extend((vpn, _KIND.get(t, 9)))
        if t is Pte:
            f = e.page.folio  # type: ignore[union-attr]
            out.extend((e.write, e.dirty and dirty, e.special, e.page.mapcount,  # type: ignore[union-attr]
                        f.refcount))
        elif t is SwapPte:
            out.append(e.exclusive)  # type: ignore[union-attr]
    return tuple(out)


def _generic(obj: object, names: tuple[str, ...], out: list[int]) -> None:
    """Unknown fields of the model that hold immutable values, by their hash."""
    for n in names:
        v = getattr(obj, n, None)
        if v.__class__ not in (int, bool, str, type(None), float, frozenset, tuple):
            raise TypeError(f"explore: {type(obj).__name__}.{n} holds a "
                            f"{type(v).__name__}; teach anonex.explore.canon to encode it")
        out.append(hash(v) & 0x7FFFFFFF)


def slot_residue(k: Kernel, lay: Layout) -> int:
    """The modulus of swap slot numbers that the model's behaviour depends on: an mTHP
    swap-in (6.12+) needs the faulting slot placed in its range as the page in its block,
    so where the search space allows one (``lay.slots_mod``) slot numbers, and the next
    slot to allocate, count modulo the largest mTHP size; otherwise only their identity
    counts (1)."""
    return lay.slots_mod if k.rules.mthp_swapin else 1


class _Numbering:
    """The canonical numbers of one encoding: folios and swap slots in order of first
    sight, tags likewise (a class rather than closures: closures that call each other
    make reference cycles, which the explorer keeps the cyclic collector away from)."""

    __slots__ = ("fidx", "folios", "mod", "out", "sidx", "swap", "tags")

    def __init__(self, fidx: dict[int, int], folios: list[Folio], tags: dict[str, int],
                 sidx: dict[int, int], swap: dict[int, SwapSlot], out: list[int],
                 mod: int) -> None:
        self.mod = mod
        self.fidx = fidx
        self.folios = folios
        self.tags = tags
        self.sidx = sidx
        self.swap = swap
        self.out = out

    def fid(self, f: Folio) -> int:
        fidx = self.fidx
        i = fidx.get(id(f))
        if i is None:
            i = fidx[id(f)] = len(self.folios)
            self.folios.append(f)
        return i

    def tag(self, s: str) -> int:
        tags = self.tags
        t = tags.get(s)
        if t is None:
            t = tags[s] = len(tags)
        return t

    def slot(self, s: int) -> None:
        sl = self.swap.get(s)
        if sl is None:
            self.out.extend((-3, s))
            return
        c = sl.cache
        if c is not None and c.swap is not None:
            self.out.extend((self.fid(c), s - c.swap))
            return
        sidx = self.sidx
        i = sidx.get(s)
        if i is None:
            i = sidx[s] = len(sidx)
        self.out.extend((-2, i, s % self.mod))


def key(k: Kernel, oracle: Oracle, lay: Layout) -> bytes:
    """The canonical key of the state (*k*, *oracle*)."""
    return key_twins(k, oracle, lay)[0]


def key_twins(k: Kernel, oracle: Oracle, lay: Layout) -> tuple[bytes, frozenset[str]]:
    """The canonical key of the state, and its *twins*: processes the state cannot tell
    from another one with a larger number (the child a fork made last acts for its
    twins, as in the usual telling of a fork bug).

    Two process orders that give the least encoding differ by a renaming of processes
    that maps the state onto itself (every encoded field, pipes, pins and the oracle
    included). Renamings map actions to actions and successors to symmetric successors,
    so an action of a twin leads to a state with the same key as the same action of the
    process it is twinned with, and the explorer need not try it."""
    best: list[int] | None = None
    ties: list[Sequence[str]] = []
    for order in orders(k, lay):
        enc = encode(k, oracle, lay, order)
        if best is None or enc < best:
            best = enc
            ties = [order]
        elif enc == best:
            ties.append(order)
    assert best is not None
    twins: frozenset[str] = frozenset()
    if len(ties) > 1:
        out: set[str] = set()
        for i in range(len(ties[0])):
            orbit = sorted({o[i] for o in ties}, key=proc_index)
            out.update(orbit[:-1])
        twins = frozenset(out)
    return _pack(best), twins


_PACKERS: dict[int, struct.Struct] = {}


def _pack(enc: list[int]) -> bytes:
    """The encoding as bytes: 32-bit integers, or 64-bit ones (after a ``q``) when some
    value needs it."""
    n = len(enc)
    packer = _PACKERS.get(n)
    if packer is None:
        packer = _PACKERS[n] = struct.Struct(f"{n}i")
    try:
        return packer.pack(*enc)
    except struct.error:
        return b"q" + array("q", enc).tobytes()


def encode(k: Kernel, oracle: Oracle, lay: Layout, order: Sequence[str]) -> list[int]:
    """The state as a flat list of integers, processes in *order*."""
    base = REGION_BASE_VPN
    vpns = lay.vpns
    explicit = lay.explicit
    handles = lay.handles
    dirty = DIRTY not in lay.dead
    pinned = HAS_PINNED not in lay.dead
    pidx = {n: i for i, n in enumerate(order)}
    fidx: dict[int, int] = {id(k.zero_folio): -1}
    folios: list[Folio] = []
    tags: dict[str, int] = {"": 0}
    sidx: dict[int, int] = {}
    swap = k.swap
    x = lay.extra
    x_folio, x_page, x_mm = x.get("Folio", ()), x.get("Page", ()), x.get("MM", ())
    x_vma, x_kernel = x.get("VMA", ()), x.get("Kernel", ())
    out: list[int] = []
    ap = out.append
    ext = out.extend

    mod = slot_residue(k, lay)
    nm = _Numbering(fidx, folios, tags, sidx, swap, out, mod)

    # processes
    ap(len(order))
    for name in order:
        mm = k.mms[name]
        vmas = mm.vmas
        ap(len(vmas))
        for v in vmas:
            ext((v.start - base, v.npages, v.flags, v.anon_vma))
            ra = getattr(v, "ra", None)  # swap readahead: (last fault, window, hits)
            if ra is not None:
                ext(ra)
            if x_vma:
                _generic(v, x_vma, out)
        ap(mm.has_pinned and pinned)
        if x_mm:
            _generic(mm, x_mm, out)
        ap(len(mm.kept_ptables))
        if mm.kept_ptables:
            ext(sorted(b - base for b in mm.kept_ptables))
        pmds = mm.pmds
        ap(len(pmds))
        if pmds:
            for b in sorted(pmds):
                p = pmds[b]
                ext((b - base, nm.fid(p.folio), p.write, p.dirty and dirty))
        pt = mm.ptes
        ap(len(pt))
        get = pt.get
        for vpn in vpns:
            e = get(vpn)
            if e is None:
                ap(-1)
            elif isinstance(e, Pte):
                pg = e.page
                f = pg.folio
                i = fidx.get(id(f))
                if i is None:
                    i = fidx[id(f)] = len(folios)
                    folios.append(f)
                ap(0)
                ap(i)
                ap(pg.index)
                ap(e.write)
                ap(e.dirty and dirty)
                ap(e.special)
            elif isinstance(e, SwapPte):
                ap(1)
                nm.slot(e.slot)
                ap(e.exclusive)
            elif isinstance(e, MigrationPte):
                pg = e.page
                ext((2, nm.fid(pg.folio), pg.index, _MIG[e.kind]))
            elif isinstance(e, DeviceExclusivePte):
                pg = e.page
                ext((3, nm.fid(pg.folio), pg.index))
            else:
                raise TypeError(f"explore: page-table entry {type(e).__name__} is not in the "
                                "key; teach anonex.explore.canon about it")
    # pipes and pins
    for table, is_pin in ((k.pipes, False), (k.pins, True)):
        ap(len(table))
        if not table:
            continue
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
                ext((nm.fid(pg.folio), pg.index, pidx.get(r.mm, -1), r.vpn - base))
    # the swap device: slots held only by the swap cache, then KSM registration
    if swap:
        for s in sorted(swap):
            c = swap[s].cache
            if c is not None:
                nm.fid(c)
    ap(len(swap))
    ap(len(k.lru_pending))  # the LRU batch (5.9-5.17), in the order pages joined it
    for f in k.lru_pending:
        ap(nm.fid(f))
    if lay.ksm or k.ksm_mms:
        ksm = [pidx[n] for n in k.ksm_mms if n in pidx]
        ap(len(ksm))
        ext(ksm)
        mms_order = [pidx[n] for n in k.mms]
        ext(mms_order)
    ap(k.ksm_use_zero_pages)
    ap(k.next_slot % mod)
    ap(getattr(k, "thp_use_zero_page", False))
    if x_kernel:
        _generic(k, x_kernel, out)
    # folios, in order of first sight (the list grows while it is walked: swap caches)
    zp = k.zero_folio.pages[0]
    ext((zp.flags, zp.mapcount, nm.tag(zp.data), k.zero_folio.refcount))
    i = 0
    while i < len(folios):
        f = folios[i]
        i += 1
        ext((f.order, f.refcount, f.pincount, f.entire_mapcount, f.large_mapcount, f.anon,
             f.ksm, f.hugetlb, f.zero, f.freed, getattr(f, "mm_shared", False)))
        if x_folio:
            _generic(f, x_folio, out)
        pages = f.pages
        if len(pages) == 1:
            pg = pages[0]
            d = pg.data
            tg = tags.get(d)
            if tg is None:
                tg = tags[d] = len(tags)
            ext((pg.flags, pg.mapcount, tg))
            if x_page:
                _generic(pg, x_page, out)
        else:
            for pg in pages[:explicit]:
                ext((pg.flags, pg.mapcount, nm.tag(pg.data)))
                if x_page:
                    _generic(pg, x_page, out)
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
                    ext([nm.tag(d) for d in sl.data])
                    ap(sl.cache is f)
    # swap slots without a cache, in order of first sight
    by_id = sorted(sidx.items(), key=lambda kv: kv[1])
    for s, _ in by_id:
        sl = swap[s]
        ext((sl.count, len(sl.data)))
        ext([nm.tag(d) for d in sl.data])
    # the oracle: each process's memory, what pipes may show, where pins point
    mem_get = oracle.mem.get
    for name in order:
        for vpn in vpns:
            t_ = mem_get((name, vpn))
            if t_ is None:
                ap(-1)
            else:
                tg = tags.get(t_)
                if tg is None:
                    tg = tags[t_] = len(tags)
                ap(tg)
    for otable, is_pin in ((oracle.pipes, False), (oracle.pins, True)):
        ap(len(otable))
        if not otable:
            continue
        for hname in sorted(otable):
            refs = otable[hname]
            ext((handles.index(hname), len(refs)))
            for oref in refs:
                if oref.attached:
                    ext((1, pidx.get(oref.mm, -1), oref.vpn - base))
                else:
                    ap(0)
                if not is_pin:
                    acc = sorted(nm.tag(x) for x in sorted(oref.accepted))
                    ap(len(acc))
                    ext(acc)
    return out
