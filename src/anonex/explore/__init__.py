"""Bounded model checking of the kernel model (``anonex explore``).

The explorer runs every sequence of scenario steps within a bound (:class:`Bounds`: a few
processes, a few regions, the operations and their small argument domains, a depth) on
the model at one kernel version (:class:`Space`), checks the always properties in every
state and reaches the sometimes properties (:mod:`anonex.explore.properties`), and writes
each counterexample as a ``.cow`` scenario (:mod:`anonex.explore.cex`).

Modules, in the order of the flow: ``space`` (bounds, actions), ``world`` (a state, a
step), ``clone`` (fast copies), ``canon`` (the canonical key, symmetry), ``deadfields``
(what the key leaves out at a kernel version), ``dispose`` (dropping states),
``properties``, ``kernel_model`` (all of these as a model of the generic checker),
``checker`` (the generic checker: breadth-first, depth-first, random walks over one pool of
workers, forked or on Ray; it knows nothing of the kernel), ``search`` (the checker on the
kernel model: :func:`explore`, :class:`Checker`), ``cex`` (counterexamples, replay, known
kernel behaviour), ``cli``.
"""

from anonex.explore.search import Checker, Options, Result, Stats, Violation, explore
from anonex.explore.space import DEFAULT_OPS, OPS, Bounds
from anonex.explore.world import Space, World

__all__ = ["DEFAULT_OPS", "OPS", "Bounds", "Checker", "Options", "Result", "Space", "Stats",
           "Violation", "World", "explore"]
