"""THP and large folios (kernel/thp.py): kpageflags of tails, MM-ID slots, folio
splits, the huge zero page, MADV_COLLAPSE."""

from __future__ import annotations

import pytest

from anonex.harness import invariants
from anonex.harness.model import ModelBackend
from anonex.kernel import flags as pf
from anonex.kernel.pgtable import Pte
from anonex.kernel.thp import split_folio
from anonex.procfs import kpageflags as kpf
from anonex.runner import run
from anonex.scenario.parser import parse
from anonex.versions import KernelVersion

from .conftest import model_run
from .modelkit import model_state, obs, ok


@pytest.mark.parametrize(("version", "tail_bit"), [("6.18", 1), ("6.9", 0)])
def test_kpageflags_of_thp_tails(version: str, tail_bit: int) -> None:
    """6.10+: tails mirror the head's bit 34; before, each page exported its own (G9)."""
    t = run(parse("P0: mmap A thp\n", "t.cow"),
            ModelBackend(KernelVersion.parse(version), detail=True))
    ok(t)
    head = obs(t, 0, "P0", 0).extra["kpf"]
    tail = obs(t, 0, "P0", 7).extra["kpf"]
    b34 = 1 << kpf.bit("OWNER_2")
    assert head & b34
    assert bool(tail & b34) == bool(tail_bit)
    for name in ("ANON", "THP", "MMAP"):
        assert tail & (1 << kpf.bit(name)), name
    assert bool(tail & (1 << kpf.bit("SWAPBACKED"))) == bool(tail_bit)  # a head-only flag
    assert head & (1 << kpf.bit("COMPOUND_HEAD")) and tail & (1 << kpf.bit("COMPOUND_TAIL"))


def test_mm_id_slots_and_shared_bit() -> None:
    """6.15+: two MM-ID slots; a third mm sets the shared bit, which clears only once one
    slot owns every mapping again; only then is a PTE-mapped large folio reused."""
    be = model_state("""
P0: mmap A anon 16
P0: madvise A hugepage
P0: write A "m"
P0: fork P1
P0: fork P2
""")
    k = be.k
    e = k.mms["P0"].ptes[k.regions["A"]]
    assert isinstance(e, Pte)
    folio = e.page.folio
    assert folio.large and folio.large_mapcount == 48
    assert set(folio.mm_counts) == {"P0", "P1"} and folio.mm_shared
    for proc, shared in (("P1", True), ("P2", False)):
        res = be.step(parse(f"P0: fork {proc}\n{proc}: exit\n", "t.cow").steps[-1])
        assert res.finding is None
        assert folio.mm_shared is shared, proc
    assert folio.mm_counts == {"P0": 16}
    t = model_run("""
P0: mmap A anon 16
P0: madvise A hugepage
P0: write A "m"
P0: fork P1
P0: fork P2
P1: exit
P0: write A[3] "x" @c
expect @c copied
P2: exit
P0: write A[4] "y" @r
expect @r reused on >=6.15
expect @r copied on <6.15
""")
    ok(t)


def test_split_folio_keeps_exclusivity_per_page() -> None:
    """A folio split carries each page's exclusivity through the frozen entry: after a fork
    and the child's exit, only the page the parent rewrote stays exclusive."""
    be = model_state("""
P0: mmap A anon 16
P0: madvise A hugepage
P0: write A "m"
P0: fork P1
P1: exit
P0: write A[6] "six"
""")
    k = be.k
    base = k.regions["A"]
    e = k.mms["P0"].ptes[base]
    assert isinstance(e, Pte) and e.page.folio.large
    assert split_folio(k, e.page.folio)
    assert invariants.check(k) == []
    pages = [k.mms["P0"].ptes[base + i] for i in range(16)]
    assert all(isinstance(p, Pte) and not p.page.folio.large for p in pages)
    excl = [pf.PageAnonExclusive(p.page) for p in pages if isinstance(p, Pte)]
    assert excl == [i == 6 for i in range(16)]


def test_split_folio_refuses_pinned() -> None:
    be = model_state('P0: mmap A anon 16\nP0: madvise A hugepage\nP0: write A "m"\n'
                     "P0: pin A[2] -> h\n")
    e = be.k.mms["P0"].ptes[be.k.regions["A"]]
    assert isinstance(e, Pte)
    assert not split_folio(be.k, e.page.folio)


def test_huge_zero_page_and_its_write_fault() -> None:
    text = """
P0: mmap A thp
P0: madvise A dontneed
P0: read A[3] -> v
expect P0 A[100] zero
expect P0 A[100] thp
P0: write A[3] "x" @w
expect P0 A[100] present
expect P0 A[3] thp on >=6.13
expect not P0 A[3] thp on <6.13
expect P0 A[100] zero on <6.13
"""
    ok(model_run(text, "6.18"))
    ok(model_run(text, "6.12"))


def test_collapse_fills_holes_and_refuses_nohugepage() -> None:
    ok(model_run("""
P0: mmap A thp
P0: write A "t"
P0: madvise A[0..15] dontneed
P0: madvise A collapse
expect P0 A[3] thp
expect P0 A[3] exclusive
P0: read A[3] -> v
expect v == ""
"""))
    t = model_run('P0: mmap A anon 512\nP0: write A "a"\nP0: madvise A collapse\n')
    assert t.verdict == "fail" and "VM_NOHUGEPAGE" in t.reason


@pytest.mark.parametrize(("version", "faults"), [("6.18", 0), ("6.12", 1)])
def test_unsharing_the_huge_zero_page(version: str, faults: int) -> None:
    """A R/O long-term pin of the huge zero page unshares it. From 6.13
    do_huge_zero_wp_pmd() maps a new THP, writable in a writable VMA whatever the fault
    (the next write does not fault); before, the PMD is split and the PTE level copies one
    page, mapped read-only as every unshare copy is."""
    text = """P0: mmap A thp
P0: madvise A dontneed
P0: read A[3] -> v
expect P0 A[3] zero
P0: pin A[3] -> buf ro longterm
expect P0 A[3] exclusive
P0: write A[3] "x" @w
"""
    t = run(parse(text + f"expect @w faults == {faults}\n", "t.cow"),
            ModelBackend(KernelVersion.parse(version)))
    ok(t)
