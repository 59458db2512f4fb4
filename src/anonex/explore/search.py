"""The explorer's checkers on the kernel model: :func:`explore` and :class:`Checker`.

The checkers are generic (:mod:`anonex.explore.checker`: breadth-first for shortest
counterexamples, depth-first, random walks; one process, forked workers or a Ray
cluster); :class:`~anonex.explore.kernel_model.KernelModel` makes a
:class:`~anonex.explore.world.Space` one of their models. Breadth-first results (states,
counterexamples, the paths to sometimes properties) are the same whatever the number of
workers and the timing.

For each property the search keeps the shortest counterexample of each minimal set of
mechanisms (pins, vmsplice, swap, …: see :attr:`Violation.ops`). It stops when the bound
is exhausted, at the first violation if asked to, at ``max_states`` distinct states or
after ``timeout`` seconds.
"""

from __future__ import annotations

from anonex.explore.checker import check as _check_model
from anonex.explore.checker import path_key as _path_key
from anonex.explore.checker import result
from anonex.explore.checker.check import Check
from anonex.explore.checker.result import Options, Result, Stats
from anonex.explore.checker.run import Checker as _Checker
from anonex.explore.kernel_model import KernelModel, mechanisms
from anonex.explore.space import Action, order
from anonex.explore.world import Space, World

Path = tuple[Action, ...]


class Violation(result.Violation):
    """An always property broken, and the path to the first state found that breaks it;
    ``ops`` are the path's mechanisms: its operations but the common ones
    (:data:`~anonex.explore.space.COMMON_OPS`)."""

    __slots__ = ()

    def __init__(self, prop: str, message: str, path: Path,
                 ops: frozenset[str] | None = None) -> None:
        super().__init__(prop, message, path, mechanisms(path) if ops is None else ops)


def path_key(path: Path) -> tuple[int, tuple[tuple[int, int, str, int, str], ...]]:
    """Shorter paths first, then in :func:`~anonex.explore.space.order`."""
    return _path_key(order, path)


class _Check(Check):
    """The properties a search of *space* checks (for tests of the selection)."""

    def __init__(self, space: Space, opts: Options) -> None:
        super().__init__(KernelModel(space), opts)


class Checker(_Checker[World, Action]):
    """The checkers behind one builder, in the manner of stateright::

        res = Checker(space).bfs().workers(2).max_states(10**6).run()
    """

    def __init__(self, space: Space) -> None:
        super().__init__(KernelModel(space))
        self.space = space


def explore(space: Space, opts: Options | None = None) -> Result:
    """Search *space* with the strategy of *opts* (breadth-first by default)."""
    return _check_model(KernelModel(space), opts)


__all__ = ["Checker", "Options", "Result", "Stats", "Violation", "explore", "path_key"]
