"""Findings as data: every property gets its violations by name, whatever the messages say.

Each case breaks one promise of the registry (:data:`anonex.findings.PROPERTIES`) on the
model, by corrupting its state right before a step (or, for a kernel bug, by a planted
fault), and checks that the runner and the explorer report it as that property. Under the
``reworded`` fixture every finding's message is the same meaningless text, so nothing can
be classified by what it says. A Python exception inside the model is a ``model-error``,
never a kernel finding; a step the model cannot take is an error of that step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from anonex.boot.record import result_from_json, result_to_json
from anonex.explore import cex
from anonex.explore.search import Options, explore
from anonex.explore.space import Action, Bounds
from anonex.explore.world import Space, World
from anonex.findings import PROPERTIES, Finding
from anonex.harness.model import ModelBackend
from anonex.kernel.folio import Page
from anonex.kernel.pgtable import Pte, SwapPte
from anonex.observation import PageObs, StepResult
from anonex.runner import Trace, run
from anonex.scenario import ast
from anonex.scenario.parser import parse
from anonex.versions import KernelVersion

V = KernelVersion.parse
REWORDED = "something happened"


@pytest.fixture
def reworded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every Finding made from now on says the same thing, whatever its property."""
    init = Finding.__init__

    def same_words(self: Finding, property: str, message: str, step: int | None = None,
                   page: str | None = None) -> None:
        init(self, property, REWORDED, step, page)

    monkeypatch.setattr(Finding, "__init__", same_words)
    yield
    assert Finding("accounting", "x").message == REWORDED  # the patch was in force


# -- breaking each promise -------------------------------------------------------------------


def _page(be: ModelBackend, proc: str = "P0", region: str = "A") -> Page:
    e = be.k.mms[proc].ptes[be.k.regions[region]]
    assert isinstance(e, Pte)
    return e.page


def _set_excl(page: Page, on: bool) -> None:
    bit = 1 << page.folio.layout.anon_exclusive
    page.flags = page.flags | bit if on else page.flags & ~bit


def _swap_cache_exclusive(be: ModelBackend) -> None:
    e = be.k.mms["P1"].ptes[be.k.regions["A"]]
    assert isinstance(e, SwapPte)
    cache = be.k.swap[e.slot].cache
    assert cache is not None
    _set_excl(cache.pages[0], True)


def _freed_with_flag(be: ModelBackend) -> None:
    page = _page(be)
    assert page.flags >> page.folio.layout.anon_exclusive & 1
    be.k.freed.append(page.folio)  # as if a free path had let it go with the flag


def _ksm_exclusive(be: ModelBackend) -> None:
    page = _page(be)
    assert page.folio.ksm
    _set_excl(page, True)


def _pin_elsewhere(be: ModelBackend) -> None:
    be.k.pins["buf"].refs[0].page = _page(be, region="B")  # a page P0 maps, not at A


def _owner_reads_other(be: ModelBackend) -> None:
    be.oracle.mem[("P0", be.k.regions["A"])] = "other"


def _swap_slot_lost(be: ModelBackend) -> None:
    e = be.k.mms["P0"].ptes[be.k.regions["A"]]
    assert isinstance(e, SwapPte)
    del be.k.swap[e.slot]  # a model bug: the swap-in looks up a slot that is gone


def _nothing(be: ModelBackend) -> None:
    pass


@dataclass(frozen=True)
class Case:
    """Setup steps, a corruption applied before the trigger step, and the property."""

    prop: str
    setup: str
    corrupt: Callable[[ModelBackend], None]
    trigger: str
    action: Action | None = None  # the trigger as an explorer action, where one is needed


ANON = 'P0: mmap A anon 1\nP0: write A "a"\n'
CASES = [
    Case("writable-exclusive", ANON, lambda be: _set_excl(_page(be), False), "P0: read A -> v"),
    Case("pinned-exclusive", ANON + "P0: pin A -> buf\n",
         lambda be: _set_excl(_page(be), False), "P0: read A -> v"),
    Case("swap-sanity", ANON + "P0: madvise A pageout\nP0: fork P1\nP0: read A -> v\n",
         _swap_cache_exclusive, "P0: read A -> w"),
    Case("free-sanity", ANON, _freed_with_flag, "P0: read A -> v"),
    Case("ksm-not-exclusive", 'P0: mmap A anon 2\nP0: write A "same"\n'
         "P0: madvise A mergeable\nksm-scan\n", _ksm_exclusive, "P0: read A[0] -> v"),
    Case("accounting", ANON, lambda be: setattr(_page(be).folio, "refcount", 5),
         "P0: read A -> v"),
    Case("isolation", ANON, lambda be: setattr(_page(be), "data", "evil"), "P0: read A -> v"),
    Case("no-leak", ANON + "P0: vmsplice A -> pipe\n",
         lambda be: setattr(_page(be), "data", "evil"), "P0: read pipe -> v"),
    Case("pin-coherence", ANON + 'P0: mmap B anon 1\nP0: write B "a"\nP0: pin A -> buf\n',
         _pin_elsewhere, "P0: dma-read buf -> v"),
    Case("pin-coherence", ANON + "P0: pin A -> buf\n", _owner_reads_other,
         "P0: dma-read buf -> v"),
    Case("no-kernel-bug", 'P0: mmap A anon 2\nP0: write A "same"\nP0: madvise A mergeable\n'
         "inject ksm-exclusive\n", _nothing, "ksm-scan", ("ksm-scan", "", "", -1, "")),
    Case("model-error", ANON + "P0: madvise A pageout\n", _swap_slot_lost, "P0: read A -> v",
         ("read", "P0", "A", 0, "")),
]


def test_every_property_has_a_case() -> None:
    assert {c.prop for c in CASES} == set(PROPERTIES)


class Corrupting:
    """The model backend, its state corrupted right before the step on line *line*."""

    def __init__(self, corrupt: Callable[[ModelBackend], None], line: int) -> None:
        self.be = ModelBackend(V("6.18"))
        self.name, self.version = self.be.name, self.be.version
        self.corrupt, self.line = corrupt, line

    def start(self, scenario: ast.Scenario) -> None:
        self.be.start(scenario)

    def step(self, step: ast.Step) -> StepResult:
        if step.pos.line == self.line:
            self.corrupt(self.be)
        return self.be.step(step)

    def observe(self) -> list[PageObs]:
        return self.be.observe()

    def finish(self) -> None:
        self.be.finish()

    def environment(self) -> dict[str, Any]:
        return self.be.environment()


def run_case(c: Case, expect: str | None = None) -> Trace:
    """The case as a scenario (with ``expect bug "expect"`` after the trigger, if given)."""
    text = f'title "t"\n{c.setup}{c.trigger}\n'
    line = text.count("\n")
    if expect is not None:
        text += f'expect bug "{expect}"\n'
    return run(parse(text, "t.cow"), Corrupting(c.corrupt, line))


def explore_case(c: Case) -> set[str]:
    """The properties the explorer reports for the case: in the corrupted state, and on
    the trigger, where it is an explorer action."""
    be = ModelBackend(V("6.18"))
    scen = parse(f'title "t"\n{c.setup}', "t.cow")
    be.start(scen)
    for st in scen.steps:
        assert not be.step(st).findings, st.text()
    c.corrupt(be)
    space = Space(Bounds(pages=2, kinds=("anon", "anon")), V("6.18"))
    w = World(be, 2)
    found: list[Finding] = []
    if c.action is not None:
        o = space.run(w, c.action)
        assert o is not None
        found += o.findings
        if o.crashed:
            return {f.property for f in found}
    found += space.check(w, False)
    return {f.property for f in found}


def _ids(c: Case) -> str:
    return f"{c.prop}-{c.corrupt.__name__.strip('_<>')}"


@pytest.mark.parametrize("words", ["own", "reworded"])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_runner_reports_each_property_by_name(case: Case, words: str,
                                              request: pytest.FixtureRequest) -> None:
    if words == "reworded":
        request.getfixturevalue("reworded")
    t = run_case(case)
    last = t.steps[-1].result
    assert case.prop in {f.property for f in last.findings}, last.findings
    assert all(f.step == case.setup.count("\n") + 2 for f in last.findings)
    assert last.finding == "; ".join(f.message for f in last.findings)
    assert t.verdict == "fail" and case.prop in cex.trace_properties(t)
    # `expect bug "PROPERTY"` takes it by name (never a model error: a bug of anonex)
    t = run_case(case, case.prop)
    assert t.verdict == ("fail" if case.prop == "model-error" else "pass"), t.reason


@pytest.mark.parametrize("words", ["own", "reworded"])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_explorer_reports_each_property_by_name(case: Case, words: str,
                                                request: pytest.FixtureRequest) -> None:
    if words == "reworded":
        request.getfixturevalue("reworded")
    assert case.prop in explore_case(case)


def test_expect_bug_by_name_by_kind_and_by_text() -> None:
    bug = next(c for c in CASES if c.prop == "no-kernel-bug")
    for what in ("no-kernel-bug", "kernel-bug", "PageAnonNotKsm"):
        t = run_case(bug, what)
        assert t.verdict == "pass", (what, t.reason)
    t = run_case(bug, "no-leak")
    assert t.verdict == "fail" and "no such BUG" in t.reason


def test_a_kernel_bug_is_expected_by_name_when_reworded(reworded: None) -> None:
    bug = next(c for c in CASES if c.prop == "no-kernel-bug")
    assert run_case(bug, "kernel-bug").verdict == "pass"
    assert run_case(bug, "PageAnonNotKsm").verdict == "fail"  # the text is gone


# -- model errors and steps the model cannot take -------------------------------------------


def test_an_exception_in_the_model_is_a_model_error() -> None:
    case = next(c for c in CASES if c.prop == "model-error")
    t = run_case(case)
    res = t.steps[-1].result
    assert [f.property for f in res.findings] == ["model-error"]
    assert res.finding is not None and "KeyError" in res.finding
    assert "a bug of anonex" in res.finding and "'P0: read A -> v'" in res.finding
    assert t.verdict == "fail" and "model error" in t.reason
    assert cex.trace_properties(t) == {"model-error"}


def test_the_explorer_reports_a_model_error_whatever_it_checks() -> None:
    case = next(c for c in CASES if c.prop == "model-error")
    assert explore_case(case) == {"model-error"}
    from anonex.explore.search import _Check

    space = Space(Bounds(), V("6.18"))
    chk = _Check(space, Options(properties=("no-leak",)))
    found = [Finding("model-error", "boom"), Finding("accounting", "x"),
             Finding("no-leak", "y")]
    assert [f.property for f in chk.relevant(found)] == ["model-error", "no-leak"]


def _steps(text: str) -> tuple[ModelBackend, list[ast.Step]]:
    scen = parse('title "t"\n' + text, "t.cow")
    be = ModelBackend(V("6.18"))
    be.start(scen)
    return be, scen.steps


@pytest.mark.parametrize("again,error", [
    ("P0: read pipe -> v", "read 'pipe': no pipe of that name holds pages"),
    ("P0: unpin buf", "unpin 'buf': nothing is registered"),
    ("P0: dma-read buf -> v", "dma-read 'buf': nothing is registered"),
    ('P0: dma-write buf "z"', "dma-write 'buf': nothing is registered"),
])
def test_a_handle_used_up_is_an_error_of_the_step(again: str, error: str) -> None:
    """The parser refuses these scenarios; the model does not rely on it."""
    be, steps = _steps(ANON + 'P0: vmsplice A -> pipe\nP0: read pipe -> v\nP0: pin A -> buf\n'
                       'P0: dma-write buf "z"\nP0: dma-read buf -> v\nP0: unpin buf\n')
    for st in steps:
        res = be.step(st)
        assert res.error is None and not res.findings, (st.text(), res)
    st = next(s for s in steps if s.text() == again)
    res = be.step(st)
    assert res.error is not None and res.error.startswith(error), res
    assert not res.findings


def test_vmsplice_into_a_full_pipe_is_not_in_the_model() -> None:
    be, steps = _steps(ANON + "P0: vmsplice A -> pipe\n")
    for st in steps:
        be.step(st)
    from anonex.observation import Unsupported

    with pytest.raises(Unsupported, match="holds pages already"):
        be.step(steps[-1])


# -- the explorer's searches, reworded --------------------------------------------------------


def test_explorer_searches_find_their_properties_when_reworded(reworded: None) -> None:
    space = Space(Bounds(depth=5), V("5.7"))
    res = explore(space, Options(properties=("no-leak",)))
    leak = res.violations["no-leak"][0]
    assert leak.message == REWORDED
    c = cex.make(space, leak)
    assert c.confirmed and "vmsplice" in c.known, c.replay  # the runner agrees, by name

    space = Space(Bounds(depth=4), V("5.9"))
    res = explore(space, Options(properties=("pin-coherence",)))
    assert all(cex.make(space, v).confirmed for v in res.violations["pin-coherence"])

    ops = ("write", "mergeable", "ksm-scan")
    space = Space(Bounds(pages=2, ops=ops, depth=4, inject=("ksm-exclusive",)), V("6.18"))
    res = explore(space)
    assert set(res.violations) == {"no-kernel-bug"}
    assert cex.make(space, res.violations["no-kernel-bug"][0]).confirmed


def test_finding_registry() -> None:
    assert list(PROPERTIES)[-1] == "model-error"
    assert {p.kind for p in PROPERTIES.values()} == {"always", "kernel-bug", "model-error"}
    with pytest.raises(ValueError, match="unknown property"):
        Finding("no-such-promise", "x")


def test_findings_travel_with_a_recorded_step_result() -> None:
    res = StepResult(value="a", finding="m", findings=(Finding("no-leak", "m", 3, "pfn#1"),))
    assert result_from_json(result_to_json(res)) == res
    assert result_to_json(StepResult(value="a")) == {"value": "a"}
