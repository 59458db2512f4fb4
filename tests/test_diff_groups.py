"""Grouped divergences: one line per step, process, region and field, with page ranges."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from rich.console import Console

from anonex.diff import Divergence, DivergenceGroup, diff, group
from anonex.harness.model import ModelBackend
from anonex.report import text as rtext
from anonex.runner import Trace, run
from anonex.scenario.parser import parse_file
from anonex.versions import KernelVersion

LIBRARY = Path(__file__).resolve().parents[1] / "src" / "anonex" / "library"
# PG_anon_exclusive appears at 5.19: every page of the THP, at every step
PINNED_FORK = ("predictions/p15-thp-pinned-fork.cow", "5.18", "5.19")
# from 6.12 a split maps the zero-filled pages to the shared zero page, not to a KSM page
SPLIT_ZERO = ("fingerprint/thp-split-maps-zero-pages.cow", "6.11", "6.12")


@cache
def _traces(path: str, a: str, b: str) -> tuple[Trace, Trace]:
    scen = parse_file(LIBRARY / path)
    return (run(scen, ModelBackend(KernelVersion.parse(a))),
            run(scen, ModelBackend(KernelVersion.parse(b))))


def _divs(case: tuple[str, str, str]) -> list[Divergence]:
    return diff(*_traces(*case))


def _expand(groups: list[DivergenceGroup]) -> list[tuple[object, ...]]:
    """The divergences the groups stand for, page by page."""
    out: list[tuple[object, ...]] = []
    for g in groups:
        if g.first is None:
            out.append((g.line, g.what, g.a[0], g.b[0]))
            continue
        assert g.last is not None
        assert g.count == g.last - g.first + 1 == len(g.b)
        out.extend((g.line, g.proc, g.region, g.field, g.first + i, va, vb)
                   for i, (va, vb) in enumerate(zip(g.a, g.b, strict=True)))
    return out


def _flat(divs: list[Divergence]) -> list[tuple[object, ...]]:
    return [(d.line, d.proc, d.region, d.field, d.index, d.a, d.b) if d.is_page
            else (d.line, d.what, d.a, d.b) for d in divs]


def test_a_thp_diverging_on_every_page_is_one_line_per_step_and_process() -> None:
    divs = _divs(PINNED_FORK)
    groups = group(divs)
    assert len(divs) == 6656 and all(d.is_page for d in divs)
    assert len(groups) == 13  # 4 steps with P0 alone, 9 with P0 and P1 (after the fork)
    assert sum(g.count for g in groups) == len(divs)
    assert sorted(map(repr, _expand(groups))) == sorted(map(repr, _flat(divs)))
    for g in groups:
        assert (g.region, g.field, g.first, g.last, g.count) == ("A", "anon_exclusive", 0, 511,
                                                                 512)
        assert g.uniform and g.a[0] is False and g.b[0] is True
    assert groups[0].line == min(d.line for d in divs) == 4
    assert [g.line for g in groups] == sorted(g.line for g in groups)
    assert [g.proc for g in groups if g.line == 7] == ["P0", "P1"]
    assert groups[0].describe("model", "live") == (
        "line 4 (P0: mmap A thp): P0 A[0..511] anon_exclusive: model False, live True — "
        "512 pages")


def test_gaps_and_page_by_page_values_on_a_real_split() -> None:
    divs = _divs(SPLIT_ZERO)
    groups = group(divs)
    assert len(groups) < len(divs) // 100
    assert sum(g.count for g in groups) == len(divs)
    assert sorted(map(repr, _expand(groups))) == sorted(map(repr, _flat(divs)))
    assert groups[0].line == min(d.line for d in divs)
    assert [g.line for g in groups] == sorted(g.line for g in groups)
    step = [g for g in groups if g.step == "ksm-scan"]
    # A[2] is no KSM page on 6.11 either: the ksm field has a gap there
    assert [(g.first, g.last) for g in step if g.field == "ksm"] == [(1, 1), (3, 511)]
    # the page labels differ page by page on one side only
    page = next(g for g in step if g.field == "page")
    assert (page.first, page.last, page.uniform) == (1, 511, False)
    # max_page_sharing (256): the 510 other pages share two KSM pages
    assert page.summary("a") == "p4 (×256) / p3 (A[2]) / p260 (×254)"
    assert page.summary("b") == "p513"
    js = page.to_json()
    assert js["uniform"] is False and js["count"] == 511 and js["a"] == "p4"
    assert len(js["a_values"]) == 511 and set(js["b_values"]) == {"p513"}
    zero = next(g for g in step if g.field == "zero")
    assert zero.uniform and zero.to_json() == {
        "line": zero.line, "step": "ksm-scan", "what": "P0 A[1..511] zero", "count": 511,
        "proc": "P0", "region": "A", "field": "zero", "first": 1, "last": 511,
        "a": False, "b": True, "uniform": True}
    # within a step: page first, then the flags, in FIELD_ORDER
    assert [g.field for g in step][:3] == ["page", "anon_exclusive", "mapcount"]


def test_the_report_names_the_first_diverging_step_and_caps_the_lines() -> None:
    divs = _divs(SPLIT_ZERO)
    groups = group(divs)
    assert len(groups) == rtext.MAX_DIVERGENCE_LINES + 1  # one line over: shown, not counted

    def report(max_lines: int = rtext.MAX_DIVERGENCE_LINES) -> list[str]:
        con = Console(record=True, width=400, highlight=False)
        rtext.divergences(con, "thp-split-maps-zero-pages", "model", "live", divs, max_lines)
        return con.export_text().splitlines()

    lines = report()
    assert lines[0] == (f"diverges thp-split-maps-zero-pages on live (model): {len(divs)} "
                        f"divergences in {len(groups)} lines, first at line 7 (ksm-scan)")
    assert lines[1:] == ["  " + g.describe("model", "live") for g in groups]
    lines = report(10)
    assert len(lines) == 1 + 10 + 1
    rest = groups[10:]
    assert lines[-1] == (f"  … and {len(rest)} more lines "
                         f"({sum(g.count for g in rest)} divergences)")
    assert lines[1] == "  " + groups[0].describe("model", "live")
    con = Console(record=True, width=400, highlight=False)
    rtext.divergences(con, "s", "model", "live", [])
    assert con.export_text() == ""


def _d(line: int, proc: str, region: str, index: int, field: str, a: object = False,
       b: object = True) -> Divergence:
    return Divergence(line, f"step {line}", f"{proc} {region}[{index}] {field}", a, b, proc,
                      region, index, field)


def test_gaps_processes_regions_and_fields_split_groups() -> None:
    divs = [_d(3, "P0", "A", i, "anon_exclusive") for i in (0, 1, 2, 5, 6)]
    divs += [_d(3, "P0", "A", i, "mapcount", 1, 2) for i in (0, 1)]
    divs += [_d(3, "P1", "A", i, "anon_exclusive") for i in (3, 4)]
    divs += [_d(3, "P0", "B", i, "anon_exclusive") for i in (3, 4)]
    divs.sort(key=lambda d: (d.proc or "", d.region or "", d.index or 0))  # as diff() does
    groups = group(divs)
    assert [(g.proc, g.region, g.field, g.first, g.last) for g in groups] == [
        ("P0", "A", "anon_exclusive", 0, 2),
        ("P0", "A", "anon_exclusive", 5, 6),
        ("P0", "A", "mapcount", 0, 1),
        ("P0", "B", "anon_exclusive", 3, 4),
        ("P1", "A", "anon_exclusive", 3, 4)]
    assert sum(g.count for g in groups) == len(divs)
    assert groups[1].what == "P0 A[5..6] anon_exclusive"


def test_steps_keep_their_order_and_non_page_divergences_stay_single() -> None:
    divs = [
        Divergence(2, "P0: write A \"x\" @w", "@w faults", 1, 0),
        Divergence(2, "P0: write A \"x\" @w", "step error", None, "EFAULT"),
        _d(2, "P0", "A", 0, "page", "p1", "p2"),
        _d(2, "P0", "A", 1, "page", "p1", "p3"),
        _d(9, "P0", "A", 0, "data", "x", "y"),
        Divergence(9, "step 9", "value read", "x", "y"),
        _d(5, "P0", "A", 0, "state", "present", "swapped"),
    ]
    groups = group(divs)
    assert [(g.line, g.what) for g in groups] == [
        (2, "@w faults"), (2, "step error"), (2, "P0 A[0..1] page"),
        (9, "value read"), (9, "P0 A[0] data"), (5, "P0 A[0] state")]
    faults = groups[0]
    assert not faults.is_page and faults.count == 1
    assert faults.describe("model", "live") == \
        "line 2 (P0: write A \"x\" @w): @w faults: model 1, live 0"
    assert faults.to_json() == {"line": 2, "step": "P0: write A \"x\" @w", "what": "@w faults",
                                "count": 1, "a": 1, "b": 0, "uniform": True}
    assert groups[2].summary("a") == "p1" and groups[2].summary("b") == "p2…p3"
    assert groups[4].describe("m", "l") == "line 9 (step 9): P0 A[0] data: m 'x', l 'y'"
    assert groups[5].describe("m", "l") == \
        "line 5 (step 5): P0 A[0] state: m present, l swapped"


def test_summaries_of_values_that_differ_page_by_page() -> None:
    labels = [_d(1, "P0", "A", i, "page", f"p{4 + i}", f"p{10 + 2 * i}") for i in range(5)]
    (g,) = group(labels)
    assert g.summary("a") == "p4…p8"  # consecutive labels
    assert g.summary("b") == "p10…p18 (5 distinct)"  # not consecutive, many
    few = [_d(1, "P0", "A", i, "mapcount", 2 if i != 3 else 1, 0) for i in range(6)]
    (g,) = group(few)
    assert g.summary("a") == "2 (×5) / 1 (A[3])" and g.summary("b") == "0"
    assert g.describe("a", "b") == "line 1 (step 1): P0 A[0..5] mapcount: a 2 (×5) / 1 (A[3]), " \
        "b 0 — 6 pages"


def test_divergence_describe_is_unchanged() -> None:
    d = _d(4, "P0", "A", 7, "anon_exclusive")
    assert d.is_page
    assert d.describe("model", "live") == \
        "line 4 (step 4): P0 A[7] anon_exclusive: model False, live True"
    plain = Divergence(4, "s", "P0 A[7] anon_exclusive", False, True)
    assert not plain.is_page  # made without the page fields: a line of its own
    assert [g.what for g in group([plain, plain])] == ["P0 A[7] anon_exclusive"] * 2
