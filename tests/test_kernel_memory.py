"""Faults on anonymous memory (kernel/memory.py, mm/memory.c): new pages, the zero
page, write and unshare faults that reuse or copy, and the historic wrong-COW bugs."""

from __future__ import annotations

from anonex.kernel import flags as pf
from anonex.kernel.memory import handle_mm_fault
from anonex.kernel.pgtable import Pte
from anonex.kernel.state import FAULT_FLAG_UNSHARE

from .conftest import model_run
from .modelkit import model_state, obs, ok


def test_fresh_write_fault_is_exclusive() -> None:
    t = model_run("""
P0: mmap A anon 1
P0: write A "x" @w
expect @w new
expect P0 A[0] exclusive
expect mapcount P0 A[0] == 1
P0: write A "y" @w2
expect @w2 faults == 0
""")
    ok(t)
    o = obs(t, 1, "P0")
    assert o.extra["refcount"] == 1 and o.extra["pte_write"] and o.extra["pte_dirty"]


def test_read_fault_maps_zero_page() -> None:
    t = model_run("""
P0: mmap A anon 1
P0: read A[0] -> v @r
expect @r new
expect P0 A[0] zero
expect not P0 A[0] exclusive
expect mapcount P0 A[0] == 0
expect v == ""
P0: write A "x" @w
expect @w copied
expect P0 A[0] exclusive
""")
    ok(t)


def test_copy_leaves_old_page_unexclusive_then_reuse() -> None:
    """Prediction 4: the page left behind is mapped once but not exclusive until its write."""
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: fork P1
P1: write A "c" @c
expect @c copied
expect mapcount P0 A[0] == 1
expect not P0 A[0] exclusive
P0: write A "p" @p
expect @p faults == 1
expect @p reused
expect P0 A[0] exclusive
""")
    ok(t)


def test_extra_reference_forces_copy() -> None:
    """wp_can_reuse_anon_folio: a pipe's FOLL_GET reference makes reuse impossible."""
    t = model_run("""
P0: mmap A anon 1
P0: write A "old"
P0: vmsplice A -> pipe
P0: fork P1
P1: exit
P0: write A "new" @w
expect @w copied
P0: read pipe -> seen
expect seen == "old"
""")
    ok(t)


def test_same_process_vmsplice_sees_later_writes() -> None:
    t = model_run("""
P0: mmap A anon 1
P0: write A "old"
P0: vmsplice A -> pipe
P0: mprotect A ro
P0: mprotect A rw
P0: write A "new" @w
expect @w faults == 0
P0: read pipe -> seen
expect seen == "new"
""")
    ok(t)


def test_write_to_readonly_mapping_segfaults() -> None:
    t = model_run('P0: mmap A anon 1\nP0: mprotect A ro\nP0: write A "x"\n')
    assert t.verdict == "fail" and "SIGSEGV" in t.reason


def test_unshare_fault_reuses_without_making_writable() -> None:
    be = model_state('P0: mmap A anon 1\nP0: write A "x"\nP0: fork P1\nP1: exit\n')
    k = be.k
    vpn = k.regions["A"]
    e = k.mms["P0"].ptes[vpn]
    assert isinstance(e, Pte) and not pf.PageAnonExclusive(e.page)
    assert handle_mm_fault(k, k.mms["P0"], vpn, FAULT_FLAG_UNSHARE) == "reused"
    e2 = k.mms["P0"].ptes[vpn]
    assert e2 is e and pf.PageAnonExclusive(e.page) and not e.write


def test_wrong_cow_before_5_9_is_a_finding() -> None:
    """The io_uring + fork bug of ≤5.8: the parent's write copies away from the pin."""
    t = model_run("""
P0: mmap A anon 1
P0: write A "old"
P0: pin A -> buf
P0: fork P1
P0: write A "new"
""", "5.8")
    assert t.verdict == "fail"
    assert "pin coherence" in t.reason


def test_cve_2020_29374_leak_is_found_on_5_4() -> None:
    t = model_run("""
P0: mmap A anon 1
P0: write A "old"
P0: fork P1
P1: vmsplice A -> pipe
P1: munmap A
P0: write A "new"
P1: read pipe -> seen
""", "5.4")
    assert t.verdict == "fail" and "leak" in t.reason
