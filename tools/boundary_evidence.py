"""Which version-table rows the real kernels here can check, and with which scenarios.

``python tools/boundary_evidence.py [--kernels 5.10.223,6.1.187,...] [--json]``

For each modelled boundary, the real kernels fall on either side of it (the version table
decides, stable backports included). On the kernel nearest the boundary on each side, every
library scenario runs on the model twice: with the kernel's own rules, and with that one
rule flipped. A scenario whose observations or verdict differ discriminates the rule there:
when ``anonex check --boot`` finds no divergence on that kernel, the kernel showed the side
the table gives it. A row with a kernel and a discriminating scenario on both sides is
measured on both sides; one with none on a side says why.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from anonex.diff import diff
from anonex.harness.model import ModelBackend
from anonex.kernel.versions import BOUNDARIES, Boundary, Rules
from anonex.runner import run
from anonex.scenario.ast import Scenario
from anonex.scenario.parser import parse_file
from anonex.versions import KernelVersion

# the kernels this project boots (reference/real-kernels.md) and the host's
KERNELS = "5.10.223,6.1.187,6.12.117,6.18.44,7.2.13"
ROOT = Path(__file__).resolve().parent.parent
# the library, and the reproducers of kernel bugs (findings/kernel-bugs)
SOURCES = (ROOT / "src" / "anonex" / "library", ROOT / "findings" / "kernel-bugs")


@dataclass
class Side:
    kernel: str | None  # the kernel the scenarios were found on (nearest first)
    scenarios: list[str] = field(default_factory=list)
    kernels: list[str] = field(default_factory=list)  # every kernel on this side


@dataclass
class Row:
    name: str
    since: str
    until: str | None
    before: Side
    after: Side
    status: str = ""


def _scenarios() -> list[Scenario]:
    return [parse_file(p) for src in SOURCES for p in sorted(src.rglob("*.cow"))]


def discriminating(rule: str, kernel: str) -> list[str]:
    """Library scenarios whose run on the model at *kernel* changes when *rule* flips."""
    v = KernelVersion.parse(kernel)
    flipped = Rules(v, {rule: not getattr(Rules(v), rule)})
    out = []
    for scen in _scenarios():
        a = run(scen, ModelBackend(v))
        b = run(scen, ModelBackend(v, rules=flipped))
        if a.verdict != b.verdict or diff(a, b):
            out.append(scen.name)
    return out


def _nearest(b: Boundary, ks: list[KernelVersion]) -> list[str]:
    """*ks* ordered by their distance to the rule's nearest edge (``since`` or ``until``)."""
    def minors(v: KernelVersion) -> int:
        return v.major * 100 + v.minor

    edges = [b.since] + ([b.until] if b.until is not None else [])
    return [str(k) for k in sorted(ks, key=lambda k: (min(abs(minors(k) - minors(e))
                                                          for e in edges), k))]


def evidence(kernels: list[KernelVersion], only: set[str] | None = None) -> list[Row]:
    rows = []
    for b in BOUNDARIES:
        if not b.modelled or (only and b.name not in only):
            continue
        before = [k for k in kernels if not getattr(Rules(k), b.name)]
        after = [k for k in kernels if getattr(Rules(k), b.name)]
        row = Row(b.name, str(b.since), None if b.until is None else str(b.until),
                  Side(None, kernels=_nearest(b, before)),
                  Side(None, kernels=_nearest(b, after)))
        rows.append(row)
    with ProcessPoolExecutor() as pool:
        # the kernel nearest the boundary first; further ones only where it shows nothing
        for depth in range(len(kernels)):
            jobs = [(s, r.name, s.kernels[depth]) for r in rows for s in (r.before, r.after)
                    if len(s.kernels) > depth and not s.scenarios]
            futs = [pool.submit(discriminating, rule, kernel) for _, rule, kernel in jobs]
            for (side, _, kernel), fut in zip(jobs, futs, strict=True):
                side.kernel, side.scenarios = kernel, fut.result()
    for row in rows:
        missing = [what for what, s in (("no kernel here without it", row.before),
                                        ("no kernel here with it", row.after))
                   if not s.kernels]
        silent = [f"no scenario tells it apart on {', '.join(s.kernels)}"
                  for s in (row.before, row.after) if s.kernels and not s.scenarios]
        row.status = "; ".join(missing + silent) or "measured on both sides"
    return rows


def markdown(rows: list[Row]) -> str:
    out = ["| rule | since | until | kernel without it: scenarios | kernel with it: scenarios "
           "| status |", "|---|---|---|---|---|---|"]
    for r in rows:
        def cell(s: Side) -> str:
            if s.kernel is None:
                return "—"
            first = f" (e.g. {s.scenarios[0]})" if s.scenarios else ""
            return f"{s.kernel}: {len(s.scenarios)}{first}"
        out.append(f"| {r.name} | {r.since} | {r.until or ''} | {cell(r.before)} | "
                   f"{cell(r.after)} | {r.status} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels", default=KERNELS, help="comma-separated kernel versions")
    ap.add_argument("--rules", default="", help="only these rules (comma-separated)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    kernels = [KernelVersion.parse(k) for k in args.kernels.split(",")]
    rows = evidence(kernels, set(filter(None, args.rules.split(","))))
    if args.json:
        json.dump([asdict(r) for r in rows], sys.stdout, indent=1)
        print()
    else:
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
