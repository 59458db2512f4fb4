"""Which side of each version-table row a kernel is on, read from what it did.

For a rule and a scenario that asks about it, the model runs the scenario twice at the
kernel's version: once with the rule, once without (every other rule as the table gives it
for that version, or as the kernel showed it: see below). The kernel's own run of the same
scenario is then compared with both (:func:`agrees`: no divergence, and no expectation
that one side passes and the other fails where both can tell). Agreeing with exactly one
side reads the rule; with both, the kernel cannot show the difference; with neither, the
kernel did something the model does not do on either side (a divergence to look at).

Rules read this way feed back: a rule the kernel showed unlike its version's table row is
taken as the kernel's for the next reading of the others, until nothing changes (a
backport can decide what another rule's scenario sees).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from anonex.diff import FIELDS, diff
from anonex.fingerprint.catalog import UNOBSERVABLE, Catalog
from anonex.harness.model import ModelBackend
from anonex.kernel.versions import BOUNDARIES, Boundary, Rules, boundary_versions
from anonex.runner import Trace, run
from anonex.scenario.ast import Scenario
from anonex.versions import KernelVersion

#: what one scenario says of one rule on a kernel
Says = Literal["holds", "absent", "both", "neither", "silent", "skip"]
#: a rule's line in the fingerprint, against the version table
Mark = Literal["as expected", "backported", "missing", "unobservable", "inconsistent"]

_BY_NAME = {b.name: b for b in BOUNDARIES}
_MAX_ROUNDS = 4


@dataclass(frozen=True, slots=True)
class Reading:
    """What one scenario's run on the kernel says of one rule."""

    scenario: str
    says: Says
    detail: str = ""


@dataclass(slots=True)
class RuleResult:
    """One row of the version table on one kernel."""

    rule: str
    expected: bool  # the table's answer for the kernel's version (stable backports included)
    observed: bool | None  # what the kernel showed; None: it could not show it
    mark: Mark
    reason: str = ""  # why unobservable or inconsistent; what differs
    readings: list[Reading] = field(default_factory=list)

    @property
    def boundary(self) -> Boundary:
        return _BY_NAME[self.rule]

    @property
    def differs(self) -> bool:
        return self.mark in ("backported", "missing", "inconsistent")


@dataclass(slots=True)
class Fingerprint:
    """The rules one kernel showed, row by row."""

    kernel: str  # the backend's name (live, debian:6.12, …)
    version: KernelVersion  # its upstream version, as the backend found it
    release: str  # uname -r
    results: list[RuleResult]
    closest: KernelVersion  # the modelled era whose rules are nearest what it showed
    closest_misses: int  # observed rules on which that era differs
    seconds: float = 0.0
    env: dict[str, object] = field(default_factory=dict)

    @property
    def observed(self) -> dict[str, bool]:
        return {r.rule: r.observed for r in self.results if r.observed is not None}

    @property
    def overrides(self) -> dict[str, bool]:
        """The rules on which the kernel differs from its version's table row."""
        return {r.rule: bool(r.observed) for r in self.results
                if r.observed is not None and r.observed != r.expected}

    def rules(self) -> Rules:
        """The rules to model this kernel with: what it showed, the table for the rest."""
        return Rules(self.version, self.overrides)

    @property
    def differing(self) -> list[RuleResult]:
        return [r for r in self.results if r.differs]


# -- comparing runs -----------------------------------------------------------------------


def agrees(model: Trace, kernel: Trace) -> tuple[bool, str]:
    """Whether *kernel*'s run shows nothing *model*'s does not: no divergence, and every
    expectation both can judge judged alike. The second value names the first difference."""
    if (model.verdict == "skip") != (kernel.verdict == "skip"):
        return False, f"one side could not run: {model.reason or kernel.reason}"
    divs = diff(model, kernel)
    if divs:
        return False, divs[0].describe("model", "kernel")
    for em, ek in zip(model.expects, kernel.expects, strict=False):
        if {em.result, ek.result} == {"pass", "fail"}:
            return False, (f"line {em.expect.pos.line} ({em.expect.text()}): model "
                           f"{em.result}, kernel {ek.result} ({ek.detail})")
    return True, ""


def _hidden(on: Trace, off: Trace, kernel: Trace) -> str:
    """What tells the model's two sides apart but the kernel cannot show (its fields)."""
    divs = diff(on, off)
    unknown: list[str] = []
    for d in divs:
        if d.field in FIELDS and d.proc is not None:
            rec = next((s for s in kernel.steps if s.step.pos.line == d.line), None)
            o = rec.obs.get((d.proc, d.region or "", d.index or 0)) if rec else None
            if o is not None and getattr(o, d.field, 0) is None and d.field not in unknown:
                unknown.append(d.field)
    if unknown:
        return f"the kernel does not show {', '.join(unknown)}"
    if divs:
        return f"the sides differ in {divs[0].what}, which the kernel does not show"
    return "the sides differ only in an expectation the kernel cannot judge"


# -- the model, cached by the rules it runs with ------------------------------------------


class ModelRuns:
    """Model runs of scenarios at one version, cached by the set of rules in force."""

    def __init__(self, version: KernelVersion) -> None:
        self.version = version
        self._cache: dict[tuple[str, frozenset[str]], Trace] = {}
        self.count = 0

    def trace(self, scen: Scenario, rules: Rules) -> Trace:
        key = (scen.path, _on(rules))
        t = self._cache.get(key)
        if t is None:
            t = run(scen, ModelBackend(self.version, rules=rules))
            self._cache[key] = t
            self.count += 1
        return t


def _on(rules: Rules) -> frozenset[str]:
    return frozenset(b.name for b in BOUNDARIES if getattr(rules, b.name))


def _with(version: KernelVersion, base: dict[str, bool], **flip: bool) -> Rules:
    return Rules(version, {**base, **flip})


# -- reading one rule ---------------------------------------------------------------------


def read_rule(rule: str, scen: Scenario, kernel: Trace, model: ModelRuns,
              base: dict[str, bool]) -> Reading:
    """What *kernel*'s run of *scen* says of *rule*, the other rules as in *base*."""
    if kernel.verdict == "skip":
        return Reading(scen.name, "skip", kernel.skip_reason or kernel.reason)
    v = model.version
    on = model.trace(scen, _with(v, base, **{rule: True}))
    off = model.trace(scen, _with(v, base, **{rule: False}))
    same, _ = agrees(on, off)
    if same:
        return Reading(scen.name, "silent", _silent_why(rule, scen, model, base))
    a_on, why_on = agrees(on, kernel)
    a_off, why_off = agrees(off, kernel)
    if a_on and a_off:
        return Reading(scen.name, "both", _hidden(on, off, kernel))
    if a_on:
        return Reading(scen.name, "holds")
    if a_off:
        return Reading(scen.name, "absent")
    return Reading(scen.name, "neither", f"with it: {why_on}; without it: {why_off}")


def _silent_why(rule: str, scen: Scenario, model: ModelRuns, base: dict[str, bool]) -> str:
    """Why *scen* cannot tell *rule* apart with this kernel's rules: the fewest other rules
    that, set as in the era where the scenario tells (the newest boundary among the rules
    it names), would let it."""
    v = model.version
    here = Rules(v, base)
    era = Rules(max(_BY_NAME[name].since for name, _ in scen.rules))

    def tells(flips: dict[str, bool]) -> bool:
        on = model.trace(scen, _with(v, {**base, **flips}, **{rule: True}))
        off = model.trace(scen, _with(v, {**base, **flips}, **{rule: False}))
        return not agrees(on, off)[0]

    need = {b.name: bool(getattr(era, b.name)) for b in BOUNDARIES
            if b.name != rule and b.modelled and getattr(era, b.name) != getattr(here, b.name)}
    if not need or not tells(need):
        return "tells it apart only in another era"
    for name in list(need):  # drop every rule the scenario can do without
        rest = {k: val for k, val in need.items() if k != name}
        if tells(rest):
            need = rest
    held = [n for n, val in need.items() if val]
    absent = [n for n, val in need.items() if not val]
    parts = ([f"{_and(held)} held"] if held else []) + \
        ([f"{_and(absent)} absent"] if absent else [])
    return f"shows only with {' and '.join(parts)}, unlike this kernel"


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def judge_rule(rule: str, scens: Iterable[Scenario], kernel: dict[str, Trace],
               model: ModelRuns, base: dict[str, bool], expected: bool) -> RuleResult:
    """Every scenario's reading of *rule*, summed up against the table's *expected*."""
    readings = [read_rule(rule, s, kernel[s.name], model, base) for s in scens
                if s.name in kernel]
    says = {r.says for r in readings}
    decided = says & {"holds", "absent"}
    if len(decided) == 2:
        return RuleResult(rule, expected, None, "inconsistent",
                          "scenarios disagree: " + ", ".join(f"{r.scenario} {r.says}"
                                                             for r in readings), readings)
    if decided:
        observed = decided == {"holds"}
        mark: Mark = "as expected" if observed == expected else _mark(rule, observed)
        reason = "" if "neither" not in says else "another scenario diverges"
        return RuleResult(rule, expected, observed, mark, reason, readings)
    if "neither" in says:
        first = next(r for r in readings if r.says == "neither")
        return RuleResult(rule, expected, None, "inconsistent",
                          f"{first.scenario} matches neither side: {first.detail}", readings)
    why = "; ".join(f"{r.scenario}: {r.detail}" for r in readings) or "no scenario asks"
    return RuleResult(rule, expected, None, "unobservable", why, readings)


def _mark(rule: str, observed: bool) -> Mark:
    """A rule shown unlike the table: "backported" when the kernel is ahead of its version
    (it has the change that brought the rule, or the one that removed it), "missing" when
    behind."""
    b = _BY_NAME[rule]
    if b.until is None:
        return "backported" if observed else "missing"
    # a rule that was later removed: holding it is being behind the removal
    return "missing" if observed else "backported"


# -- the whole fingerprint ----------------------------------------------------------------


def judge(kernel_name: str, version: KernelVersion, release: str, catalog: Catalog,
          traces: dict[str, Trace],
          progress: Callable[[str], object] | None = None) -> Fingerprint:
    """The fingerprint of a kernel from its runs (*traces*, by scenario name) of the
    *catalog*'s scenarios; rows no scenario asks are unobservable, with the catalogue's
    reason."""
    model = ModelRuns(version)
    table = Rules(version)
    base: dict[str, bool] = {}
    results: list[RuleResult] = []
    for _ in range(_MAX_ROUNDS):
        results = []
        for b in BOUNDARIES:
            expected = bool(getattr(table, b.name))
            asking = catalog.asking(b.name)
            if progress is not None:
                progress(b.name)
            if not asking:
                results.append(RuleResult(b.name, expected, None, "unobservable",
                                          UNOBSERVABLE.get(b.name, "no scenario asks")))
                continue
            rest = {k: val for k, val in base.items() if k != b.name}
            results.append(judge_rule(b.name, asking, traces, model, rest, expected))
        shown = {r.rule: bool(r.observed) for r in results
                 if r.observed is not None and r.observed != r.expected}
        if shown == base:
            break
        base = shown
    closest, misses = closest_era({r.rule: r.observed for r in results
                                   if r.observed is not None}, version)
    return Fingerprint(kernel_name, version, release, results, closest, misses)


def closest_era(observed: dict[str, bool], version: KernelVersion) -> tuple[KernelVersion, int]:
    """The modelled era (a version where the table changes) whose rules differ from
    *observed* on the fewest rules; of equals, the one nearest *version*."""
    def key(v: KernelVersion) -> tuple[int, int]:
        rules = Rules(v)
        misses = sum(1 for name, val in observed.items() if getattr(rules, name) != val)
        dist = abs((v.major * 1000 + v.minor) * 1000 + (v.patch or 0) -
                   ((version.major * 1000 + version.minor) * 1000 + (version.patch or 0)))
        return misses, dist

    best = min(boundary_versions(), key=key)
    return best, key(best)[0]
