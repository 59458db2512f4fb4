"""The dead-field reduction (explore/deadfields.py): the same answers with fewer states.

Each search runs with and without it: the violations (property and shortest path), the
sometimes properties reached and the depth reached must be the same, and the reduced
search must store fewer states wherever a field is dead. ``test_explore_state.py`` also
checks, on the reduced key, that states with one key have the same successors.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import anonex
from anonex.explore.deadfields import DIRTY, FIELDS, HAS_PINNED, READERS, dead_fields
from anonex.explore.search import Options, explore
from anonex.explore.space import DEFAULT_OPS, Bounds
from anonex.explore.world import Space
from anonex.kernel.versions import Rules
from anonex.versions import KernelVersion

V = KernelVersion.parse
SRC = Path(anonex.__file__).parent


def _answers(version: str, dead: bool, **bounds: object) -> tuple[object, ...]:
    space = Space(Bounds(**bounds), V(version), dead_fields=dead)  # type: ignore[arg-type]
    res = explore(space, Options())
    assert res.complete
    violations = sorted((name, tuple(v.path)) for name, vs in res.violations.items()
                        for v in vs)
    return (violations, sorted(res.reached), res.stats.depth, res.stats.distinct)


@pytest.mark.parametrize(("version", "bounds"), [
    ("5.4", {"kinds": ("anon",), "depth": 5}),  # has_pinned and dirty dead; violations
    ("5.8", {"kinds": ("anon",), "depth": 5}),
    ("6.18", {"kinds": ("anon",), "depth": 6}),  # dirty dead
    ("6.18", {"kinds": ("thp",), "depth": 3}),
    ("6.18", {"kinds": ("hugetlb",), "depth": 4}),
    ("5.7", {"kinds": ("anon",), "depth": 4, "procs": 3}),
])
def test_same_answers_with_fewer_states(version: str, bounds: dict[str, object]) -> None:
    full = _answers(version, False, **bounds)
    reduced = _answers(version, True, **bounds)
    assert reduced[:3] == full[:3]
    assert reduced[3] < full[3]  # type: ignore[operator]


def test_no_reduction_where_every_field_is_read() -> None:
    """6.1 upgrades only dirty PTEs at mprotect (mprotect_upgrade_exclusive, not yet
    _clean) and has MMF_HAS_PINNED: nothing is dead, the search is the same."""
    assert dead_fields(Rules(V("6.1")), frozenset(DEFAULT_OPS)) == frozenset()
    assert _answers("6.1", True, kinds=("anon",), depth=4) == \
        _answers("6.1", False, kinds=("anon",), depth=4)


@pytest.mark.parametrize(("version", "ops", "dead"), [
    ("5.4", DEFAULT_OPS, {DIRTY, HAS_PINNED}),
    ("5.9", DEFAULT_OPS, {DIRTY}),
    ("5.19", DEFAULT_OPS, {DIRTY}),
    ("6.1", DEFAULT_OPS, set()),
    ("6.18", DEFAULT_OPS, {DIRTY}),
    ("6.18", (*DEFAULT_OPS, "mergeable", "ksm-scan"), set()),
    ("6.2", (*DEFAULT_OPS, "force-write"), {DIRTY}),  # FOLL_FORCE asks the exclusive flag
    ("5.19", (*DEFAULT_OPS, "force-write"), set()),  # and before 6.0 the dirty bit
])
def test_which_fields_are_dead(version: str, ops: tuple[str, ...], dead: set[str]) -> None:
    assert dead_fields(Rules(V(version)), frozenset(ops)) == dead


def _readers(field: str) -> set[str]:
    """module.function of every read of attribute *field* in the model the explorer runs
    (kernel/, harness/, the explorer's properties)."""
    files = [*(SRC / "kernel").glob("*.py"), *(SRC / "harness").glob("*.py"),
             SRC / "explore" / "properties.py", SRC / "explore" / "world.py"]
    out = set()
    for path in files:
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Attribute) and node.attr == field and \
                        isinstance(node.ctx, ast.Load):
                    out.add(f"{path.stem}.{fn.name}")
    return out


@pytest.mark.parametrize("field", FIELDS)
def test_every_reader_of_a_dead_field_is_known(field: str) -> None:
    """A new read of a field the reduction may leave out must be weighed in
    dead_fields() and listed in READERS, or the reduction could merge states the new
    reader tells apart."""
    assert _readers(field) == set(READERS[field])


def test_the_command_line_turns_it_off() -> None:
    """``--no-dead-fields`` gives the pinned count of the search without the reduction."""
    import json

    from typer.testing import CliRunner

    from anonex.cli import app

    def summary(*extra: str) -> dict[str, object]:
        res = CliRunner().invoke(app, ["explore", "--kernel", "6.18", "--kinds", "anon",
                                       "--depth", "4", "--json", "--no-files", "-j", "1",
                                       *extra])
        assert res.exit_code == 0, res.stdout
        out: dict[str, object] = json.loads(res.stdout.splitlines()[-1])
        return out

    on, off = summary(), summary("--no-dead-fields")
    assert off["distinct"] == 766  # tests/test_explore.py PINNED[("6.18", "anon", 4)]
    assert on["distinct"] < off["distinct"]  # type: ignore[operator]
    assert (on["violated"], on["sometimes"]) == (off["violated"], off["sometimes"])


@pytest.mark.parametrize("dead", [True, False])
def test_a_ray_actor_builds_the_same_space(dead: bool) -> None:
    """A Ray actor rebuilds the model from KernelModel.remote(): with the reduction as the
    coordinator chose it, or the partitions would key states differently."""
    from anonex.explore.kernel_model import KernelModel

    space = Space(Bounds(kinds=("anon",), depth=3), V("6.18"), dead_fields=dead)
    again = KernelModel(space).remote()().space
    assert again.layout == space.layout and again.prune == space.prune
    assert bool(again.layout.dead) == dead
