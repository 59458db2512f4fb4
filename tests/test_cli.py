"""The command line: exit codes, outputs, and no traceback on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anonex.cli import app

from .conftest import LIBRARY

runner = CliRunner()


def test_check_model_only_is_green() -> None:
    r = runner.invoke(app, ["check", "--no-live", str(LIBRARY / "predictions")])
    assert r.exit_code == 0, r.output
    assert "model at 23 versions: 460 runs, 0 unexpected" in r.output or \
        "0 unexpected" in r.output
    assert "20 scenarios" in r.output
    # nothing needs attention: no matrix; --verbose shows every row
    assert "p03-fork-unpinned" not in r.output
    r = runner.invoke(app, ["check", "--no-live", "--verbose", str(LIBRARY / "predictions")])
    assert "p03-fork-unpinned" in r.output and "· pass" in r.output


def _wrong(tmp_path: Path) -> Path:
    f = tmp_path / "wrong.cow"
    f.write_text('title "wrong on purpose"\nP0: mmap A anon 1\nP0: write A "x"\n'
                 'expect not P0 A[0] exclusive on >=5.19\n')
    return f


def test_check_shows_the_rows_that_need_attention(tmp_path: Path) -> None:
    f = _wrong(tmp_path)
    r = runner.invoke(app, ["check", "--no-live", "--kernel", "5.4", "--kernel", "6.18",
                            str(LIBRARY / "vmsplice-unmap-child.cow"), str(f)])
    assert r.exit_code == 1
    lines = r.output.splitlines()
    row = next(x for x in lines if x.startswith("wrong "))
    assert row.split()[1:] == ["·", "F"]  # 5.4 passes, 6.18 fails
    assert not any(x.startswith("vmsplice-unmap-child ") for x in lines)
    assert "fail wrong on 6.18" in r.output and "1 unexpected" in r.output


def test_check_fits_80_columns() -> None:
    """The whole library's matrix at 80 columns: every line fits, every cell is there."""
    from rich.console import Console

    from anonex.check import Options, check
    from anonex.fingerprint.document import KernelRules
    from anonex.kernel.versions import boundary_versions
    from anonex.report import checkview
    from anonex.scenario.parser import parse_file

    scens = [parse_file(p) for p in sorted((LIBRARY / "predictions").glob("*.cow"))]
    models = [KernelRules.of_version(v) for v in boundary_versions()]
    result = check(scens, [], Options(models))
    con = Console(width=80, record=True, highlight=False)
    checkview.render(con, result, verbose=True)
    lines = con.export_text().splitlines()
    assert all(len(x) <= 80 for x in lines), [x for x in lines if len(x) > 80]
    rows = [x for x in lines if x[:1] == "p" and x[1:3].isdigit()]
    assert len(rows) == 20
    assert all(len(r.split()) == 1 + len(models) for r in rows)  # a cell per version


def test_check_names_fit_narrow_terminals() -> None:
    from anonex.report.checkview import shorten

    name = "basic-cow-after-fork-when-collapsing-after-fork-fully-shared-with-thp"
    s = shorten(name, 30)
    assert len(s) == 30 and s.startswith("basic-cow-af") and s.endswith("shared-with-thp")
    assert shorten("short", 30) == "short"


def test_check_tap(tmp_path: Path) -> None:
    r = runner.invoke(app, ["check", "--no-live", "--tap", "--kernel", "6.18",
                            str(LIBRARY / "vmsplice-unmap-child.cow")])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "KTAP version 1" and lines[1] == "1..1"
    assert lines[2].startswith("ok 1 vmsplice() + unmap in child [6.18]")
    assert lines[-1].startswith("# Totals: pass:1 fail:0")
    r = runner.invoke(app, ["check", "--no-live", "--tap", "--kernel", "6.18", str(_wrong(
        tmp_path))])
    assert r.exit_code == 1
    assert "not ok 1 wrong on purpose [6.18]" in r.output
    assert "# fail: 4: expect not P0 A[0] exclusive" in r.output


def test_check_json_document(tmp_path: Path) -> None:
    r = runner.invoke(app, ["check", "--no-live", "--json", "--kernel", "5.4", "--kernel",
                            "6.18", str(LIBRARY / "vmsplice-unmap-child.cow"),
                            str(_wrong(tmp_path))])
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["columns"] == ["5.4", "6.18"] and doc["kernels"] == []
    by = {s["name"]: s for s in doc["scenarios"]}
    assert by["vmsplice-unmap-child"]["cells"]["5.4"]["verdict"] == "xfail"
    assert by["wrong"]["cells"]["6.18"]["verdict"] == "fail"
    assert doc["totals"] == {"scenarios": 2, "runs": 4, "unexpected": 1, "diverging": 0,
                             "kernels_not_run": []}


def test_run_json_and_trace() -> None:
    f = str(LIBRARY / "basic-cow-after-fork.cow")
    r = runner.invoke(app, ["run", f, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert set(doc) == {"scenario", "backend", "steps", "vars", "verdicts"}
    assert doc["vars"] == {"seen": "before"}
    assert doc["verdicts"]["verdict"] == "pass"
    first_write = doc["steps"][1]
    assert first_write["outcome"] == "new"
    assert first_write["observations"][0]["anon_exclusive"] is True
    r = runner.invoke(app, ["run", f, "--trace", "--kernel", "5.4"])
    assert r.exit_code == 0, r.output
    assert "faults=1 copied" in r.output and "verdict: pass" in r.output


def test_unexpected_verdict_exits_1(tmp_path: Path) -> None:
    f = tmp_path / "wrong.cow"
    f.write_text('P0: mmap A anon 1\nP0: write A "x"\nexpect not P0 A[0] exclusive\n')
    r = runner.invoke(app, ["run", str(f)])
    assert r.exit_code == 1
    assert "fail" in r.output


def test_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    f = tmp_path / "bad.cow"
    f.write_text('P0: mmap A anon 1\nP0: write A[5] "x"\n')
    for args in (["run", str(f)], ["check", "--no-live", str(f)],
                 ["run", str(tmp_path / "missing.cow")], ["run", str(f), "--kernel", "x.y"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output
        assert r.exception is None or isinstance(r.exception, SystemExit)
    r = runner.invoke(app, ["run", str(f)])
    assert "bad.cow:2:1: error: page 5 is past the end of region A" in r.output


def test_run_dot_picture() -> None:
    import shutil
    import subprocess

    f = str(LIBRARY / "vmsplice-unmap-child.cow")
    r = runner.invoke(app, ["run", f, "--dot", "--kernel", "5.4"])
    assert r.exit_code == 0, r.output  # xfail on 5.4 is as expected
    text = r.output
    assert text.startswith('digraph "vmsplice-unmap-child"')
    assert text.count("subgraph cluster_") == 7  # one per step
    assert "leak: pipe" in text  # the finding is in the picture
    assert "s5_p1" in text
    if shutil.which("dot"):
        out = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True,
                             check=False)
        assert out.returncode == 0, out.stderr
        assert "<svg" in out.stdout


def test_help_is_wrapped_by_the_terminal_and_choices_are_listed() -> None:
    r = runner.invoke(app, ["--help"], env={"COLUMNS": "100"})
    # each command's summary is its first sentence, not the docstring's first source line
    box = r.output[r.output.index("Commands"):]
    assert "version number" in box and "Exit 0" not in box  # the first sentence only
    assert not any(x.rstrip(" │").endswith((" it", " every", " the")) for x in
                   box.splitlines())  # no line broken where the source broke it
    r = runner.invoke(app, ["explore", "--strategy", "sideways"])
    assert r.exit_code == 2 and "bfs" in r.output and "random" in r.output
    r = runner.invoke(app, ["run", str(LIBRARY / "basic-cow-after-fork.cow"), "--layout",
                            "nowhere"])
    assert r.exit_code == 2 and "owner_2" in r.output


def test_page_types_does_not_import_the_rest() -> None:
    """``anonex page-types`` starts without typer, rich or the model (start-up time)."""
    import subprocess
    import sys

    code = ("import sys; sys.argv = ['anonex', 'page-types', '-h']\n"
            "from anonex.entry import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "bad = [m for m in ('typer', 'rich', 'anonex.cli', 'anonex.harness.model',"
            " 'anonex.explore') if m in sys.modules]\n"
            "print('LOADED', bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "LOADED []" in out, out


def test_html_pages_from_the_command_line(tmp_path: Path) -> None:
    page = tmp_path / "cve.html"
    r = runner.invoke(app, ["run", str(LIBRARY / "vmsplice-unmap-child.cow"), "-k", "5.4",
                            "--html", str(page)])
    assert r.exit_code == 0, r.output
    text = page.read_text()
    assert "vmsplice() + unmap in child" in text and "P1: vmsplice A -&gt; pipe" in text
    check = tmp_path / "check.html"
    r = runner.invoke(app, ["check", "--no-live", "-k", "6.15", "-k", "6.16", "--html",
                            str(check), str(LIBRARY / "vmsplice-unmap-child.cow"),
                            str(LIBRARY / "predictions")])
    assert r.exit_code == 0, r.output
    html = check.read_text()
    # every model cell opens its run, drawn in the worker; 6.15 and 6.16 have the same
    # rules, so most runs are stored once (an expectation's "not on 6.15" differs)
    blobs = html.count('type="application/x-anonex-run"')
    assert "p03-fork-unpinned" in html and 21 <= blobs < 42, blobs
    assert "https://" not in html and "http://" not in html
    bad = runner.invoke(app, ["run", str(LIBRARY / "vmsplice-unmap-child.cow"), "--html",
                              str(tmp_path / "no" / "such" / "dir.html")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_live_without_the_live_kernel_exits_4_and_says_why(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """kselftest's skip code, and the reason (here: as if not root)."""
    monkeypatch.setattr("anonex.live.available", lambda: (False, "needs root (euid 1000)"))
    r = runner.invoke(app, ["live", str(LIBRARY / "basic-cow-after-fork.cow")])
    assert r.exit_code == 4 and "needs root (euid 1000)" in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    r = runner.invoke(app, ["check", "--tap", "-k", "6.18",
                            str(LIBRARY / "basic-cow-after-fork.cow")])
    assert r.exit_code == 0, r.output  # the running kernel unavailable is a skip
    assert "ok 2 live kernel # SKIP needs root (euid 1000)" in r.output


def test_run_json_carries_findings_as_data(tmp_path: Path) -> None:
    f = tmp_path / "leak.cow"
    f.write_text('P0: mmap A anon 1\nP0: write A "old"\nP0: fork P1\nP1: vmsplice A -> pipe\n'
                 'P1: munmap A\nP0: write A "new"\nP1: read pipe -> seen\n'
                 'expect bug "no-leak"\n')
    r = runner.invoke(app, ["run", str(f), "-k", "5.4", "--json"])
    assert r.exit_code == 0, r.output  # the leak is expected, by its property's name
    doc = json.loads(r.stdout)
    (found,) = [x for s in doc["steps"] for x in s["findings"]]
    assert found["property"] == "no-leak" and found["line"] == 7
