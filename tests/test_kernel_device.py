"""Device-exclusive entries (kernel/device.py, restore in kernel/memory.py)."""

from __future__ import annotations

import pytest

from anonex.harness import invariants
from anonex.kernel import flags as pf
from anonex.kernel.device import make_device_exclusive
from anonex.kernel.pgtable import DeviceExclusivePte, Pte
from anonex.scenario.parser import parse

from .modelkit import model_state


@pytest.mark.parametrize("version", ["6.18", "6.14"])
def test_device_exclusive_keeps_flag_and_restores_writable(version: str) -> None:
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
    assert invariants.check(k) == []
    res = be.step(parse('P0: mmap A anon 1\nP0: write A "y" @w\n', "t.cow").steps[1])
    assert res.finding is None and res.faults == 1
    pte = mm.ptes[vpn]
    assert isinstance(pte, Pte) and pte.page is page and pte.write and page.data == "y"
