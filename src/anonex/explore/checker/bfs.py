"""Breadth-first search: shortest counterexamples, on one core or many.

The coordinator drives the levels; the work is done by the partitions of a pool
(:mod:`.partition`: keys go to their owner, states stay with their finder), one per
worker: in this process for one worker, in forked processes or on Ray actors for more.
Per level the coordinator makes three calls on the pool (expand, merge, commit) and only
adds up what the partitions report (counts, findings and their paths, sometimes hits):
it does no model work but on the initial state.

A state that breaks a selected always property is a counterexample and is not explored
further. The search stops when the bound is exhausted, or as :class:`~.check.Clock` says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from anonex.explore.checker.check import Check, Clock, start
from anonex.explore.checker.model import Model
from anonex.explore.checker.partition import Partition
from anonex.explore.checker.pool import Factory, Pool
from anonex.explore.checker.result import Result


def bfs(model: Model[Any, Any], chk: Check, clock: Clock, res: Result,
        make_pool: Callable[[Factory], Pool]) -> None:
    """Search *model* breadth-first over the pool *make_pool* builds."""
    stats = clock.stats
    opts = clock.opts
    s0, broken = start(model, chk, stats)
    model.dispose(s0)
    res.levels.append(1)
    if broken:
        return

    def progress(n: int) -> None:
        stats.generated += n
        clock.tick()

    pool = make_pool(partial(Partition, opts=replace(opts, progress=None)))
    n = pool.size
    alive = 1
    whole = n > 1
    try:
        for depth in range(1, model.depth + 1):
            if not alive:
                break
            stats.depth = depth
            split = whole and alive >= opts.split_at * n
            whole = whole and not split
            for gen, broken in pool.call("expand", [(split,)] * n, progress):
                stats.generated += gen
                for found, path in broken:
                    chk.offer(found, path)
            clock.tick()
            new = sum(pool.call("merge", [()] * n, progress))
            stats.distinct += new
            reached = frozenset(chk.reached)
            alive = 0
            total = 0.0
            last = depth == model.depth
            for broken, hits, size, store_bytes in pool.call(
                    "commit", [(reached, last)] * n, progress):
                for found, path in broken:
                    chk.offer(found, path)
                for names, path in hits:
                    chk.reach(names, path)
                alive += size
                total += store_bytes
            res.levels.append(new)
            res.max_depth = depth if new else res.max_depth
            res.bytes_per_state = total / stats.distinct if stats.distinct else 0.0
            clock.tick()
    finally:
        res.worker_cpu = list(getattr(pool, "cpu", []))
        pool.close()
