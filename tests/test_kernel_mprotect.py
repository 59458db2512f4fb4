"""mprotect (kernel/mprotect.py): the write upgrade of exclusive pages, and a range
that already has the protection."""

from __future__ import annotations

import pytest

from anonex.harness.model import ModelBackend
from anonex.runner import run
from anonex.scenario.parser import parse
from anonex.versions import KernelVersion

from .conftest import model_run
from .modelkit import ok


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
