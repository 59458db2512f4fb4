"""Fingerprint speed: the model's side of reading a kernel's rules.

Run by hand: ``python benchmarks/bench_fingerprint.py [--live]``. For each kernel version
of this project's real kernels, the model plays the kernel (its own runs of the catalogue)
and the judge reads it back: how long the catalogue takes on the model, how long the
judging (the model on both sides of every row, the reasons for silent rows) takes, and how
many model runs that needs. ``--live`` adds the running kernel, end to end. Booted kernels:
``anonex fingerprint --boot IMAGE`` prints the boot and guest times.
"""

from __future__ import annotations

import argparse
import time

from anonex.fingerprint import Catalog, judge_traces, run_catalog
from anonex.fingerprint.judge import ModelRuns
from anonex.harness.model import ModelBackend
from anonex.versions import KernelVersion

KERNELS = ("5.10.223", "6.1.187", "6.12.117", "6.18.44", "7.2.13")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--live", action="store_true", help="also the running kernel")
    args = ap.parse_args()
    catalog = Catalog.load()
    runs = {"n": 0}
    real_trace = ModelRuns.trace

    def counting(self: ModelRuns, *a: object, **k: object) -> object:
        before = len(self._cache)
        out = real_trace(self, *a, **k)  # type: ignore[arg-type]
        runs["n"] += len(self._cache) - before
        return out

    ModelRuns.trace = counting  # type: ignore[method-assign,assignment]
    print(f"{len(catalog.scenarios)} fingerprint scenarios")
    print("| kernel (model) | catalogue on the model | judging | model runs judged | "
          "observable rows |")
    print("|---|---|---|---|---|")
    for k in KERNELS:
        v = KernelVersion.parse(k)
        t0 = time.perf_counter()
        traces = run_catalog(ModelBackend(v), catalog)
        t1 = time.perf_counter()
        runs["n"] = 0
        fp = judge_traces(k, traces, catalog)
        t2 = time.perf_counter()
        print(f"| {k} | {t1 - t0:.2f} s | {t2 - t1:.2f} s | {runs['n']} | "
              f"{len(fp.observed)} |")
    if args.live:
        from anonex.fingerprint import fingerprint
        from anonex.live.backend import LiveBackend

        t0 = time.perf_counter()
        fp = fingerprint("live", LiveBackend(), catalog)
        print(f"running kernel {fp.version}: {time.perf_counter() - t0:.1f} s end to end "
              f"(kernel runs {fp.env.get('kernel_seconds')} s), {len(fp.observed)} "
              f"observable rows, {len(fp.differing)} differ")


if __name__ == "__main__":
    main()
