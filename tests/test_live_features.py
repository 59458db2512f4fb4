"""Detection of what the running kernel offers (anonex.live.features), on sample data of
the five kernels anonex is compared with, and on this machine."""

from __future__ import annotations

import os

import pytest

from anonex.live import features as ft
from anonex.procfs import kpageflags as kpf
from anonex.versions import KernelVersion

# uname -r, uname -v, /proc/version_signature as the kernels print them
SAMPLES = [
    ("5.10.0-32-amd64", "#1 SMP Debian 5.10.223-1 (2024-08-10)", None, "5.10.223", "uname -v"),
    ("6.1.0-53-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.187-1 (2026-09-07)", None,
     "6.1.187", "uname -v"),
    ("6.12.117+deb13-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1 (2026-11-12)", None,
     "6.12.117", "uname -v"),
    ("7.2.13+deb14-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 7.2.13-1 (2026-10-28)", None,
     "7.2.13", "uname -v"),
    ("6.18.44-fc-v1300", "#1 SMP PREEMPT_DYNAMIC @0", None, "6.18.44", "uname -r"),
    ("6.1.0-28-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1~bpo11+1 (2024-12-01)", None,
     "6.1.119", "uname -v"),
    ("5.15.0-91-generic", "#101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023",
     "Ubuntu 5.15.0-91.101-generic 5.15.131\n", "5.15.131", "/proc/version_signature"),
    ("6.8.5-301.fc40.x86_64", "#1 SMP PREEMPT_DYNAMIC Thu Apr 11 20:00:10 UTC 2024", None,
     "6.8.5", "uname -r"),
]


@pytest.mark.parametrize(("release", "version", "sig", "want", "source"), SAMPLES)
def test_upstream_version(release: str, version: str, sig: str | None, want: str,
                          source: str) -> None:
    got, where = ft.upstream_version(release, version, sig)
    assert got == KernelVersion.parse(want) and str(got) == want
    assert where.startswith(source)


def test_upstream_version_ignores_the_compiler_in_proc_version() -> None:
    # /proc/version names Debian's compiler; only uname -v is searched
    got, _ = ft.upstream_version("6.1.0-53-amd64", "#1 SMP PREEMPT_DYNAMIC")
    assert str(got) == "6.1.0"


def test_running_version_parses_here() -> None:
    v, where = ft.running_version()
    assert v.major >= 5 and where
    if "Debian" not in os.uname().version:
        assert where == "uname -r" or where == "/proc/version_signature"


def _w(*names: str) -> int:
    return kpf.encode(names)


ANON_NEW = _w("MMAP", "ANON", "SWAPBACKED", "UPTODATE", "DIRTY")


def test_bit34_meaning() -> None:
    assert ft.bit34_meaning(ANON_NEW | _w("OWNER_2")) is True  # 5.19+
    assert ft.bit34_meaning(ANON_NEW) is False  # 5.10: MAPPEDTODISK, never on anon pages
    assert ft.bit34_meaning(None) is None
    assert ft.bit34_meaning(_w("MMAP", "UPTODATE")) is None  # not anon: no answer
    assert ft.bit34_meaning(ANON_NEW | _w("THP", "COMPOUND_HEAD")) is None


def test_head_mirror_of() -> None:
    head = ANON_NEW | _w("THP", "COMPOUND_HEAD", "OWNER_2")
    # 6.10+: the tail shows the folio's flags (SWAPBACKED lives on the head)
    assert ft.head_mirror_of(head, _w("MMAP", "ANON", "THP", "COMPOUND_TAIL", "SWAPBACKED",
                                      "UPTODATE", "OWNER_2")) is True
    # 5.19-6.9: the tail's own flags, without SWAPBACKED (and without bit 34 on a PMD)
    assert ft.head_mirror_of(head, _w("MMAP", "ANON", "THP", "COMPOUND_TAIL")) is False
    assert ft.head_mirror_of(None, None) is None
    assert ft.head_mirror_of(ANON_NEW, ANON_NEW) is None  # not a large folio


def test_ksm_flag_reliable() -> None:
    assert ft.ksm_flag_reliable(ANON_NEW) is True
    assert ft.ksm_flag_reliable(ANON_NEW | _w("KSM")) is False  # 6.10 .. 81401cebfc15
    assert ft.ksm_flag_reliable(None) is None


V = KernelVersion.parse


def test_detect_per_kernel_era() -> None:
    head = ANON_NEW | _w("THP", "COMPOUND_HEAD")
    tail_own = _w("MMAP", "ANON", "THP", "COMPOUND_TAIL")
    # 5.10: bit 34 clear on a new anon page: not observable, whatever the version says
    f = ft.detect(ft.Probe(ANON_NEW, head, tail_own), V("5.10.223"), (True, True))
    assert not f.exclusive_observable and not f.head_mirror and f.ksm_reliable
    assert any("not observable" in n for n in f.notes)
    # 6.12.117: mirrored, KPF_KSM everywhere
    x = _w("OWNER_2")
    f = ft.detect(ft.Probe(ANON_NEW | x | _w("KSM"), head | x | _w("KSM"),
                           tail_own | x | _w("SWAPBACKED", "KSM")), V("6.12.117"),
                  (True, True))
    assert f.exclusive_observable and f.head_mirror and not f.ksm_reliable
    assert ft.KSM_NOTE in f.notes
    # 6.1: per page, nothing to say about KSM
    f = ft.detect(ft.Probe(ANON_NEW | x, head | x, tail_own), V("6.1.187"), (True, False))
    assert f.exclusive_observable and not f.head_mirror and f.ksm_reliable and not f.notes


def test_detect_falls_back_to_the_version_and_says_so() -> None:
    f = ft.detect(ft.Probe(None, None, None, "THP off"), V("6.6"), (True, False))
    assert f.exclusive_observable and not f.head_mirror
    assert len(f.notes) == 2 and "THP off" in f.notes[1]


def test_probe_here(live: None) -> None:
    """On this kernel: the driver's pages give answers that agree with what it is."""
    fd = os.open("/proc/kpageflags", os.O_RDONLY)
    try:
        p = ft.probe(fd)
    finally:
        os.close(fd)
    assert ft.bit34_meaning(p.small) is True  # 6.18 has PG_anon_exclusive
    assert ft.ksm_flag_reliable(p.small) is True  # 6.18.44 has 81401cebfc15
    if p.head is not None:
        assert ft.head_mirror_of(p.head, p.tail) is True


# -- PMD mapping without PAGEMAP_SCAN ----------------------------------------------------------

M2 = 2 << 20


def test_judge_pmd_per_range_not_per_vma() -> None:
    from anonex.live.observe import judge_pmd

    a, b, z = 0x4000_0000, 0x4000_0000 + M2, 0x5000_0000
    cands = {a: False, b: False, z: True}
    vma = (a, a + 2 * M2)
    # one VMA with two THPs, one PMD-mapped and one split: which is which is unknown
    assert judge_pmd(cands, [(*vma, M2), (z, z + M2, 0)]) == {a: None, b: None, z: True}
    assert judge_pmd(cands, [(*vma, 2 * M2)]) == {a: True, b: True, z: True}
    assert judge_pmd(cands, [(*vma, 0)]) == {a: False, b: False, z: True}
    # after a split of the VMA (mprotect of one THP) each VMA answers for its own range
    assert judge_pmd({a: False, b: False}, [(a, a + M2, M2), (b, b + M2, 0)]) == \
        {a: True, b: False}


THP_SCENARIOS = ["thp-write-while-shared", "fingerprint/thp-huge-zero-page",
                 "memory/thp-pageout-half", "memory/madvise-same-flag-keeps-thp",
                 "cow/basic-cow-after-fork-with-partially-shared-thp"]


@pytest.mark.parametrize("name", THP_SCENARIOS)
def test_smaps_fallback_agrees_with_pagemap_scan(live: None, name: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """On this kernel (PAGEMAP_SCAN), the pre-6.7 fallback observes the same PMD mappings
    wherever it claims to know them."""
    from anonex.live.backend import LiveBackend
    from anonex.live.observe import Observer
    from anonex.runner import run
    from anonex.scenario.parser import parse_file
    from tests.conftest import LIBRARY

    path = LIBRARY / f"{name}.cow"
    if not path.exists():
        pytest.skip(f"{path} is not in the library")
    scen = parse_file(str(path))
    with_scan = run(scen, LiveBackend())
    monkeypatch.setattr(Observer, "_scan_available", lambda self: False)
    be = LiveBackend()
    fallback = run(scen, be)
    assert any("PAGEMAP_SCAN" in n for n in fallback.env["notes"])
    assert fallback.verdict == with_scan.verdict
    for sa, sb in zip(with_scan.steps, fallback.steps, strict=True):
        for key, oa in sa.obs.items():
            ob = sb.obs.get(key)
            if ob is None or oa.state != "present" or ob.state != "present":
                continue
            got = ob.extra.get("pmd", False)
            if got is not None:
                assert bool(oa.extra.get("pmd")) == got, (sa.step.text(), key)


def test_ksm_note_once(live: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from anonex.live.backend import LiveBackend
    from anonex.scenario.parser import parse

    small = ANON_NEW | _w("OWNER_2", "KSM")
    monkeypatch.setattr(ft, "probe", lambda fd: ft.Probe(small, None, None, "test"))
    be = LiveBackend()
    try:
        be.start(parse('title "t"\nP0: mmap A anon 1\n', "t.cow"))
        notes = be.environment()["notes"]
    finally:
        be.finish()
    assert notes.count(ft.KSM_NOTE) == 1
