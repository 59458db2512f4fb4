"""Depth-first search, on one core: one path at a time.

A state met again higher up than before is explored again (its successors may now fit in
the bound), so nothing within the bound is missed; its counterexamples are not shortest.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from anonex.explore.checker.check import Check, Clock, pairs, start
from anonex.explore.checker.model import Model, Path
from anonex.explore.checker.result import Result
from anonex.explore.checker.store import FingerprintStore


def dfs(model: Model[Any, Any], chk: Check, clock: Clock, res: Result) -> None:
    """Search *model* depth-first."""
    stats = clock.stats
    s0, broken = start(model, chk, stats)
    if broken:
        return
    fp = FingerprintStore.fingerprint if clock.opts.fingerprints else None
    key0 = model.key(s0)
    depth_of: dict[Any, int] = {fp(key0) if fp else key0: 0}
    limit = model.depth
    stack: list[tuple[Any, Path, Iterator[Any]]] = [(s0, (), iter(model.actions(s0)))]
    while stack:
        s, path, it = stack[-1]
        a = next(it, None)
        if a is None:
            stack.pop()
            model.dispose(s)
            continue
        o = model.next_state(s, a)
        if o is None:
            continue
        stats.generated += 1
        p2 = (*path, a)
        if stats.generated % 256 == 0:
            clock.tick()
        tf = chk.relevant(o.findings)
        chk.offer(pairs(tf), p2)
        if o.crashed:
            continue
        s2 = o.state
        key = model.key(s2)
        ident = fp(key) if fp else key
        d = len(p2)
        old = depth_of.get(ident)
        if old is not None and old <= d:
            model.dispose(s2)
            continue
        f = chk.relevant(model.check(s2, o))
        if old is None:
            stats.distinct += 1
            chk.offer(pairs(f), p2)
            chk.reach(chk.hits(s2, set()), p2)
            res.max_depth = max(res.max_depth, d)
        depth_of[ident] = d
        if f or tf or d >= limit:
            model.dispose(s2)
            continue
        stack.append((s2, p2, iter(model.actions(s2))))
        stats.depth = max(stats.depth, d)
    res.bytes_per_state = _dict_bytes(depth_of)


def _dict_bytes(d: dict[Any, int]) -> float:
    if not d:
        return 0.0
    payload = sum(sys.getsizeof(k) for k in d) if len(d) < 200_000 else \
        sys.getsizeof(next(iter(d))) * len(d)
    return (sys.getsizeof(d) + payload) / len(d)
