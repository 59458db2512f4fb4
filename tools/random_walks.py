"""Write random walks of the explorer's space as scenarios, to diff the model with the
running kernel: ``python tools/random_walks.py OUT [--seed N] [--count N] [--kinds anon,thp]``
then ``anonex check --kernel $(uname -r | cut -d. -f1,2) OUT``. See anonex.explore.walks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anonex.explore.space import Bounds
from anonex.explore.walks import walk_scenarios
from anonex.explore.world import Space
from anonex.versions import KernelVersion

# every step the live backend can take (pin-ro cannot be taken from user space)
OPS = ("write", "read", "fork", "exit", "munmap", "mprotect", "pageout", "dontneed",
       "dontfork", "wipeonfork", "mergeable", "ksm-scan", "vmsplice", "read-pipe", "pin",
       "unpin")


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
    kinds = tuple(args.kinds.split(","))
    ops = tuple(args.ops.split(",")) + (("split",) if "thp" in kinds else ())
    space = Space(Bounds(kinds=kinds, procs=2, pages=2, ops=ops, depth=10),
                  KernelVersion.parse(args.kernel), prune=False)
    args.out.mkdir(parents=True, exist_ok=True)
    lo, _, hi = args.steps.partition("-")
    for name, text in walk_scenarios(space, args.seed, args.count, int(lo), int(hi or lo)):
        (args.out / f"{name}.cow").write_text(text)
    print(f"{args.count} walks in {args.out}")


if __name__ == "__main__":
    main()
