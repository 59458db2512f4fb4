"""The fingerprint's questions: which scenario asks a kernel about which version-table row.

Every row of :data:`~anonex.kernel.versions.BOUNDARIES` is either asked by one or more
scenarios of the library's ``fingerprint/`` folder (each names its rows with ``rule NAME``)
or listed in :data:`UNOBSERVABLE` with the reason user space cannot see it. A row that is
neither is an error of the catalogue (:func:`uncovered`, checked by the tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from anonex.kernel.versions import BOUNDARIES
from anonex.scenario.ast import Scenario
from anonex.scenario.parser import parse_file

#: rows no scenario can ask about, and why
UNOBSERVABLE: dict[str, str] = {
    "gup_fast_fork_seqcount": "closes a race between a thread's gup_fast and another's "
                              "fork; scenario steps do not overlap",
    "swp_exclusive_all_arches": "changes other architectures only: x86-64 keeps the "
                                "exclusive bit in swap PTEs since 5.19",
    "owner_2_rename": "a rename in the source: kpageflags bit 34 means the same before and "
                      "after",
    "device_exclusive_mapped": "needs a driver that makes device-exclusive entries "
                               "(DEVICE_PRIVATE with test_hmm); none is offered to user space",
    "lru_add_drain_in_wp": "both backends drain the per-CPU LRU batches before every step, "
                           "so a fresh page's batch reference never shows",
    "khugepaged_mthp": "needs khugepaged, which the model does not have and the live "
                       "backend keeps quiet",
}


def fingerprint_dir() -> Path:
    """The library's ``fingerprint/`` folder."""
    return Path(str(resources.files("anonex").joinpath("library", "fingerprint")))


@dataclass(frozen=True, slots=True)
class Catalog:
    """The fingerprint scenarios, and the rows each asks about (in table order)."""

    scenarios: tuple[Scenario, ...]

    @classmethod
    def load(cls, folder: Path | None = None) -> Catalog:
        root = folder or fingerprint_dir()
        return cls(tuple(parse_file(p) for p in sorted(root.rglob("*.cow"))))

    def asking(self, rule: str) -> list[Scenario]:
        """The scenarios that name *rule*."""
        return [s for s in self.scenarios if any(n == rule for n, _ in s.rules)]

    def rules(self) -> list[str]:
        """Every row of the version table, asked or not, in table order."""
        return [b.name for b in BOUNDARIES]

    def uncovered(self) -> list[str]:
        """Rows neither asked by a scenario nor listed as unobservable."""
        return [r for r in self.rules() if not self.asking(r) and r not in UNOBSERVABLE]
