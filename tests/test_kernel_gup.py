"""GUP (kernel/gup.py): pins break COW or unshare, FOLL_GET guarantees nothing,
FOLL_FORCE writes, pin accounting and gup_must_unshare()."""

from __future__ import annotations

from anonex.kernel.folio import GUP_PIN_COUNTING_BIAS, folio_maybe_dma_pinned
from anonex.kernel.gup import (
    FOLL_GET,
    FOLL_LONGTERM,
    FOLL_PIN,
    FOLL_WRITE,
    get_user_pages,
    gup_must_unshare,
    unpin_user_page,
)
from anonex.kernel.pgtable import Pte

from .conftest import model_run
from .modelkit import model_state, obs, ok


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
    assert not gup_must_unshare(k, vma, FOLL_PIN, zero)
    assert gup_must_unshare(k, vma, FOLL_PIN | FOLL_LONGTERM, zero)
    assert gup_must_unshare(k, None, FOLL_PIN | FOLL_LONGTERM, zero)
