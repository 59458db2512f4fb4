"""What user space is promised to read: the reference semantics of private memory.

The oracle follows the scenario without any kernel machinery: each process's private
memory holds what that process last wrote there (or inherited at fork); a pipe filled by
vmsplice may show what the page held then or what its owner wrote since, never what another
process wrote; a pin shows what the pinning process has at that address as long as the
process keeps the mapping. The model backend compares every value the model returns with
these promises, which is how "no leak" and "isolation" (DESIGN §3) are checked; pin
coherence is checked in every state (:func:`anonex.harness.invariants.pin_coherence`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mypy_extensions import mypyc_attr

from anonex.findings import ISOLATION, NO_LEAK, Finding


@mypyc_attr(acyclic=True)  # in no reference cycle: not tracked by the collector
@dataclass(slots=True)
class _Ref:
    mm: str
    vpn: int
    attached: bool
    accepted: set[str]

    def __init__(self, mm: str, vpn: int, attached: bool = True,
                 accepted: set[str] | None = None) -> None:
        self.mm = mm
        self.vpn = vpn
        self.attached = attached
        self.accepted = set() if accepted is None else accepted


class Oracle:
    """Shadow memory of every process, and what each pipe and pin may show."""

    def __init__(self) -> None:
        self.mem: dict[tuple[str, int], str] = {}
        self.pipes: dict[str, list[_Ref]] = {}
        self.pins: dict[str, list[_Ref]] = {}

    # -- events ----------------------------------------------------------------------------

    def map(self, mm: str, vpns: range) -> None:
        for v in vpns:
            self.mem[(mm, v)] = ""

    def write(self, mm: str, vpn: int, tag: str) -> None:
        self.mem[(mm, vpn)] = tag
        for refs in self.pipes.values():
            for r in refs:
                if r.attached and r.mm == mm and r.vpn == vpn:
                    r.accepted.add(tag)

    def unmap(self, mm: str, vpns: range, keep_zero: bool = False) -> None:
        """munmap (the addresses go) or MADV_DONTNEED (*keep_zero*: they read as zeros)."""
        for v in vpns:
            if keep_zero:
                self.mem[(mm, v)] = ""
            else:
                self.mem.pop((mm, v), None)
        self._detach(mm, set(vpns))

    def _detach(self, mm: str, vpns: set[int]) -> None:
        for table in (self.pipes, self.pins):
            for refs in table.values():
                for r in refs:
                    if r.mm == mm and r.vpn in vpns:
                        r.attached = False

    def move(self, mm: str, vpns: range, delta: int) -> None:
        moved = {v: self.mem.pop((mm, v)) for v in vpns if (mm, v) in self.mem}
        for v, tag in moved.items():
            self.mem[(mm, v + delta)] = tag
        for table in (self.pipes, self.pins):
            for refs in table.values():
                for r in refs:
                    if r.mm == mm and r.vpn in vpns:
                        r.vpn += delta

    def fork(self, parent: str, child: str, copied: list[range], wiped: list[range]) -> None:
        for rng in copied:
            for v in rng:
                if (parent, v) in self.mem:
                    self.mem[(child, v)] = self.mem[(parent, v)]
        for rng in wiped:
            for v in rng:
                self.mem[(child, v)] = ""

    def exit(self, mm: str) -> None:
        for key in [k for k in self.mem if k[0] == mm]:
            del self.mem[key]
        for table in (self.pipes, self.pins):
            for refs in table.values():
                for r in refs:
                    if r.mm == mm:
                        r.attached = False

    def vmsplice(self, name: str, mm: str, vpns: list[int]) -> None:
        self.pipes[name] = [_Ref(mm, v, True, {self.mem.get((mm, v), "")}) for v in vpns]

    def pin(self, name: str, mm: str, vpns: list[int]) -> None:
        self.pins[name] = [_Ref(mm, v) for v in vpns]

    def unpin(self, name: str) -> None:
        self.pins.pop(name, None)

    def dma_write(self, name: str, tag: str) -> None:
        for r in self.pins.get(name, []):
            if r.attached:
                self.write(r.mm, r.vpn, tag)

    # -- checks ----------------------------------------------------------------------------

    def check_read(self, mm: str, vpn: int, got: str, where: str) -> Finding | None:
        want = self.mem.get((mm, vpn))
        if want is None or got == want:
            return None
        return Finding(ISOLATION, f"isolation broken: {where} reads {got!r}, but this "
                                  f"process's memory holds {want!r}")

    def check_pipe(self, name: str, got: list[str]) -> Finding | None:
        for i, (r, tag) in enumerate(zip(self.pipes.get(name, []), got, strict=False)):
            if tag not in r.accepted:
                return Finding(NO_LEAK, f"leak: pipe '{name}' page {i} shows {tag!r}, which "
                                        f"process {r.mm} never had there (it may see "
                                        f"{sorted(r.accepted)})")
        return None
