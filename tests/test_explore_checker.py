"""The generic checker (anonex.explore.checker) on toy models, and its independence of
the kernel model.

The toy model is a lock taken by "check, then set": two processes can both see the lock
free and both enter the critical section; a counter of the times the lock was released
(modulo 3) makes its state space a little less trivial. Its state counts are pinned like the kernel
model's (tests/test_explore.py) and checked against a plain breadth-first search here.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from anonex.explore.checker import Checker, Options, Sometimes, check

CHECKER = Path(__file__).parent.parent / "src" / "anonex" / "explore" / "checker"

Lock = tuple[tuple[str, ...], int, int]  # (each process's place, the lock, releases)
Act = tuple[str, int]  # (step, process)
STEPS = {"idle": ("check", "checked"), "checked": ("set", "crit"), "crit": ("leave", "idle")}


@dataclass(frozen=True)
class Finding:
    property: str
    message: str


@dataclass(frozen=True)
class Moved:
    state: Lock
    findings: tuple[Finding, ...] = ()
    crashed: bool = False


class RacyLock:
    """*procs* processes, a lock taken by check-then-set; ``symmetric``: processes are
    interchangeable in the key."""

    def __init__(self, procs: int = 2, depth: int = 8, symmetric: bool = False) -> None:
        self.procs = procs
        self.depth = depth
        self.symmetric = symmetric

    def initial(self) -> Lock:
        return (("idle",) * self.procs, 0, 0)

    def actions(self, s: Lock) -> list[Act]:
        return [(STEPS[pc][0], i) for i, pc in enumerate(s[0])]

    def next_state(self, s: Lock, a: Act, consume: bool = False) -> Moved | None:
        step, i = a
        pcs, lock, released = s
        if step == "check" and lock:
            return None  # busy: no transition
        new = list(pcs)
        new[i] = STEPS[pcs[i]][1]
        lock = {"check": lock, "set": 1, "leave": 0}[step]
        released = (released + (step == "leave")) % 3
        return Moved((tuple(new), lock, released))

    def key(self, s: Lock) -> bytes:
        pcs = sorted(s[0]) if self.symmetric else s[0]
        return repr((pcs, s[1], s[2])).encode()

    def check(self, s: Lock, after: object) -> list[Finding]:
        n = s[0].count("crit")
        return [Finding("mutex", f"{n} processes in the critical section")] if n > 1 else []

    def always(self) -> tuple[str, ...]:
        return ("mutex",)

    def reported(self) -> frozenset[str]:
        return frozenset()

    def sometimes(self) -> tuple[Sometimes[Lock], ...]:
        return (Sometimes("critical", lambda s: "crit" in s[0]),
                Sometimes("all-checked", lambda s: all(p == "checked" for p in s[0])),
                Sometimes("never", lambda s: False, expected=False))

    def order(self, a: Act) -> tuple[str, int]:
        return (a[0], a[1])

    def mechanisms(self, path: tuple[Act, ...]) -> frozenset[str]:
        return frozenset(a[0] for a in path) - {"check", "set"}

    def dispose(self, s: Lock) -> None:
        pass

    def remote(self) -> Callable[[], RacyLock]:
        return partial(RacyLock, self.procs, self.depth, self.symmetric)


def _plain_bfs(m: RacyLock) -> tuple[int, int]:
    """Distinct states and transitions, by the book (no pruning, no partitions)."""
    seen = {m.key(m.initial())}
    level = [m.initial()]
    gen = 0
    for _ in range(m.depth):
        nxt = []
        for s in level:
            for a in m.actions(s):
                o = m.next_state(s, a)
                if o is None:
                    continue
                gen += 1
                k = m.key(o.state)
                if k not in seen:
                    seen.add(k)
                    if not m.check(o.state, o):
                        nxt.append(o.state)
        level = nxt
    return len(seen), gen


# (procs, depth, symmetric) -> (distinct states, transitions)
PINNED = {(2, 8, False): (24, 34), (3, 8, False): (62, 108), (3, 8, True): (22, 42),
          (3, 12, False): (78, 144)}
RACE = (("check", 0), ("check", 1), ("set", 0), ("set", 1))


@pytest.mark.parametrize("case", sorted(PINNED))
@pytest.mark.parametrize("workers", [1, 2])
def test_bfs_counts_and_shortest_counterexample(case: tuple[int, int, bool],
                                                workers: int) -> None:
    m = RacyLock(*case)
    assert _plain_bfs(m) == PINNED[case]
    # split_at=1: the workers split the frontier at once (keys go to their owners)
    res = check(m, Options(workers=workers, split_at=1))
    assert res.complete and (res.stats.distinct, res.stats.generated) == PINNED[case]
    assert sum(res.levels) == res.stats.distinct
    [v] = res.violations["mutex"]
    assert v.path == RACE and v.message == "2 processes in the critical section"
    assert res.reached == {"critical": (("check", 0), ("set", 0)),
                           "all-checked": (("check", 0), ("check", 1))
                           + ((("check", 2),) if case[0] == 3 else ())}
    assert res.sometimes == ("critical", "all-checked") and not res.missed


@pytest.mark.parametrize(("workers", "serial"), [(1, False), (2, False), (2, True), (3, True)])
def test_workers_and_fingerprints_give_the_same_result(workers: int, serial: bool) -> None:
    """Forked workers, and workers run one after another in this process (SerialPool, which
    also gives each one's CPU time: what bench_explore.py --design reports)."""
    m = RacyLock(3, 12)
    one = check(m)
    other = check(m, Options(workers=workers, fingerprints=True, split_at=1, serial=serial))
    assert (other.stats.distinct, other.stats.generated, other.levels) == \
        (one.stats.distinct, one.stats.generated, one.levels)
    assert other.violations == one.violations and other.reached == one.reached
    assert len(other.worker_cpu) == (workers if serial else 0)
    assert all(t >= 0 for t in other.worker_cpu)


def test_dfs_sees_every_state() -> None:
    m = RacyLock(3, 8)
    res = Checker(m).dfs().run()
    assert res.complete and res.stats.distinct == PINNED[(3, 8, False)][0]
    assert "mutex" in res.violations and "critical" in res.reached


@pytest.mark.parametrize("workers", [1, 2])
def test_random_walks_find_the_race(workers: int) -> None:
    m = RacyLock(2, 8)
    a = Checker(m).random(seed=3, walks=50).workers(workers).run()
    b = Checker(m).random(seed=3, walks=50).workers(workers).run()
    assert a.complete and "mutex" in a.violations
    assert (a.stats.distinct, a.stats.generated) == (b.stats.distinct, b.stats.generated)
    assert a.violations == b.violations


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown property 'nope'"):
        check(RacyLock(), Options(properties=("nope",)))
    with pytest.raises(ValueError, match="unknown strategy"):
        check(RacyLock(), Options(strategy="sideways"))


def test_stop_conditions() -> None:
    res = check(RacyLock(3, 8), Options(stop_on_first=True, workers=2, split_at=1))
    assert res.stopped == "violation" and not res.complete
    res = check(RacyLock(3, 8), Options(max_states=10))
    assert res.stopped == "max-states" and res.stats.distinct >= 10


def test_the_checker_knows_nothing_of_the_kernel() -> None:
    """checker/*.py import the standard library and each other, nothing else of anonex
    (and no third-party package but Ray, where it is needed)."""
    for py in sorted(CHECKER.glob("*.py")):
        tree = ast.parse(py.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{py.name}: relative import"
                names = [node.module or ""]
            for name in names:
                if name.startswith("anonex"):
                    assert name.startswith("anonex.explore.checker"), f"{py.name}: {name}"
                elif name.split(".")[0] not in ("ray", "numpy", "__future__"):
                    import sys

                    assert name.split(".")[0] in sys.stdlib_module_names, f"{py.name}: {name}"
