"""Page flags: the 6.18 bit layout, aliases, compound policies and the accessor checks."""

from __future__ import annotations

import pytest

from anonex.kernel import flags as pf
from anonex.kernel.errors import KernelBug
from anonex.kernel.folio import Folio


def test_layout_matches_6_18() -> None:
    assert pf.BIT["locked"] == 0
    assert pf.BIT["head"] == 6
    assert pf.BIT["owner_priv_1"] == 10
    assert pf.BIT["owner_2"] == 11
    assert pf.BIT["dropbehind"] == 19
    assert pf.BIT["mlocked"] == 20


def test_aliases_share_bits() -> None:
    assert pf.BIT["anon_exclusive"] == pf.BIT["owner_2"] == pf.BIT["mappedtodisk"]
    assert pf.BIT["swapcache"] == pf.BIT["owner_priv_1"] == pf.BIT["checked"]
    assert pf.BIT["readahead"] == pf.BIT["reclaim"]
    assert pf.BIT["has_hwpoisoned"] == pf.BIT["active"]
    assert pf.BIT["large_rmappable"] == pf.BIT["workingset"]
    assert pf.BIT["partially_mapped"] == pf.BIT["reclaim"]


def _anon(order: int = 0) -> Folio:
    f = Folio(10, order)
    f.anon = True
    return f


def test_anon_exclusive_accessors() -> None:
    f = _anon()
    p = f.pages[0]
    assert not pf.PageAnonExclusive(p)
    pf.SetPageAnonExclusive(p)
    assert pf.PageAnonExclusive(p)
    assert p.flags == 1 << 11
    assert pf.test_page_flag(p, "mappedtodisk")  # the same bit, another meaning
    pf.ClearPageAnonExclusive(p)
    assert not pf.PageAnonExclusive(p)


def test_accessor_sanity_checks() -> None:
    file_page = Folio(1).pages[0]
    with pytest.raises(KernelBug, match="PageAnon"):
        pf.PageAnonExclusive(file_page)
    ksm = _anon()
    ksm.ksm = True
    with pytest.raises(KernelBug, match="PageAnonNotKsm"):
        pf.SetPageAnonExclusive(ksm.pages[0])
    pf.__dict__["__ClearPageAnonExclusive"](ksm.pages[0])  # allowed on KSM pages
    huge = _anon(order=2)
    huge.hugetlb = True
    with pytest.raises(KernelBug, match="PageHuge"):
        pf.SetPageAnonExclusive(huge.pages[1])
    pf.SetPageAnonExclusive(huge.pages[0])
    assert pf.PageAnonExclusive(huge.pages[3])  # hugetlb tails read the head


def test_thp_keeps_the_flag_per_page() -> None:
    thp = _anon(order=2)
    pf.SetPageAnonExclusive(thp.pages[2])
    assert pf.PageAnonExclusive(thp.pages[2])
    assert not pf.PageAnonExclusive(thp.pages[0])


def test_compound_policies() -> None:
    f = _anon(order=2)
    pf.set_page_flag(f.pages[0], "dirty")  # PF_HEAD
    assert pf.test_page_flag(f.pages[3], "dirty")
    with pytest.raises(KernelBug, match="PageTail"):
        pf.set_page_flag(f.pages[1], "swapbacked")  # PF_NO_TAIL modify via tail
    with pytest.raises(KernelBug, match="PageCompound"):
        pf.set_page_flag(f.pages[0], "reserved")  # PF_NO_COMPOUND
    pf.set_page_flag(f.pages[0], "large_rmappable")  # PF_SECOND lands on page[1]
    assert f.pages[1].flags >> pf.BIT["workingset"] & 1
    assert not f.pages[0].flags >> pf.BIT["workingset"] & 1
    with pytest.raises(KernelBug, match="PageHead"):
        pf.test_page_flag(f.pages[2], "large_rmappable")
    with pytest.raises(KernelBug, match="PageHead"):
        pf.test_page_flag(Folio(3).pages[0], "partially_mapped")
