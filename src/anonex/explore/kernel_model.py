"""The kernel model as a model of the generic checker (:mod:`anonex.explore.checker`).

:class:`KernelModel` wraps a :class:`~anonex.explore.world.Space` (one kernel version,
one bound): its states are :class:`~anonex.explore.world.World` objects, its actions the
flat tuples of :mod:`anonex.explore.space`, its key the symmetry-reduced canonical key of
:mod:`anonex.explore.canon`, its properties those of :mod:`anonex.explore.properties`.
This is the one place where the checker meets the kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from anonex.explore import properties
from anonex.explore.checker.model import Finding, Next, Path, Sometimes
from anonex.explore.dispose import dispose
from anonex.explore.space import COMMON_OPS, Action, Bounds, order
from anonex.explore.world import Outcome, Space, World
from anonex.versions import KernelVersion


def mechanisms(path: Path) -> frozenset[str]:
    """The operations on *path* but the common ones (:data:`~anonex.explore.space.
    COMMON_OPS`): what tells counterexamples apart (pins, vmsplice, swap, …)."""
    return frozenset(a[0] for a in path) - COMMON_OPS


def _on_kernel(test: Callable[[Any], bool]) -> Callable[[World], bool]:
    return lambda w: test(w.be.k)


class KernelModel:
    """The explorer's :class:`~anonex.explore.world.Space` as a checker model."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.depth = space.bounds.depth
        b = space.bounds
        ops, kinds = b.opset, frozenset(b.kinds)
        self._sometimes = tuple(
            Sometimes(s.name, _on_kernel(s.test), s.expected(ops, kinds, space.rules))
            for s in properties.SOMETIMES)

    def initial(self) -> World:
        return self.space.initial()

    def actions(self, s: World) -> list[Action]:
        return self.space.actions(s)

    def next_state(self, s: World, a: Action, consume: bool = False) -> Outcome | None:
        return self.space.run(s, a) if consume else self.space.step(s, a)

    def key(self, s: World) -> bytes:
        return self.space.key(s)

    def check(self, s: World, after: Next[World] | None) -> list[Finding]:
        checked = isinstance(after, Outcome) and after.checked
        return list(self.space.check(s, checked))

    def always(self) -> tuple[str, ...]:
        return properties.ALWAYS_NAMES

    def reported(self) -> frozenset[str]:
        return frozenset({properties.MODEL_ERROR})

    def sometimes(self) -> tuple[Sometimes[World], ...]:
        return self._sometimes

    def order(self, a: Action) -> tuple[int, int, str, int, str]:
        return order(a)

    def mechanisms(self, path: Path) -> frozenset[str]:
        return mechanisms(path)

    def dispose(self, s: World) -> None:
        dispose(s)

    def remote(self) -> Callable[[], KernelModel]:
        sp = self.space
        b = sp.bounds
        fields = {"procs": b.procs, "pages": b.pages, "kinds": tuple(b.kinds),
                  "ops": tuple(b.ops), "depth": b.depth, "tags": b.tags,
                  "handles": b.handles, "inject": tuple(b.inject)}
        return partial(_build, fields, str(sp.version), sp.prune, sp.dead_fields)


def _build(fields: dict[str, Any], version: str, prune: bool, dead_fields: bool) -> KernelModel:
    """The model again, in another process (a Ray actor)."""
    return KernelModel(Space(Bounds(**fields), KernelVersion.parse(version), prune,
                             dead_fields))
