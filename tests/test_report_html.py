"""The HTML report: what the pages contain, and that a real browser renders them."""

from __future__ import annotations

import base64
import copy
import gzip
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
from markupsafe import escape

from anonex.diff import diff
from anonex.harness.model import ModelBackend
from anonex.observation import StepResult
from anonex.report.html import folder_of, holds, render_check, render_run
from anonex.report.result import CheckResult, Diverging, KernelColumn
from anonex.runner import Trace, run
from anonex.scenario.parser import parse_file
from anonex.versions import KernelVersion

from .conftest import LIBRARY

CVE = "vmsplice-unmap-child.cow"
THP = "thp-write-while-shared.cow"


@cache
def _trace(name: str, version: str) -> Trace:
    return run(parse_file(LIBRARY / name), ModelBackend(KernelVersion.parse(version),
                                                        detail=True))


def trace(name: str, version: str) -> Trace:
    """A fresh copy of a detailed model run (the tests may change it)."""
    return copy.deepcopy(_trace(name, version))


def section(html: str, line: int) -> str:
    """The section of the step at *line*."""
    m = re.search(rf'<section class="step[^"]*" id="s-{line}">(.*?)</section>', html, re.S)
    assert m, f"no section for line {line}"
    return m.group(1)


def no_external(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html and " src=" not in html and "@import" not in html


# -- one run -------------------------------------------------------------------------------


def test_the_cve_run_shows_every_step_and_the_pipe_holding_the_parents_page() -> None:
    t = trace(CVE, "5.4")
    html = render_run(t)
    no_external(html)
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    for rec in t.steps:
        assert f'id="s-{rec.step.pos.line}"' in html
        assert str(escape(rec.step.text())) in html
    # the pipe takes the child's page (p1, shared with the parent) …
    s7 = section(html, 7)
    assert "e-pipe" in s7 and "pipe &#34;pipe&#34;" in s7 and "takes p1" in s7
    # … keeps it after the child's munmap …
    s8 = section(html, 8)
    assert "e-pipe" in s8 and "p1: map 2 → 1" in s8
    # … and the parent's write reuses it: same label, new data, the arrow still on it
    s9 = section(html, 9)
    assert "@w: fault, reused" in s9
    assert "p1: data &#39;old&#39; → &#39;new&#39;" in s9
    assert "e-pipe" in s9 and "no longer mapped" not in s9
    assert re.search(r">p1</tspan>.*?&#39;new&#39;", s9, re.S)
    # reading the pipe returns what the parent wrote: a finding, and the pipe is gone
    s12 = section(html, 12)
    assert "&#39;new&#39;" in s12 and "finding: leak" in s12 and "e-pipe" not in s12
    assert '<section class="step bad" id="s-12">' in html
    assert "r-fail" in s12 and "r-pass" in section(html, 9) and "r-na" in s9
    assert "xfail" in html and "CVE-2020-29374" in html


def test_pins_and_pipes_are_worked_out_from_the_steps() -> None:
    t = trace(CVE, "5.4")
    hs = holds(t)
    assert [sorted(h) for h in hs] == [[], [], [], ["pipe:pipe"], ["pipe:pipe"],
                                       ["pipe:pipe"], []]
    h = hs[3]["pipe:pipe"]
    assert h.labels == ("p1",) and h.holders == ("P1",) and h.line == 7
    assert h.pages(t.steps[5].obs) == [("p1", True)]


def test_a_held_page_that_nobody_maps_points_at_a_page_no_longer_mapped() -> None:
    html = render_run(trace(CVE, "6.18"))  # the parent's write copies: p1 is the pipe's
    s9 = section(html, 9)
    assert "@w: fault, copied" in s9 and "page no longer mapped" in s9 and "e-pipe" in s9
    assert "page no longer mapped" not in section(html, 8)


def test_a_pinned_page_mapped_again_under_a_new_label_keeps_its_pin_arrow() -> None:
    # 5.4 puts the pinned page in the swap cache; the write maps it back, labelled p3
    html = render_run(trace("pinned-page-not-swapped.cow", "5.4"))
    assert "page no longer mapped" in section(html, 7)
    s11 = section(html, 11)
    assert "its page p1 is mapped again, as p3" in s11
    assert "page no longer mapped" not in s11 and "e-pin" in s11


def test_a_thp_collapses_into_ranges() -> None:
    t = trace(THP, "6.18")
    html = render_run(t)
    no_external(html)
    s4 = section(html, 4)  # PMD-mapped: head, first tail, the 510 others
    assert ">A[2..511]</tspan>" in s4 and "p3…p512" in s4 and "×510" in s4
    assert "pmd rw dirty" in s4 and "new pages p1…p512" in s4
    s11 = section(html, 11)  # after the write to A[5]: split, one page copied
    assert ">A[6..511]</tspan>" in s11 and "p7…p512" in s11 and "p513" in s11
    assert "pte rw dirty" in s11 and "pmd ro dirty" in s11
    rows = len(re.findall(r"<tspan x=\"[\d.]+\" class=\"b\">[A-Z]\[", html))
    assert rows < 60  # not 512 per process and step
    assert len(html) < 150_000


def test_swap_slots_and_exclusive_swap_entries() -> None:
    html = render_run(trace("swap-roundtrip.cow", "6.18"))
    s6 = section(html, 6)
    assert "swap entry, exclusive" in s6 and "swap slot" in s6 and 'class="swap' in s6
    assert "@r: fault, swapin" in section(html, 8)


def test_two_versions_side_by_side_mark_what_differs() -> None:
    a, b = trace(CVE, "5.4"), trace(CVE, "6.18")
    divs = diff(a, b)
    html = render_run(a, b)
    no_external(html)
    assert f"{len(divs)} divergences between model@5.4 and model@6.18" in html
    assert html.count('class="side-name"') == 2 * len(a.steps)
    s9 = section(html, 9)
    assert 'class="dv"' in s9  # the entry that maps another page
    assert "hl-dv" in s9 and "dv-box" in s9  # PG_anon_exclusive differs
    assert 'class="oc dv"' in s9  # reused vs copied
    assert "P0 A[0] page: model@5.4 p1, model@6.18 p2" in s9
    s12 = section(html, 12)
    assert 'class="val dv"' in s12
    s4 = section(html, 4)
    assert "dv" not in s4 and "dlist" not in s4
    # the same run twice: nothing marked
    same = render_run(a, trace(CVE, "5.4")).split("</style>", 1)[1]
    assert "0 divergences" in same and 'class="dv"' not in same and "hl-dv" not in same


def test_a_run_that_stopped_and_a_run_observed_only_where_needed() -> None:
    a = trace(CVE, "5.4")
    b = copy.deepcopy(a)
    b.steps = b.steps[:4]
    b.steps[3].result = StepResult(skipped="vmsplice: not on this kernel")
    b.backend, b.verdict = "live", "skip"
    html = render_run(a, b)
    assert "skipped: vmsplice: not on this kernel" in section(html, 7)
    assert "the run stopped before this step" in section(html, 8)
    light = run(parse_file(LIBRARY / CVE), ModelBackend(KernelVersion.parse("5.4")),
                full=False)
    html = render_run(light)
    assert "not observed after this step" in section(html, 6)
    assert "(nothing mapped)" not in html
    assert "<svg" in section(html, 9) and "e-pipe" not in section(html, 9)


# -- the check -----------------------------------------------------------------------------

NAMES = [CVE, THP, "swap-roundtrip.cow", "cow/basic-cow-with-shared-zeropage.cow"]


def small_check() -> CheckResult:
    """Two model versions and a 'kernel' (the model at 6.1 standing in), one kernel that
    did not run; the CVE diverges from its model (at 5.10)."""
    scens = [parse_file(LIBRARY / n) for n in NAMES]
    cells: dict[tuple[str, str], Trace] = {}
    runs: dict[tuple[str, str], Trace] = {}
    for s in scens:
        for v in ("5.4", "6.18"):
            t = trace(s.path.split("library/", 1)[1], v)
            runs[(s.name, v)] = t
            cells[(s.name, v)] = copy.copy(t).light()
    live = trace(CVE, "6.1")
    live.backend = "live"
    model = trace(CVE, "5.10")
    runs[(scens[0].name, "live")] = live
    runs[(scens[0].name, "model@live")] = model
    for s in scens:
        cells[(s.name, "live")] = copy.copy(live if s is scens[0] else
                                           trace(s.path.split("library/", 1)[1],
                                                 "6.1")).light()
    kernels = [KernelColumn("live", KernelVersion.parse("6.1"),
                            env={"kernel_release": "6.1.0-test",
                                 "notes": ["the model at 6.1 stands in for it"]}),
               KernelColumn("debian:5.10", None, not_run="qemu-system-x86_64: not found")]
    div = [Diverging(scens[0].name, "live", model.backend, diff(model, live))]
    assert div[0].divergences
    return CheckResult(scens, ["5.4", "6.18"], kernels, cells, div, runs)


def _blobs(html: str) -> dict[str, str]:
    return {i: gzip.decompress(base64.b64decode(b)).decode() for i, b in re.findall(
        r'<script type="application/x-anonex-run" id="(r\d+)">([^<]*)</script>', html)}


def test_the_check_page_has_the_matrix_summary_kernels_and_the_runs() -> None:
    res = small_check()
    html = render_check(res)
    no_external(html)
    # the matrix: one row per scenario, one column per model version and kernel that ran
    for s in res.scenarios:
        assert f'<tr data-n="{s.name}">' in html
    assert re.search(r"<th[^>]*>5\.4</th><th[^>]*>6\.18</th><th[^>]*>live</th></tr>", html)
    assert html.count('class="folder"') == 2  # the top level and cow/
    assert "cow — 1 scenario" in html and "(top level) — 3 scenarios" in html
    assert "v-xfail" in html and "v-pass" in html and "div" in html and "xf" in html
    # the summary: per folder and per column
    assert "per folder" in html and "per column" in html
    assert re.search(r"live \(kernel\)</td><td class=\"n\">4</td>", html)
    # the kernels: environment, notes, why one did not run
    assert "6.1.0-test" in html and "the model at 6.1 stands in for it" in html
    assert "not run: qemu-system-x86_64: not found" in html
    # the runs: one per full trace in result.runs (the model run of a kernel is opened
    # from the kernel's cell), each a page fragment with its steps
    blobs = _blobs(html)
    assert len(blobs) == 2 * len(NAMES) + 1
    assert html.count("data-r=") == len(blobs)
    compare = [b for b in blobs.values() if "divergences between model@5.10 and live" in b]
    assert len(compare) == 1 and "hl-dv" in compare[0]  # PG_anon_exclusive differs
    assert all('id="s-' in b and "<svg" in b for b in blobs.values())
    assert all("<html" not in b for b in blobs.values())


def test_identical_runs_are_embedded_once() -> None:
    res = small_check()
    name = res.scenarios[0].name
    res.runs[(name, "6.18")] = res.runs[(name, "5.4")]  # the same run in two cells
    html = render_check(res)
    ids = re.findall(rf'<tr data-n="{name}">.*?</tr>', html, re.S)[0]
    refs = re.findall(r'data-r="(r\d+)"', ids)
    assert len(refs) == 3 and refs[0] == refs[1] != refs[2]


def test_a_cell_without_its_run_shows_its_verdict_and_reason() -> None:
    res = small_check()
    res.runs.clear()
    res.cells[(res.scenarios[0].name, "5.4")].reason = "x" * 5000
    html = render_check(res)
    assert "data-r=" not in html and "application/x-anonex-run" not in html
    assert "xxxx… (4601 more characters)" in html
    assert len(html) < 60_000


def test_folder_of_a_scenario() -> None:
    assert folder_of("src/anonex/library/cow/x.cow") == "cow"
    assert folder_of("/a/anonex/library/x.cow") == "(top level)"
    assert folder_of("/a/library/fingerprint/y/x.cow") == "fingerprint/y"
    assert folder_of("my-scenarios/x.cow") == "my-scenarios"


# -- in a real browser ---------------------------------------------------------------------


@pytest.fixture
def chromium() -> str:
    """Headless Chromium; skip without it, but fail when ANONEX_REQUIRE_LIVE=1 (CI)."""
    exe = next((p for p in map(shutil.which, ("chromium", "chromium-browser",
                                               "google-chrome")) if p), None)
    if exe is None:
        why = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("ANONEX_REQUIRE_LIVE") == "1":
            pytest.fail(f"ANONEX_REQUIRE_LIVE=1 but {why}")
        pytest.skip(why)
    return exe


def _browse(exe: str, profile: Path, url: str, *args: str) -> tuple[str, str]:
    """Load *url* headless: the DOM after load (or what *args* make it do) and the log."""
    p = subprocess.run([exe, "--headless", "--disable-gpu", "--no-sandbox",
                        "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}",
                        "--virtual-time-budget=10000", *args, url],
                       capture_output=True, text=True, timeout=180, check=False)
    assert p.returncode == 0, p.stderr[-2000:]
    for line in p.stderr.splitlines():
        assert "Uncaught" not in line and "ERROR:CONSOLE" not in line, line
        assert not ("CONSOLE" in line and "file://" in line), line  # no console output
    return p.stdout, p.stderr


def _shot(exe: str, profile: Path, url: str, png: Path) -> None:
    _browse(exe, profile, url, f"--screenshot={png}", "--window-size=1400,1000",
            "--hide-scrollbars")
    assert png.is_file() and png.stat().st_size > 20_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_pages_render_in_chromium(chromium: str, tmp_path: Path) -> None:
    run_html = tmp_path / "run.html"
    run_html.write_text(render_run(trace(CVE, "5.4")))
    check_html = tmp_path / "check.html"
    check_html.write_text(render_check(small_check()))
    profile = tmp_path / "profile"
    dom, _ = _browse(chromium, profile, run_html.as_uri(), "--dump-dom")
    assert dom.count('<svg class="dg"') == 7 and 'id="s-12"' in dom and "e-pipe" in dom
    _shot(chromium, profile, run_html.as_uri(), tmp_path / "run.png")
    # the check: the matrix; a cell named in the address opens its run (unpacked by the
    # page's script) in the side panel
    dom, _ = _browse(chromium, profile, check_html.as_uri(), "--dump-dom")
    assert 'id="matrix"' in dom and '<div id="panel" hidden="">' in dom
    name = small_check().scenarios[0].name
    url = f"{check_html.as_uri()}#cell={name}%7Clive"
    dom, _ = _browse(chromium, profile, url, "--dump-dom")
    panel = dom[dom.index('<div id="panel"'):]
    assert panel.startswith('<div id="panel">')  # shown
    assert f"{name} on live" in panel and 'id="s-9"' in panel and "<svg" in panel
    assert "divergences between model@5.10 and live" in panel
    assert re.search(r'<td class="[^"]*\bsel"[^>]*>', dom)  # the cell opened
    _shot(chromium, profile, url, tmp_path / "check.png")
