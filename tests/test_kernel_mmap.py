"""Unmapping and freeing (kernel/mmap.py, kernel/folio.py): munmap keeps a stale
flag while the page is referenced; freeing clears it."""

from __future__ import annotations

from anonex.harness.model import ModelBackend
from anonex.kernel import flags as pf
from anonex.kernel.pgtable import Pte
from anonex.scenario.parser import parse

from .modelkit import model_state


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
