"""Shrinking a diverging walk to a minimal scenario that still diverges the same way.

A candidate is the walk with some of its steps left out. It is kept only when it still
parses, the model takes it to its end, the kernel takes every step, and its first
diverging step diverges on every field the walk's first diverging step did
(:func:`~anonex.fuzz.judge.signature`): the same disagreement, not just any.

Shrinking goes in rounds, and a round is one batch for the kernel (one boot for a kernel
booted in a VM), holding the candidates of every walk still shrinking:

* the walk cut after its first diverging step (the steps after it cannot matter to it);
* that cut walk without each one of its steps in turn, setup steps included (an ``mmap``
  the rest needs, a ``fork`` whose child acts later, a ``pin`` that is unpinned later,
  cannot go: the candidate no longer parses and is dropped before any run);
* without all the steps that could each go in the round before, at once.

The smallest candidate kept becomes the walk of the next round. A round that keeps none
of the single-step removals of the walk itself proves it 1-minimal: it stops there. A
kernel may cap the rounds (:data:`~anonex.fuzz.kernels.BOOT_ROUNDS`), and the reproducer
then says it may not be minimal. Walks that come to the same steps (many walks meet the
same disagreement) shrink as one from then on, and no candidate runs twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from anonex.diff import Divergence
from anonex.fuzz.judge import Outcome, evaluate, signature
from anonex.fuzz.kernels import FuzzKernel
from anonex.harness.model import ModelBackend
from anonex.scenario.ast import Scenario
from anonex.scenario.errors import ScenarioError
from anonex.scenario.parser import parse

#: the lines before the first step of a walk (title, about)
HEAD_LINES = 2
Keep = tuple[int, ...]  # the indexes of the walk's steps a candidate keeps, in order


@dataclass(slots=True)
class Shrunk:
    """Where shrinking one walk got: its steps (``keep``), the divergences of that
    scenario, the fields it diverges on, the rounds it took, and whether it is proved
    1-minimal (no single step can go)."""

    keep: Keep
    divergences: list[Divergence]
    fields: frozenset[str]
    rounds: int = 0
    minimal: bool = False


@dataclass(slots=True)
class Target:
    """One walk being shrunk."""

    name: str
    head: list[str]  # the title and about lines
    lines: list[str]  # every step of the walk, as text
    best: Shrunk
    removable: frozenset[int] = frozenset()  # steps that could each go in the last round
    cut: bool = True  # try the walk cut after its first diverging step
    done: bool = False
    # shrinking as another walk that came to the same steps: it, and its steps' indexes
    # to this walk's
    merged: tuple[Target, dict[int, int]] | None = None

    def steps(self, keep: Keep) -> tuple[str, ...]:
        return tuple(self.lines[i] for i in keep)

    def text(self, keep: Keep) -> str:
        return "\n".join([*self.head, *self.steps(keep)]) + "\n"

    def result(self) -> Shrunk:
        """Where shrinking got, for a merged walk too (in its own steps' indexes)."""
        if self.merged is None:
            return self.best
        lead, to_mine = self.merged
        b = lead.result()
        return Shrunk(tuple(to_mine[i] for i in b.keep), b.divergences, b.fields, b.rounds,
                      b.minimal)

    def first_step(self) -> int:
        """The position in ``best.keep`` of the first diverging step."""
        line = self.best.divergences[0].line
        return min(max(line - HEAD_LINES - 1, 0), len(self.best.keep) - 1)

    def candidates(self) -> list[tuple[Keep, int | None]]:
        """This round's candidates, each with the step of the walk it leaves out of the
        cut walk (``None`` for the cut itself and the combined one)."""
        keep = self.best.keep
        base = keep[:self.first_step() + 1] if self.cut else keep
        out: list[tuple[Keep, int | None]] = []
        if base != keep:
            out.append((base, None))
        combined = tuple(i for i in base if i not in self.removable)
        if len(base) - len(combined) >= 2:
            out.append((combined, None))
        out += [(base[:j] + base[j + 1:], base[j]) for j in range(len(base))]
        seen: set[Keep] = set()
        unique = []
        for c in out:
            if c[0] not in seen:
                seen.add(c[0])
                unique.append(c)
        return unique


def target(name: str, text: str, scen: Scenario, divs: list[Divergence]) -> Target:
    """A walk to shrink: its text, its parsed scenario and its divergences."""
    head = text.splitlines()[:HEAD_LINES]
    lines = [st.text() for st in scen.steps]
    if [st.pos.line for st in scen.steps] != list(range(HEAD_LINES + 1,
                                                         HEAD_LINES + 1 + len(lines))):
        raise ValueError(f"{name}: a walk is {HEAD_LINES} header lines and one step a line")
    keep = tuple(range(len(lines)))
    return Target(name, head, lines, Shrunk(keep, divs, signature(divs)))


def kept(o: Outcome, want: frozenset[str]) -> bool:
    """Whether a candidate's outcome is the same disagreement."""
    return o.status == "diverge" and want <= signature(o.divergences)


def shrink(kernel: FuzzKernel, model: ModelBackend, targets: list[Target],
           start_round: Callable[[int, int], Callable[[], object]] = lambda r, n: lambda: None,
           ) -> str:
    """Shrink every target in rounds of one batch each, at most ``kernel.max_rounds``;
    :meth:`Target.result` says where each got. Walks that come to the same steps (with
    the same fields) shrink as one from then on, and no scenario runs twice.
    *start_round(round, candidates)* is called before each round's batch and returns
    what to call after each candidate (progress). Returns why the kernel stopped being
    available ("" when it did not)."""
    from anonex.live import LiveUnavailable

    seen: dict[tuple[str, ...], Outcome] = {}  # every candidate run, by its steps
    rnd = 0
    while kernel.max_rounds is None or rnd < kernel.max_rounds:
        active = _merge([t for t in targets if not t.done])
        if not active:
            break
        rnd += 1
        cands: list[tuple[Target, Keep, int | None]] = []
        batch: dict[tuple[str, ...], Scenario] = {}
        for t in active:
            t.best.rounds = rnd
            for keep, left_out in t.candidates():
                steps = t.steps(keep)
                if steps not in seen and steps not in batch:
                    try:
                        batch[steps] = parse(t.text(keep), f"{t.name}-r{rnd}c{len(batch)}.cow")
                    except ScenarioError:
                        continue
                cands.append((t, keep, left_out))
        advance = start_round(rnd, len(batch))
        try:
            seen.update(zip(batch, evaluate(kernel, model, list(batch.values()), advance),
                            strict=True))
        except LiveUnavailable as e:
            return e.reason
        for t in active:
            good = [(keep, left_out, seen[t.steps(keep)]) for tt, keep, left_out in cands
                    if tt is t and kept(seen[t.steps(keep)], t.best.fields)]
            if good:
                keep, _, o = min(good, key=lambda g: len(g[0]))
                t.best = Shrunk(keep, o.divergences, t.best.fields, rnd)
                t.removable = frozenset(x for _, x, _ in good if x is not None)
                t.cut = True
            elif t.cut and t.first_step() + 1 < len(t.best.keep):
                t.cut = False  # the cut walk did not diverge again: try the whole one
            else:
                t.best.minimal = t.done = True
    return ""


def _merge(active: list[Target]) -> list[Target]:
    """The targets that still shrink on their own: of those now at the same steps with the
    same fields, the first; the others follow it (:attr:`Target.merged`)."""
    leads: dict[tuple[tuple[str, ...], frozenset[str]], Target] = {}
    out = []
    for t in active:
        lead = leads.setdefault((t.steps(t.best.keep), t.best.fields), t)
        if lead is t:
            out.append(t)
        else:
            t.merged = (lead, dict(zip(lead.best.keep, t.best.keep, strict=True)))
            t.done = True
    return out
