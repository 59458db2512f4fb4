"""What the explorer checks: "always" properties (DESIGN §3) and "sometimes" properties.

**Always** properties must hold in every reachable state; a state that breaks one is a
counterexample. They are the registry :data:`anonex.findings.PROPERTIES` (one definition
each); every check reports :class:`~anonex.findings.Finding` objects by property name.
The structural ones come from :func:`anonex.harness.invariants.check`, the data ones compare
the model with the oracle in every state, as if every process read every page, every pipe
were read and every pin were read by the device right now — so a search needs no read steps
to find a leak:

================== ==================================================================
no-kernel-bug      the model reached a kernel ``BUG_ON``/``VM_BUG_ON``
no-leak            a pipe shows a tag its page's owner never had there (CVE-2020-29374)
isolation          a process would read other data than it wrote or inherited
pin-coherence      a pinned page is no longer the page its owner maps there, or the
                   device sees other data than the owner (wrong COW)
writable-exclusive a writable private anon PTE/PMD without PG_anon_exclusive (5.19+)
pinned-exclusive   a FOLL_PIN-pinned anon page without PG_anon_exclusive (5.19+)
swap-sanity        a swap entry leads to an exclusive swap-cache page
free-sanity        a freed page still carries PG_anon_exclusive
ksm-not-exclusive  a KSM page carries PG_anon_exclusive
accounting         refcounts, mapcounts and slots do not match the page tables
================== ==================================================================

A Python exception inside the model is no property of the kernel: it is a ``model-error``
finding, reported whatever properties are selected.

**Sometimes** properties must hold in *some* reachable state; they show that the search
reaches the situations the always properties are about, so that a pass is not vacuous.
Each names the operations and region kinds it needs and the kernels on which it can hold
at all (a pinned page shared by two processes, for one, cannot exist from 5.19 on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from anonex.findings import ISOLATION, MODEL_ERROR, NO_LEAK, PROPERTIES, Finding, Property
from anonex.harness.invariants import pin_coherence
from anonex.harness.oracle import Oracle
from anonex.kernel.folio import Folio
from anonex.kernel.pgtable import HPAGE_PMD_NR, DeviceExclusivePte, MigrationPte, Pmd, Pte, SwapPte
from anonex.kernel.state import Kernel
from anonex.kernel.versions import Rules

# the properties a search checks and -p selects (a model error is reported whatever is
# selected: see _Check.relevant in search.py)
ALWAYS: tuple[Property, ...] = tuple(p for p in PROPERTIES.values() if p.name != MODEL_ERROR)
ALWAYS_NAMES = tuple(p.name for p in ALWAYS)


def read_view(k: Kernel, mm_name: str, vpn: int) -> str | None:
    """What a read of *vpn* by *mm_name* would return now, without faulting (None: the
    address is not mapped)."""
    mm = k.mms[mm_name]
    if mm.pmds:
        pmd = mm.pmd_at(vpn)
        if pmd is not None:
            return pmd.folio.pages[vpn % HPAGE_PMD_NR].data
    e = mm.ptes.get(vpn)
    if e is None:
        return "" if mm.find_vma(vpn) is not None else None
    t = e.__class__
    if t is Pte or t is MigrationPte or t is DeviceExclusivePte:
        return e.page.data  # type: ignore[union-attr]
    if t is SwapPte:
        slot = e.slot  # type: ignore[union-attr]
        s = k.swap.get(slot)
        if s is None:
            return None
        c = s.cache
        if c is None:
            return s.data[0]
        return c.pages[0 if c.swap is None else slot - c.swap].data  # do_swap_page()
    return None


def check_data(k: Kernel, oracle: Oracle, vpns: tuple[int, ...]) -> list[Finding]:
    """The data promises in this state: isolation (at the explored pages), no leak
    through a pipe, pin coherence (mapping and contents)."""
    out: list[Finding] = []
    mem = oracle.mem
    for name in k.mms:
        for vpn in vpns:
            want = mem.get((name, vpn))
            if want is None:
                continue
            got = read_view(k, name, vpn)
            if got is not None and got != want:
                out.append(Finding(ISOLATION, f"isolation broken: {name} would read {got!r} "
                                              f"at {vpn:#x}, but its memory holds {want!r}"))
    for pname, pipe in k.pipes.items():
        orefs = oracle.pipes.get(pname, [])
        for i, (ref, oref) in enumerate(zip(pipe.refs, orefs, strict=False)):
            if ref.page.data not in oref.accepted:
                out.append(Finding(NO_LEAK, f"leak: pipe '{pname}' page {i} shows "
                                            f"{ref.page.data!r}, which {oref.mm} never had "
                                            f"there (it may see {sorted(oref.accepted)})",
                                   page=ref.page.name))
    out.extend(pin_coherence(k, oracle))
    return out


# -- sometimes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sometimes:
    """A sometimes property: a predicate on states, the operations and region kinds it
    needs (any of each), and the kernels on which it can hold at all."""

    name: str
    doc: str
    test: Callable[[Kernel], bool]
    ops: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    all_ops: frozenset[str] = frozenset()
    possible: Callable[[Rules], bool] = lambda r: True

    def expected(self, ops: frozenset[str], kinds: frozenset[str], rules: Rules) -> bool:
        """Whether a search with these bounds should reach it (else it is not reported
        as missing)."""
        if self.ops and not self.ops & ops:
            return False
        if not self.all_ops <= ops:
            return False
        if self.kinds and not self.kinds & kinds:
            return False
        return self.possible(rules)


def _mappers(k: Kernel) -> dict[int, tuple[Folio, set[str]]]:
    out: dict[int, tuple[Folio, set[str]]] = {}
    for name, mm in k.mms.items():
        for pmd in mm.pmds.values():
            f = pmd.folio
            out.setdefault(id(f), (f, set()))[1].add(name)
        for e in mm.ptes.values():
            if type(e) is Pte and not e.special:
                f = e.page.folio
                out.setdefault(id(f), (f, set()))[1].add(name)
    return out


def _page_shared(k: Kernel) -> bool:
    return any(len(s) > 1 and f.anon and not f.ksm for f, s in _mappers(k).values())


def _cow_broken(k: Kernel) -> bool:
    names = list(k.mms)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ma, mb = k.mms[a], k.mms[b]
            for vpn, e in ma.ptes.items():
                f = mb.ptes.get(vpn)
                if isinstance(e, Pte) and isinstance(f, Pte) and e.page is not f.page and \
                        not e.special and not f.special and e.page.data != f.page.data:
                    return True
            for base, pmd in ma.pmds.items():
                other = mb.pmds.get(base)
                if other is not None and other.folio is not pmd.folio and \
                        other.folio.pages[0].data != pmd.folio.pages[0].data:
                    return True
    return False


def _pipe_unmapped(k: Kernel) -> bool:
    if not k.pipes:
        return False
    mapped = {id(f) for f, _ in _mappers(k).values()}
    return any(id(r.page.folio) not in mapped for p in k.pipes.values() for r in p.refs)


def _pinned_forked(k: Kernel) -> bool:
    return bool(k.pins) and len(k.mms) > 1


def _shared_pinned(k: Kernel) -> bool:
    if not k.pins:
        return False
    m = _mappers(k)
    for pin in k.pins.values():
        for r in pin.refs:
            hit = m.get(id(r.page.folio))
            if hit is not None and len(hit[1]) > 1:
                return True
    return False


def _swapped_shared(k: Kernel) -> bool:
    seen: dict[int, str] = {}
    for name, mm in k.mms.items():
        for e in mm.ptes.values():
            if type(e) is SwapPte:
                other = seen.setdefault(e.slot, name)
                if other != name:
                    return True
    return False


def _swapcache_mapped(k: Kernel) -> bool:
    return any(s.cache is not None and s.cache.mapcount_total() > 0 for s in k.swap.values())


def _exclusive_swap_entry(k: Kernel) -> bool:
    return any(type(e) is SwapPte and e.exclusive for mm in k.mms.values()
               for e in mm.ptes.values())


def _ksm_shared(k: Kernel) -> bool:
    return any(f.ksm and len(s) > 0 and f.pages[0].mapcount > 1
               for f, s in _mappers(k).values())


def _huge_shared(k: Kernel) -> bool:
    seen: dict[int, int] = {}
    for mm in k.mms.values():
        for pmd in mm.pmds.values():
            seen[id(pmd.folio)] = seen.get(id(pmd.folio), 0) + 1
    return any(n > 1 for n in seen.values())


def _thp_pte_mapped(k: Kernel) -> bool:
    return any(type(e) is Pte and e.page.folio.large and not e.page.folio.hugetlb
               for mm in k.mms.values() for e in mm.ptes.values())


_FORK = frozenset({"fork"})
_WRITES = frozenset({"write", "dio-read", "poke", "force-write", "dma-write"})
_PINS = frozenset({"pin", "pin-ro", "pin-ro-short"})
_UNMAP = frozenset({"munmap", "exit", "dontneed", "write", "poke", "force-write"})

SOMETIMES: tuple[Sometimes, ...] = (
    Sometimes("page-shared", "an anon page is mapped by two processes (after fork)",
              _page_shared, all_ops=_FORK),
    Sometimes("cow-broken", "two processes map different pages with different data at "
              "one address", _cow_broken, ops=_WRITES, all_ops=_FORK),
    Sometimes("pipe-page-unmapped", "a pipe holds a page that no process maps any more",
              _pipe_unmapped, ops=_UNMAP, all_ops=frozenset({"vmsplice"})),
    Sometimes("pinned-and-forked", "a page is pinned while its owner has a child",
              _pinned_forked, ops=_PINS, all_ops=_FORK),
    Sometimes("shared-and-pinned", "a pinned page is mapped by two processes (impossible "
              "from 5.19: pinned pages are exclusive)", _shared_pinned,
              ops=_PINS, all_ops=_FORK, possible=lambda r: not r.anon_exclusive),
    Sometimes("swapped-shared", "one swap slot is mapped by two processes",
              _swapped_shared, all_ops=frozenset({"pageout", "fork"}),
              kinds=frozenset({"anon"})),
    Sometimes("swapcache-mapped", "a page in the swap cache is mapped (swapped in while "
              "its slot is shared)", _swapcache_mapped,
              all_ops=frozenset({"pageout", "fork"}), ops=frozenset({"read", "write"}),
              kinds=frozenset({"anon"})),
    Sometimes("exclusive-swap-entry", "a swap entry carries the exclusive bit (5.19+)",
              _exclusive_swap_entry, all_ops=frozenset({"pageout"}),
              kinds=frozenset({"anon"}), possible=lambda r: bool(r.anon_exclusive)),
    Sometimes("ksm-shared", "a KSM page is mapped twice", _ksm_shared,
              all_ops=frozenset({"mergeable", "ksm-scan"}), kinds=frozenset({"anon"})),
    Sometimes("huge-shared", "a PMD-mapped THP or hugetlb page is mapped by two processes",
              _huge_shared, all_ops=_FORK, kinds=frozenset({"thp", "hugetlb"})),
    Sometimes("thp-pte-mapped", "a THP is mapped by PTEs", _thp_pte_mapped,
              ops=frozenset({"split", "munmap", "mprotect", "dontneed", "fork"}),
              kinds=frozenset({"thp"})),
)
SOMETIMES_NAMES = tuple(s.name for s in SOMETIMES)
ALL_NAMES = ALWAYS_NAMES + SOMETIMES_NAMES

__all__ = ["ALWAYS", "ALWAYS_NAMES", "MODEL_ERROR", "SOMETIMES", "Finding", "Pmd", "Property",
           "Sometimes", "check_data", "read_view"]
