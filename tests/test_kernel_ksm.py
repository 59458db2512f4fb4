"""KSM (kernel/ksm.py): merging, writing and unmerging; pinned and referenced pages
are never merged."""

from __future__ import annotations

import pytest

from anonex.kernel import flags as pf
from anonex.kernel.errors import KernelBug
from anonex.kernel.pgtable import Pte

from .conftest import model_run
from .modelkit import model_state, ok


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


def test_set_exclusive_on_ksm_page_is_kernel_bug() -> None:
    be = model_state('P0: mmap A anon 1\nP0: write A "x"\n')
    e = be.k.mms["P0"].ptes[be.k.regions["A"]]
    assert isinstance(e, Pte)
    e.page.folio.ksm = True
    with pytest.raises(KernelBug):
        pf.SetPageAnonExclusive(e.page)
