"""The scenario library and the shared examples on the model at every boundary version."""

from __future__ import annotations

import csv
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from anonex.harness.model import ModelBackend
from anonex.kernel.versions import boundary_versions
from anonex.runner import run
from anonex.scenario.parser import parse_file
from anonex.versions import KernelVersion

from .conftest import LIBRARY, SPEC

VERSIONS = boundary_versions()
LIB_FILES = sorted(p for p in LIBRARY.rglob("*.cow")
                   if "cow" not in p.parent.name)
COW_FILES = sorted((LIBRARY / "cow").glob("*.cow"))


def test_library_is_not_empty() -> None:
    assert len(LIB_FILES) >= 20
    assert len(COW_FILES) >= 150


@pytest.mark.parametrize("path", LIB_FILES, ids=lambda p: p.stem)
def test_library_verdicts_as_expected(path: Path) -> None:
    scen = parse_file(path)
    for v in VERSIONS:
        t = run(scen, ModelBackend(v))
        assert t.verdict in ("pass", "xfail", "skip"), f"{v}: {t.verdict}: {t.reason}"


def test_spec_examples_match_library(spec_dir: Path) -> None:
    """The library carries the shared examples unmodified."""
    for f in spec_dir.glob("*.cow"):
        assert (LIBRARY / f.name).read_text() == f.read_text(), f.name


SPEC_EXAMPLES = ["basic-cow-after-fork", "vmsplice-unmap-child", "iouring-fixed-buffer-fork",
                 "iouring-fixed-buffer-mprotect", "remote-read-unshares"]


@pytest.mark.parametrize("name", SPEC_EXAMPLES)
def test_small_page_examples_pass_on_6_18(spec_dir: Path, name: str) -> None:
    t = run(parse_file(spec_dir / f"{name}.cow"), ModelBackend())
    assert t.verdict == "pass", t.reason
    assert t.unobservable == 0


@pytest.mark.parametrize("name", [p.stem for p in sorted(SPEC.glob("*.cow"))]
                         if SPEC.is_dir() else [])
def test_every_spec_example_passes_on_6_18(name: str) -> None:
    t = run(parse_file(SPEC / f"{name}.cow"), ModelBackend())
    assert t.verdict in ("pass", "xfail"), t.reason


def test_xfail_ranges_really_fail() -> None:
    """The historic bugs show up where the examples' xfail lines say."""
    vm = parse_file(LIBRARY / "vmsplice-unmap-child.cow")
    assert run(vm, ModelBackend(KernelVersion(5, 4))).verdict == "xfail"
    assert run(vm, ModelBackend(KernelVersion(5, 8))).verdict == "pass"
    mp = parse_file(LIBRARY / "iouring-fixed-buffer-mprotect.cow")
    assert run(mp, ModelBackend(KernelVersion(5, 12))).verdict == "xfail"
    assert run(mp, ModelBackend(KernelVersion(5, 19))).verdict == "pass"


# -- the kernel's COW selftest, cell by cell --------------------------------------------------

# cow-history.md §3 columns and the kernel versions each one stands for.
COLUMNS = [("v5.7", "5.4", "5.7"), ("v5.8", "5.8", "5.8"), ("v5.9", "5.9", "5.11"),
           ("v5.12", "5.12", "5.17"), ("v5.18", "5.18", "5.18"), ("v5.19", "5.19", "6.1"),
           ("v6.2", "6.2", "6.17"), ("v6.18", "6.18", "99.0")]


def _column(v: KernelVersion) -> str:
    for name, lo, hi in COLUMNS:
        if KernelVersion.parse(lo).major_minor <= v.major_minor <= KernelVersion.parse(
                hi).major_minor:
            return name
    raise AssertionError(v)


def _verdicts(path: Path) -> list[tuple[str, str, str]]:
    scen = parse_file(path)
    out = []
    for v in VERSIONS:
        t = run(scen, ModelBackend(v), full=False)
        out.append((str(v), t.verdict, t.reason))
    return out


def test_cow_selftest_matrix_cell_by_cell() -> None:
    """Every cell of cow-matrix.csv (cow-history.md §3) at every boundary version: P is a
    passing scenario, F a failing one (xfail); no scenario passes where its xfail says it
    fails, or fails where none does."""
    table_path = SPEC.parent / "reference" / "cow-matrix.csv"
    if not table_path.exists():
        pytest.skip(f"{table_path} not found")
    table: dict[str, str] = {}
    with table_path.open() as fh:
        for row in csv.DictReader(fh):
            table[f"{row['test']} ... with {row['variant']}"] = "".join(
                row[c] for c, _, _ in COLUMNS)
    titles = {p: parse_file(p).title for p in COW_FILES}
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = dict(zip(COW_FILES, pool.map(_verdicts, COW_FILES), strict=True))
    checked = 0
    problems = []
    for path, rows in results.items():
        cells = table.get(titles[path])
        for v, verdict, reason in rows:
            if verdict not in ("pass", "xfail"):
                problems.append(f"{path.stem} @{v}: {verdict}: {reason}")
            if cells is None:
                continue
            want = cells[[c for c, _, _ in COLUMNS].index(_column(KernelVersion.parse(v)))]
            got = "P" if verdict == "pass" else "F"
            checked += 1
            if want != got:
                problems.append(f"{titles[path]} @{v}: table {want}, model {got}")
    assert not problems, "\n".join(problems[:30])
    assert checked >= 140 * len(VERSIONS)
