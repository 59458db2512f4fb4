"""``anonex check`` without its output: run scenarios on the model at each chosen version and
on each real kernel, diff every real-kernel run with the model, and return a
:class:`~anonex.report.result.CheckResult` for a renderer.

The model matrix runs in worker processes while this process drives the kernels one after
the other (the running kernel first, which booted guests would slow down); each real run is
diffed with the model in a worker too. A kernel's model runs with the rules it showed when
they are known: read first from the kernel itself (*catalog*, ``--rules-from-live``) or
found in fingerprint documents (*read*) by release.
"""

from __future__ import annotations

import copy
import json
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from anonex.boot.backend import BootedKernel
from anonex.diff import Divergence, diff
from anonex.fingerprint import Catalog, judge_traces, run_catalog
from anonex.fingerprint.document import KernelRules
from anonex.harness.model import ModelBackend
from anonex.live import LiveUnavailable
from anonex.observation import Backend
from anonex.report.jsonout import trace_json
from anonex.report.result import CheckResult, Diverging, KernelColumn
from anonex.runner import Trace, run
from anonex.scenario.ast import Scenario
from anonex.scenario.parser import parse_file


class Progress(Protocol):
    """Where the check reports how far it is (runs done, and which backend is working)."""

    def total(self, runs: int) -> None: ...

    def done(self, runs: int, backend: str) -> None: ...

    def working(self, backend: str) -> None: ...


class _Quiet:
    def total(self, runs: int) -> None:
        pass

    def done(self, runs: int, backend: str) -> None:
        pass

    def working(self, backend: str) -> None:
        pass


@dataclass
class RealKernel:
    """A real kernel to check: its column and backend, or why there is none."""

    column: str
    backend: Backend | None
    why: str = ""


@dataclass
class Options:
    models: list[KernelRules]  # the model columns
    read: list[KernelRules] = field(default_factory=list)  # fingerprints, for the diffs
    catalog: Catalog | None = None  # read each kernel's rules first (--rules-from-live)
    layout: str | None = None
    keep_runs: bool = False  # keep full traces of the real kernels and their model runs
    draw: bool = False  # draw every model run for the HTML report (CheckResult.blobs)


def check(scens: list[Scenario], kernels: list[RealKernel], opts: Options,
          progress: Progress | None = None) -> CheckResult:
    """Run the check; booted kernels are closed before it returns."""
    prog = progress or _Quiet()
    models = opts.models
    n_real = sum(1 for k in kernels if k.backend is not None)
    prog.total(len(scens) * (len(models) + 2 * n_real))
    result = CheckResult(scens, [m.label for m in models], [], {})
    diff_jobs: list[tuple[str, str, Future[tuple[Trace, list[Divergence]]]]] = []
    try:
        with ProcessPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            futures = [pool.submit(_model_matrix, s.path, models, opts.layout, opts.draw)
                       for s in scens]
            for fut in futures:
                fut.add_done_callback(lambda f: prog.done(len(models), "model"))
            for i, k in enumerate(kernels):
                col = KernelColumn(k.column)
                result.kernels.append(col)
                if k.backend is None:
                    col.not_run = k.why
                    continue
                # booted kernels run two at a time (a guest under emulation uses about one
                # core: the next one boots while this one's results are replayed), after
                # the running kernel's own run, which they would slow down
                if isinstance(k.backend, BootedKernel):
                    for ahead in kernels[i:i + 2]:
                        if isinstance(ahead.backend, BootedKernel):
                            ahead.backend.launch()
                prog.working(k.column)
                col.not_run = _run_kernel(col, k.backend, scens, pool, result, diff_jobs,
                                          opts, prog)
            for name, column, job in diff_jobs:
                mt, divs = job.result()
                if divs:
                    result.diverging.append(Diverging(name, column, mt.backend, divs))
                if opts.keep_runs:
                    result.runs[(name, f"model@{column}")] = mt
            for s, fut in zip(scens, futures, strict=True):
                for m, (t, blob) in zip(models, fut.result(), strict=True):
                    t.scenario = s
                    result.cells[(s.name, m.label)] = t
                    if blob is not None:
                        result.blobs[(s.name, m.label)] = blob
    finally:
        for k in kernels:
            if isinstance(k.backend, BootedKernel):
                k.backend.close()
    for col in result.kernels:  # a guest's run time is known once it has finished
        be = next(k.backend for k in kernels if k.column == col.column)
        if isinstance(be, BootedKernel) and col.version is not None:
            col.env = {**col.env, **be.boot_facts()}
    order = {s.name: i for i, s in enumerate(scens)}
    columns = {c: i for i, c in enumerate(result.columns)}
    result.cells = dict(sorted(result.cells.items(),
                               key=lambda kv: (order[kv[0][0]], columns.get(kv[0][1], 0))))
    return result


def _run_kernel(col: KernelColumn, be: Backend, scens: list[Scenario],
                pool: ProcessPoolExecutor, result: CheckResult,
                diff_jobs: list[tuple[str, str, Future[tuple[Trace, list[Divergence]]]]],
                opts: Options, prog: Progress) -> str:
    """Every scenario on one real kernel; the model at its version and the diff go to the
    worker pool. Returns why it stopped early ("")."""
    done: dict[str, Trace] = {}
    rules: KernelRules | None = None
    if opts.catalog is not None:
        try:
            traces = run_catalog(be, opts.catalog)
        except LiveUnavailable as e:
            return e.reason
        done = {t.scenario.path: t for t in traces}
        rules = KernelRules.of(judge_traces(col.column, traces, opts.catalog))
    for s in scens:
        try:
            lt = done.get(s.path) or run(s, be)
        except LiveUnavailable as e:
            return e.reason
        if rules is None and opts.read:
            rel = str(lt.env.get("kernel_release", ""))
            rules = next((r for r in opts.read if r.release == rel and
                          r.version == lt.version), None)
        if col.version is None:
            col.version = lt.version
            col.env = dict(lt.env)
            if rules is not None:
                differs = ", ".join(rules.differs()) or "none"
                col.env["notes"] = [*(col.env.get("notes") or []),
                                    "the model runs with the rules this kernel showed "
                                    f"(unlike its version: {differs})"]
        job = pool.submit(_diff_with_model, lt, rules, opts.keep_runs)
        job.add_done_callback(lambda f: prog.done(2, col.column))
        diff_jobs.append((s.name, col.column, job))
        if opts.keep_runs:
            result.runs[(s.name, col.column)] = lt
        result.cells[(s.name, col.column)] = copy.copy(lt).light()
    return ""


def _diff_with_model(lt: Trace, rules: KernelRules | None, keep: bool
                     ) -> tuple[Trace, list[Divergence]]:
    """The model at the real kernel's version (with the rules it showed, when read), run
    like the real run, and the divergences (in a worker process). The model's trace comes
    back whole only when *keep*."""
    be = ModelBackend(lt.version) if rules is None else \
        ModelBackend(lt.version, rules=rules.rules(), name=f"model@{rules.label}")
    mt = run(lt.scenario, be)
    divs = diff(mt, lt)
    return (mt if keep else mt.light()), divs


def _model_matrix(path: str, models: list[KernelRules], layout: str | None, draw: bool
                  ) -> list[tuple[Trace, tuple[str, str] | None]]:
    """One scenario on the model at every version (in a worker process): light traces,
    each with its picture for the HTML report when *draw* (runs that observe the same at
    several versions drawn once)."""
    scen = parse_file(path)
    out: list[tuple[Trace, tuple[str, str] | None]] = []
    drawn: dict[str, tuple[str, str]] = {}
    for m in models:
        be = ModelBackend(m.version, layout=layout, rules=m.rules(), name=f"model@{m.label}",
                          detail=draw)
        t = run(scen, be, full=draw)
        blob = None
        if draw:
            from anonex.report.html import run_blob

            sig = json.dumps(trace_json(t)["steps"], sort_keys=True, default=str)
            blob = drawn.get(sig) or drawn.setdefault(sig, run_blob(t))
        out.append((t.light(), blob))
    return out
