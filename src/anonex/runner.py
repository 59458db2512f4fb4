"""Running a scenario on a backend and judging it.

The runner feeds steps to a :class:`~anonex.observation.Backend`, takes an observation after
each, gives physical pages stable labels (p1, p2, … in order of first sight; a page that no
process maps any more is forgotten, so a recycled PFN gets a new label on the live kernel
just as a new page does in the model), works out the outcome of labelled accesses, and
checks each expectation where it stands. Nothing here knows which backend it talks to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from anonex.findings import Finding
from anonex.observation import Backend, PageObs, StepResult, Unsupported
from anonex.scenario import ast
from anonex.versions import KernelVersion

Verdict = Literal["pass", "fail", "xfail", "xpass", "skip"]
CheckResult = Literal["pass", "fail", "unobservable", "n/a"]
EXPECTED_VERDICTS: frozenset[str] = frozenset({"pass", "xfail", "skip"})


@dataclass(slots=True)
class ExpectRecord:
    expect: ast.Expect
    result: CheckResult
    detail: str = ""


@dataclass(slots=True)
class StepRecord:
    """One step, what it returned and what every page looked like afterwards."""

    step: ast.Step
    result: StepResult
    obs: dict[tuple[str, str, int], PageObs]
    outcome: str | None = None
    expects: list[ExpectRecord] = field(default_factory=list)


@dataclass(slots=True)
class Trace:
    """A whole run of one scenario on one backend, with its verdict."""

    scenario: ast.Scenario
    backend: str
    version: KernelVersion
    steps: list[StepRecord] = field(default_factory=list)
    initial_expects: list[ExpectRecord] = field(default_factory=list)
    vars: dict[str, str] = field(default_factory=dict)
    verdict: Verdict = "pass"
    reason: str = ""
    skip_reason: str = ""  # why the backend could not run a step (verdict skip)
    unobservable_count: int = -1  # kept when the steps are dropped (see ``light``)
    env: dict[str, Any] = field(default_factory=dict)

    @property
    def expects(self) -> list[ExpectRecord]:
        out = list(self.initial_expects)
        for s in self.steps:
            out.extend(s.expects)
        return out

    @property
    def unobservable(self) -> int:
        if self.unobservable_count >= 0:
            return self.unobservable_count
        return sum(1 for e in self.expects if e.result == "unobservable")

    def light(self) -> Trace:
        """The verdict without the steps (cheap to send between processes)."""
        self.unobservable_count = self.unobservable
        self.steps = []
        self.initial_expects = []
        return self

    @property
    def as_expected(self) -> bool:
        return self.verdict in EXPECTED_VERDICTS


def _obs_order(o: PageObs) -> tuple[int, str, int]:
    digits = o.proc[1:]
    return (int(digits) if digits.isdigit() else 0, o.region, o.index)


class _Labeler:
    def __init__(self) -> None:
        self.labels: dict[int, str] = {}
        self.next = 1

    def apply(self, obs: list[PageObs]) -> None:
        seen: set[int] = set()
        for o in obs:
            if o.ident is None or o.state != "present":
                continue
            seen.add(o.ident)
            if o.ident not in self.labels:
                self.labels[o.ident] = f"p{self.next}"
                self.next += 1
            o.page = self.labels[o.ident]
        for ident in [i for i in self.labels if i not in seen]:
            del self.labels[ident]


def _accessed(step: ast.Step) -> tuple[str, ast.Loc] | None:
    """The process and pages a labelled access touches (for its fault outcome)."""
    if step.loc is None:
        return None
    if step.op in ("write", "read", "touch", "dio_read", "dio_write"):
        assert step.proc is not None
        return (step.proc, step.loc)
    if step.op in ("peek", "poke", "force_write"):
        assert step.target is not None
        return (step.target, step.loc)
    return None


def fault_outcome(faults: int | None, before: PageObs | None, after: PageObs | None) -> str:
    """``new``, ``reused``, ``copied``, ``swapin`` or ``none``, from the page before and after."""
    if not faults:
        return "none"
    if before is None or before.state == "none":
        return "new"
    if before.state == "swapped":
        return "swapin"
    if after is not None and after.state == "present" and after.ident == before.ident:
        return "reused"
    return "copied"


class Runner:
    """Runs one scenario on one backend."""

    def __init__(self, backend: Backend, full: bool = True) -> None:
        self.backend = backend
        # full: observe after every step (traces, JSON, diffs); otherwise only where an
        # expectation or a labelled access needs it (verdicts are the same)
        self.full = full

    def run(self, scen: ast.Scenario) -> Trace:
        be = self.backend
        trace = Trace(scen, be.name, be.version)
        labeler = _Labeler()
        outcomes: dict[str, tuple[int, str]] = {}
        failed: list[str] = []
        # findings of the last step (its line, and the findings), until an `expect bug`
        # takes them
        pending: list[tuple[str, tuple[Finding, ...]]] = []
        obs: dict[tuple[str, str, int], PageObs] = {}
        try:
            be.start(scen)
            trace.env = be.environment()
            current: list[ExpectRecord] = trace.initial_expects
            need = _needs_observation(scen.stmts) if not self.full else None
            for i, st in enumerate(scen.stmts):
                if isinstance(st, ast.Expect):
                    rec = self._check(st, obs, trace.vars, outcomes, be.version, pending)
                    current.append(rec)
                    if rec.result == "fail":
                        failed.append(f"{st.pos.line}: {st.text()} ({rec.detail})")
                    continue
                failed.extend(text for text, _ in pending)
                pending = []
                try:
                    res = be.step(st)
                except Unsupported as e:
                    res = StepResult(skipped=str(e))
                if res.skipped is not None:
                    trace.steps.append(StepRecord(st, res, obs))
                    trace.verdict = "skip"
                    trace.reason = f"line {st.pos.line} ({st.text()}): {res.skipped}"
                    trace.skip_reason = res.skipped
                    return trace
                if need is None or need[i]:
                    snap = sorted(be.observe(), key=_obs_order)
                    labeler.apply(snap)
                    new_obs = {o.key: o for o in snap}
                else:
                    new_obs = {}
                rec_s = StepRecord(st, res, new_obs)
                if st.var is not None and res.value is not None:
                    trace.vars[st.var] = res.value
                if st.label is not None:
                    acc = _accessed(st)
                    first = None
                    if acc is not None:
                        first = acc[1].pages(1 << 30)[0]
                    key = (acc[0], acc[1].region, first) if acc and first is not None else None
                    out = fault_outcome(res.faults, obs.get(key) if key else None,
                                        new_obs.get(key) if key else None)
                    rec_s.outcome = out
                    outcomes[st.label] = (1 if res.faults else 0, out)
                trace.steps.append(rec_s)
                current = rec_s.expects
                obs = new_obs
                if res.error is not None:
                    failed.append(f"{st.pos.line}: {st.text()}: {res.error}")
                if res.finding is not None:
                    pending.append((f"{st.pos.line}: {st.text()}: {res.finding}",
                                    res.findings))
            failed.extend(text for text, _ in pending)
        finally:
            be.finish()
        xf = scen.xfail_for(be.version)
        if failed:
            trace.verdict = "xfail" if xf else "fail"
            trace.reason = failed[0] if not xf else f"{xf.why} [{failed[0]}]"
        elif xf:
            trace.verdict = "xpass"
            trace.reason = f"passed, but 'xfail {xf.on}' says: {xf.why}"
        return trace

    # ------------------------------------------------------------------------------------

    def _check(self, ex: ast.Expect, obs: dict[tuple[str, str, int], PageObs],
               vars_: dict[str, str], outcomes: dict[str, tuple[int, str]],
               version: KernelVersion,
               pending: list[tuple[str, tuple[Finding, ...]]]) -> ExpectRecord:
        if ex.on is not None and not ex.on.contains(version):
            return ExpectRecord(ex, "n/a", f"not on {version}")
        if isinstance(ex.cond, ast.Bug):
            want = ex.cond.text
            # a finding of its property (by name: `no-leak`; `kernel-bug`: any BUG_ON) or
            # with the text in its message; a backend without findings: the text
            hit = [p for p in pending if any(f.matches(want) for f in p[1]) or
                   (not p[1] and want in p[0])]
            for p in hit:
                pending.remove(p)  # an expected BUG does not fail the scenario
            return ExpectRecord(ex, "pass" if hit else "fail",
                                hit[0][0] if hit else "no such BUG in the last step")
        val, detail = evaluate(ex.cond, obs, vars_, outcomes)
        if val is None:
            return ExpectRecord(ex, "unobservable", detail)
        return ExpectRecord(ex, "pass" if val else "fail", detail)


def _page(obs: dict[tuple[str, str, int], PageObs], p: ast.PageRef) -> PageObs | None:
    assert p.loc.first is not None
    return obs.get((p.proc, p.loc.region, p.loc.first))


def evaluate(c: ast.Cond, obs: dict[tuple[str, str, int], PageObs], vars_: dict[str, str],
             outcomes: dict[str, tuple[int, str]]) -> tuple[bool | None, str]:
    """The truth of a condition (``None``: this backend cannot observe it) and what was seen."""
    if isinstance(c, ast.Not):
        v, d = evaluate(c.cond, obs, vars_, outcomes)
        return (None if v is None else not v), d
    if isinstance(c, ast.VarEq):
        got = vars_.get(c.var)
        return got == c.tag, f"{c.var} = {got!r}"
    if isinstance(c, ast.Faults):
        n, _ = outcomes.get(c.label, (0, "none"))
        return n == min(c.value, 1), f"@{c.label} faults = {n}"
    if isinstance(c, ast.Outcome):
        _, out = outcomes.get(c.label, (0, "none"))
        return out == c.outcome, f"@{c.label} was {out}"
    if isinstance(c, ast.Same):
        a, b = _page(obs, c.a), _page(obs, c.b)
        if a is None or b is None or a.state != "present" or b.state != "present":
            return False, "not both present"
        return a.ident == b.ident, f"{a.page} vs {b.page}"
    if isinstance(c, ast.Kpf | ast.PageTypes | ast.MemoryFailure):
        o = _page(obs, c.page)
        if o is None or o.state != "present":
            return False, "not present"
        word = o.extra.get("kpf")
        if isinstance(c, ast.MemoryFailure):
            mf = o.extra.get("memory_failure")
            if mf is None:
                return None, "memory-failure's decision is not observable here"
            return mf == c.what, f"memory-failure: {mf}"
        if word is None:
            return None, "kpageflags not observable here"
        if isinstance(c, ast.Kpf):
            from anonex.procfs import kpageflags as kpf

            return kpf.has(word, kpf.bit(c.flag.upper())), f"kpf = {word:#x}"
        from anonex.procfs.expand import raw_names

        names = raw_names(word)
        want = [n.strip() for n in c.names.split(",") if n.strip()]
        return all(n in names for n in want), f"page-types -r: {','.join(names)}"
    if isinstance(c, ast.Bug):
        return False, "bug expectations are checked by the runner"
    if isinstance(c, ast.Mapcount):
        o = _page(obs, c.page)
        mc = 0 if o is None or o.state != "present" else o.mapcount
        if mc is None:
            return None, "mapcount unknown"
        return mc == c.value, f"mapcount = {mc}"
    assert isinstance(c, ast.PageState)
    o = _page(obs, c.page)
    state = "none" if o is None else o.state
    if c.state in ("present", "swapped", "none"):
        return state == c.state, f"state = {state}"
    if o is None or state != "present":
        return False, f"state = {state}"
    field_ = {"exclusive": "anon_exclusive", "ksm": "ksm", "thp": "thp", "zero": "zero"}[c.state]
    v = getattr(o, field_)
    if v is None:
        return None, f"{field_} unknown here"
    return bool(v), f"{field_} = {int(bool(v))}"


def _needs_observation(stmts: list[ast.Stmt]) -> list[bool]:
    """For each statement: must the runner observe after it? Yes after a step that an
    expectation follows, a labelled step, and a step right before a labelled one."""
    need = [False] * len(stmts)
    for i, st in enumerate(stmts):
        if not isinstance(st, ast.Step):
            continue
        nxt = stmts[i + 1] if i + 1 < len(stmts) else None
        later_step = next((s for s in stmts[i + 1:] if isinstance(s, ast.Step)), None)
        need[i] = (isinstance(nxt, ast.Expect) or st.label is not None or
                   (later_step is not None and later_step.label is not None))
    return need


def run(scen: ast.Scenario, backend: Backend, full: bool = True) -> Trace:
    """Run *scen* on *backend* and return the judged trace (``full=False``: observe only
    where expectations need it — the verdict is the same, the trace thinner)."""
    return Runner(backend, full).run(scen)
