"""``anonex fuzz``: random walks on each kernel and on the model, diffed, then shrunk.

For each kernel, :func:`fuzz_kernel` generates the walks at that kernel's version
(:func:`~anonex.explore.walks.live_space`: only operations the live backend can take),
runs them on the kernel and on the model at the same version
(:func:`~anonex.fuzz.judge.evaluate`), and shrinks every walk that diverges to a minimal
reproducer (:mod:`anonex.fuzz.shrink`). A walk with a step the kernel cannot take (a
feature it lacks) is skipped, never failed. A booted kernel's version is what its image
says until the guest has answered; should the guest say otherwise, the walks are
generated again at the guest's version and run once more.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from anonex.diff import Divergence, group
from anonex.explore.walks import live_space, walk_scenarios
from anonex.fuzz.judge import evaluate
from anonex.fuzz.kernels import FuzzKernel
from anonex.fuzz.shrink import Shrunk, Target, shrink, target
from anonex.harness.model import ModelBackend
from anonex.live import LiveUnavailable
from anonex.scenario.parser import parse
from anonex.versions import KernelVersion


@dataclass(frozen=True, slots=True)
class Options:
    """What to generate: *walks* walks of *min_steps*..*max_steps* steps from *seed*, one
    region per entry of *kinds*."""

    walks: int = 300
    seed: int = 1
    min_steps: int = 4
    max_steps: int = 9
    kinds: tuple[str, ...] = ("anon", "thp")

    def __post_init__(self) -> None:
        if self.walks < 0:
            raise ValueError("--walks must be 0 or more")
        if not 1 <= self.min_steps <= self.max_steps:
            raise ValueError(f"--steps {self.min_steps}-{self.max_steps}: expected "
                             "1 <= first <= last, e.g. 4-9")
        live_space(KernelVersion(6, 18), self.kinds)  # ValueError for an unknown kind


class Progress(Protocol):
    """Where the fuzzer says how far it is."""

    def phase(self, text: str, total: int) -> None:
        """A new phase of *total* scenarios."""

    def advance(self) -> None:
        """One more scenario done."""


class NoProgress:
    def phase(self, text: str, total: int) -> None:
        pass

    def advance(self) -> None:
        pass


@dataclass(slots=True)
class WalkResult:
    """One walk on one kernel: its text, how it went, and for a diverging one its
    divergences and where shrinking got."""

    name: str
    text: str
    steps: int
    status: str  # agree, diverge, skip
    reason: str = ""  # why it was skipped
    divergences: list[Divergence] = field(default_factory=list)
    shrunk: Shrunk | None = None
    reproducer: str = ""  # the shrunk scenario's text
    shrunk_steps: tuple[str, ...] = ()  # its steps (walks that shrink alike are one finding)


@dataclass(slots=True)
class KernelReport:
    """Everything one kernel's fuzzing found."""

    name: str
    version: KernelVersion | None = None
    walks: list[WalkResult] = field(default_factory=list)
    unavailable: str = ""  # why the kernel did not run (or stopped)
    seconds: float = 0.0
    shrink_seconds: float = 0.0
    boots: int = 0
    notes: list[str] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for w in self.walks if w.status == status)

    @property
    def diverging(self) -> list[WalkResult]:
        return [w for w in self.walks if w.status == "diverge"]

    def distinct(self) -> list[tuple[WalkResult, list[WalkResult]]]:
        """The diverging walks by reproducer: the first walk that shrank to each, and the
        others that shrank to the same steps."""
        by: dict[tuple[str, ...], list[WalkResult]] = {}
        for w in self.diverging:
            by.setdefault(w.shrunk_steps, []).append(w)
        return [(ws[0], ws[1:]) for ws in by.values()]

    def skip_reasons(self) -> dict[str, int]:
        """How many walks were skipped for each reason, most first."""
        return dict(Counter(w.reason for w in self.walks if w.status == "skip").most_common())

    def to_json(self) -> dict[str, Any]:
        return {
            "kernel": self.name, "version": str(self.version) if self.version else None,
            "walks": len(self.walks), "skipped": self.count("skip"),
            "agreeing": self.count("agree"), "diverging": self.count("diverge"),
            "skip_reasons": self.skip_reasons(), "unavailable": self.unavailable or None,
            "seconds": round(self.seconds, 1), "shrink_seconds": round(self.shrink_seconds, 1),
            "boots": self.boots, "notes": self.notes,
            "reproducers": len(self.distinct()),
            "diverging_walks": [_walk_json(w, first) for first, same in self.distinct()
                                for w in (first, *same)],
        }


def _walk_json(w: WalkResult, first: WalkResult) -> dict[str, Any]:
    s = w.shrunk
    assert s is not None
    return {"walk": w.name, "same_as": None if w is first else first.name,
            "steps": w.steps, "shrunk_steps": len(s.keep),
            "rounds": s.rounds, "minimal": s.minimal, "fields": sorted(s.fields),
            "scenario": w.reproducer,
            "divergences": [g.to_json() for g in group(s.divergences)],
            "original": w.text}


@dataclass(slots=True)
class FuzzReport:
    """Every kernel's :class:`KernelReport`, with the options they ran with."""

    options: Options
    kernels: list[KernelReport] = field(default_factory=list)

    @property
    def diverging(self) -> int:
        return sum(len(k.diverging) for k in self.kernels)

    @property
    def unavailable(self) -> list[KernelReport]:
        return [k for k in self.kernels if k.unavailable]

    def to_json(self) -> dict[str, Any]:
        o = self.options
        return {"seed": o.seed, "walks": o.walks, "steps": [o.min_steps, o.max_steps],
                "kinds": list(o.kinds), "diverging": self.diverging,
                "kernels": [k.to_json() for k in self.kernels]}


def generate(version: KernelVersion, opts: Options) -> list[tuple[str, str]]:
    """The walks at *version*: (name, text) each."""
    space = live_space(version, opts.kinds, max_steps=opts.max_steps)
    return walk_scenarios(space, opts.seed, opts.walks, opts.min_steps, opts.max_steps)


def fuzz_kernel(kernel: FuzzKernel, opts: Options,
                progress: Progress | None = None) -> KernelReport:
    """Run *opts*' walks on *kernel* and the model, and shrink those that diverge."""
    prog = progress or NoProgress()
    rep = KernelReport(kernel.name)
    t0 = time.monotonic()
    try:
        _walks(kernel, opts, prog, rep)
        t1 = time.monotonic()
        _shrink(kernel, rep, prog)
        rep.shrink_seconds = time.monotonic() - t1
    except LiveUnavailable as e:
        rep.unavailable = e.reason
    finally:
        rep.seconds = time.monotonic() - t0
        rep.boots = kernel.boots
        rep.env = kernel.env
        kernel.close()
    return rep


def _walks(kernel: FuzzKernel, opts: Options, prog: Progress, rep: KernelReport) -> None:
    version = kernel.version
    for _ in range(2):
        walks = generate(version, opts)
        scens = [parse(text, f"{name}.cow") for name, text in walks]
        prog.phase(f"{kernel.name}: {len(scens)} walks" +
                   (" (booting)" if kernel.booted else ""), len(scens))
        outs = evaluate(kernel, ModelBackend(version), scens, prog.advance)
        if kernel.version == version:
            break
        rep.notes.append(f"the image said Linux {version}, the guest says "
                         f"{kernel.version}: the walks ran again at {kernel.version}")
        version = kernel.version
    rep.version = version
    for (name, text), scen, o in zip(walks, scens, outs, strict=True):
        status = "skip" if o.status in ("skip", "refused") else o.status
        rep.walks.append(WalkResult(name, text, len(scen.steps), status, o.reason,
                                    o.divergences))


def _shrink(kernel: FuzzKernel, rep: KernelReport, prog: Progress) -> None:
    assert rep.version is not None
    todo = rep.diverging
    targets = [target(w.name, w.text, parse(w.text, f"{w.name}.cow"), w.divergences)
               for w in todo]

    def start_round(rnd: int, n: int) -> Callable[[], object]:
        prog.phase(f"{kernel.name}: shrinking {sum(not t.done for t in targets)} walks, "
                   f"round {rnd}", n)
        return prog.advance

    if targets:
        why = shrink(kernel, ModelBackend(rep.version), targets, start_round)
        if why:
            rep.notes.append(f"shrinking stopped: {why}")
    for w, t in zip(todo, targets, strict=True):
        w.shrunk = t.result()
        w.reproducer = reproducer(t, w.shrunk, w, rep)
        w.shrunk_steps = t.steps(w.shrunk.keep)


def reproducer(t: Target, s: Shrunk, w: WalkResult, rep: KernelReport) -> str:
    """The shrunk walk as a scenario file: what it is in ``about``, the steps, and its
    first divergence in comments at the end (the lines the divergences name stay)."""
    fields = ", ".join(sorted(s.fields))
    head = [f'title "{w.name} on {rep.name}"',
            f'about "{rep.name} (Linux {rep.version}) and the model at {rep.version} '
            f'disagree on {fields}: {w.name} ({w.steps} steps) shrunk to {len(s.keep)}'
            f'{"" if s.minimal else ", maybe not minimal"}"']
    first = group(s.divergences)
    tail = [f"# {g.describe('model', rep.name)}" for g in first
            if g.line == first[0].line]
    return "\n".join([*head, *t.steps(s.keep), *tail]) + "\n"


def reproducer_name(kernel: str, walk: str) -> str:
    """The file a reproducer is written to: ``KERNEL-walk-SEED-I.cow``."""
    return re.sub(r"[^\w.+-]", "-", kernel) + f"-{walk}.cow"


def fuzz(kernels: list[FuzzKernel], opts: Options,
         progress: Progress | None = None) -> FuzzReport:
    """Every kernel in turn (each closed when done)."""
    rep = FuzzReport(opts)
    try:
        for k in kernels:
            rep.kernels.append(fuzz_kernel(k, opts, progress))
    finally:
        for k in kernels:
            k.close()
    return rep
