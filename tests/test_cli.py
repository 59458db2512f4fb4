"""The command line: exit codes, outputs, and no traceback on bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from anonex.cli import app

from .conftest import LIBRARY

runner = CliRunner()


def test_check_model_only_is_green() -> None:
    r = runner.invoke(app, ["check", "--no-live", str(LIBRARY / "predictions")])
    assert r.exit_code == 0, r.output
    assert "p03-fork-unpinned" in r.output and "0 unexpected" in r.output


def test_check_tap() -> None:
    r = runner.invoke(app, ["check", "--no-live", "--tap", "--kernel", "6.18",
                            str(LIBRARY / "vmsplice-unmap-child.cow")])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "TAP version 13" and lines[1] == "1..1"
    assert lines[2].startswith("ok 1 vmsplice() + unmap in child [6.18]")
    assert lines[-1].startswith("# Totals: pass:1 fail:0")


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
