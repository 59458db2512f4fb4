"""Explorer speed: distinct states per second on one core, on two cores (forked workers)
and on a local Ray cluster, bytes per stored state, and the time to exhaust the bound.

Run by hand: ``python benchmarks/bench_explore.py [--quick] [--no-ray] [--pairs N]
[--design N]``. Targets
(DESIGN §8): ~15,000 distinct states/s on one core with the model compiled; two cores
≥ 1.8× one core on the depth-7 small-page bound (``kinds=("anon",)``, kernel 6.18, what
``anonex explore`` runs first); the default bound exhausted in under 60 s on 2 cores.
Wall time depends on what else runs on the machine, so each line also gives the CPU time
of the search (coordinator and forked workers; Ray actors are not counted) and the load
average before it. The first line says whether the model runs compiled (``pip install``
compiles it with mypyc) or as Python (``ANONEX_PURE=1`` to compare). Results are in
``benchmarks/explore.md``.

On a shared or virtual machine one run says little (the same search takes 3 s or 4.5 s a
minute apart); ``--pairs N`` runs the bound N times each way in fresh processes,
interleaved: one core, two cores, and two one-core searches at once (what the machine
itself gives two processes: the ceiling of any parallel search), and prints the medians.
``--design N`` runs the bound's N partitions one after another in this process
(``Options(serial=True)``) and compares their CPU times with one partition's: the speed-up
the design allows on N cores that do not slow each other down (what the partitions repeat,
exchange and wait for), apart from the machine.
"""

from __future__ import annotations

import os
import statistics
import subprocess
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
    load: float


def run(label: str, kernel: str, kinds: tuple[str, ...], depth: int, workers: int,
        fingerprints: bool = False, ray: str | None = None, dead_fields: bool = True) -> Run:
    space = Space(Bounds(kinds=kinds, depth=depth), KernelVersion.parse(kernel),
                  dead_fields=dead_fields)
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), os.times()
    res = explore(space, Options(workers=workers, fingerprints=fingerprints, ray=ray))
    t1, c1 = time.perf_counter(), os.times()
    cpu = (c1.user + c1.system + c1.children_user + c1.children_system) - \
        (c0.user + c0.system + c0.children_user + c0.children_system)
    assert res.complete
    return Run(label, res, t1 - t0, cpu, load)


def show(r: Run) -> None:
    st = r.res.stats
    print(f"{r.label:46} {st.distinct:>8,} distinct {st.generated:>9,} states "
          f"{r.wall:7.2f}s wall {r.cpu:7.2f}s cpu  {st.distinct / r.wall:>8,.0f} distinct/s "
          f"{r.res.bytes_per_state:6,.0f} B/state  load {r.load:.2f}", flush=True)


def same(a: Run, b: Run) -> None:
    """Parallel runs find what one core finds."""
    ra, rb = a.res, b.res
    assert (ra.stats.distinct, ra.stats.generated, ra.levels) == \
        (rb.stats.distinct, rb.stats.generated, rb.levels), (a.label, b.label)
    assert {p: [v.path for v in vs] for p, vs in ra.violations.items()} == \
        {p: [v.path for v in vs] for p, vs in rb.violations.items()}, (a.label, b.label)
    assert ra.reached == rb.reached, (a.label, b.label)


def start_ray(cpus: int) -> float | None:
    """Start a local Ray cluster of *cpus* CPUs: the seconds it took (None without Ray)."""
    try:
        import ray
    except ImportError:
        return None
    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    return time.perf_counter() - t0


_ONE = """
import sys, time
from anonex.explore.search import Options, explore
from anonex.explore.space import Bounds
from anonex.explore.world import Space
from anonex.versions import KernelVersion
space = Space(Bounds(kinds=("anon",), depth=int(sys.argv[2])), KernelVersion.parse("6.18"))
t = time.perf_counter()
explore(space, Options(workers=int(sys.argv[1])))
print(time.perf_counter() - t)
"""


def pairs(n: int, depth: int) -> None:
    """*n* interleaved runs of one core, two cores, and two one-core searches at once."""
    def start(workers: int) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", _ONE, str(workers), str(depth)],
                                stdout=subprocess.PIPE, text=True)

    one, two, ceiling = [], [], []
    for _ in range(n):
        t1 = float(start(1).communicate()[0])
        t2 = float(start(2).communicate()[0])
        both = [start(1), start(1)]
        t11 = max(float(p.communicate()[0]) for p in both)
        one.append(t1)
        two.append(t2)
        ceiling.append(2 * t1 / t11)
        print(f"  1 core {t1:.2f}s, 2 cores {t2:.2f}s ({t1 / t2:.2f}x), two 1-core searches "
              f"at once {t11:.2f}s (ceiling {2 * t1 / t11:.2f}x), load "
              f"{os.getloadavg()[0]:.2f}", flush=True)
    m1, m2 = statistics.median(one), statistics.median(two)
    print(f"medians of {n}: 1 core {m1:.2f}s, 2 cores {m2:.2f}s: {m1 / m2:.2f}x (target "
          f">= 1.8x); the machine's ceiling {statistics.median(ceiling):.2f}x")


def design(n: int, depth: int) -> None:
    """The CPU time of one partition against each of *n*, run one after another."""
    space = Space(Bounds(kinds=("anon",), depth=depth), KernelVersion.parse("6.18"))
    t0 = time.process_time()
    one = explore(space, Options(workers=1))
    alone = time.process_time() - t0
    parts = explore(space, Options(workers=n, serial=True))
    assert (parts.stats.distinct, parts.levels) == (one.stats.distinct, one.levels)
    cpu = parts.worker_cpu
    print(f"6.18 anon depth {depth}: 1 partition {alone:.2f}s cpu; {n} partitions "
          + ", ".join(f"{t:.2f}s" for t in cpu) + f" cpu (sum {sum(cpu):.2f}s, "
          f"{sum(cpu) / alone - 1:+.1%} work; slowest {max(cpu):.2f}s, "
          f"{max(cpu) / (sum(cpu) / n) - 1:+.1%} of the mean)")
    print(f"  the design allows {alone / max(cpu):.2f}x on {n} cores that do not slow each "
          "other down")


def main() -> None:
    quick = "--quick" in sys.argv
    if "--design" in sys.argv:
        design(int(sys.argv[sys.argv.index("--design") + 1]), 6 if quick else 7)
        return
    if "--pairs" in sys.argv:
        pairs(int(sys.argv[sys.argv.index("--pairs") + 1]), 6 if quick else 7)
        return
    cores = os.cpu_count() or 1
    print(f"model: {BUILD}; {cores} cores, load average {os.getloadavg()[0]:.2f} before the runs")
    depth = 6 if quick else 7
    bound = f"6.18 anon depth {depth}"
    one = run(f"{bound}, 1 core", "6.18", ("anon",), depth, 1)
    show(one)
    two = run(f"{bound}, 2 cores", "6.18", ("anon",), depth, 2)
    show(two)
    same(one, two)
    print(f"  2 cores: {one.wall / two.wall:.2f}x one core (target >= 1.8x)")
    if "--no-ray" not in sys.argv:
        init = start_ray(2)
        if init is None:
            print("  Ray: not installed (pip install 'anonex[ray]')")
        else:
            ray_run = run(f"{bound}, local Ray cluster of 2 actors", "6.18", ("anon",),
                          depth, 2, ray="auto")
            show(ray_run)
            same(one, ray_run)
            print(f"  Ray: {one.wall / ray_run.wall:.2f}x one core, "
                  f"{ray_run.wall / two.wall:.2f}x the time of 2 forked workers; "
                  f"ray.init() took {init:.1f}s (not counted)")
    show(run(f"{bound}, 1 core, fingerprints", "6.18", ("anon",), depth, 1,
             fingerprints=True))
    full = run(f"{bound}, 1 core, no dead fields", "6.18", ("anon",), depth, 1,
               dead_fields=False)
    show(full)
    print(f"  dead fields: {one.res.stats.distinct / full.res.stats.distinct:.3f} of the "
          f"states, {one.wall / full.wall:.2f} of the time")
    show(run("6.18 hugetlb depth 5, 1 core", "6.18", ("hugetlb",), 5, 1))
    show(run("6.18 hugetlb depth 5, 2 cores", "6.18", ("hugetlb",), 5, 2))
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
