"""One entry point for every strategy: :func:`check` and the :class:`Checker` builder.

The strategy (:class:`Options` ``strategy``) chooses the module (:mod:`.bfs`, :mod:`.dfs`,
:mod:`.walks`), ``workers`` and ``ray`` the pool the strategy runs over (:mod:`.pool`):
one worker in this process, forked processes, or Ray actors.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any, Generic

from anonex.explore.checker.bfs import bfs
from anonex.explore.checker.check import Check, Clock
from anonex.explore.checker.dfs import dfs
from anonex.explore.checker.memory import no_gc
from anonex.explore.checker.model import A, Model, S
from anonex.explore.checker.pool import Factory, ForkPool, InlinePool, Pool, SerialPool
from anonex.explore.checker.result import Options, Result, Stats, Stop
from anonex.explore.checker.walks import walks

STRATEGIES = ("bfs", "dfs", "random")


def pool_maker(model: Model[Any, Any], opts: Options) -> Callable[[Factory], Pool]:
    """How the strategy's pool is built: Ray actors (``ray``), forked processes
    (``workers`` > 1) or this process."""
    n = max(1, opts.workers)
    if opts.ray is not None:
        from anonex.explore.checker.ray_pool import RayPool

        address = opts.ray
        return lambda make: RayPool(model, make, n, address)
    if n == 1:
        return lambda make: InlinePool(model, make)
    if opts.serial:
        return lambda make: SerialPool(model, make, n)
    return lambda make: ForkPool(model, make, n, opts.progress_every)


def check(model: Model[S, A], opts: Options | None = None) -> Result:
    """Explore *model* with the strategy of *opts* (breadth-first by default)."""
    opts = opts or Options()
    if opts.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {opts.strategy!r}; expected bfs, dfs or random")
    chk = Check(model, opts)
    stats = Stats()
    clock = Clock(opts, stats, chk)
    workers = max(1, opts.workers) if opts.strategy != "dfs" else 1
    res = Result(opts.strategy, max(1, opts.workers), stats, False, "", chk.found,
                 chk.reached, chk.always, chk.sometimes, 0.0)
    with no_gc():
        try:
            if opts.strategy == "bfs":
                bfs(model, chk, clock, res, pool_maker(model, opts))
            elif opts.strategy == "dfs":
                dfs(model, chk, clock, res)
            else:
                walks(model, chk, clock, res, pool_maker(model, opts), workers)
            res.complete = True
        except Stop as e:
            res.stopped = e.why
        finally:
            stats.elapsed = time.perf_counter() - clock.t0
            chk.final()
            stats.violations = len(chk.found)
            gc.collect()
    if opts.progress is not None:
        opts.progress(stats)
    return res


class Checker(Generic[S, A]):
    """The checkers behind one builder, in the manner of stateright::

        res = Checker(model).bfs().workers(2).max_states(10**6).run()

    Each method sets one field of :class:`Options` and returns the builder."""

    def __init__(self, model: Model[S, A]) -> None:
        self.model = model
        self.options = Options()

    def bfs(self) -> Checker[S, A]:
        self.options.strategy = "bfs"
        return self

    def dfs(self) -> Checker[S, A]:
        self.options.strategy = "dfs"
        return self

    def random(self, seed: int = 0, walks: int | None = None) -> Checker[S, A]:
        self.options.strategy, self.options.seed, self.options.walks = "random", seed, walks
        return self

    def workers(self, n: int) -> Checker[S, A]:
        self.options.workers = n
        return self

    def ray(self, address: str = "local") -> Checker[S, A]:
        self.options.ray = address
        return self

    def max_states(self, n: int) -> Checker[S, A]:
        self.options.max_states = n
        return self

    def timeout(self, seconds: float) -> Checker[S, A]:
        self.options.timeout = seconds
        return self

    def fingerprints(self, on: bool = True) -> Checker[S, A]:
        self.options.fingerprints = on
        return self

    def properties(self, *names: str) -> Checker[S, A]:
        self.options.properties = names or None
        return self

    def run(self) -> Result:
        return check(self.model, self.options)
