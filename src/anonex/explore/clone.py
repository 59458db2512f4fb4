"""Fast copies of the model's state, for expanding one explored state by many actions.

Every action runs on its own copy of the parent state (the model mutates in place). A
generic ``copy.deepcopy`` costs ~200 µs for a small state and ``pickle`` ~30 µs; the
functions here copy each class of the model field by field, with plain typed code that
mypyc compiles along with the model (see ``setup.py``), and share what never changes (the
version, its rules, the page-flag layout, strings and numbers).

A page is never copied alone: a reference to a page is resolved to the same page of the
copied folio, so the folio <-> page structure and every sharing between page tables, pipes,
pins and the swap cache survive the copy. ``tests/test_explore_state.py`` checks on explored
states of every memory kind that a copy equals its original field by field (every field of
the model's classes) and shares nothing mutable with it.
"""

from __future__ import annotations

from anonex.harness.oracle import Oracle, _Ref
from anonex.kernel.flags import Layout as FlagLayout
from anonex.kernel.folio import Folio, Page
from anonex.kernel.pgtable import DeviceExclusivePte, Entry, MigrationPte, Pmd, Pte, SwapPte
from anonex.kernel.state import MM, VMA, Kernel, PageRef, Pin, Pipe, SwapSlot
from anonex.kernel.versions import Rules
from anonex.versions import KernelVersion

# Kernel is copied attribute by attribute: these are its mutable fields, copied deeply;
# every other field must hold an immutable value and is shared.
KERNEL_MUTABLE: frozenset[str] = frozenset({
    "mms", "zero_folio", "_huge_zero", "pipes", "pins", "swap", "regions", "freed",
    "ksm_mms", "injected", "lru_pending"})

# Kernel fields of these types are shared between copies (besides the model's own immutable
# types: the version, its rules, the page-flag layout).
IMMUTABLE: frozenset[type] = frozenset({int, bool, str, float, type(None), frozenset, tuple,
                                       KernelVersion, Rules, FlagLayout})

Folios = dict[int, Folio]  # id of an original folio -> its copy


class Copier:
    """One copy of a state: the folios copied so far (so that every reference to a folio
    or one of its pages lands on one copy)."""

    __slots__ = ("folios",)

    def __init__(self) -> None:
        self.folios: Folios = {}

    def folio(self, f: Folio) -> Folio:
        n = self.folios.get(id(f))
        if n is not None:
            return n
        n = Folio(f.pfn, f.order, f.layout, False)
        self.folios[id(f)] = n
        n.pages = [Page(n, p.index, p.flags, p.mapcount, p.data) for p in f.pages]
        n.refcount = f.refcount
        n.pincount = f.pincount
        n.entire_mapcount = f.entire_mapcount
        n.large_mapcount = f.large_mapcount
        n.anon = f.anon
        n.ksm = f.ksm
        n.hugetlb = f.hugetlb
        n.zero = f.zero
        n.freed = f.freed
        n.swap = f.swap
        n.mm_counts = dict(f.mm_counts)
        n.mm_shared = f.mm_shared
        return n

    def page(self, p: Page) -> Page:
        return self.folio(p.folio).pages[p.index]

    def entry(self, e: Entry) -> Entry:
        if isinstance(e, Pte):
            return Pte(self.page(e.page), e.write, e.dirty, e.special)
        if isinstance(e, SwapPte):
            return SwapPte(e.slot, e.exclusive)
        if isinstance(e, MigrationPte):
            return MigrationPte(self.page(e.page), e.kind)
        return DeviceExclusivePte(self.page(e.page))

    def mm(self, m: MM) -> MM:
        entry = self.entry
        return MM(m.name,
                  [VMA(v.start, v.npages, v.flags, v.anon_vma, v.ra) for v in m.vmas],
                  {vpn: entry(e) for vpn, e in m.ptes.items()},
                  m.has_pinned,
                  {b: Pmd(self.folio(p.folio), p.write, p.dirty) for b, p in m.pmds.items()},
                  m.kept_ptables)

    def refs(self, refs: list[PageRef]) -> list[PageRef]:
        return [PageRef(self.page(r.page), r.mm, r.vpn) for r in refs]

    def slot(self, s: SwapSlot) -> SwapSlot:
        c = s.cache
        return SwapSlot(list(s.data), s.count, None if c is None else self.folio(c))

    def kernel(self, k: Kernel) -> Kernel:
        n: Kernel = object.__new__(Kernel)
        n.__dict__.update(k.__dict__)  # the immutable fields; the rest is replaced below
        n.mms = {name: self.mm(m) for name, m in k.mms.items()}
        n.zero_folio = self.folio(k.zero_folio)
        hz = k._huge_zero
        n._huge_zero = None if hz is None else self.folio(hz)
        n.pipes = {name: Pipe(self.refs(p.refs), set(p.holders))
                   for name, p in k.pipes.items()}
        n.pins = {name: Pin(self.refs(p.refs), set(p.holders), p.gup_flags)
                  for name, p in k.pins.items()}
        n.swap = {i: self.slot(s) for i, s in k.swap.items()}
        n.regions = dict(k.regions)
        n.freed = [self.folio(f) for f in k.freed]
        n.lru_pending = [self.folio(f) for f in k.lru_pending]
        n.ksm_mms = list(k.ksm_mms)
        n.injected = set(k.injected)
        return n


def _oracle_refs(refs: list[_Ref]) -> list[_Ref]:
    return [_Ref(r.mm, r.vpn, r.attached, set(r.accepted)) for r in refs]


def clone_oracle(o: Oracle) -> Oracle:
    """A copy of the oracle's promises."""
    n = Oracle()
    n.mem = dict(o.mem)
    n.pipes = {name: _oracle_refs(refs) for name, refs in o.pipes.items()}
    n.pins = {name: _oracle_refs(refs) for name, refs in o.pins.items()}
    return n


def clone_kernel(k: Kernel) -> Kernel:
    """A copy of the model's kernel sharing nothing mutable with *k*."""
    return Copier().kernel(k)


def model_fields() -> dict[str, list[str]]:
    """The fields of every class of the model's state, by class name (slots, or the
    attributes of a fresh instance for the classes without slots)."""
    from anonex.versions import CURRENT

    classes: list[type] = [Page, Folio, Pte, SwapPte, MigrationPte, DeviceExclusivePte, Pmd,
                           VMA, MM, PageRef, Pipe, Pin, SwapSlot, _Ref, Oracle, Kernel]
    out: dict[str, list[str]] = {}
    for cls in classes:
        names = _attrs(cls)
        if not names:
            obj = Kernel(CURRENT) if cls is Kernel else Oracle()
            names = list(vars(obj))
        out[cls.__name__] = names
    return out


def _attrs(cls: type) -> list[str]:
    """The declared attributes of *cls*: its slots, or mypyc's attribute list when the
    class is compiled."""
    compiled = cls.__dict__.get("__mypyc_attrs__")
    if compiled is not None:
        return [a for a in compiled if a not in ("__dict__", "__weakref__")]
    out: list[str] = []
    for c in reversed(cls.__mro__):
        s = c.__dict__.get("__slots__", ())
        out.extend([s] if isinstance(s, str) else s)
    return [s for s in out if s not in ("__dict__", "__weakref__")]


def unknown_fields() -> dict[str, list[str]]:
    """Kernel fields the copy would share although they hold mutable values (a field the
    model gained: add it to :data:`KERNEL_MUTABLE` and to :meth:`Copier.kernel`)."""
    from anonex.versions import CURRENT

    k = vars(Kernel(CURRENT))
    shared = sorted(f for f, v in k.items()
                    if f not in KERNEL_MUTABLE and v.__class__ not in IMMUTABLE)
    return {"Kernel": shared} if shared else {}
