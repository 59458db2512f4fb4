"""anonex fuzz: walks diffed on a kernel and the model, and the shrinking of those that
diverge. Without a VM: the "kernel" is the model at another version (5.8, where a pin or
vmsplice does not do what it does at 6.18), compared with the model at 6.18."""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import anonex.cli as cli
from anonex.fuzz import (
    BackendKernel,
    FuzzReport,
    Options,
    evaluate,
    fuzz,
    fuzz_kernel,
    live_kernel,
    reproducer_name,
    signature,
)
from anonex.fuzz.judge import model_refusal
from anonex.fuzz.shrink import kept
from anonex.harness.model import ModelBackend
from anonex.observation import PageObs, StepResult, Unsupported
from anonex.runner import Trace
from anonex.scenario.ast import Scenario, Step
from anonex.scenario.errors import ScenarioError
from anonex.scenario.parser import parse
from anonex.versions import KernelVersion

V = KernelVersion.parse
OPTS = Options(walks=30, seed=1, kinds=("anon",))
runner = CliRunner()


def model_kernel(max_rounds: int | None = None) -> BackendKernel:
    """The model at 5.8 standing in for a kernel, compared with the model at 6.18."""
    return BackendKernel("model-5.8", ModelBackend(V("5.8")), version=V("6.18"),
                         max_rounds=max_rounds)


class CountingKernel(BackendKernel):
    """Counts the batches (a booted kernel boots once for each)."""

    def __init__(self, max_rounds: int | None = None) -> None:
        super().__init__("model-5.8", ModelBackend(V("5.8")), version=V("6.18"),
                         max_rounds=max_rounds)
        self.batches: list[int] = []
        self.ran: list[tuple[str, ...]] = []  # every scenario's steps, in order

    def run(self, scens: list[Scenario]) -> Generator[Trace | str, None, None]:
        self.batches.append(len(scens))
        self.ran += [tuple(st.text() for st in s.steps) for s in scens]
        return super().run(scens)


def _still_diverges(text: str, fields: frozenset[str]) -> bool:
    """Whether *text* parses, the model takes it, and it diverges on *fields* again."""
    try:
        scen = parse(text, "candidate.cow")
    except ScenarioError:
        return False
    if model_refusal(scen, ModelBackend(V("6.18"))):
        return False
    [o] = evaluate(model_kernel(), ModelBackend(V("6.18")), [scen])
    return kept(o, fields)


def _without_step(text: str, n: int) -> str:
    """*text* without its *n*-th step line (the title and about lines are not steps)."""
    lines = text.splitlines()
    steps = [i for i, line in enumerate(lines) if line and not line.startswith(("title",
                                                                               "about", "#"))]
    del lines[steps[n]]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def report() -> Any:
    return fuzz_kernel(model_kernel(), OPTS)


def test_walks_diverge_and_each_is_counted_once(report: Any) -> None:
    assert len(report.walks) == 30
    assert report.count("skip") + report.count("agree") + report.count("diverge") == 30
    assert 0 < len(report.diverging) < 30
    assert report.version == V("6.18") and not report.unavailable


def test_reproducers_are_shorter_still_diverge_and_are_1_minimal(report: Any) -> None:
    for w in report.diverging:
        s = w.shrunk
        assert s is not None and s.minimal, w.name
        assert len(s.keep) <= w.steps
        assert s.fields == signature(w.divergences)
        assert _still_diverges(w.reproducer, s.fields), w.reproducer
        n_steps = len(parse(w.reproducer, "r.cow").steps)
        assert n_steps == len(s.keep)
        for n in range(n_steps):  # setup steps included: one the rest needs does not parse
            assert not _still_diverges(_without_step(w.reproducer, n), s.fields), \
                (w.name, n, w.reproducer)


def test_reproducer_names_its_divergence(report: Any) -> None:
    w = report.diverging[0]
    assert w.reproducer.startswith(f'title "{w.name} on model-5.8"')
    assert "# line " in w.reproducer and "model-5.8" in w.reproducer
    assert reproducer_name("debian:6.12", w.name) == f"debian-6.12-{w.name}.cow"


def _stable(doc: dict[str, Any]) -> dict[str, Any]:
    """*doc* without the times."""
    drop = ("seconds", "shrink_seconds")
    return {**doc, "kernels": [{k: v for k, v in kern.items() if k not in drop}
                               for kern in doc["kernels"]]}


def test_same_seed_same_output() -> None:
    a = fuzz([model_kernel()], OPTS).to_json()
    b = fuzz([model_kernel()], OPTS).to_json()
    assert _stable(a) == _stable(b)
    c = fuzz([model_kernel()], Options(walks=30, seed=2, kinds=("anon",))).to_json()
    assert _stable(c) != _stable(a)


def test_one_batch_per_round_and_the_round_cap() -> None:
    k = CountingKernel(max_rounds=1)
    rep = fuzz_kernel(k, OPTS)
    assert k.batches[0] == 30 and len(k.batches) == 2  # the walks, then one round
    assert all(w.shrunk is not None and w.shrunk.rounds == 1 for w in rep.diverging)
    assert not all(w.shrunk is not None and w.shrunk.minimal for w in rep.diverging)
    assert any("maybe not minimal" in w.reproducer for w in rep.diverging)
    unbounded = CountingKernel()
    rep = fuzz_kernel(unbounded, OPTS)
    rounds = [w.shrunk.rounds for w in rep.diverging if w.shrunk]
    assert len(unbounded.batches) == 1 + max(rounds)
    shrinking = unbounded.ran[30:]
    assert len(set(shrinking)) == len(shrinking)  # no candidate runs twice
    # walks that met the same disagreement shrank as one
    assert len(rep.distinct()) < len(rep.diverging)


class NoPins:
    """A kernel without the pins user space can take (as one without io_uring): the model
    at 6.18 otherwise."""

    name = "nopins"

    def __init__(self) -> None:
        self.model = ModelBackend(V("6.18"))
        self.version = self.model.version

    def start(self, scenario: Scenario) -> None:
        self.model.start(scenario)

    def step(self, st: Step) -> StepResult:
        if st.op == "pin":
            raise Unsupported("pin: no io_uring here")
        return self.model.step(st)

    def observe(self) -> list[PageObs]:
        return self.model.observe()

    def finish(self) -> None:
        self.model.finish()

    def environment(self) -> dict[str, Any]:
        return self.model.environment()


def test_a_step_the_kernel_cannot_take_skips_the_walk() -> None:
    k = BackendKernel("nopins", NoPins())
    rep = fuzz_kernel(k, OPTS)
    with_pin = [w for w in rep.walks if ": pin " in w.text]
    assert with_pin and all(w.status == "skip" for w in with_pin)
    assert rep.skip_reasons() == {"pin: no io_uring here": len(with_pin)}
    assert not rep.diverging  # the same model otherwise


def test_cli_text_json_and_reproducer_files(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setattr(cli, "_fuzz_kernels", lambda boot, no_live: ([model_kernel()], []))
    r = runner.invoke(cli.app, ["fuzz", "--walks", "12", "--kinds", "anon", "--out",
                                str(tmp_path)])
    assert r.exit_code == 1, r.output
    assert "anonex fuzz" in r.output and "diverges walk-1-" in r.output
    files = sorted(tmp_path.glob("model-5.8-walk-1-*.cow"))
    assert files and all(parse(f.read_text(), str(f)).steps for f in files)
    r = runner.invoke(cli.app, ["fuzz", "--walks", "12", "--kinds", "anon", "--json"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.output)
    [k] = doc["kernels"]
    assert k["walks"] == 12 and k["diverging"] == doc["diverging"] >= len(files)
    assert k["reproducers"] == len(files)  # walks that shrink alike share one file
    w = k["diverging_walks"][0]
    assert {"walk", "scenario", "fields", "divergences", "shrunk_steps", "minimal"} <= set(w)


def test_cli_usage_errors() -> None:
    for args in (["--no-live"], ["--steps", "x"], ["--steps", "5-2"], ["--kinds", "foo"]):
        r = runner.invoke(cli.app, ["fuzz", *args])
        assert r.exit_code == 2, (args, r.output)


def test_unavailable_kernel_exits_4(monkeypatch: pytest.MonkeyPatch) -> None:
    from anonex.fuzz import KernelReport

    monkeypatch.setattr(cli, "_fuzz_kernels", lambda boot, no_live: (
        [], [KernelReport("live", unavailable="no root")]))
    r = runner.invoke(cli.app, ["fuzz", "--walks", "3"])
    assert r.exit_code == 4 and "no root" in r.output


def test_live_kernel(live: None) -> None:
    rep: FuzzReport = fuzz([live_kernel()], Options(walks=6, seed=1, kinds=("anon",)))
    [k] = rep.kernels
    assert not k.unavailable, k.unavailable
    assert len(k.walks) == 6
    assert k.count("skip") + k.count("agree") + k.count("diverge") == 6
    for w in k.diverging:  # a model error: its reproducer is a scenario
        assert w.shrunk is not None and parse(w.reproducer, "r.cow").steps
