"""A generic explicit-state model checker, in the manner of stateright.

A model (:class:`~.model.Model`: initial state, actions, next state, always and
sometimes properties, a canonical key) is explored by one of three strategies, each in
its own module: breadth-first (:mod:`.bfs`, shortest counterexamples), depth-first
(:mod:`.dfs`) and random walks (:mod:`.walks`), over one pool of workers (:mod:`.pool`:
this process, forked processes, or Ray actors, :mod:`.ray_pool`). Breadth-first search
on several workers splits the state space by key (:mod:`.partition`). Nothing here knows
the kernel model; :mod:`anonex.explore.kernel_model` adapts it.
"""

from anonex.explore.checker.model import Model, Next, Sometimes, path_key
from anonex.explore.checker.result import Options, Result, Stats, Violation
from anonex.explore.checker.run import Checker, check

__all__ = ["Checker", "Model", "Next", "Options", "Result", "Sometimes", "Stats",
           "Violation", "check", "path_key"]
