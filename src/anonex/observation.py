"""Observations: what a backend reports after every step (DESIGN §5).

Both backends, the model at some kernel version and the live kernel, fill the same records,
so every comparison above them is a plain diff. A field a backend cannot see is ``None``
(unknown): the live kernel cannot see refcounts, and cannot see PG_anon_exclusive of a
subpage of a PTE-mapped large folio.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from anonex.findings import Finding
from anonex.scenario.ast import Scenario, Step
from anonex.versions import KernelVersion

State = Literal["present", "swapped", "none"]
FaultOutcome = Literal["new", "reused", "copied", "swapin", "none"]


@dataclass(slots=True)
class PageObs:
    """One virtual page of one process after a step.

    ``ident`` is the backend's raw identity of the physical page (the model's page number,
    the live kernel's PFN); the runner turns it into the label ``page`` (p1, p2, … in order
    of first sight) so that runs compare. ``extra`` holds what only the model can see
    (refcount, pincount, pte_write, pte_dirty, swp_exclusive, migration, flags).
    """

    proc: str
    region: str
    index: int
    state: State
    ident: int | None = None
    page: str | None = None
    anon_exclusive: bool | None = None
    mapcount: int | None = None
    ksm: bool | None = None
    thp: bool | None = None
    huge: bool | None = None
    zero: bool | None = None
    data: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.proc, self.region, self.index)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("ident")
        if not d["extra"]:
            d.pop("extra")
        return d


@dataclass(slots=True)
class StepResult:
    """What one step returned: a value read (``read``, ``peek``, ``dma-read`` …), the fault
    count of the access (0 or 1; for a labelled step), why it could not run, if so, and the
    promises it broke: ``findings`` (by property, see :mod:`anonex.findings`) and
    ``finding``, their messages joined by ``"; "`` (what the reports print)."""

    value: str | None = None
    faults: int | None = None
    skipped: str | None = None
    error: str | None = None
    finding: str | None = None  # a KernelBug or an invariant broken by this step
    findings: tuple[Finding, ...] = ()


class Unsupported(Exception):
    """The backend cannot do this step (the scenario's verdict becomes skip, with the reason)."""


class Backend(Protocol):
    """A place to run scenarios: the model at one kernel version, or the live kernel."""

    name: str
    version: KernelVersion

    def start(self, scenario: Scenario) -> None:
        """Prepare a fresh run of *scenario* (P0 exists, nothing is mapped)."""

    def step(self, step: Step) -> StepResult:
        """Do one step; raise :class:`Unsupported` if this backend cannot."""

    def observe(self) -> list[PageObs]:
        """Every page of every region of every live process, without changing anything."""

    def finish(self) -> None:
        """End the run and release everything it holds (idempotent)."""

    def environment(self) -> dict[str, Any]:
        """What the run depended on (kernel, settings), recorded with the trace."""
