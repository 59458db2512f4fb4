"""``--json``: one document per run with scenario, backend, steps, vars and verdicts."""

from __future__ import annotations

from typing import Any

from anonex.scenario.runner import Trace


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
