"""Random walks of the explorer's space written as scenarios, for differential runs.

The explorer checks the model against its own invariants; these walks check it against
real kernels instead: each is a ``.cow`` file of random steps (no expectations). Steps the
model refuses or that break a property are not taken, so every walk runs to its end on
the model. ``anonex fuzz`` (:mod:`anonex.fuzz`) generates them at each kernel's version
with :func:`live_space`, runs them on that kernel and on the model, and shrinks every
walk that diverges to a minimal reproducer; ``tools/random_walks.py`` only writes them,
for ``anonex check --kernel X.Y DIR``. The THP-split, pageout and swap-slot findings of
``findings/README.md`` came from such runs.
"""

from __future__ import annotations

import random

from anonex.explore.space import Bounds, setup_steps, to_step
from anonex.explore.world import Space
from anonex.versions import KernelVersion

#: every operation of the space the live backend can take (pin-ro cannot be taken from
#: user space); ``split`` joins them when a THP region is mapped
LIVE_OPS: tuple[str, ...] = (
    "write", "read", "fork", "exit", "munmap", "mprotect", "pageout", "dontneed",
    "dontfork", "wipeonfork", "mergeable", "ksm-scan", "vmsplice", "read-pipe", "pin",
    "unpin")


def live_space(version: KernelVersion, kinds: tuple[str, ...] = ("anon", "thp"),
               ops: tuple[str, ...] = LIVE_OPS, max_steps: int = 9) -> Space:
    """The space random walks take at *version*: two processes, two pages a region, one
    region per kind, *ops* (plus ``split`` with a THP region), no pruning. Raises
    ValueError for an unknown kind or operation."""
    if "thp" in kinds and "split" not in ops:
        ops = (*ops, "split")
    bounds = Bounds(kinds=kinds, procs=2, pages=2, ops=ops, depth=max(10, max_steps))
    return Space(bounds, version, prune=False)


def walk_scenarios(space: Space, seed: int, count: int, min_steps: int = 4,
                   max_steps: int = 9) -> list[tuple[str, str]]:
    """*count* random walks from the initial state: (name, scenario text) each."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for i in range(count):
        w = space.initial()
        path = []
        for _ in range(rng.randint(min_steps, max_steps)):
            acts = space.actions(w)
            rng.shuffle(acts)
            for a in acts:
                o = space.step(w, a)
                if o is None or o.crashed or o.findings:
                    continue
                w = o.world
                path.append(a)
                break
        name = f"walk-{seed}-{i}"
        lines = [f'title "{name}"',
                 f'about "random walk {i} of seed {seed} on {space.bounds.describe()}"']
        lines += [st.text() for st in setup_steps(space.bounds)]
        n = 0
        for a in path:
            st = to_step(a)
            if st.var is not None:
                n += 1
                st = to_step(a, f"v{n}")
            lines.append(st.text())
        out.append((name, "\n".join(lines) + "\n"))
    return out
