"""Model against live: where two traces of the same scenario observe different things.

The traces come from two backends running the same steps. Observations are compared field
by field (page identity label, state, PG_anon_exclusive, mapcount, KSM, THP, hugetlb, zero
page, data, and whether a PMD maps a THP page) after each step, and so are the values
steps returned and the fault counts of labelled accesses. A field either side reports as
unknown (``None``) is not compared, so an unobservable detail never counts as a divergence.
"""

from __future__ import annotations

from dataclasses import dataclass

from anonex.scenario.runner import Trace

FIELDS = ("page", "state", "anon_exclusive", "mapcount", "ksm", "thp", "huge", "zero", "data")


@dataclass(frozen=True, slots=True)
class Divergence:
    """One observation on which the two backends disagree."""

    line: int
    step: str
    what: str
    a: object
    b: object

    def describe(self, a_name: str, b_name: str) -> str:
        return (f"line {self.line} ({self.step}): {self.what}: {a_name} {self.a!r}, "
                f"{b_name} {self.b!r}")


def diff(a: Trace, b: Trace) -> list[Divergence]:
    """Every divergence between two traces of one scenario, in step order."""
    out: list[Divergence] = []
    for sa, sb in zip(a.steps, b.steps, strict=False):
        if sa.result.skipped is not None or sb.result.skipped is not None:
            break
        line = sa.step.pos.line
        text = sa.step.text()
        if sa.result.value is not None and sb.result.value is not None and \
                sa.result.value != sb.result.value:
            out.append(Divergence(line, text, "value read", sa.result.value, sb.result.value))
        if sa.step.label is not None:
            fa, fb = sa.result.faults, sb.result.faults
            if fa is not None and fb is not None and bool(fa) != bool(fb):
                out.append(Divergence(line, text, f"@{sa.step.label} faults", int(bool(fa)),
                                      int(bool(fb))))
            elif sa.outcome != sb.outcome and fa is not None and fb is not None:
                out.append(Divergence(line, text, f"@{sa.step.label} outcome", sa.outcome,
                                      sb.outcome))
        if (sa.result.error is None) != (sb.result.error is None):
            out.append(Divergence(line, text, "step error", sa.result.error, sb.result.error))
        for key in sorted(set(sa.obs) | set(sb.obs)):
            oa, ob = sa.obs.get(key), sb.obs.get(key)
            proc, region, idx = key
            where = f"{proc} {region}[{idx}]"
            sta = oa.state if oa else "none"
            stb = ob.state if ob else "none"
            if sta != stb:
                out.append(Divergence(line, text, f"{where} state", sta, stb))
                continue
            if oa is None or ob is None or sta != "present":
                continue
            for f in (*FIELDS[2:], "page"):
                va, vb = getattr(oa, f), getattr(ob, f)
                if va is None or vb is None or va == vb:
                    continue
                out.append(Divergence(line, text, f"{where} {f}", va, vb))
            pa, pb = bool(oa.extra.get("pmd")), bool(ob.extra.get("pmd"))
            if pa != pb and not (oa.huge or ob.huge):  # THP only: a hugetlb page is one entry
                out.append(Divergence(line, text, f"{where} mapped by a PMD", pa, pb))
    return out
