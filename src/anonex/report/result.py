"""What one ``anonex check`` found, as data: every renderer (terminal, JSON, TAP, HTML)
reads this and nothing else.

``cells`` holds one light trace per scenario and column (verdict, reason, how many
expectations were unobservable; no steps). ``runs`` holds full traces (every step and
observation) for the cells a renderer may draw: the real kernels' runs, and, when asked for,
the model's. ``divergences`` holds, per scenario and real-kernel column, the model run it was
diffed with and every divergence, in step order. ``blobs`` holds the model's runs already
drawn for the HTML report, where the full traces would not fit in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anonex.diff import Divergence
from anonex.runner import Trace
from anonex.scenario.ast import Scenario
from anonex.versions import KernelVersion


@dataclass(slots=True)
class KernelColumn:
    """A real kernel of the run (the running one, or one booted in a VM)."""

    column: str  # "live", "debian:6.12", …
    version: KernelVersion | None = None  # None when it never ran
    env: dict[str, Any] = field(default_factory=dict)  # what the run depended on
    not_run: str = ""  # why it did not run (or stopped early), "" if it ran


@dataclass(slots=True)
class Diverging:
    """One scenario whose run on a real kernel differs from the model's."""

    scenario: str
    column: str  # the kernel's column
    model: str  # the model backend it was diffed with ("model@6.12.117", …)
    divergences: list[Divergence]


@dataclass(slots=True)
class CheckResult:
    scenarios: list[Scenario]
    model_columns: list[str]  # "5.4", …, "fp:debian:6.12" (model with a kernel's rules)
    kernels: list[KernelColumn]
    cells: dict[tuple[str, str], Trace]  # (scenario name, column) -> light trace
    diverging: list[Diverging] = field(default_factory=list)
    runs: dict[tuple[str, str], Trace] = field(default_factory=dict)  # full traces
    # runs drawn ahead for the HTML page (anonex.report.html.run_blob): digest, packed text
    blobs: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """Model columns first, then the real kernels that ran."""
        return self.model_columns + [k.column for k in self.kernels if k.version is not None]

    @property
    def unexpected(self) -> int:
        return sum(1 for t in self.cells.values() if not t.as_expected)

    @property
    def failed(self) -> bool:
        """The exit status is 1: an unexpected verdict, a divergence, or a booted kernel
        that did not run (the running kernel may be unavailable: that is a skip)."""
        return bool(self.unexpected or self.diverging or
                    any(k.not_run and k.column != "live" for k in self.kernels))
