"""Explorer speed: distinct states per second on one core and on all cores, bytes per
stored state, and the time to exhaust the default bound.

Run by hand: ``python benchmarks/bench_explore.py [--quick]``. Targets (issue 6): ≥ 50,000
distinct states/s on one core with the full model; the default bound exhausted in under
60 s on 2 cores. Wall time depends on what else runs on the machine, so each line also
gives the CPU time of the search (parent and workers) and the load average. The first line
says whether the model runs compiled (``pip install`` compiles it with mypyc) or as Python
(``ANONEX_PURE=1`` to compare).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from anonex import BUILD
from anonex.explore.cli import DEFAULT_SCOPES, scope_depth
from anonex.explore.search import Options, Result, explore
from anonex.explore.space import Bounds
from anonex.explore.world import Space
from anonex.versions import KernelVersion


@dataclass
class Run:
    label: str
    res: Result
    wall: float
    cpu: float


def run(label: str, kernel: str, kinds: tuple[str, ...], depth: int, workers: int,
        fingerprints: bool = False) -> Run:
    space = Space(Bounds(kinds=kinds, depth=depth), KernelVersion.parse(kernel))
    t0, c0 = time.perf_counter(), os.times()
    res = explore(space, Options(workers=workers, fingerprints=fingerprints))
    t1, c1 = time.perf_counter(), os.times()
    cpu = (c1.user + c1.system + c1.children_user + c1.children_system) - \
        (c0.user + c0.system + c0.children_user + c0.children_system)
    assert res.complete
    return Run(label, res, t1 - t0, cpu)


def show(r: Run) -> None:
    st = r.res.stats
    print(f"{r.label:44} {st.distinct:>8,} distinct {st.generated:>9,} states "
          f"{r.wall:7.2f}s wall {r.cpu:7.2f}s cpu  {st.distinct / r.wall:>8,.0f} distinct/s "
          f"{st.generated / r.wall:>8,.0f} states/s  {r.res.bytes_per_state:6,.0f} B/state")


def main() -> None:
    quick = "--quick" in sys.argv
    cores = os.cpu_count() or 1
    print(f"model: {BUILD}; {cores} cores, load average {os.getloadavg()[0]:.2f} before the runs")
    depth = 6 if quick else 7
    one = run(f"6.18 anon depth {depth}, 1 core", "6.18", ("anon",), depth, 1)
    show(one)
    show(run(f"6.18 anon depth {depth}, 1 core, fingerprints", "6.18", ("anon",), depth, 1,
             fingerprints=True))
    show(run(f"6.18 anon depth {depth}, {cores} cores", "6.18", ("anon",), depth, cores))
    show(run("6.18 hugetlb depth 5, 1 core", "6.18", ("hugetlb",), 5, 1))
    show(run(f"6.18 hugetlb depth 5, {cores} cores", "6.18", ("hugetlb",), 5, cores))
    if not quick:
        show(run("6.18 thp depth 4, 1 core", "6.18", ("thp",), 4, 1))
    total_wall = total_cpu = 0.0
    for kinds in DEFAULT_SCOPES:
        r = run(f"default bound {','.join(kinds)}, 2 workers", "6.18", kinds,
                scope_depth(kinds, None), 2)
        show(r)
        total_wall += r.wall
        total_cpu += r.cpu
    print(f"default bound (anonex explore, 2 workers): {total_wall:.1f}s wall, "
          f"{total_cpu:.1f}s cpu (target < 60 s)")
    print(f"load average {os.getloadavg()[0]:.2f} after the runs")


if __name__ == "__main__":
    main()
