"""The properties a search checks, and what it found: the least counterexample of each
minimal set of mechanisms per property, and the least path to each sometimes property.

Both choices depend only on the set of candidates offered, not on the order they come in:
the checkers offer candidates from several processes, in any order, and get the result a
single process would.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from anonex.explore.checker.model import Finding, Model, Path, Sometimes, path_key
from anonex.explore.checker.result import Options, Stats, Stop, Violation


class Check:
    """The properties a search checks (:class:`Options` ``properties``), and what it
    found so far."""

    def __init__(self, model: Model[Any, Any], opts: Options) -> None:
        self.model = model
        some_all = model.sometimes()
        names = (*model.always(), *(s.name for s in some_all))
        sel = set(opts.properties) if opts.properties else set(names)
        unknown = sel - set(names)
        if unknown:
            raise ValueError(f"unknown property {sorted(unknown)[0]!r}; expected some of: "
                             + ", ".join(names))
        self.always = tuple(p for p in model.always() if p in sel)
        self.selected = frozenset(self.always) | model.reported()
        self.some: tuple[Sometimes[Any], ...] = tuple(s for s in some_all if s.name in sel)
        self.sometimes = tuple(s.name for s in self.some if s.expected)
        self.found: dict[str, list[Violation]] = {}
        self.reached: dict[str, Path] = {}
        self.per_property = max(1, opts.per_property)

    def relevant(self, findings: Sequence[Finding]) -> list[Finding]:
        """The findings of the selected properties, and every one the model reports
        whatever the selection."""
        sel = self.selected
        return [f for f in findings if f.property in sel]

    def hits(self, s: Any, skip: set[str]) -> list[str]:
        """The sometimes properties *s* satisfies (but those reached or in *skip*)."""
        return [p.name for p in self.some
                if p.name not in self.reached and p.name not in skip and p.test(s)]

    def offer(self, findings: Iterable[tuple[str, str]], path: Path) -> None:
        """Keep a counterexample per property and minimal set of mechanisms: the least
        path for each set, none whose set contains another's (it adds nothing), shortest
        first. *findings*: (property, message) pairs."""
        ops: frozenset[str] | None = None
        for prop, message in findings:
            if ops is None:
                ops = self.model.mechanisms(path)
            v = Violation(prop, message, path, ops)
            old = self.found.setdefault(prop, [])
            keep: list[Violation] = []
            add = True
            for o in old:
                if o.ops == ops:
                    if path_key(self.model.order, path) < path_key(self.model.order, o.path):
                        continue  # replaced
                    add = False
                elif o.ops < ops:
                    add = False
                elif ops < o.ops:
                    continue  # the new one is simpler
                keep.append(o)
            if add:
                keep.append(v)
            keep.sort(key=lambda x: path_key(self.model.order, x.path))
            old[:] = keep

    def reach(self, names: Iterable[str], path: Path) -> None:
        for n in names:
            old = self.reached.get(n)
            if old is None or path_key(self.model.order, path) < path_key(self.model.order, old):
                self.reached[n] = path

    def final(self) -> None:
        for vs in self.found.values():
            del vs[self.per_property:]
        for prop in [p for p, vs in self.found.items() if not vs]:
            del self.found[prop]


def pairs(findings: Iterable[Finding]) -> list[tuple[str, str]]:
    """Findings as (property, message) pairs, to send between processes."""
    return [(f.property, f.message) for f in findings]


class Clock:
    """Progress reports and the stop conditions of :class:`Options`."""

    def __init__(self, opts: Options, stats: Stats, chk: Check) -> None:
        self.opts = opts
        self.stats = stats
        self.chk = chk
        self.t0 = time.perf_counter()
        self.next_report = self.t0 + opts.progress_every

    @property
    def deadline(self) -> float | None:
        """When the search times out (``time.time()``, the same in every process)."""
        if self.opts.timeout is None:
            return None
        return time.time() + self.opts.timeout - (time.perf_counter() - self.t0)

    def tick(self, force: bool = False) -> None:
        """Report progress if it is time; raise :class:`Stop` when the search must end."""
        now = time.perf_counter()
        st = self.stats
        st.elapsed = now - self.t0
        st.violations = len(self.chk.found)
        if self.opts.progress is not None and (force or now >= self.next_report):
            self.next_report = now + self.opts.progress_every
            self.opts.progress(st)
        if self.opts.timeout is not None and st.elapsed >= self.opts.timeout:
            raise Stop("timeout")
        if self.opts.max_states is not None and st.distinct >= self.opts.max_states:
            raise Stop("max-states")
        if self.chk.found and self.opts.stop_on_first:
            raise Stop("violation")


def start(model: Model[Any, Any], chk: Check, stats: Stats) -> tuple[Any, bool]:
    """The initial state, counted and checked as every strategy begins: its always
    properties offered, its sometimes properties noted. True when it breaks one (then
    there is nothing to explore)."""
    s0 = model.initial()
    stats.distinct = 1
    found = chk.relevant(model.check(s0, None))
    chk.offer(pairs(found), ())
    chk.reach(chk.hits(s0, set()), ())
    return s0, bool(found)
