"""The model's mechanisms, each against the facts of kernel-semantics.md (6.18 unless said).

Most tests are small scenarios: the runner checks their expectations on the model, and the
test also looks at what only the model can see (refcount, PTE bits) in the trace.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from typing import Any

import pytest

from anonex.harness.model import ModelBackend
from anonex.kernel import flags as pf
from anonex.kernel.errors import KernelBug
from anonex.kernel.folio import GUP_PIN_COUNTING_BIAS, folio_maybe_dma_pinned
from anonex.kernel.gup import FOLL_GET, FOLL_PIN, FOLL_WRITE, get_user_pages, gup_must_unshare
from anonex.kernel.memory import handle_mm_fault
from anonex.kernel.pgtable import Pte
from anonex.kernel.state import FAULT_FLAG_UNSHARE
from anonex.kernel.versions import BOUNDARIES, Rules, boundary_versions
from anonex.runner import Trace, run
from anonex.scenario.parser import parse
from anonex.versions import KernelVersion

from .conftest import model_run

ROOT = Path(__file__).resolve().parent.parent


def model_state(text: str, version: str = "6.18") -> ModelBackend:
    """The model backend after running every step of *text*."""
    be = ModelBackend(KernelVersion.parse(version))
    scen = parse(text, "t.cow")
    be.start(scen)
    for st in scen.steps:
        be.step(st)
    return be


def ok(t: Trace) -> None:
    assert t.verdict == "pass", t.reason


def obs(t: Trace, step: int, proc: str, idx: int = 0, region: str = "A") -> Any:
    return t.steps[step].obs[(proc, region, idx)]


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


def test_fork_clears_flag_and_write_protects_both() -> None:
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: fork P1
expect P0 A[0] same P1 A[0]
expect not P0 A[0] exclusive
expect mapcount P0 A[0] == 2
""")
    ok(t)
    for p in ("P0", "P1"):
        assert not obs(t, 2, p).extra["pte_write"]
    assert obs(t, 2, "P0").extra["refcount"] == 2


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


@pytest.mark.parametrize(("version", "faults"), [("6.18", 0), ("5.19", 1)])
def test_mprotect_upgrade_of_exclusive_pages(version: str, faults: int) -> None:
    t = model_run(f"""
P0: mmap A anon 1
P0: write A "x"
P0: mprotect A ro
expect P0 A[0] exclusive
P0: mprotect A rw
P0: write A "y" @w
expect @w faults == {faults}
""", version)
    ok(t)


def test_mprotect_does_not_upgrade_shared_sole_page() -> None:
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: fork P1
P1: exit
P0: mprotect A ro
P0: mprotect A rw
P0: write A "y" @w
expect @w faults == 1
expect @w reused
""")
    ok(t)


def test_pinned_page_is_copied_for_child_at_fork() -> None:
    """Prediction 6: child gets a copy; parent keeps a writable exclusive page."""
    t = model_run("""
P0: mmap A anon 2
P0: write A "x"
P0: pin A[0] -> buf
P0: fork P1
expect not P0 A[0] same P1 A[0]
expect P0 A[0] exclusive
expect P1 A[0] exclusive
expect mapcount P0 A[0] == 1
expect P0 A[1] same P1 A[1]
expect not P0 A[1] exclusive
P0: write A[0] "y" @w
expect @w faults == 0
P1: read A[0] -> c
expect c == "x"
""")
    ok(t)
    o = obs(t, 3, "P0")
    assert o.extra["refcount"] == 1 + GUP_PIN_COUNTING_BIAS


def test_child_does_not_inherit_has_pinned() -> None:
    be = model_state('P0: mmap A anon 1\nP0: write A "x"\nP0: pin A -> b\nP0: fork P1\n')
    assert be.k.mms["P0"].has_pinned and not be.k.mms["P1"].has_pinned


def test_pinning_shared_page_breaks_cow() -> None:
    """Prediction 7: FOLL_PIN|FOLL_WRITE on a shared page: the pinner gets a new page."""
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: fork P1
P0: pin A -> buf
expect not P0 A[0] same P1 A[0]
expect P0 A[0] exclusive
expect not P1 A[0] exclusive
expect mapcount P1 A[0] == 1
""")
    ok(t)


def test_ro_pin_unshares_and_keeps_pte_readonly() -> None:
    """Prediction 8 (O_DIRECT write from a shared page): unshare, R/O PTE, then reuse."""
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: fork P1
P0: dio-write A[0] -> v
expect v == "x"
expect not P0 A[0] same P1 A[0]
expect P0 A[0] exclusive
P0: write A "y" @w
expect @w faults == 1
expect @w reused
""")
    ok(t)
    assert not obs(t, 3, "P0").extra["pte_write"]


def test_ro_pin_before_5_19_does_not_unshare() -> None:
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: fork P1
P0: peek P1 A[0] -> v
expect P0 A[0] same P1 A[0]
""", "5.18")
    ok(t)


def test_foll_get_never_unshares() -> None:
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: fork P1
P1: vmsplice A -> pipe
expect P0 A[0] same P1 A[0]
expect not P1 A[0] exclusive
""")
    ok(t)


def test_gup_forces_cow_break_on_5_8() -> None:
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: fork P1
P1: vmsplice A -> pipe
expect not P0 A[0] same P1 A[0]
""", "5.8")
    ok(t)


def test_dontfork_and_wipeonfork() -> None:
    """Prediction 18."""
    t = model_run("""
P0: mmap A anon 1
P0: mmap B anon 1
P0: write A "a"
P0: write B "b"
P0: madvise A dontfork
P0: madvise B wipeonfork
P0: fork P1
expect P0 A[0] exclusive
expect P0 B[0] exclusive
expect mapcount P0 A[0] == 1
expect P1 A[0] none
P1: read B[0] -> w
expect w == ""
expect P1 B[0] zero
""")
    ok(t)
    bad = model_run('P0: mmap A anon 1\nP0: madvise A dontfork\nP0: fork P1\nP1: read A[0] -> v\n')
    assert bad.verdict == "fail"
    assert "SIGSEGV" in bad.reason or "no mapping" in bad.reason


def test_force_write_into_readonly_mapping() -> None:
    """Prediction 19: a FOLL_FORCE write creates an exclusive anon page, PTE stays R/O."""
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: fork P1
P1: mprotect A ro
P0: force-write P1 A[0] "f"
expect not P0 A[0] same P1 A[0]
expect P1 A[0] exclusive
P1: read A[0] -> v
expect v == "f"
P0: read A[0] -> pv
expect pv == "x"
""")
    ok(t)
    assert not obs(t, 4, "P1").extra["pte_write"]


def test_force_write_on_exclusive_readonly_page_writes_in_place() -> None:
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: fork P1
P1: write A "c"
P1: mprotect A ro
P0: force-write P1 A[0] "f" @f
expect P1 A[0] exclusive
""")
    ok(t)
    assert obs(t, 4, "P1").page == obs(t, 3, "P1").page


def test_write_to_readonly_mapping_segfaults() -> None:
    t = model_run('P0: mmap A anon 1\nP0: mprotect A ro\nP0: write A "x"\n')
    assert t.verdict == "fail" and "SIGSEGV" in t.reason


def test_pin_accounting_and_false_positive() -> None:
    be = model_state('P0: mmap A anon 1\nP0: write A "x"\n')
    k = be.k
    mm = k.mms["P0"]
    vpn = k.regions["A"]
    e = mm.ptes[vpn]
    assert isinstance(e, Pte)
    folio = e.page.folio
    pages = get_user_pages(k, mm, [vpn], FOLL_PIN | FOLL_WRITE)
    assert folio.refcount == 1 + GUP_PIN_COUNTING_BIAS and folio_maybe_dma_pinned(folio)
    from anonex.kernel.gup import unpin_user_page

    unpin_user_page(k, pages[0])
    assert folio.refcount == 1 and not folio_maybe_dma_pinned(folio)
    for _ in range(GUP_PIN_COUNTING_BIAS - 1):
        get_user_pages(k, mm, [vpn], FOLL_GET)
    assert folio_maybe_dma_pinned(folio)  # 1024 plain references look like a pin


def test_gup_must_unshare_rules() -> None:
    be = model_state('P0: mmap A anon 1\nP0: write A "x"\nP0: fork P1\n')
    k = be.k
    e = k.mms["P0"].ptes[k.regions["A"]]
    assert isinstance(e, Pte)
    vma = k.mms["P0"].vmas[0]
    assert gup_must_unshare(k, vma, FOLL_PIN, e.page)
    assert not gup_must_unshare(k, vma, FOLL_GET, e.page)
    assert not gup_must_unshare(k, vma, FOLL_PIN | FOLL_WRITE, e.page)
    zero = k.zero_page
    from anonex.kernel.gup import FOLL_LONGTERM

    assert not gup_must_unshare(k, vma, FOLL_PIN, zero)
    assert gup_must_unshare(k, vma, FOLL_PIN | FOLL_LONGTERM, zero)
    assert gup_must_unshare(k, None, FOLL_PIN | FOLL_LONGTERM, zero)


def test_unshare_fault_reuses_without_making_writable() -> None:
    be = model_state('P0: mmap A anon 1\nP0: write A "x"\nP0: fork P1\nP1: exit\n')
    k = be.k
    vpn = k.regions["A"]
    e = k.mms["P0"].ptes[vpn]
    assert isinstance(e, Pte) and not pf.PageAnonExclusive(e.page)
    assert handle_mm_fault(k, k.mms["P0"], vpn, FAULT_FLAG_UNSHARE) == "reused"
    e2 = k.mms["P0"].ptes[vpn]
    assert e2 is e and pf.PageAnonExclusive(e.page) and not e.write


def test_freeing_clears_the_flag() -> None:
    be = model_state('P0: mmap A anon 1\nP0: write A "x"\n')
    k = be.k
    e = k.mms["P0"].ptes[k.regions["A"]]
    assert isinstance(e, Pte)
    page = e.page
    assert pf.excl_bit_set(page)
    res = be.step(parse('P0: mmap A anon 1\nP0: munmap A\n', "t.cow").steps[1])
    assert res.finding is None
    assert page.folio.freed and page.flags == 0


def test_munmap_keeps_stale_flag_while_referenced() -> None:
    """Unmapping never clears the flag: a page still held by a pipe keeps it."""
    be = ModelBackend()
    scen = parse('P0: mmap A anon 1\nP0: write A "x"\nP0: vmsplice A -> p\nP0: munmap A\n')
    be.start(scen)
    for st in scen.steps:
        assert be.step(st).finding is None
    page = be.k.pipes["p"].refs[0].page
    assert page.mapcount == 0 and page.folio.refcount == 1
    assert pf.excl_bit_set(page)


def test_swap_roundtrip_keeps_exclusivity_in_entry() -> None:
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: madvise A pageout
expect P0 A[0] swapped
P0: read A[0] -> v @r
expect @r swapin
expect P0 A[0] exclusive
P0: write A "y" @w
expect @w faults == 0
""")
    ok(t)
    assert obs(t, 2, "P0").extra["swp_exclusive"] is True


def test_fork_of_swap_entry_drops_exclusive_bit() -> None:
    """Prediction 11: both entries non-exclusive; parent copies, child then reuses."""
    t = model_run("""
P0: mmap A anon 1
P0: write A "x"
P0: madvise A pageout
P0: fork P1
P0: read A[0] -> v @r
expect @r swapin
expect not P0 A[0] exclusive
P0: write A "p" @w
expect @w copied
P1: read A[0] -> c
expect c == "x"
P1: write A "c" @cw
expect @cw reused
expect P1 A[0] exclusive
""")
    ok(t)
    assert obs(t, 3, "P0").extra["swp_exclusive"] is False
    assert obs(t, 3, "P1").extra["swp_exclusive"] is False


def test_writable_swapin_on_read_since_6_11() -> None:
    text = """
P0: mmap A anon 1
P0: write A "x"
P0: madvise A pageout
P0: read A[0] -> v
P0: write A "y" @w
expect @w faults == {}
"""
    ok(model_run(text.format(0), "6.11"))
    ok(model_run(text.format(1), "6.10"))


def test_pinned_page_is_not_swapped() -> None:
    """Prediction 9: try_to_unmap fails for a maybe-pinned page."""
    t = model_run("""
P0: mmap A anon 2
P0: write A "d"
P0: pin A[0] -> h
P0: madvise A pageout
expect P0 A[0] present
expect P0 A[0] exclusive
expect P0 A[1] swapped
""")
    ok(t)


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


def test_invariant_checker_catches_corruption() -> None:
    be = model_state('P0: mmap A anon 1\nP0: write A "x"\nP0: fork P1\n')
    e = be.k.mms["P0"].ptes[be.k.regions["A"]]
    assert isinstance(e, Pte)
    e.write = True  # writable but not exclusive: what a buggy kernel would do
    from anonex.harness import invariants

    found = invariants.check(be.k)
    assert [f.property for f in found] == ["writable-exclusive"]
    assert "writable ⇒ exclusive" in found[0].message and found[0].page == e.page.name
    e.page.folio.refcount += 5
    assert "accounting" in {f.property for f in invariants.check(be.k)}


def test_set_exclusive_on_ksm_page_is_kernel_bug() -> None:
    be = model_state('P0: mmap A anon 1\nP0: write A "x"\n')
    e = be.k.mms["P0"].ptes[be.k.regions["A"]]
    assert isinstance(e, Pte)
    e.page.folio.ksm = True
    with pytest.raises(KernelBug):
        pf.SetPageAnonExclusive(e.page)


def test_version_table() -> None:
    names = {b.name for b in BOUNDARIES}
    assert {"reuse_by_page_count", "anon_exclusive", "gup_forces_cow_break",
            "writable_swapin_on_read", "mm_id_large_reuse"} <= names
    r = Rules(KernelVersion(5, 8))
    assert r.gup_forces_cow_break and not r.reuse_by_page_count and not r.anon_exclusive
    r = Rules(KernelVersion(6, 18, 44))
    assert r.anon_exclusive and r.mm_id_large_reuse and not r.gup_forces_cow_break
    with pytest.raises(AttributeError):
        _ = r.no_such_rule
    vs = boundary_versions()
    assert vs == sorted(vs) and KernelVersion(5, 19) in vs and KernelVersion(5, 4) in vs
    for b in BOUNDARIES:
        assert b.commit and b.summary


def test_stable_backports_in_version_table() -> None:
    """A stable release that got a change has it, its series' earlier releases do not, and
    a fix backported to a series ends a bug there."""
    def rules(v: str) -> Rules:
        return Rules(KernelVersion.parse(v))

    assert not rules("5.10").pinned_not_swapcached
    assert not rules("5.10.8").pinned_not_swapcached
    assert rules("5.10.9").pinned_not_swapcached and rules("5.10.223").pinned_not_swapcached
    assert not rules("5.9.16").pinned_not_swapcached and rules("5.11").pinned_not_swapcached
    assert rules("5.10.4").gup_fast_fork_seqcount and not rules("5.10.3").gup_fast_fork_seqcount
    assert rules("6.12.117").kpageflags_ksm_every_anon
    assert rules("6.18.43").kpageflags_ksm_every_anon
    assert not rules("6.18.44").kpageflags_ksm_every_anon
    assert not rules("7.2").kpageflags_ksm_every_anon and not rules("6.9").kpageflags_ksm_every_anon
    vs = boundary_versions()
    # backports are versions where the rules change; rules the model never reads are not
    assert KernelVersion.parse("5.10.9") in vs and KernelVersion.parse("6.18.44") in vs
    assert KernelVersion.parse("5.10.4") not in vs
    assert all(rules(str(v))._on != rules(str(w))._on for v, w in itertools.pairwise(vs))


def test_model_at_a_stable_release() -> None:
    """``--kernel 5.10.9`` runs the model with 5.10.9's backports."""
    text = """
P0: mmap A anon 1
P0: write A "data"
P0: pin A[0] -> h
P0: madvise A pageout
expect P0 A[0] present
"""
    assert model_run(text, "5.10.9").verdict == "pass"
    assert model_run(text, "5.10.8").verdict == "fail"


def test_rule_overrides() -> None:
    """A rule can be set against its version (a kernel's own answer, or one rule flipped),
    and the model runs with it."""
    v = KernelVersion.parse("6.12")
    r = Rules(v, {"collapse_readonly_ptes": True})
    assert r.collapse_readonly_ptes and not Rules(v).collapse_readonly_ptes
    assert r.mthp_swapin and "collapse_readonly_ptes=True" in repr(r)
    with pytest.raises(ValueError, match="no kernel rule"):
        Rules(v, {"no_such_rule": True})
    scen = parse((ROOT / "src/anonex/library/fingerprint/collapse-shared-needs-writable-pte.cow")
                 .read_text(), "t.cow")
    assert run(scen, ModelBackend(v)).verdict == "xfail"
    assert run(scen, ModelBackend(v, rules=r)).verdict == "xpass"


def test_boundary_evidence_finds_what_decides_a_rule() -> None:
    """tools/boundary_evidence.py: the scenarios whose run a rule changes on a kernel."""
    spec = importlib.util.spec_from_file_location(
        "boundary_evidence", ROOT / "tools" / "boundary_evidence.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    names = mod.discriminating("collapse_readonly_ptes", "6.12.117")
    assert "collapse-shared-needs-writable-pte" in names
    assert "basic-cow-after-fork" not in names


def test_ksm_merge_write_and_unmerge() -> None:
    """Prediction 16, plus MADV_UNMERGEABLE giving each page an exclusive copy."""
    t = model_run("""
P0: mmap A anon 3
P0: write A "same"
P0: madvise A mergeable
ksm-scan
expect P0 A[0] same P0 A[2]
expect P0 A[1] ksm
expect mapcount P0 A[1] == 3
expect not P0 A[1] exclusive
P0: write A[0] "x" @w
expect @w copied
expect P0 A[0] exclusive
P0: madvise A unmergeable
expect not P0 A[1] ksm
expect P0 A[1] exclusive
expect not P0 A[1] same P0 A[2]
""")
    ok(t)


def test_ksm_skips_pinned_and_referenced_pages() -> None:
    t = model_run("""
P0: mmap A anon 3
P0: write A "same"
P0: pin A[0] -> h
P0: vmsplice A[1] -> p
P0: madvise A mergeable
ksm-scan
expect not P0 A[0] ksm
expect P0 A[0] exclusive
expect not P0 A[1] ksm
expect not P0 A[2] ksm
""")
    ok(t)


def test_migration_keeps_exclusivity_through_entry_kinds() -> None:
    """kernel-semantics §15.21: exclusive pages stay exclusive, shared stay shared, a
    read-only exclusive page stays read-only and is reused on write; pinned pages stay."""
    t = model_run("""
P0: mmap A anon 4
P0: write A "x"
P0: fork P1
P0: write A[0] "w"
P0: dio-write A[1] -> v
P0: pin A[3] -> h
P0: migrate A
expect P0 A[0] exclusive
expect P0 A[1] exclusive
expect not P0 A[2] exclusive
expect P0 A[2] same P1 A[2]
expect mapcount P0 A[2] == 2
expect P0 A[3] exclusive
P0: write A[1] "y" @w
expect @w reused
P0: dma-read h -> d
expect d == "x"
""")
    ok(t)
    before, after = t.steps[5].obs, t.steps[6].obs
    for i in range(3):
        assert before[("P0", "A", i)].page != after[("P0", "A", i)].page  # moved
    assert before[("P0", "A", 3)].page == after[("P0", "A", 3)].page  # pinned: stays
    assert after[("P0", "A", 0)].extra["pte_write"]
    assert not after[("P0", "A", 1)].extra["pte_write"]


@pytest.mark.parametrize("version", ["6.18", "6.14"])
def test_device_exclusive_keeps_flag_and_restores_writable(version: str) -> None:
    from anonex.kernel.device import make_device_exclusive
    from anonex.kernel.pgtable import DeviceExclusivePte

    be = model_state('P0: mmap A anon 1\nP0: write A "x"\nP0: fork P1\n', version)
    k = be.k
    vpn = k.regions["A"]
    mm = k.mms["P0"]
    make_device_exclusive(k, mm, vpn)  # GUP write fault: COW away from P1 first
    e = mm.ptes[vpn]
    assert isinstance(e, DeviceExclusivePte)
    page = e.page
    assert pf.PageAnonExclusive(page)
    assert page.mapcount == (1 if version == "6.18" else 0)
    from anonex.harness import invariants

    assert invariants.check(k) == []
    res = be.step(parse('P0: mmap A anon 1\nP0: write A "y" @w\n', "t.cow").steps[1])
    assert res.finding is None and res.faults == 1
    pte = mm.ptes[vpn]
    assert isinstance(pte, Pte) and pte.page is page and pte.write and page.data == "y"


@pytest.mark.parametrize(("version", "tail_bit"), [("6.18", 1), ("6.9", 0)])
def test_kpageflags_of_thp_tails(version: str, tail_bit: int) -> None:
    """6.10+: tails mirror the head's bit 34; before, each page exported its own (G9)."""
    from anonex.procfs import kpageflags as kpf

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
    from anonex.kernel.thp import split_folio

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
    from anonex.harness import invariants

    assert invariants.check(k) == []
    pages = [k.mms["P0"].ptes[base + i] for i in range(16)]
    assert all(isinstance(p, Pte) and not p.page.folio.large for p in pages)
    excl = [pf.PageAnonExclusive(p.page) for p in pages if isinstance(p, Pte)]
    assert excl == [i == 6 for i in range(16)]


def test_split_folio_refuses_pinned() -> None:
    from anonex.kernel.thp import split_folio

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


def test_mthp_swapin_brings_back_whole_folio_since_6_12() -> None:
    text = """
P0: mmap A anon 16
P0: madvise A hugepage
P0: write A "m"
P0: madvise A pageout
P0: read A[3] -> v @r
expect @r swapin
expect P0 A[15] {state}
"""
    ok(model_run(text.format(state="present"), "6.12"))
    ok(model_run(text.format(state="swapped"), "6.11"))


@pytest.mark.parametrize("version", ["5.8", "6.2", "6.18"])
def test_mprotect_to_the_protection_a_range_has_changes_nothing(version: str) -> None:
    """mprotect_fixup() returns at once when a VMA's flags would not change: no split of
    a huge PMD, no EINVAL for part of a hugetlb page, no upgrade of a read-only PTE."""
    be = ModelBackend(KernelVersion.parse(version))
    t = run(parse('P0: mmap A thp\nP0: mmap H hugetlb\nP0: mprotect A[0..255] rw\n'
                  'P0: mprotect H[0..255] rw\n', "m.cow"), be)
    assert all(rec.result.error is None for rec in t.steps)
    mm = be.k.mms["P0"]
    assert be.k.regions["A"] in mm.pmds and len(mm.vmas) == 2
    be2 = ModelBackend(KernelVersion.parse(version))
    run(parse('P0: mmap A thp\nP0: mprotect A[0..255] ro\n', "m.cow"), be2)
    assert not be2.k.mms["P0"].pmds and len(be2.k.mms["P0"].vmas) == 2  # a real change


@pytest.mark.parametrize("advice", ["hugepage", "dontfork", "wipeonfork", "mergeable"])
def test_madvise_of_a_flag_the_range_has_keeps_the_pmd(advice: str) -> None:
    """madvise_update_vma() returns at once when the VMA's flags would not change."""
    be = ModelBackend()
    text = f"P0: mmap A thp\nP0: madvise A {advice}\nP0: madvise A[0..255] {advice}\n"
    t = run(parse(text, "m.cow"), be)
    assert all(rec.result.error is None for rec in t.steps)
    mm = be.k.mms["P0"]
    assert be.k.regions["A"] in mm.pmds and len(mm.vmas) == 1
    if advice != "hugepage":  # the THP region has VM_HUGEPAGE from the start
        be2 = ModelBackend()
        run(parse(f"P0: mmap A thp\nP0: madvise A[0..255] {advice}\n", "m.cow"), be2)
        assert not be2.k.mms["P0"].pmds and len(be2.k.mms["P0"].vmas) == 2
