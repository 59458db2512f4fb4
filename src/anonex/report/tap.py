"""kselftest-style TAP output (``--tap``)."""

from __future__ import annotations

from anonex.scenario.runner import Trace


def tap(results: list[tuple[str, Trace]]) -> str:
    """One TAP line per (name, trace): ok / not ok, with # SKIP / # XFAIL directives."""
    lines = ["TAP version 13", f"1..{len(results)}"]
    totals = {"pass": 0, "fail": 0, "xfail": 0, "xpass": 0, "skip": 0}
    for i, (name, t) in enumerate(results, 1):
        totals[t.verdict] += 1
        if t.verdict == "pass":
            lines.append(f"ok {i} {name}")
        elif t.verdict == "skip":
            lines.append(f"ok {i} {name} # SKIP {t.reason}")
        elif t.verdict == "xfail":
            lines.append(f"ok {i} {name} # XFAIL {t.reason}")
        else:
            lines.append(f"not ok {i} {name}")
            lines.append(f"# {t.verdict}: {t.reason}")
    lines.append(f"# Totals: pass:{totals['pass']} fail:{totals['fail'] + totals['xpass']} "
                 f"xfail:{totals['xfail']} xpass:{totals['xpass']} skip:{totals['skip']} "
                 "error:0")
    return "\n".join(lines)
