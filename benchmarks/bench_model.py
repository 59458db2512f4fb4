"""Model speed: one 20-step scenario end to end, and state encode/decode throughput.

Run by hand: ``python benchmarks/bench_model.py``. Targets (DESIGN §8): a 20-step scenario
in under 5 ms.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from anonex.kernel.backend import ModelBackend
from anonex.kernel.codec import decode, encode
from anonex.scenario.parser import parse_file
from anonex.scenario.runner import run

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


def bench_codec(reps: int = 2000) -> tuple[float, float, int]:
    scen = parse_file(HERE / "twenty-steps.cow")
    be = ModelBackend()
    be.start(scen)
    states = []
    for st in scen.steps:
        be.step(st)
        states.append(encode(be.k))
    t0 = time.perf_counter()
    n = 0
    while n < reps:
        encode(be.k)
        n += 1
    enc = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    n = 0
    while n < reps:
        decode(states[n % len(states)], be.version)
        n += 1
    dec = n / (time.perf_counter() - t0)
    import pickle

    size = statistics.median(len(pickle.dumps(s)) for s in states)
    return enc, dec, int(size)


if __name__ == "__main__":
    ms = bench_run()
    print(f"20-step scenario on the model: median {ms:.2f} ms per run (target < 5 ms)")
    enc, dec, size = bench_codec()
    print(f"state encode: {enc:,.0f}/s, decode: {dec:,.0f}/s, "
          f"median pickled size {size} bytes")
