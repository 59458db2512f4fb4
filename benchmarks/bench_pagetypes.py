"""page-types speed: the full-PFN summary, live and from a saved dump, anonex beside the C tool.

Run by hand, as root::

    python benchmarks/bench_pagetypes.py [--c-tool PATH] [--runs N]

``--c-tool`` (or ``ANONEX_PAGE_TYPES_C``) is the kernel's ``tools/mm/page-types``, built by
hand; without it only anonex is timed. The dump is a copy of ``/proc/kpageflags`` written to
a temporary file for the run and removed afterwards.

For each case the median wall time of ``--runs`` runs is printed for: the C tool, the
``python -m anonex.pagetypes`` command (interpreter start and numpy import included), and
the same summary called in-process (:func:`anonex.pagetypes.cli.main`, as the live backend
or a long-running tool pays it). Runs of the three are interleaved so that drift in the
machine's load hits all alike. Also printed: the peak RSS of each command, and how much two
CPU-bound processes overlap on this machine (threads reading kpageflags can only help where
there is more than one CPU's worth of capacity).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anonex.pagetypes.cli import main as pt_main


def run_cmd(cmd: list[str]) -> tuple[float, bytes]:
    """Wall seconds and stdout of one command."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=out, stderr=subprocess.DEVNULL, check=True)
        wall = time.perf_counter() - t0
        out.seek(0)
        return wall, out.read()


def peak_rss(cmd: list[str]) -> int | None:
    """Peak RSS (KiB) of one run of *cmd*, from GNU time (``None`` without it)."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time")
                                        else None)
    if gnu_time is None:
        return None
    p = subprocess.run([gnu_time, "-f", "%M", *cmd], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, check=False)
    try:
        return int(p.stderr.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def run_inproc(args: list[str]) -> tuple[float, str]:
    buf = io.StringIO()
    t0 = time.perf_counter()
    rc = pt_main(args, stdout=buf)
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"anonex page-types {' '.join(args)} failed with {rc}")
    return wall, buf.getvalue()


def _mb(kib: int | None) -> str:
    return f"{kib / 1024:5.1f} MB" if kib is not None else "   ? MB"


def parallelism() -> float:
    """How many CPU-bound processes run at once here (1.0: no overlap at all)."""
    code = "x = 0\nfor i in range(3_000_000): x += i"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-S", "-c", code], check=True)
    one = time.perf_counter() - t0
    t0 = time.perf_counter()
    ps = [subprocess.Popen([sys.executable, "-S", "-c", code]) for _ in range(2)]
    for p in ps:
        p.wait()
    two = time.perf_counter() - t0
    return 2 * one / two


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--c-tool", default=os.environ.get("ANONEX_PAGE_TYPES_C"),
                    help="path to the C page-types (default: $ANONEX_PAGE_TYPES_C)")
    ap.add_argument("--runs", type=int, default=5)
    ns = ap.parse_args()
    if not os.access("/proc/kpageflags", os.R_OK):
        raise SystemExit("needs root and /proc/kpageflags")
    c_tool = ns.c_tool
    if c_tool and not (Path(c_tool).is_file() and os.access(c_tool, os.X_OK)):
        raise SystemExit(f"{c_tool}: not an executable")
    tmp = Path(tempfile.mkdtemp(prefix="anonex-bench-"))
    dump = tmp / "kpageflags"
    try:
        t0 = time.perf_counter()
        with open("/proc/kpageflags", "rb") as src, open(dump, "wb") as dst:
            shutil.copyfileobj(src, dst, 8 << 20)
        copy_s = time.perf_counter() - t0
        pfns = dump.stat().st_size // 8
        cases = [("live summary", []), ("live summary -r", ["-r"]),
                 ("dump summary", ["-F", str(dump)]), ("dump summary -r", ["-r", "-F", str(dump)])]
        anonex_cmd = [sys.executable, "-m", "anonex.pagetypes"]
        print(f"machine: {os.uname().release}, {os.cpu_count()} CPUs, {pfns} PFNs "
              f"({pfns * 4096 >> 20} MiB); dump written in {copy_s:.2f} s")
        print(f"CPU-bound processes running at once: {parallelism():.2f}")
        startup = statistics.median(run_cmd([sys.executable, "-c", "import numpy"])[0]
                                    for _ in range(3))
        print(f"python start + numpy import alone: {startup:.3f} s")
        print(f"median of {ns.runs} runs (wall seconds; peak RSS of one run)\n")
        head = f"{'case':<18}{'C page-types':>18}{'anonex command':>22}{'anonex in-process':>20}"
        print(head)
        for name, args in cases:
            c_t: list[float] = []
            a_t: list[float] = []
            i_t: list[float] = []
            same: bool | None = None
            for _ in range(ns.runs):
                if c_tool:
                    w, c_out = run_cmd([c_tool, *args])
                    c_t.append(w)
                w, a_out = run_cmd([*anonex_cmd, *args])
                a_t.append(w)
                w, _ = run_inproc(args)
                i_t.append(w)
                if c_tool and name.startswith("dump"):
                    same = (same is not False) and c_out == a_out
            c_rss = peak_rss([c_tool, *args]) if c_tool else None
            a_rss = peak_rss([*anonex_cmd, *args])
            c_col = (f"{statistics.median(c_t):8.3f} ({_mb(c_rss)})" if c_tool
                     else f"{'-':>16}")
            print(f"{name:<18}{c_col:>18}{statistics.median(a_t):12.3f} ({_mb(a_rss)})"
                  f"{statistics.median(i_t):18.3f}"
                  + ("" if same is None else ("   output identical" if same else
                                                "   OUTPUT DIFFERS")))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
