"""The live backend's swap, KSM, THP, mTHP and hugetlb steps, and how it observes them.

Tests that need the live kernel skip with the reason when :func:`anonex.live.available`
says no, and fail instead when ``ANONEX_REQUIRE_LIVE=1``.
"""

from __future__ import annotations

import os

import pytest

from anonex.live import machine, safety
from anonex.live.backend import LiveBackend
from anonex.live.observe import Observer
from anonex.observation import PageObs, StepResult
from anonex.runner import run
from anonex.scenario.ast import Scenario
from anonex.scenario.parser import parse

THP = machine.THP


def _scen(text: str) -> Scenario:
    return parse('title "t"\n' + text, "t.cow")


def _run_steps(be: LiveBackend, text: str, start: bool = True) -> list[StepResult]:
    """Start *be* for the scenario *text* and do its steps; each must succeed."""
    scen = _scen(text)
    if start:
        be.start(scen)
    out = []
    for st in scen.steps:
        r = be.step(st)
        assert r.error is None and r.skipped is None, (st.text(), r)
        out.append(r)
    return out


def _obs(be: LiveBackend) -> dict[tuple[str, str, int], PageObs]:
    return {o.key: o for o in be.observe()}


# -- THP -------------------------------------------------------------------------------------


def test_thp_region_is_one_pmd_mapped_exclusive_folio(backend: LiveBackend) -> None:
    _run_steps(backend, 'P0: mmap A thp\nP0: write A[7] "t"')
    o = _obs(backend)
    head, tail = o[("P0", "A", 0)], o[("P0", "A", 511)]
    assert head.thp and tail.thp and not head.huge
    assert head.extra.get("pmd") and tail.extra.get("pmd")
    assert head.anon_exclusive is True and tail.anon_exclusive is True
    assert tail.extra["excl_source"] == "pmd head"
    assert tail.ident == head.ident + 511  # PFNs of one folio
    assert head.data == "" and o[("P0", "A", 7)].data == "t"  # populated with "" as the model


def test_split_leaves_pte_mapped_pages_of_unknown_exclusivity(backend: LiveBackend) -> None:
    text = "P0: mmap A thp\nP0: split A"
    _run_steps(backend, text)
    o = _obs(backend)
    page = o[("P0", "A", 5)]
    assert page.thp and "pmd" not in page.extra
    assert page.anon_exclusive is None
    assert page.extra["excl_source"] == "head-mirror: unknown"
    again = backend.step(_scen(text + "\nP0: split A").steps[-1])
    assert again.error == "split: no PMD-mapped THP in the range"


def test_mprotect_to_the_protection_it_has_keeps_the_pmd(backend: LiveBackend) -> None:
    # the kernel fact behind the model's mprotect_changes(): no split of a PMD, no EINVAL
    # for half a hugetlb page, when the VMA's flags would not change
    text = ("P0: mmap A thp\nP0: mmap H hugetlb\nP0: mprotect A[0..255] rw\n"
            "P0: mprotect H[0..255] rw")
    _run_steps(backend, text)
    o = _obs(backend)
    assert o[("P0", "A", 0)].extra.get("pmd") and o[("P0", "A", 300)].extra.get("pmd")
    r = backend.step(_scen(text + "\nP0: mprotect A[0..255] ro").steps[-1])
    assert r.error is None
    assert "pmd" not in _obs(backend)[("P0", "A", 300)].extra  # a real change splits it


def test_shared_thp_after_fork_reads_the_head(backend: LiveBackend) -> None:
    _run_steps(backend, "P0: mmap A thp\nP0: fork P1")
    o = _obs(backend)
    for proc in ("P0", "P1"):
        p = o[(proc, "A", 100)]
        assert p.anon_exclusive is False and p.mapcount == 2
        assert p.extra["excl_source"] == "pmd head"


def test_no_thp_given_skips_with_the_reason(live: None,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LiveBackend, "_not_pmd_mapped",
                        lambda self, proc, addr: "the allocation fell back")
    t = run(_scen("P0: mmap A thp"), LiveBackend())
    assert t.verdict == "skip"
    assert "no PMD-mapped THP (the allocation fell back)" in t.reason


def test_mthp_64k_setting_is_used_and_restored(live: None) -> None:
    path = f"{THP}/hugepages-64kB/enabled"
    if not os.path.exists(path):
        pytest.skip("no 64 KiB mTHP on this kernel")
    before = machine.selected(machine.read(path))
    be = LiveBackend()
    try:
        _run_steps(be, 'P0: mmap A anon 16\nP0: madvise A hugepage\nP0: write A[0] "m"')
        assert machine.selected(machine.read(path)) == "madvise"
        o = _obs(be)
        assert all(o[("P0", "A", i)].thp for i in range(16))
        assert o[("P0", "A", 9)].anon_exclusive is None  # PTE-mapped large folio
        assert o[("P0", "A", 9)].ident == o[("P0", "A", 0)].ident + 9
    finally:
        be.finish()
    assert machine.selected(machine.read(path)) == before


# -- hugetlb ---------------------------------------------------------------------------------


def test_hugetlb_pool_is_grown_and_restored(live: None) -> None:
    nr_path = f"{machine.HUGETLB_2M}/nr_hugepages"
    before = machine.read(nr_path)
    be = LiveBackend()
    try:
        _run_steps(be, 'P0: mmap A hugetlb\nP0: write A "h"\nP0: fork P1')
        assert machine.hugetlb_available() >= 1  # room for a COW copy
        o = _obs(be)
        tail = o[("P1", "A", 300)]
        assert tail.huge and not tail.thp and tail.mapcount == 2
        assert tail.anon_exclusive is False and tail.extra["excl_source"] == "hugetlb head"
    finally:
        be.finish()
    assert machine.read(nr_path) == before


def test_hugetlb_region_is_not_populated(backend: LiveBackend) -> None:
    _run_steps(backend, "P0: mmap A hugetlb")
    assert _obs(backend)[("P0", "A", 0)].state == "none"


# -- swap ------------------------------------------------------------------------------------


def test_pageout_swaps_and_swap_is_restored(live: None) -> None:
    before = machine.active_swaps()
    be = LiveBackend()
    try:
        _run_steps(be, 'P0: mmap A anon 2\nP0: write A "x"\nP0: madvise A[0] pageout')
        env = be.environment()
        assert env["swap_used"]["ours"] == (not before)
        assert machine.active_swaps()
        o = _obs(be)
        assert o[("P0", "A", 0)].state == "swapped"
        assert o[("P0", "A", 0)].extra["swap"][1] is not None
        assert o[("P0", "A", 1)].state == "present"
        r = be.step(_scen('P0: mmap A anon 1\nP0: read A[0] -> v').steps[-1])
        assert r.value == "x" and r.faults == 1  # a major fault
    finally:
        be.finish()
    assert machine.active_swaps() == before
    assert be.environment().get("changed") is None


def test_an_active_swap_is_used_and_left_alone(live: None) -> None:
    st = safety.SystemState().__enter__()
    try:
        mine = machine.ensure_swap(st)  # whatever is active, or a zram swap of the test's
        swaps = machine.active_swaps()
        t = run(_scen('P0: mmap A anon 1\nP0: write A "x"\nP0: madvise A pageout\n'
                      "expect P0 A[0] swapped"), LiveBackend())
        assert t.verdict == "pass", t.reason
        assert t.env["swap_used"] == {"device": swaps[0], "ours": False}
        assert machine.active_swaps() == swaps
    finally:
        st.restore()
    if mine.ours:
        assert mine.device not in machine.active_swaps()


# -- KSM -------------------------------------------------------------------------------------


def test_ksm_scan_without_mergeable_memory_changes_nothing(backend: LiveBackend) -> None:
    run_before = machine.read(f"{machine.KSM}/run")
    _run_steps(backend, "P0: mmap A anon 1\nksm-scan")
    assert machine.read(f"{machine.KSM}/run") == run_before
    assert f"{machine.KSM}/run" not in backend.environment()["changed"]  # ksmd never ran


def test_ksm_settings_are_restored(live: None) -> None:
    names = ("run", "pages_to_scan", "sleep_millisecs", "smart_scan")
    before = {n: machine.read(f"{machine.KSM}/{n}") for n in names}
    t = run(_scen('P0: mmap A anon 2\nP0: write A "k"\nP0: madvise A mergeable\n'
                  "P0: fork P1\nP0: exit\nksm-scan\nexpect P1 A[0] ksm"), LiveBackend())
    assert t.verdict == "pass", t.reason  # the child inherited KSM registration
    assert {n: machine.read(f"{machine.KSM}/{n}") for n in names} == before
    assert t.env["changed"]  # the run did tune KSM


def test_environment_records_system_settings(backend: LiveBackend) -> None:
    backend.start(_scen("P0: mmap A anon 1"))
    env = backend.environment()
    for key in ("ksm_use_zero_pages", "ksm_smart_scan", "thp_use_zero_page", "mthp",
                "hugetlb_2m_free", "swaps", "changed", "undo"):
        assert key in env, key


def test_ksm_flag_is_checked_once_per_observer(live: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    obs = Observer()
    try:
        assert obs.ksm_reliable in (True, False)
    finally:
        obs.close()
    monkeypatch.setattr(Observer, "_ksm_flag_reliable", lambda self: False)
    be = LiveBackend()
    try:
        _run_steps(be, 'P0: mmap A anon 1\nP0: write A "x"')
        page = _obs(be)[("P0", "A", 0)]
        assert page.ksm is None  # unknown: not compared with the model
        assert page.anon_exclusive is True
    finally:
        be.finish()
