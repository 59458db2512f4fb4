"""Expanding states: the breadth-first checker's inner loop, compiled with the model.

:func:`expand` runs every action of each given state and reports each successor (its key,
path, findings and sometimes hits) to the checker; :func:`dispose` breaks the reference
cycles of a state that is no longer needed, so that reference counting frees it. Both run
once per transition, which is why they live apart from the rest of the checker
(:mod:`anonex.explore.search`), in a module mypyc compiles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from anonex.explore import properties
from anonex.explore.space import Action
from anonex.explore.world import Space, World

Path = tuple[Action, ...]


class Checks(Protocol):
    """What expanding needs of the checker's properties (search._Check)."""

    def relevant(self, findings: list[properties.Finding]) -> list[properties.Finding]: ...

    def hits(self, w: World, skip: set[str]) -> list[str]: ...


class Seen(Protocol):
    """The store of seen state keys."""

    def __contains__(self, key: bytes) -> bool: ...


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



# A state of the next level: (the World, its path).
Item = tuple[World, Path]
# What expanding one state sends back per successor: (key, path, the index of the parent
# among the items, the new World or None (not to be explored, or left to the parent to
# rebuild), findings of the transition, findings of the state, sometimes hits, seen-before
# flag).
Record = tuple[bytes, Path, int, World | None, list[properties.Finding],
               list[properties.Finding], list[str], bool]

def expand(space: Space, chk: Checks, items: list[Item], which: Iterable[int],
            store: Seen, seen: set[bytes] | None,
            emit: Callable[[Record], None], count: Callable[[int], None],
            keep: bool) -> None:
    """Expand the *items* at indexes *which*, in order; *emit* each successor not in
    *store* (nor in *seen*, if given), and every transition with a finding; *count* the
    transitions. Without *keep* the new states are not sent, only their paths."""
    actions = space.actions
    step = space.step
    key_of = space.key
    relevant = chk.relevant
    hit: set[str] = set()
    n = 0
    run = space.run
    for i in which:
        w, path = items[i]
        acts = actions(w)
        last = len(acts) - 1
        kept = False  # w itself became a kept successor
        for j, a in enumerate(acts):
            # the state is not needed after its last action: that one runs on it
            o = step(w, a) if j < last else run(w, a)
            if o is None:
                continue
            n += 1
            p2 = (*path, a)
            tf = relevant(o.findings) if o.findings else []
            if o.crashed:
                emit((b"", p2, i, None, tf, [], [], True))
                continue
            w2 = o.world
            key = key_of(w2)
            if key in store or (seen is not None and key in seen):
                if tf:
                    emit((key, p2, i, None, tf, [], [], True))
                dispose(w2)
                continue
            if seen is not None:
                seen.add(key)
            sf = relevant(space.check(w2, o.checked))
            hits = chk.hits(w2, hit)
            hit.update(hits)
            if sf or tf or not keep:
                emit((key, p2, i, None, tf, sf, hits, False))
                dispose(w2)
            else:
                emit((key, p2, i, w2, tf, sf, hits, False))
                kept = w2 is w
        if not kept:
            dispose(w)
        if n >= 256:
            count(n)
            n = 0
    count(n)
