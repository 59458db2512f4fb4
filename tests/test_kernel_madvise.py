"""madvise (kernel/madvise.py): advice that would not change a VMA's flags changes
nothing."""

from __future__ import annotations

import pytest

from anonex.harness.model import ModelBackend
from anonex.runner import run
from anonex.scenario.parser import parse


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
