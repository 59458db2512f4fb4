"""Write random walks of the explorer's space as scenarios, to diff the model with the
running kernel: ``python tools/random_walks.py OUT [--seed N] [--count N] [--kinds anon,thp]``
then ``anonex check --kernel $(uname -r | cut -d. -f1,2) OUT``. ``anonex fuzz`` does both,
on the running kernel and booted ones, and shrinks what diverges. See anonex.explore.walks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anonex.explore.walks import LIVE_OPS, live_space, walk_scenarios
from anonex.versions import KernelVersion

OPS = LIVE_OPS  # the name this script had for them


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--kinds", default="anon,thp")
    ap.add_argument("--kernel", default="6.18")
    ap.add_argument("--steps", default="4-9", help="walk length range, e.g. 4-9")
    ap.add_argument("--ops", default=",".join(OPS), help="the operations walks take")
    args = ap.parse_args()
    lo, _, hi = args.steps.partition("-")
    space = live_space(KernelVersion.parse(args.kernel), tuple(args.kinds.split(",")),
                       tuple(args.ops.split(",")), int(hi or lo))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in walk_scenarios(space, args.seed, args.count, int(lo), int(hi or lo)):
        (args.out / f"{name}.cow").write_text(text)
    print(f"{args.count} walks in {args.out}")


if __name__ == "__main__":
    main()
