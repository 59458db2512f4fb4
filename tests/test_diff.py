"""The model-vs-live diff: what it compares and what it leaves alone."""

from __future__ import annotations

from anonex.diff import diff
from anonex.harness.model import ModelBackend
from anonex.observation import PageObs
from anonex.runner import Trace, run
from anonex.scenario.parser import parse
from anonex.versions import KernelVersion

TEXT = """
P0: mmap A anon 1
P0: write A "x"
P0: fork P1
P1: write A "y" @w
P0: mprotect A ro
P0: mprotect A rw
P0: write A "z" @v
"""


def _run(version: str) -> Trace:
    return run(parse(TEXT, "d.cow"), ModelBackend(KernelVersion.parse(version)))


def test_same_backend_same_trace_has_no_divergence() -> None:
    assert diff(_run("6.18"), _run("6.18")) == []


def test_eras_diverge_where_the_rules_differ() -> None:
    divs = diff(_run("6.18"), _run("5.18"))
    what = {d.what for d in divs}
    assert "P0 A[0] anon_exclusive" in what  # no PG_anon_exclusive before 5.19
    line2 = [d for d in divs if d.line == 3]
    assert line2 and all(d.a is True and d.b is False for d in line2)
    assert all(d.step for d in divs)


def test_unknown_fields_are_not_compared() -> None:
    a, b = _run("6.18"), _run("6.18")
    for rec in b.steps:
        for o in rec.obs.values():
            o.anon_exclusive = None  # what the live kernel cannot see
            o.mapcount = None
    assert diff(a, b) == []
    rec = b.steps[1]
    key = next(iter(rec.obs))
    o: PageObs = rec.obs[key]
    o.data = "other"
    divs = diff(a, b)
    assert len(divs) == 1 and divs[0].what.endswith("data") and divs[0].b == "other"


def test_fault_counts_and_values_are_compared() -> None:
    a, b = _run("6.18"), _run("6.18")
    b.steps[3].result.faults = 0  # @w
    b.steps[3].result.value = None
    divs = diff(a, b)
    assert any(d.what == "@w faults" for d in divs)


def test_the_pmd_mapping_of_a_thp_is_compared_not_of_hugetlb() -> None:
    text = "P0: mmap A thp\nP0: mmap H hugetlb\nP0: write A \"t\"\nP0: write H \"h\"\n"
    a, b = (run(parse(text, "d.cow"), ModelBackend()) for _ in range(2))
    last = b.steps[-1].obs
    assert last[("P0", "A", 3)].extra.get("pmd") and last[("P0", "H", 3)].extra.get("pmd")
    for o in last.values():
        o.extra.pop("pmd", None)  # as if another backend saw PTEs everywhere
    divs = diff(a, b)
    assert divs and {d.what.split(" ", 2)[1][0] for d in divs} == {"A"}  # THP pages only
    assert all(d.what.endswith("mapped by a PMD") and d.a is True for d in divs)


def test_an_unknown_pmd_mapping_is_not_compared() -> None:
    text = "P0: mmap A thp\nP0: write A \"t\"\n"
    a, b = (run(parse(text, "d.cow"), ModelBackend()) for _ in range(2))
    for o in b.steps[-1].obs.values():
        o.extra["pmd"] = None  # a kernel without PAGEMAP_SCAN that cannot tell
    assert diff(a, b) == []
    for o in b.steps[-1].obs.values():
        del o.extra["pmd"]  # it can tell: PTEs map it
    assert len(diff(a, b)) == 512
