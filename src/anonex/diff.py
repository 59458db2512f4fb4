"""Model against live: where two traces of the same scenario observe different things.

The traces come from two backends running the same steps. Observations are compared field
by field (page identity label, state, PG_anon_exclusive, mapcount, KSM, THP, hugetlb, zero
page, data, and whether a PMD maps a THP page) after each step, and so are the values
steps returned and the fault counts of labelled accesses. A field either side reports as
unknown (``None``) is not compared, so an unobservable detail never counts as a divergence.

A THP scenario that diverges diverges on hundreds of pages at once; :func:`group` merges the
divergences of one step, process, region and field over consecutive pages into one
:class:`DivergenceGroup` (``P0 A[5..511] page: model p4…p510, live p260…p766``), which is
what the reports print.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from anonex.runner import Trace

FIELDS = ("page", "state", "anon_exclusive", "mapcount", "ksm", "thp", "huge", "zero", "data")


@dataclass(frozen=True, slots=True)
class Divergence:
    """One observation on which the two backends disagree.

    ``what`` says it in words; for a page, ``proc``, ``region``, ``index`` and ``field``
    (``state``, ``page``, a :data:`FIELDS` name or ``mapped by a PMD``) say it as data.
    They are ``None`` for the rest: a value read, the faults or outcome of a labelled access,
    a step error.
    """

    line: int
    step: str
    what: str
    a: object
    b: object
    proc: str | None = None
    region: str | None = None
    index: int | None = None
    field: str | None = None

    @property
    def is_page(self) -> bool:
        return self.proc is not None and self.region is not None and self.index is not None \
            and self.field is not None

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
                out.append(Divergence(line, text, f"{where} state", sta, stb,
                                      proc, region, idx, "state"))
                continue
            if oa is None or ob is None or sta != "present":
                continue
            for f in (*FIELDS[2:], "page"):
                va, vb = getattr(oa, f), getattr(ob, f)
                if va is None or vb is None or va == vb:
                    continue
                out.append(Divergence(line, text, f"{where} {f}", va, vb,
                                      proc, region, idx, f))
            # "pmd" absent: no PMD maps it; present as None: the backend cannot tell. THP
            # only: a hugetlb page is one entry whatever maps it
            unknown = oa.extra.get("pmd", False) is None or ob.extra.get("pmd", False) is None
            pa, pb = bool(oa.extra.get("pmd")), bool(ob.extra.get("pmd"))
            if pa != pb and not unknown and not (oa.huge or ob.huge):
                out.append(Divergence(line, text, f"{where} mapped by a PMD", pa, pb,
                                      proc, region, idx, "mapped by a PMD"))
    return out


# the order of a step's page groups: which page, then its state and flags, then the rest
FIELD_ORDER = ("state", "page", "anon_exclusive", "mapcount", "ksm", "thp", "huge", "zero",
               "data", "mapped by a PMD")
_LABEL = re.compile(r"p(\d+)")
_DISTINCT_SHOWN = 3  # a side with more distinct values is shown as first…last


@dataclass(frozen=True, slots=True)
class DivergenceGroup:
    """Divergences of one step, process, region and field over consecutive pages.

    ``what`` names the pages and the field (``P0 A[5..511] page``); ``a`` and ``b`` hold the
    values of each page, ``first``..``last`` in order. A divergence that is not about a page
    (a value read, a labelled access, a step error) is a group of its own, with its ``what``,
    and ``proc``, ``region``, ``field``, ``first`` and ``last`` ``None``.
    """

    line: int
    step: str
    what: str
    a: tuple[object, ...]
    b: tuple[object, ...]
    proc: str | None = None
    region: str | None = None
    field: str | None = None
    first: int | None = None
    last: int | None = None

    @property
    def count(self) -> int:
        """How many divergences the group stands for (pages, or 1)."""
        return len(self.a)

    @property
    def is_page(self) -> bool:
        return self.first is not None

    @property
    def uniform(self) -> bool:
        """Every page has the same pair of values."""
        return all(v == self.a[0] for v in self.a) and all(v == self.b[0] for v in self.b)

    def summary(self, side: str) -> str:
        """One side's values in words: the value, ``p4…p510`` for consecutive page labels,
        each distinct value with its pages when there are few, else ``first…last``."""
        vals = self.a if side == "a" else self.b
        fmt = _fmt_plain if self.field in ("page", "state") else repr
        if all(v == vals[0] for v in vals):
            return fmt(vals[0])
        if _consecutive_labels(vals):
            return f"{fmt(vals[0])}…{fmt(vals[-1])}"
        distinct: dict[str, list[int]] = {}  # value shown -> [count, first index]
        for i, v in enumerate(vals):
            distinct.setdefault(fmt(v), [0, i])[0] += 1
        if len(distinct) > _DISTINCT_SHOWN:
            return f"{fmt(vals[0])}…{fmt(vals[-1])} ({len(distinct)} distinct)"
        first = self.first or 0
        return " / ".join(f"{s} ({self.region}[{first + i}])" if n == 1 else f"{s} (×{n})"
                          for s, (n, i) in distinct.items())

    def describe(self, a_name: str, b_name: str) -> str:
        pages = f" — {self.count} pages" if self.count > 1 else ""
        return (f"line {self.line} ({self.step}): {self.what}: {a_name} {self.summary('a')}, "
                f"{b_name} {self.summary('b')}{pages}")

    def to_json(self) -> dict[str, Any]:
        """The group as JSON: the first page's pair in ``a`` and ``b``; when the pages
        differ (``uniform`` false), every page's values in ``a_values`` and ``b_values``."""
        d: dict[str, Any] = {"line": self.line, "step": self.step, "what": self.what,
                             "count": self.count}
        if self.is_page:
            d.update(proc=self.proc, region=self.region, field=self.field, first=self.first,
                     last=self.last)
        d.update(a=self.a[0], b=self.b[0], uniform=self.uniform)
        if not self.uniform:
            d.update(a_values=list(self.a), b_values=list(self.b))
        return d


def _what(proc: str, region: str, field: str, first: int, last: int) -> str:
    span = str(first) if last == first else f"{first}..{last}"
    return f"{proc} {region}[{span}] {field}"


def _fmt_plain(v: object) -> str:
    return str(v)


def _consecutive_labels(vals: tuple[object, ...]) -> bool:
    nums = []
    for v in vals:
        m = _LABEL.fullmatch(v) if isinstance(v, str) else None
        if m is None:
            return False
        nums.append(int(m.group(1)))
    return all(y == x + 1 for x, y in pairwise(nums))


def _field_rank(field: str) -> int:
    return FIELD_ORDER.index(field) if field in FIELD_ORDER else len(FIELD_ORDER)


def group(divs: Iterable[Divergence]) -> list[DivergenceGroup]:
    """The divergences of :func:`diff` (in step order) merged for reading.

    Page divergences of one step, process, region and field over consecutive indices become
    one group; a gap in the indices starts a new one. Per step, the divergences that are not
    about a page come first, one group each, then the page groups by process and region (in
    order of appearance), field (:data:`FIELD_ORDER`) and first index. Steps keep their
    order, so the first group is the first diverging step.
    """
    out: list[DivergenceGroup] = []
    step: tuple[int, str] | None = None
    others: list[DivergenceGroup] = []
    runs: dict[tuple[str, str, str], list[list[tuple[int, object, object]]]] = {}
    where_rank: dict[tuple[str, str], int] = {}

    def flush() -> None:
        if step is None:
            return
        pages = [DivergenceGroup(step[0], step[1], _what(p, r, f, run[0][0], run[-1][0]),
                                 tuple(x[1] for x in run), tuple(x[2] for x in run),
                                 p, r, f, run[0][0], run[-1][0])
                 for (p, r, f), rs in runs.items() for run in rs]
        pages.sort(key=lambda g: (where_rank[(g.proc or "", g.region or "")],
                                  _field_rank(g.field or ""), g.first or 0))
        out.extend(others)
        out.extend(pages)
        others.clear()
        runs.clear()
        where_rank.clear()

    for d in divs:
        if (d.line, d.step) != step:
            flush()
            step = (d.line, d.step)
        if d.proc is None or d.region is None or d.index is None or d.field is None:
            others.append(DivergenceGroup(d.line, d.step, d.what, (d.a,), (d.b,)))
            continue
        where_rank.setdefault((d.proc, d.region), len(where_rank))
        rs = runs.setdefault((d.proc, d.region, d.field), [])
        if rs and rs[-1][-1][0] + 1 == d.index:
            rs[-1].append((d.index, d.a, d.b))
        else:
            rs.append([(d.index, d.a, d.b)])
    flush()
    return out
