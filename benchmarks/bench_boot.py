"""Booted kernels: how long one kernel takes for the whole library (the target: under 240 s
a kernel under software emulation here), and what it observed.

Run by hand, as root: ``python benchmarks/bench_boot.py [--boot IMAGE …] [PATH …]``
(default: the four Debian kernels and the whole library). For each kernel, one at a time:
the boot (to the guest's first answer), the guest's run of every scenario, the wall time
until the host has replayed and diffed the last one, and the guest's slowest scenarios;
then the verdicts that are not as expected and the scenarios that diverge from the model at
that kernel's version. ``--json FILE`` keeps the numbers. The load average is printed:
a TCG guest needs both cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from anonex.boot.backend import BootedKernel
from anonex.boot.images import resolve
from anonex.diff import diff
from anonex.harness.model import ModelBackend
from anonex.runner import Trace, run
from anonex.scenario.parser import parse_file

LIBRARY = Path(__file__).resolve().parents[1] / "src" / "anonex" / "library"
DEBIAN = ["debian:5.10", "debian:6.1", "debian:6.12", "debian:7.2"]


def _diverges(t: Trace) -> int:
    return len(diff(run(t.scenario, ModelBackend(t.version)), t))


@dataclass
class Result:
    kernel: str
    version: str
    accel: str
    boot_s: float
    guest_run_s: float | None
    wall_s: float
    scenarios: int
    unexpected: list[str]
    diverging: list[str]
    slowest: list[str]
    load: float


def bench(spec: str, paths: list[str], pool: ProcessPoolExecutor) -> Result:
    image = resolve(spec)
    scens = [parse_file(p) for p in paths]
    t0 = time.perf_counter()
    slow: list[tuple[float, str]] = []
    unexpected: list[str] = []
    jobs = []
    with BootedKernel(image, scens) as be:
        version = be.version
        boot = time.perf_counter() - t0
        for s in scens:
            t = run(s, be)
            slow.append((float(t.env.get("guest_seconds", 0.0)), s.name))
            if not t.as_expected:
                unexpected.append(f"{s.name}: {t.verdict}")
            jobs.append((s.name, pool.submit(_diverges, t)))
        facts = be.boot_facts()
    diverging = [name for name, j in jobs if j.result()]
    wall = time.perf_counter() - t0
    return Result(spec, str(version), str(facts["accel"]), round(boot, 1),
                  facts["run_seconds"], round(wall, 1), len(scens), unexpected, diverging,
                  [f"{n} {s:.1f}s" for s, n in sorted(slow, reverse=True)[:5]],
                  os.getloadavg()[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--boot", action="append", help="kernel image or debian:NAME")
    ap.add_argument("--json", help="write the numbers to this file")
    ap.add_argument("paths", nargs="*", help="scenario files or folders (default: library)")
    a = ap.parse_args()
    roots = [Path(p) for p in a.paths] or [LIBRARY]
    paths = [str(f) for r in roots for f in (sorted(r.rglob("*.cow")) if r.is_dir() else [r])]
    results = []
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for spec in a.boot or DEBIAN:
            r = bench(spec, paths, pool)
            results.append(r)
            print(f"{r.kernel:<12} {r.version:<9} {r.accel}: boot {r.boot_s} s, guest run "
                  f"{r.guest_run_s} s, wall {r.wall_s} s for {r.scenarios} scenarios; "
                  f"{len(r.unexpected)} unexpected, {len(r.diverging)} diverging; "
                  f"load {r.load:.1f}", flush=True)
            print(f"    slowest: {', '.join(r.slowest)}")
    if a.json:
        Path(a.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
