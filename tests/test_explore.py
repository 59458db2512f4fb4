"""The explorer: what it finds per kernel era, counterexample round trips, strategies,
workers, stores, and pinned state counts.

PINNED holds the number of distinct states (and transitions) of a few small bounds per
kernel version. A change of the model (or of the state key) that alters the state space
changes these numbers on purpose: check that the change is meant, then update the table
(``python tests/test_explore.py`` prints the current one).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from anonex.cli import app
from anonex.explore import cex
from anonex.explore.cli import DEFAULT_SCOPES, scope_depth
from anonex.explore.search import Options, Result, explore
from anonex.explore.space import Bounds
from anonex.explore.world import Space
from anonex.versions import KernelVersion

V = KernelVersion.parse

# (kernel, kinds, depth) -> (distinct states, transitions); default ops, procs 2, pages 1.
# Before 5.10.9/5.11 a pinned page can be swapped out (pinned_not_swapcached), and 5.9-5.17
# keep the LRU batch's references (lru.py): both grew the state spaces of 5.4-5.9 (and a
# pinned page in the swap cache is no pin-coherence violation until a fault replaces it).
PINNED: dict[tuple[str, str, int], tuple[int, int]] = {
    ("5.4", "anon", 4): (755, 1564),
    ("5.8", "anon", 4): (855, 1700),
    ("5.9", "anon", 4): (876, 1715),
    ("5.19", "anon", 4): (727, 1557),
    ("6.1", "anon", 4): (713, 1541),
    ("6.18", "anon", 4): (766, 1680),
    ("5.7", "hugetlb", 3): (156, 256),
    ("6.18", "hugetlb", 3): (160, 256),
    ("6.18", "thp", 2): (45, 60),
}


def search(version: str, kinds: tuple[str, ...] = ("anon",), depth: int = 5,
           dead_fields: bool = True, **opts: object) -> tuple[Space, Result]:
    space = Space(Bounds(kinds=kinds, depth=depth), V(version), dead_fields=dead_fields)
    return space, explore(space, Options(**opts))  # type: ignore[arg-type]


def _counts(version: str, kinds: str, depth: int) -> tuple[int, int]:
    """The counts without reductions beyond symmetry and pruning (the dead-field
    reduction has its own with/without tests: test_explore_reduce.py)."""
    _, res = search(version, tuple(kinds.split(",")), depth, dead_fields=False)
    assert res.complete
    return res.stats.distinct, res.stats.generated


@pytest.mark.parametrize("case", sorted(PINNED))
def test_pinned_state_counts(case: tuple[str, str, int]) -> None:
    got = _counts(*case)
    assert got == PINNED[case], (
        f"the state space of {case} changed: {got} (was {PINNED[case]}); if the model "
        f"change is meant, update PINNED: {case!r}: {got!r},")


# -- what the explorer finds, era by era -------------------------------------------------


CVE_PATH = (("write", "P0", "A", 0, "a"), ("fork", "P0", "", -1, "P1"),
            ("vmsplice", "P1", "A", 0, "pipe"), ("munmap", "P1", "A", -1, ""),
            ("write", "P0", "A", 0, "b"))


def test_cve_2020_29374_at_5_7_is_the_shortest_leak() -> None:
    space, res = search("5.7", depth=5, properties=("no-leak",))
    assert res.complete
    leaks = res.violations["no-leak"]
    assert leaks[0].path == CVE_PATH  # fork, vmsplice in the child, unmap, parent writes
    c = cex.make(space, leaks[0])
    assert c.confirmed, c.replay
    assert "vmsplice" in c.known  # the library expects this failure up to 5.8
    assert "P1: vmsplice A[0] -> pipe\nP1: munmap A\nP0: write A[0] \"b\"" in c.text
    assert c.title == ("leak at 5.7 (vmsplice): the pipe P1 filled from A[0] shows 'b', "
                       "which P0 wrote")


@pytest.mark.parametrize("version", ["5.9", "5.13", "5.18"])
def test_wrong_cow_of_a_pinned_page_in_5_9_to_5_18(version: str) -> None:
    space, res = search(version, depth=4, properties=("pin-coherence",))
    paths = [v.path for v in res.violations["pin-coherence"]]
    # the page_count era: mprotect() read-only and back makes the owner's write copy
    # away from its own long-term pin
    assert (("pin", "P0", "A", 0, "buf longterm rw"), ("mprotect", "P0", "A", -1, "ro"),
            ("mprotect", "P0", "A", -1, "rw"), ("write", "P0", "A", 0, "a")) in paths
    for v in res.violations["pin-coherence"]:
        c = cex.make(space, v)
        assert c.confirmed, c.replay
        assert c.title.startswith(f"wrong COW at {version}")


def test_5_19_fixes_the_wrong_cow_and_the_leak() -> None:
    _, res = search("5.19", depth=5, properties=("pin-coherence", "no-leak"))
    assert "no-leak" not in res.violations
    # only the R/O long-term pin of the shared zero page is left (fixed in 6.2)
    assert {v.ops for v in res.violations["pin-coherence"]} == {frozenset({"pin-ro"})}


def test_6_18_default_bound_reports_only_known_kernel_behaviour() -> None:
    for kinds in DEFAULT_SCOPES:
        space, res = search("6.18", kinds, scope_depth(kinds, None), workers=2)
        assert res.complete and not res.missed
        cexs = [cex.make(space, v) for vs in res.violations.values() for v in vs]
        assert all(c.confirmed and c.known for c in cexs), [c.title for c in cexs]
        if kinds == ("anon",):
            assert not cexs
        else:
            assert [c.prop for c in cexs] == ["no-leak"]
            assert "hugetlb" in cexs[0].known


@pytest.mark.parametrize("fault,prop,ops", [
    ("ksm-exclusive", "no-kernel-bug", ("write", "mergeable", "ksm-scan")),
    ("fs-mappedtodisk", "no-kernel-bug", ("write", "pageout", "dontneed"))])
def test_a_planted_bug_is_found(fault: str, prop: str, ops: tuple[str, ...]) -> None:
    space = Space(Bounds(pages=2, ops=ops, depth=4, inject=(fault,)), V("6.18"))
    clean = explore(Space(Bounds(pages=2, ops=ops, depth=4), V("6.18")))
    assert not clean.violations and not clean.missed
    res = explore(space)
    v = res.violations[prop][0]
    c = cex.make(space, v)
    assert c.confirmed, c.replay
    assert c.text.splitlines()[3] == f"inject {fault}"


# -- round trip through the command line ---------------------------------------------------


def test_counterexample_round_trip_through_anonex_run(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["explore", "--kernel", "5.7", "--kinds", "anon", "--depth", "5",
                              "-p", "no-leak", "-p", "page-shared", "--out", str(tmp_path),
                              "--json", "-j", "1"])
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert res.exit_code == 0, res.stdout  # the leak is known kernel behaviour of 5.7
    kinds = [x["event"] for x in lines]
    assert kinds[0] == "start" and kinds[-1] == "summary" and "counterexample" in kinds
    summary = lines[-1]
    assert summary["complete"] and summary["violated"] == ["no-leak"]
    assert summary["sometimes"] == {"page-shared": 2}
    files = sorted(tmp_path.glob("*.cow"))
    assert [f.name for f in files] == ["cex-5.7-no-leak.cow"]
    run = runner.invoke(app, ["run", str(files[0]), "--kernel", "5.7", "--trace"])
    assert run.exit_code == 1
    assert "verdict: fail" in run.stdout and "finding: leak: pipe 'pipe'" in run.stdout
    ok = runner.invoke(app, ["run", str(files[0]), "--kernel", "5.9"])
    assert ok.exit_code == 0, ok.stdout  # the same steps are fine on a fixed kernel


def test_cli_exit_status_and_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["explore", "--ops", "write,teleport"])
    assert bad.exit_code == 2 and "unknown operation 'teleport'" in bad.output
    bad = runner.invoke(app, ["explore", "-p", "no-such"])
    assert bad.exit_code == 2 and "unknown property" in bad.output
    # a bound too small to reach what it should: the pass would be vacuous
    res = runner.invoke(app, ["explore", "--kinds", "anon", "--depth", "1", "--no-files",
                              "-j", "1"])
    assert res.exit_code == 1
    assert "NOT REACHED" in res.stdout


# -- strategies, workers, stores -----------------------------------------------------------


def test_workers_and_fingerprints_do_not_change_the_result() -> None:
    _, one = search("5.9", depth=5)
    _, two = search("5.9", depth=5, workers=2)
    _, fp = search("5.9", depth=5, workers=2, fingerprints=True)
    for r in (two, fp):
        assert (r.stats.distinct, r.stats.generated, r.levels) == \
            (one.stats.distinct, one.stats.generated, one.levels)
        assert {p: [v.path for v in vs] for p, vs in r.violations.items()} == \
            {p: [v.path for v in vs] for p, vs in one.violations.items()}
        assert r.reached == one.reached
    assert fp.bytes_per_state < one.bytes_per_state / 10


def test_depth_first_sees_the_same_states() -> None:
    _, bfs = search("5.7", depth=4)
    _, dfs = search("5.7", depth=4, strategy="dfs")
    assert dfs.complete and dfs.stats.distinct == bfs.stats.distinct
    assert set(dfs.violations) == set(bfs.violations)


@pytest.mark.parametrize("workers", [1, 2])
def test_random_walks_are_reproducible(workers: int) -> None:
    _, a = search("5.7", depth=6, strategy="random", walks=200, seed=7, workers=workers)
    _, b = search("5.7", depth=6, strategy="random", walks=200, seed=7, workers=workers)
    assert (a.stats.distinct, a.stats.generated) == (b.stats.distinct, b.stats.generated)
    assert a.stats.distinct > 100 and a.complete
    assert {p: [v.path for v in vs] for p, vs in a.violations.items()} == \
        {p: [v.path for v in vs] for p, vs in b.violations.items()}


@pytest.mark.parametrize("workers", [1, 2])
def test_max_states_and_timeout_stop_the_search(workers: int) -> None:
    _, r = search("6.18", depth=8, max_states=300, workers=workers)
    assert not r.complete and r.stopped == "max-states" and r.stats.distinct >= 300
    _, r = search("6.18", depth=8, timeout=0.3, workers=workers)
    assert not r.complete and r.stopped == "timeout" and r.stats.elapsed < 2


def test_stop_on_first_and_property_selection() -> None:
    _, r = search("5.7", depth=5, stop_on_first=True)
    assert r.stopped == "violation" and len(r.violations) == 1
    _, r = search("5.7", depth=5, properties=("accounting", "swapped-shared"))
    assert r.always == ("accounting",) and r.sometimes == ("swapped-shared",)
    assert not r.violations and "swapped-shared" in r.reached


def test_sometimes_properties_show_what_the_search_reached() -> None:
    _, r = search("5.9", depth=4)
    assert {"page-shared", "cow-broken", "pipe-page-unmapped", "pinned-and-forked",
            "shared-and-pinned", "swapped-shared"} <= set(r.reached)
    _, r = search("6.18", depth=4)
    assert "shared-and-pinned" not in r.sometimes  # impossible from 5.19: not expected
    assert "exclusive-swap-entry" in r.reached


if __name__ == "__main__":  # print the current PINNED table, ready to paste
    for (v, k, d) in PINNED:
        print(f'    ("{v}", "{k}", {d}): {_counts(v, k, d)!r},')
    sys.exit(0)
