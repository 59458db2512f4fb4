"""What a model offers the checkers: the protocol, in the manner of stateright's ``Model``.

A model is ordinary code with a few methods: its initial state, the actions enabled in a
state (in the order the checker tries them, which is also the order of paths: see
:meth:`Model.order`), the next state of an action, the always properties a state breaks
(:meth:`Model.check`), its sometimes properties, and a canonical key (``bytes``: two
states with one key behave alike; symmetry reduction lives here). The checkers know
nothing else of it: a state is an opaque object that stays in the process that made it,
and only keys, paths and findings travel between processes.

A step the model refuses is no transition (``next_state`` returns None). A transition may
break always properties on the way (:attr:`Next.findings`), or end in a state not to be
explored (:attr:`Next.crashed`: a ``BUG_ON`` left it half-updated).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)
A = TypeVar("A", bound=Hashable)
Path = tuple[Any, ...]
"""A path: the actions from the initial state."""


class Finding(Protocol):
    """A broken always property: its name, and what happened (for people)."""

    @builtins.property
    def property(self) -> str: ...

    @builtins.property
    def message(self) -> str: ...


class Next(Protocol[S_co]):
    """What one transition did."""

    @property
    def state(self) -> S_co: ...

    @property
    def findings(self) -> Sequence[Finding]:
        """The always properties broken on the way (whatever the state's own)."""

    @property
    def crashed(self) -> bool:
        """The state is not to be keyed, checked or explored."""


@dataclass(frozen=True, slots=True)
class Sometimes(Generic[S]):
    """A sometimes property: a predicate some reachable state should satisfy.
    ``expected``: whether this bound should reach it (else it is not missed)."""

    name: str
    test: Callable[[S], bool]
    expected: bool = True


class Model(Protocol[S, A]):
    """A model the checkers explore (see the module docstring)."""

    @property
    def depth(self) -> int:
        """The bound: the longest path explored."""

    def initial(self) -> S: ...

    def actions(self, s: S) -> list[A]:
        """The actions worth trying in *s*, in :meth:`order`."""

    def next_state(self, s: S, a: A, consume: bool = False) -> Next[S] | None:
        """Take *a* in *s*: None when it is no transition. With *consume* the checker
        no longer needs *s*, and the model may turn it into the next state."""

    def key(self, s: S) -> bytes:
        """The canonical key: equal keys, states that behave alike."""

    def check(self, s: S, after: Next[S] | None) -> list[Finding]:
        """The always properties *s* breaks (*after*: the transition that made it)."""

    def always(self) -> tuple[str, ...]:
        """The names of the always properties :meth:`check` reports."""

    def reported(self) -> frozenset[str]:
        """Findings reported whatever properties are selected (bugs of the model)."""

    def sometimes(self) -> tuple[Sometimes[S], ...]: ...

    def order(self, a: A) -> Any:
        """The sort key of an action: paths compare by length, then action by action."""

    def mechanisms(self, path: Path) -> frozenset[str]:
        """What tells counterexamples of one property apart (the checker keeps one per
        minimal set)."""

    def dispose(self, s: S) -> None:
        """*s* is no longer needed (break its reference cycles, if it has any)."""

    def remote(self) -> Callable[[], Model[S, A]]:
        """A picklable function that builds this model again in another process (Ray)."""


def path_key(order: Callable[[Any], Any], path: Path) -> tuple[int, tuple[Any, ...]]:
    """Shorter paths first, then action by action in the model's *order*
    (:meth:`Model.order`)."""
    return (len(path), tuple(order(a) for a in path))
