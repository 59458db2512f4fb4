"""Dropping explored states: :func:`dispose`, compiled with the model.

:func:`dispose` breaks the reference cycles of a state that is no longer needed, so that
reference counting frees it without the cyclic collector. It runs once per transition
(the checkers drop most of the states they make: seen before, or past the bound), which
is why it lives in a module mypyc compiles; the checkers reach it through
:meth:`anonex.explore.kernel_model.KernelModel.dispose`.
"""

from __future__ import annotations

from anonex.explore.world import World


def dispose(w: World) -> None:
    """Break the folio <-> page cycles of a state no longer needed, so that reference
    counting frees it without the cyclic collector."""
    k = w.be.k
    for mm in k.mms.values():
        for e in mm.ptes.values():
            pg = getattr(e, "page", None)
            if pg is not None:
                pg.folio.pages = []
        for pmd in mm.pmds.values():
            pmd.folio.pages = []
    for table in (k.pipes, k.pins):
        for h in table.values():
            for r in h.refs:
                r.page.folio.pages = []
    for s in k.swap.values():
        if s.cache is not None:
            s.cache.pages = []
    k.zero_folio.pages = []
    if k._huge_zero is not None:
        k._huge_zero.pages = []
    for f in k.freed:
        f.pages = []
    for f in w.garbage:
        f.pages = []
