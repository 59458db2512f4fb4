"""The explorer's state: copies, the canonical key, symmetry, and how they follow the model.

The key merges states; merging two states that behave differently would make the search
unsound. The tests here check, on every state of small bounds reached by many paths, that
states with one key have the same successors (keys and findings): a one-step
bisimulation, independent of how the key is built.
"""

from __future__ import annotations

import pickle
from collections import defaultdict

import pytest

from anonex.explore import canon, clone
from anonex.explore.search import Options, explore
from anonex.explore.space import Action, Bounds
from anonex.explore.world import Space, World
from anonex.kernel.flags import Layout as FlagLayout
from anonex.kernel.pgtable import Pte
from anonex.kernel.versions import Rules
from anonex.versions import KernelVersion

V = KernelVersion.parse


def _space(version: str = "6.18", prune: bool = False, **b: object) -> Space:
    # every action of every process: the tests here look at the key, not at the pruning
    return Space(Bounds(**b), V(version), prune)  # type: ignore[arg-type]


def _run(space: Space, path: list[Action]) -> World:
    w = space.initial()
    for a in path:
        o = space.step(w, a)
        assert o is not None, a
        w = o.world
    return w


def test_the_copy_table_and_the_key_know_every_field_of_the_model() -> None:
    # a field the model gains is copied generically (correct, slower) and must be
    # added to the key (canon.ENCODED/IGNORED) by whoever adds it
    assert clone.unknown_fields() == {}
    assert canon.unknown_fields() == {}


def test_a_copy_is_independent_and_keeps_its_key() -> None:
    space = _space("5.9", procs=2)
    w = _run(space, [("write", "P0", "A", 0, "a"), ("fork", "P0", "", -1, "P1"),
                     ("vmsplice", "P1", "A", 0, "pipe"), ("pin", "P0", "A", 0,
                                                          "buf longterm rw")])
    # the key, and every field of the model (pickled whole: the key ignores some)
    before, whole_before = space.key(w), pickle.dumps(w.k)
    c = w.copy()
    assert space.key(c) == before
    for a in space.actions(w):  # every action, run on a copy, leaves the original alone
        space.run(w.copy(), a)
    assert space.key(w) == before and pickle.dumps(w.k) == whole_before


_SHARED_OK = (int, bool, str, float, type(None), frozenset, KernelVersion, Rules,
              FlagLayout)


def _same_and_apart(a: object, b: object, fields: dict[str, list[str]],
                    pairs: dict[int, int]) -> None:
    """*a* and *b* hold equal values, with the same sharing between their parts, and no
    mutable object in common."""
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same_and_apart(x, y, fields, pairs)
        return
    if isinstance(a, _SHARED_OK):
        assert a == b
        return
    assert type(a) is type(b) and a is not b, (a, b)
    if id(a) in pairs:  # met before: the copy must be met at the same place
        assert pairs[id(a)] == id(b)
        return
    pairs[id(a)] = id(b)
    if isinstance(a, (list, set)):
        assert len(a) == len(b)  # type: ignore[arg-type]
        xs = sorted(a, key=repr) if isinstance(a, set) else a
        ys = sorted(b, key=repr) if isinstance(b, set) else b  # type: ignore[arg-type]
        for x, y in zip(xs, ys, strict=True):
            _same_and_apart(x, y, fields, pairs)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()  # type: ignore[attr-defined]
        for key in a:
            _same_and_apart(a[key], b[key], fields, pairs)  # type: ignore[index]
    else:
        for f in fields[type(a).__name__]:
            _same_and_apart(getattr(a, f), getattr(b, f), fields, pairs)


def test_a_copy_equals_its_original_and_shares_nothing_mutable() -> None:
    fields = clone.model_fields()
    for kinds in (("anon",), ("thp",), ("hugetlb",)):
        space = _space(kinds=kinds, depth=3)
        frontier = [space.initial()]
        for _ in range(3):
            nxt = []
            for w in frontier:
                c = w.copy()
                _same_and_apart((w.k, w.be.oracle), (c.k, c.be.oracle), fields, {})
                nxt.extend(o.world for a in space.actions(w)[::3]
                           if (o := space.step(w, a)) is not None and not o.crashed)
            frontier = nxt[:40]


def test_symmetric_states_share_a_key() -> None:
    space = _space(procs=3)
    fork2 = [("fork", "P0", "", -1, "P1"), ("fork", "P0", "", -1, "P2")]
    a = _run(space, [*fork2, ("write", "P1", "A", 0, "a")])
    b = _run(space, [*fork2, ("write", "P2", "A", 0, "b")])  # other child, other tag
    assert space.key(a) == space.key(b)
    # before any page exists the parent is like its children
    assert space.key(_run(space, [*fork2, ("write", "P0", "A", 0, "a")])) == space.key(a)
    c = _run(space, [*fork2, ("write", "P1", "A", 0, "a"), ("write", "P2", "A", 0, "a")])
    assert space.key(c) != space.key(a)
    # P0 too is interchangeable: a lone child behaves like a lone P0
    lone = _run(space, [("fork", "P0", "", -1, "P1"), ("exit", "P0", "", -1, "")])
    assert space.key(lone) == space.key(space.initial())


def _classes(space: Space, depth: int) -> dict[bytes, list[World]]:
    """Every state within *depth*, reached by every path (up to 4 per key)."""
    out: dict[bytes, list[World]] = defaultdict(list)
    frontier = [space.initial()]
    for _ in range(depth):
        nxt = []
        for w in frontier:
            for a in space.actions(w):
                o = space.step(w, a)
                if o is None or o.crashed or o.findings or space.check(o.world):
                    continue
                group = out[space.key(o.world)]
                if len(group) < 4:
                    group.append(o.world)
                    nxt.append(o.world)
        frontier = nxt
    return out


def _successors(space: Space, w: World) -> set[tuple[bytes, frozenset[str]]]:
    out = set()
    for a in space.actions(w):
        o = space.step(w, a)
        if o is None:
            continue
        props = {f.property for f in o.findings}
        if not o.crashed:
            props |= {f.property for f in space.check(o.world, o.checked)}
        out.add((b"" if o.crashed else space.key(o.world), frozenset(props)))
    return out


@pytest.mark.parametrize("version,kinds,depth,procs", [
    ("5.9", ("anon",), 4, 2), ("6.18", ("anon",), 3, 3), ("6.18", ("hugetlb",), 3, 2),
    ("6.18", ("thp",), 2, 2), ("5.7", ("anon", "hugetlb"), 2, 2)])
def test_states_with_one_key_have_the_same_successors(version: str, kinds: tuple[str, ...],
                                                     depth: int, procs: int) -> None:
    space = _space(version, kinds=kinds, procs=procs)
    classes = _classes(space, depth)
    merged = [ws for ws in classes.values() if len(ws) > 1]
    assert len(merged) > 20  # the key does merge states reached along different paths
    for ws in merged:
        first = _successors(space, ws[0])
        for w in ws[1:]:
            assert _successors(space, w) == first


@pytest.mark.parametrize("version,kinds,depth,procs,ops", [
    ("5.7", ("anon",), 5, 2, None), ("6.18", ("anon",), 4, 3, None),
    ("6.18", ("hugetlb",), 4, 2, None), ("6.18", ("thp",), 3, 2, None),
    ("6.18", ("thp",), 3, 2, ("write", "fork", "mprotect", "pageout", "dontfork", "wipeonfork",
                              "mergeable", "ksm-scan"))])
def test_pruning_reaches_every_state(version: str, kinds: tuple[str, ...], depth: int,
                                     procs: int, ops: tuple[str, ...] | None) -> None:
    """Actions of twin processes lead to states symmetric to those of the process they
    are twinned with, and mprotect() to the protection a range has changes nothing:
    skipping them loses no state, level by level, and no violation."""
    got = {}
    for prune in (False, True):
        extra = {"ops": ops} if ops else {}
        space = _space(version, prune, kinds=kinds, procs=procs, depth=depth, **extra)
        res = explore(space, Options())
        got[prune] = (res.levels, sorted(res.violations), sorted(res.reached),
                      res.stats.generated)
    assert got[True][:3] == got[False][:3]
    assert got[True][3] < got[False][3]  # and it does skip some


@pytest.mark.parametrize("kinds", [("thp",), ("hugetlb",)])
def test_pages_past_the_explored_ones_stay_alike(kinds: tuple[str, ...]) -> None:
    """The key encodes the first pages of a large folio and lets the next one stand for
    the rest: every generated step treats those alike."""
    space = _space("6.18", kinds=kinds, ops=("write", "fork", "exit", "munmap", "mprotect",
                                             "pageout", "vmsplice", "pin", "pin-ro",
                                             "unpin", "split", "dontneed"))
    n = space.layout.explicit
    base = space.regions[0].base
    checked = 0
    for ws in _classes(space, 3).values():
        for w in ws:
            for mm in w.k.mms.values():
                rep = mm.ptes.get(base + n - 1)
                for i in range(n, 512):
                    e = mm.ptes.get(base + i)
                    assert type(e) is type(rep)
                    if isinstance(e, Pte) and isinstance(rep, Pte):
                        p, q = e.page, rep.page
                        assert (e.write, e.dirty, e.special, p.folio.order, p.flags,
                                p.mapcount, p.data) == \
                            (rep.write, rep.dirty, rep.special, q.folio.order, q.flags,
                             q.mapcount, q.data)
                        if p.folio is q.folio and p.folio.order > 0:
                            assert p.index - i == q.index - n + 1
                for f in {id(p.folio): p.folio for p in mm.pmds.values()}.values():
                    ref = f.pages[n - 1]
                    for p in f.pages[n:]:
                        assert (p.flags, p.mapcount, p.data) == \
                            (ref.flags, ref.mapcount, ref.data)
                        checked += 1
    assert checked > 1000


def test_fingerprint_store_finds_keys_before_and_after_compaction() -> None:
    from anonex.explore.checker.store import FingerprintStore

    store = FingerprintStore(flush_at=50)
    keys = [f"state {i}".encode() for i in range(120)]
    for k in keys[:100]:
        store.add(k)
        store.add(k)  # twice: stored once
    assert len(store) == 100
    assert all(k in store for k in keys[:100]) and not any(k in store for k in keys[100:])
    store.compact()
    assert all(k in store for k in keys[:100]) and not any(k in store for k in keys[100:])
    fps = store.fingerprints()
    assert fps == sorted(fps) and len(set(fps)) == 100
    assert store.bytes_per_state() == 8.0


def test_random_walks_are_scenarios_that_run_to_their_end() -> None:
    from anonex.explore.walks import walk_scenarios
    from anonex.harness.model import ModelBackend
    from anonex.runner import run
    from anonex.scenario.parser import parse

    space = _space(kinds=("anon", "thp"), ops=("write", "fork", "exit", "pageout",
                                               "vmsplice", "read-pipe", "mergeable",
                                               "ksm-scan", "split"))
    walks = walk_scenarios(space, seed=3, count=6)
    assert len({text for _, text in walks}) == 6  # different walks
    for name, text in walks:
        t = run(parse(text, f"{name}.cow"), ModelBackend(space.version))
        assert t.verdict == "pass", (name, t.reason)
        assert len(t.steps) > 2  # the setup steps and the walk
