"""What a search is asked (:class:`Options`) and what it gives back (:class:`Result`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from anonex.explore.checker.model import Path


@dataclass(slots=True)
class Violation:
    """An always property broken: the first state found that breaks it, and its path.
    ``ops``: the path's mechanisms (:meth:`~anonex.explore.checker.model.Model.mechanisms`),
    which tell counterexamples of one property apart."""

    prop: str
    message: str
    path: Path
    ops: frozenset[str] = frozenset()


@dataclass(slots=True)
class Stats:
    """Progress of a search, as shown on the progress line."""

    generated: int = 0  # transitions taken (states generated)
    distinct: int = 0   # distinct states (after symmetry reduction)
    depth: int = 0      # the level being explored
    elapsed: float = 0.0
    violations: int = 0

    @property
    def rate(self) -> float:
        return self.distinct / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(slots=True)
class Options:
    """How to search. ``properties``: the always and sometimes properties to check (None:
    all); ``walks``: the number of random walks (None: until ``max_states``/``timeout``);
    ``ray``: the address of a Ray cluster whose actors own the partitions (``"local"``
    starts one on this machine), instead of forked processes."""

    strategy: str = "bfs"
    workers: int = 1  # BFS and random walks; DFS runs on one core
    max_states: int | None = None
    timeout: float | None = None
    fingerprints: bool = False
    seed: int = 0
    walks: int | None = None
    properties: tuple[str, ...] | None = None
    stop_on_first: bool = False
    per_property: int = 3
    progress: Callable[[Stats], None] | None = None
    progress_every: float = 0.5
    ray: str | None = None
    # run the workers one after another in this process (pool.SerialPool), to measure
    # each one's share apart from what the machine does to processes that run at once
    serial: bool = False
    # breadth-first on several workers: each runs the levels whole until the frontier has
    # this many states per worker, then they split it (see checker.partition)
    split_at: int = 32


@dataclass(slots=True)
class Result:
    """What a search did and found."""

    strategy: str
    workers: int
    stats: Stats
    complete: bool  # the whole bound was explored
    stopped: str  # why it stopped early ("" when complete)
    violations: dict[str, list[Violation]]  # by property, shortest first
    reached: dict[str, Path]  # sometimes properties reached, with their first path
    always: tuple[str, ...]  # always properties checked
    sometimes: tuple[str, ...]  # sometimes properties expected to be reached
    bytes_per_state: float
    max_depth: int = 0  # the deepest state found
    levels: list[int] = field(default_factory=list)  # distinct states per BFS level
    worker_cpu: list[float] = field(default_factory=list)  # CPU s per worker (serial only)

    @property
    def missed(self) -> tuple[str, ...]:
        """Sometimes properties the search should have reached and did not."""
        return tuple(s for s in self.sometimes if s not in self.reached)


class Stop(Exception):
    """The search stops early: ``why`` is ``timeout``, ``max-states`` or ``violation``."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why
