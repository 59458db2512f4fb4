"""Model speed: one 20-step scenario end to end, and the size of a pickled state.

Run by hand: ``python benchmarks/bench_model.py``. Targets (DESIGN §8): a 20-step scenario
in under 5 ms.
"""

from __future__ import annotations

import pickle
import statistics
import time
from pathlib import Path

from anonex.harness.model import ModelBackend
from anonex.runner import run
from anonex.scenario.parser import parse_file

HERE = Path(__file__).parent


def bench_run(reps: int = 300) -> float:
    scen = parse_file(HERE / "twenty-steps.cow")
    assert len(scen.steps) == 20, len(scen.steps)
    t = run(scen, ModelBackend())
    assert t.verdict == "pass", t.reason
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run(scen, ModelBackend())
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def bench_state_size() -> int:
    """The median size of the model's state, pickled, after each step of the scenario."""
    scen = parse_file(HERE / "twenty-steps.cow")
    be = ModelBackend()
    be.start(scen)
    sizes = []
    for st in scen.steps:
        be.step(st)
        sizes.append(len(pickle.dumps(be.k)))
    return int(statistics.median(sizes))


if __name__ == "__main__":
    ms = bench_run()
    print(f"20-step scenario on the model: median {ms:.2f} ms per run (target < 5 ms)")
    print(f"median pickled state: {bench_state_size()} bytes")
