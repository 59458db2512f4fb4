"""Random walks: random paths to the depth bound, from a seed, over the pool.

With one worker the walks run in this process, from ``seed``, on the search's own
properties and clock. With more, each worker runs its share of the walks from its own
seed (``seed * 1000003 + rank``) and sends back what it found and the fingerprints of the
states it saw; the coordinator merges them (the same walks, whatever the timing).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from anonex.explore.checker.check import Check, Clock, pairs, start
from anonex.explore.checker.model import Model, Path
from anonex.explore.checker.pool import Factory, Pool, Report
from anonex.explore.checker.result import Options, Result, Stats, Stop
from anonex.explore.checker.store import FingerprintStore, StateStore, make_store

Summary = tuple[int, list[int], dict[str, list[tuple[str, Path]]], dict[str, Path], int]
"""What a worker's walks found: transitions, fingerprints, violations, sometimes hits,
the deepest state."""


def walks(model: Model[Any, Any], chk: Check, clock: Clock, res: Result,
          make_pool: Callable[[Factory], Pool], workers: int) -> None:
    """Random walks over the pool (see the module docstring)."""
    opts, stats = clock.opts, clock.stats
    s0, broken = start(model, chk, stats)
    if broken:
        return
    count = opts.walks
    if count is None and opts.max_states is None and opts.timeout is None:
        count = 1000
    if workers == 1:
        store = make_store(opts.fingerprints)
        store.add(model.key(s0))
        walk(model, chk, clock, res, s0, store, random.Random(opts.seed), count)
        res.bytes_per_state = store.bytes_per_state()
        return
    deadline = clock.deadline

    pool = make_pool(partial(Walker, opts=replace(opts, progress=None)))
    try:
        n = pool.size
        args = [(None if count is None else count // n + (i < count % n), deadline)
                for i in range(n)]
        fps: set[int] = {stable(model.key(s0))}
        for gen, seen, found, reached, depth in pool.call("walk", args, lambda k: None):
            stats.generated += gen
            fps.update(seen)
            for prop, vs in found.items():
                for message, path in vs:
                    chk.offer([(prop, message)], path)
            for name, path in reached.items():
                chk.reach([name], path)
            res.max_depth = max(res.max_depth, depth)
        stats.distinct = len(fps)
        stats.depth = count or 0
        res.bytes_per_state = 8.0
    finally:
        pool.close()


class Walker:
    """A worker's random walks, from its own seed."""

    def __init__(self, model: Model[Any, Any], rank: int, size: int, report: Report,
                 opts: Options) -> None:
        self.model = model
        self.opts = opts
        self.rank = rank
        self.size = size

    def walk(self, inbox: list[Any], count: int | None,
             deadline: float | None) -> tuple[Summary, None]:
        opts = self.opts
        mine = Options(properties=opts.properties, per_property=opts.per_property,
                       timeout=None if deadline is None else max(0.0, deadline - time.time()),
                       max_states=None if opts.max_states is None else
                       opts.max_states // self.size)
        chk = Check(self.model, mine)
        stats = Stats()
        clock = Clock(mine, stats, chk)
        res = Result("random", 1, stats, False, "", chk.found, chk.reached, (), (), 0.0)
        store = _Seen()
        s0 = self.model.initial()
        store.add(self.model.key(s0))
        with contextlib.suppress(Stop):
            walk(self.model, chk, clock, res, s0, store,
                 random.Random(opts.seed * 1000003 + self.rank), count)
        found = {p: [(v.message, v.path) for v in vs] for p, vs in chk.found.items()}
        return (stats.generated, list(store.fps), found, chk.reached,
                res.max_depth), None


def stable(key: bytes) -> int:
    """A 64-bit fingerprint of *key*, the same in every process (``hash()`` is not:
    each Ray worker has its own seed)."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


class _Seen:
    """Stable fingerprints of the states a worker's walks saw."""

    def __init__(self) -> None:
        self.fps: set[int] = set()

    def __contains__(self, key: bytes) -> bool:
        return stable(key) in self.fps

    def add(self, key: bytes) -> None:
        self.fps.add(stable(key))


def walk(model: Model[Any, Any], chk: Check, clock: Clock, res: Result, s0: Any,
         store: StateStore | FingerprintStore | _Seen, rng: random.Random,
         count: int | None) -> None:
    """*count* random walks from *s0* (None: until the clock stops them)."""
    stats = clock.stats
    done = 0
    while count is None or done < count:
        done += 1
        s = s0
        path: Path = ()
        for _ in range(model.depth):
            acts = model.actions(s)
            rng.shuffle(acts)
            o = None
            for a in acts:
                o = model.next_state(s, a)
                if o is not None:
                    path = (*path, a)
                    break
            if o is None:
                break
            stats.generated += 1
            tf = chk.relevant(o.findings)
            chk.offer(pairs(tf), path)
            if o.crashed:
                break
            if s is not s0:
                model.dispose(s)
            s = o.state
            key = model.key(s)
            f = chk.relevant(model.check(s, o))
            if key not in store:
                store.add(key)
                stats.distinct += 1
                chk.reach(chk.hits(s, set()), path)
                res.max_depth = max(res.max_depth, len(path))
            chk.offer(pairs(f), path)
            if f or tf:
                break
        if s is not s0:
            model.dispose(s)
        stats.depth = done
        clock.tick()
