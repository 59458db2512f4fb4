"""The pytest plugin (anonex.pytest_plugin): .cow files as test items, run by pytester."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import anonex
import anonex.live
from anonex.harness.model import ModelBackend
from anonex.pytest_plugin import running_version
from anonex.runner import run
from anonex.scenario.parser import parse_file
from anonex.versions import KernelVersion

from .conftest import LIBRARY

pytest_plugins = ["pytester"]

# once anonex is installed with its entry point, pytest loads the plugin by itself, and
# "-p anonex.pytest_plugin" would register it a second time
PLUGIN = [] if any(ep.name == "anonex" for ep in entry_points(group="pytest11")) \
    else ["-p", "anonex.pytest_plugin"]
VERSIONS = ["--anonex-kernel", "5.4", "--anonex-kernel", "6.18"]
OUTCOME = {"pass": "passed", "xfail": "xfailed", "skip": "skipped", "fail": "failed",
           "xpass": "failed"}

SKIP = 'title "migrate a THP"\nP0: mmap A thp\nP0: write A "x"\nP0: migrate A\n' \
       "expect P0 A[0] present\n"
XPASS = 'title "xpass"\nP0: mmap A anon 1\nP0: write A "x"\nexpect P0 A[0] present\n' \
        'xfail <=5.7 "claims a failure"\n'
FAIL = ('title "fails"\nP0: mmap A anon 1\nP0: write A "old"\nP0: fork P1\n'
        'P0: write A "new" @w\nexpect @w reused\nexpect mapcount P0 A[0] == 2\n')
BAD = 'title "bad"\nP0: mmap A anon 1\nP0: wrte A "x"\n'
# from the library: pass everywhere, xfail <=5.7, xfail <=5.8, THP, hugetlb, a layout
FROM_LIBRARY = ["basic-cow-after-fork.cow", "vmsplice-unmap-child.cow",
                "iouring-fixed-buffer-fork.cow", "thp-write-while-shared.cow",
                "hugetlb-vmsplice-unmap-child.cow", "layouts/slab-layout-exclusive-page.cow"]


@pytest.fixture(autouse=True, scope="module")
def _import_anonex() -> None:
    """pytester's in-process runs drop the modules first imported during the run, which the
    compiled (mypyc) model keeps referring to: import all of anonex beforehand."""
    for m in pkgutil.walk_packages(anonex.__path__, "anonex."):
        importlib.import_module(m.name)


def _scenarios(pytester: pytest.Pytester, **files: str) -> Path:
    d = pytester.mkdir("scen")
    for name, text in files.items():
        (d / f"{name}.cow").write_text(text)
    return d


def _outcomes(rec: pytest.HookRecorder) -> dict[str, str]:
    """nodeid -> passed, failed, skipped or xfailed."""
    out: dict[str, str] = {}
    for rep in rec.getreports("pytest_runtest_logreport"):
        if rep.when == "call" or (rep.when == "setup" and not rep.passed):
            out[rep.nodeid] = "xfailed" if hasattr(rep, "wasxfail") else rep.outcome
    return out


def test_verdicts_map_to_outcomes(pytester: pytest.Pytester) -> None:
    d = _scenarios(pytester, skip=SKIP, xpass=XPASS, fails=FAIL)
    shutil.copy(LIBRARY / "vmsplice-unmap-child.cow", d)
    res = pytester.runpytest(*PLUGIN, "scen", *VERSIONS, "-rsx")
    res.assert_outcomes(passed=2, failed=3, skipped=2, xfailed=1)
    res.stdout.fnmatch_lines([
        "*_ fails on model@5.4 _*",
        "fail: 6: expect @w reused (@w was copied)",
        "failed expectations:",
        "  line 6: expect @w reused  (@w was copied)",
        "  line 7: expect mapcount P0 A[0] == 2  (mapcount = 1)",
        "*_ xpass on model@5.4 _*",
        "XPASS (strict): passed, but 'xfail <=5.7' says: claims a failure",
    ])
    res.stdout.fnmatch_lines([
        "SKIPPED [[]2] scen/skip.cow:4: line 4 (P0: migrate A): migrating a large folio: "
        "not in the model yet",
        "XFAIL scen/vmsplice-unmap-child.cow::model@5.4 - reuse by mapcount ignores the "
        """pipe's reference [[]13: expect seen == "old" (seen = 'new')]""",
    ])
    assert "pytest_plugin.py" not in res.stdout.str()
    assert "Traceback" not in res.stdout.str()


def test_parse_error_is_a_clean_collection_error(pytester: pytest.Pytester) -> None:
    _scenarios(pytester, bad=BAD)
    res = pytester.runpytest(*PLUGIN, "scen")
    res.assert_outcomes(errors=1)
    res.stdout.fnmatch_lines(["*ERROR collecting scen/bad.cow*",
                              "scen/bad.cow:3:5: error: unexpected 'wrte'; expected one of*",
                              '    P0: wrte A "x"',
                              "        ^"])
    assert "Traceback" not in res.stdout.str()
    assert "pytest_plugin.py" not in res.stdout.str()


def test_names_select_with_k(pytester: pytest.Pytester) -> None:
    d = _scenarios(pytester, xpass=XPASS)
    shutil.copy(LIBRARY / "vmsplice-unmap-child.cow", d)
    res = pytester.runpytest(*PLUGIN, "scen", *VERSIONS, "--co", "-q", "-k", "5.4")
    res.stdout.fnmatch_lines(["scen/vmsplice-unmap-child.cow::model@5.4",
                              "scen/xpass.cow::model@5.4", "2/4 tests collected*"])
    res = pytester.runpytest(*PLUGIN, "scen", *VERSIONS, "--co", "-q", "-k", "vmsplice")
    res.stdout.fnmatch_lines(["scen/vmsplice-unmap-child.cow::model@5.4",
                              "scen/vmsplice-unmap-child.cow::model@6.18",
                              "2/4 tests collected*"])


def test_default_version_is_the_running_kernels(pytester: pytest.Pytester) -> None:
    _scenarios(pytester, xpass=XPASS)
    res = pytester.runpytest(*PLUGIN, "scen", "--co", "-q")
    res.stdout.fnmatch_lines([f"scen/xpass.cow::model@{running_version()}"])
    res = pytester.runpytest(*PLUGIN, "scen", "--co", "-q", "--anonex-kernel", "5.x")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["*--anonex-kernel: not a kernel version: '5.x'*"])


def test_junitxml(pytester: pytest.Pytester) -> None:
    d = _scenarios(pytester, fails=FAIL)
    shutil.copy(LIBRARY / "vmsplice-unmap-child.cow", d)
    pytester.runpytest(*PLUGIN, "scen", *VERSIONS, "--junitxml=out.xml")
    cases = ET.parse(pytester.path / "out.xml").getroot().iter("testcase")
    got = {(c.get("classname"), c.get("name")): [x.tag for x in c] for c in cases}
    assert got == {
        ("scen.fails.cow", "model@5.4"): ["failure"],
        ("scen.fails.cow", "model@6.18"): ["failure"],
        ("scen.vmsplice-unmap-child.cow", "model@5.4"): ["skipped"],  # xfailed
        ("scen.vmsplice-unmap-child.cow", "model@6.18"): [],
    }


def test_collects_only_what_pytest_is_pointed_at(pytester: pytest.Pytester) -> None:
    """A bare run collects no scenario unless testpaths names it or anonex_collect is set;
    a live-draft folder is left out unless its file is named."""
    _scenarios(pytester, xpass=XPASS)
    (pytester.mkdir("scen/live-draft") / "draft.cow").write_text(XPASS)
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    pytester.runpytest(*PLUGIN, "--co", "-q").stdout.fnmatch_lines(["test_a.py::test_a",
                                                                     "1 test collected*"])
    res = pytester.runpytest(*PLUGIN, "scen", "--co", "-q")
    res.stdout.fnmatch_lines(["scen/xpass.cow::model@*", "1 test collected*"])
    res = pytester.runpytest(*PLUGIN, "scen/live-draft/draft.cow", "--co", "-q")
    res.stdout.fnmatch_lines(["scen/live-draft/draft.cow::model@*", "1 test collected*"])
    pytester.makeini("[pytest]\nanonex_collect = true\n")
    pytester.runpytest(*PLUGIN, "--co", "-q").stdout.fnmatch_lines(["2 tests collected*"])
    pytester.makeini("[pytest]\ntestpaths = scen\n")
    res = pytester.runpytest(*PLUGIN, "--co", "-q")
    res.stdout.fnmatch_lines(["scen/xpass.cow::model@*", "1 test collected*"])


def test_live_unavailable_skips_with_the_reason(pytester: pytest.Pytester,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _scenarios(pytester, xpass=XPASS)
    monkeypatch.setattr(anonex.live, "available", lambda: (False, "not here (test)"))
    monkeypatch.delenv("ANONEX_REQUIRE_LIVE", raising=False)
    res = pytester.runpytest_inprocess(*PLUGIN, "scen", "--anonex-kernel", "6.18",
                                       "--anonex-live", "-rs")
    res.assert_outcomes(passed=1, skipped=1)
    res.stdout.fnmatch_lines(["SKIPPED [[]1] scen/xpass.cow:1: live kernel not available: "
                              "not here (test)"])
    monkeypatch.setenv("ANONEX_REQUIRE_LIVE", "1")
    res = pytester.runpytest_inprocess(*PLUGIN, "scen", "--anonex-kernel", "6.18",
                                       "--anonex-live")
    res.assert_outcomes(passed=1, failed=1)
    res.stdout.fnmatch_lines(["ANONEX_REQUIRE_LIVE=1 but the live kernel is not available: "
                              "not here (test)"])


class _OldKernel:
    """A "live kernel" that says it is 6.18 but behaves like 5.4."""

    name = "live"

    def __init__(self) -> None:
        self.model = ModelBackend(KernelVersion(5, 4))
        self.version = KernelVersion(6, 18)

    def __getattr__(self, name: str) -> object:
        return getattr(self.model, name)


def test_live_divergence_fails_with_the_report(pytester: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import anonex.live.backend

    d = _scenarios(pytester)
    shutil.copy(LIBRARY / "vmsplice-unmap-child.cow", d)
    monkeypatch.setattr(anonex.live, "available", lambda: (True, ""))
    monkeypatch.setattr(anonex.live.backend, "LiveBackend", _OldKernel)
    res = pytester.runpytest_inprocess(*PLUGIN, "scen", "--anonex-kernel", "6.18",
                                       "--anonex-live")
    res.assert_outcomes(passed=1, failed=1)
    res.stdout.fnmatch_lines([
        "*_ vmsplice-unmap-child on live _*",
        "diverges vmsplice-unmap-child on live (model@6.18): 7 divergences in 7 lines, "
        'first at line 5 (P0: write A "old")',
        "  line 5 (P0: write A \"old\"): P0 A[0] anon_exclusive: model@6.18 True, live False",
        "  line 9 (P0: write A \"new\" @w): @w outcome: model@6.18 'copied', live 'reused'",
        "*line 12 (P1: read pipe -> seen): value read: model@6.18 'old', live 'new'",
        "(live verdict: fail; model: pass)",
    ])
    assert "pytest_plugin.py" not in res.stdout.str()


def test_live_kernel(pytester: pytest.Pytester, live: None) -> None:
    d = _scenarios(pytester)
    shutil.copy(LIBRARY / "basic-cow-after-fork.cow", d)
    res = pytester.runpytest(*PLUGIN, "scen", "--anonex-live", "-v")
    res.assert_outcomes(passed=2)
    res.stdout.fnmatch_lines(["scen/basic-cow-after-fork.cow::live PASSED*"])


def _expected(folder: Path, versions: list[str]) -> dict[str, str]:
    """nodeid -> outcome, from the runner's verdicts (as anonex check judges them)."""
    out = {}
    for f in sorted(folder.rglob("*.cow")):
        scen = parse_file(f)
        for v in versions:
            t = run(scen, ModelBackend(KernelVersion.parse(v)), full=False)
            out[f"{f.relative_to(folder.parent).as_posix()}::model@{v}"] = OUTCOME[t.verdict]
    return out


def test_agrees_with_the_runner(pytester: pytest.Pytester) -> None:
    d = _scenarios(pytester, skip=SKIP)
    for name in FROM_LIBRARY:
        shutil.copy(LIBRARY / name, d)
    want = _expected(d, ["5.4", "6.18"])
    assert set(want.values()) == {"passed", "xfailed", "skipped"}
    rec = pytester.inline_run(*PLUGIN, "scen", *VERSIONS)
    assert _outcomes(rec) == want


def test_whole_library_at_6_18(pytester: pytest.Pytester) -> None:
    shutil.copytree(LIBRARY, pytester.path / "library")
    want = _expected(pytester.path / "library", ["6.18"])
    rec = pytester.inline_run(*PLUGIN, "library", "--anonex-kernel", "6.18", "-q")
    got = _outcomes(rec)
    assert Counter(got.values()) == Counter(want.values())
    assert got == want
