"""``--json``: one document per run (scenario, backend, steps, vars and verdicts), and one
per check."""

from __future__ import annotations

from typing import Any

from anonex.diff import group
from anonex.report.result import CheckResult
from anonex.runner import Trace


def trace_json(t: Trace) -> dict[str, Any]:
    return {
        "scenario": {"name": t.scenario.name, "path": t.scenario.path,
                     "title": t.scenario.title, "about": t.scenario.about},
        "backend": {"name": t.backend, "kernel": str(t.version), "env": t.env},
        "steps": [
            {
                "line": r.step.pos.line,
                "step": r.step.text(),
                "label": r.step.label,
                "value": r.result.value,
                "faults": r.result.faults,
                "outcome": r.outcome,
                "skipped": r.result.skipped,
                "error": r.result.error,
                "finding": r.result.finding,
                "findings": [{"property": f.property, "message": f.message,
                              "line": f.step, "page": f.page} for f in r.result.findings],
                "observations": [o.to_json() for o in r.obs.values()],
                "expects": [{"line": e.expect.pos.line, "expect": e.expect.text(),
                             "result": e.result, "detail": e.detail} for e in r.expects],
            }
            for r in t.steps
        ],
        "vars": t.vars,
        "verdicts": {"verdict": t.verdict, "reason": t.reason,
                     "unobservable": t.unobservable,
                     "expects": [{"line": e.expect.pos.line, "expect": e.expect.text(),
                                  "result": e.result} for e in t.expects]},
    }


def check_json(result: CheckResult) -> dict[str, Any]:
    """``anonex check --json``: one document.

    ``columns`` lists the model versions, then the real kernels that ran; ``kernels`` each
    real kernel with its version, environment and why it did not run (``not_run``);
    ``scenarios`` each scenario with its verdict per column (``verdict``, ``reason``,
    ``unobservable`` expectations) and its divergences per real kernel, grouped like the
    text report (``anonex.diff.DivergenceGroup.to_json``: the model's value in ``a``, the
    kernel's in ``b``, per page where they differ); ``totals`` the counts the exit status
    comes from.
    """
    divs: dict[str, list[dict[str, Any]]] = {}
    for d in result.diverging:
        groups = group(d.divergences)
        divs.setdefault(d.scenario, []).append({
            "kernel": d.column, "model": d.model, "count": len(d.divergences),
            "first_line": groups[0].line if groups else None,
            "groups": [g.to_json() for g in groups]})
    return {
        "columns": result.columns,
        "model_columns": result.model_columns,
        "kernels": [{"column": k.column, "version": None if k.version is None
                     else str(k.version), "env": k.env, "not_run": k.not_run or None}
                    for k in result.kernels],
        "scenarios": [{
            "name": s.name, "path": s.path, "title": s.title,
            "cells": {col: {"verdict": t.verdict, "reason": t.reason,
                            "unobservable": t.unobservable}
                      for (n, col), t in result.cells.items() if n == s.name},
            "divergences": divs.get(s.name, []),
        } for s in result.scenarios],
        "totals": {"scenarios": len(result.scenarios), "runs": len(result.cells),
                   "unexpected": result.unexpected,
                   "diverging": len({(d.scenario, d.column) for d in result.diverging}),
                   "kernels_not_run": [k.column for k in result.kernels if k.not_run]},
    }
