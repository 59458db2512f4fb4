"""``--tap``: kselftest's KTAP (version 1).

One test line per scenario and column. A real kernel's run that diverges from the model is
``not ok`` whatever its verdict, with the divergences as ``#`` diagnostics; a real kernel
that did not run is one ``ok … # SKIP`` line saying why (a booted one that did not run, or
stopped early, is ``not ok``: the exit status counts it). kselftest's totals line ends it.
"""

from __future__ import annotations

from anonex.diff import group
from anonex.report.result import CheckResult
from anonex.runner import Trace

_MAX_DIAG = 8  # divergence lines per test


def _one(i: int, name: str, t: Trace, diverging: list[str]) -> list[str]:
    if diverging:
        return [f"not ok {i} {name}", *(f"# {line}" for line in diverging)]
    if t.verdict == "pass":
        return [f"ok {i} {name}"]
    if t.verdict == "skip":
        return [f"ok {i} {name} # SKIP {t.reason}"]
    if t.verdict == "xfail":
        return [f"ok {i} {name} # XFAIL {t.reason}"]
    return [f"not ok {i} {name}", f"# {t.verdict}: {t.reason}"]


def tap(result: CheckResult) -> str:
    """The KTAP text of a check."""
    divs = {(d.scenario, d.column): d for d in result.diverging}
    titles = {s.name: s.title or s.name for s in result.scenarios}
    not_run = [k for k in result.kernels if k.not_run]
    lines = ["KTAP version 1", f"1..{len(result.cells) + len(not_run)}"]
    totals = {"pass": 0, "fail": 0, "xfail": 0, "xpass": 0, "skip": 0, "error": 0}
    i = 0
    for (name, col), t in result.cells.items():
        i += 1
        d = divs.get((name, col))
        diag: list[str] = []
        if d is not None:
            groups = group(d.divergences)
            diag = [f"diverges from {d.model}: {len(d.divergences)} divergences"]
            diag += [g.describe(d.model, col) for g in groups[:_MAX_DIAG]]
            if len(groups) > _MAX_DIAG:
                diag.append(f"… and {len(groups) - _MAX_DIAG} more lines")
        lines += _one(i, f"{titles[name]} [{col}]", t, diag)
        totals["fail" if d is not None else t.verdict] += 1
    for k in not_run:
        i += 1
        what = "live kernel" if k.column == "live" else f"booted kernel {k.column}"
        why = k.not_run.splitlines()[0] if k.not_run else ""
        if k.column == "live" and k.version is None:
            lines.append(f"ok {i} {what} # SKIP {why}")
            totals["skip"] += 1
        else:
            lines += [f"not ok {i} {what}", f"# {'stopped early' if k.version else 'not run'}: "
                                            f"{why}"]
            totals["error"] += 1
    lines.append(f"# Totals: pass:{totals['pass']} fail:{totals['fail'] + totals['xpass']} "
                 f"xfail:{totals['xfail']} xpass:{totals['xpass']} skip:{totals['skip']} "
                 f"error:{totals['error']}")
    return "\n".join(lines)
