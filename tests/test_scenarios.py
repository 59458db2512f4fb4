"""The scenario library and the shared examples on the model at every boundary version."""

from __future__ import annotations

from pathlib import Path

import pytest

from anonex.kernel.backend import ModelBackend
from anonex.kernel.versions import boundary_versions
from anonex.scenario.parser import parse_file
from anonex.scenario.runner import run

from .conftest import LIBRARY

VERSIONS = boundary_versions()
LIB_FILES = sorted(p for p in LIBRARY.rglob("*.cow") if "live-draft" not in p.parts)


def test_library_is_not_empty() -> None:
    assert len(LIB_FILES) >= 10


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


ISSUE2 = ["basic-cow-after-fork", "vmsplice-unmap-child", "iouring-fixed-buffer-fork",
          "iouring-fixed-buffer-mprotect", "remote-read-unshares"]


@pytest.mark.parametrize("name", ISSUE2)
def test_small_page_examples_pass_on_6_18(spec_dir: Path, name: str) -> None:
    t = run(parse_file(spec_dir / f"{name}.cow"), ModelBackend())
    assert t.verdict == "pass", t.reason
    assert t.unobservable == 0


def test_xfail_ranges_really_fail() -> None:
    """The historic bugs show up where the examples' xfail lines say."""
    vm = parse_file(LIBRARY / "vmsplice-unmap-child.cow")
    from anonex.versions import KernelVersion

    assert run(vm, ModelBackend(KernelVersion(5, 4))).verdict == "xfail"
    assert run(vm, ModelBackend(KernelVersion(5, 8))).verdict == "pass"
    mp = parse_file(LIBRARY / "iouring-fixed-buffer-mprotect.cow")
    assert run(mp, ModelBackend(KernelVersion(5, 12))).verdict == "xfail"
    assert run(mp, ModelBackend(KernelVersion(5, 19))).verdict == "pass"
