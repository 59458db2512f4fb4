"""Random walks of the explorer's space written as scenarios, for differential runs.

The explorer checks the model against its own invariants; these walks check it against
the running kernel instead: each is a ``.cow`` file of random steps (no expectations) that
``anonex check --kernel X.Y DIR`` runs on the model and live, reporting every observation
on which they differ. Steps the model refuses or that break a property are not taken, so
every walk runs to its end on both backends. ``tools/random_walks.py`` writes them; the
THP-split, pageout and swap-slot findings of ``findings/README.md`` came from such runs.
"""

from __future__ import annotations

import random

from anonex.explore.space import setup_steps, to_step
from anonex.explore.world import Space


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
