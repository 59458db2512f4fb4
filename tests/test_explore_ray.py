"""The partitioned breadth-first search on a Ray cluster of two nodes gives exactly the
result of one process (skipped without Ray: ``pip install 'anonex[ray]'``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from anonex.explore.search import Options, Result, explore
from anonex.explore.space import Bounds
from anonex.explore.world import Space
from anonex.versions import KernelVersion

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'anonex[ray]')")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local cluster: a head node and one worker node, one CPU each."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                                                      "include_dashboard": False})
    c.add_node(num_cpus=1)
    ray.init(address=c.address, log_to_driver=False)
    try:
        yield c.address
    finally:
        ray.shutdown()
        c.shutdown()


def test_the_actors_run_on_both_nodes(cluster: str) -> None:
    from functools import partial

    from anonex.explore.checker.partition import Partition
    from anonex.explore.checker.ray_pool import RayPool
    from anonex.explore.kernel_model import KernelModel

    space = Space(Bounds(kinds=("anon",), depth=2), KernelVersion.parse("6.18"))
    pool = RayPool(KernelModel(space), partial(Partition, opts=Options()), 2, cluster)
    try:
        assert len(set(pool.nodes())) == 2
    finally:
        pool.close()


def _same(a: Result, b: Result) -> None:
    assert (a.stats.distinct, a.stats.generated, a.levels) == \
        (b.stats.distinct, b.stats.generated, b.levels)
    assert {p: [v.path for v in vs] for p, vs in a.violations.items()} == \
        {p: [v.path for v in vs] for p, vs in b.violations.items()}
    assert a.reached == b.reached and a.complete and b.complete


def test_ray_finds_the_states_and_counterexamples_of_one_process(cluster: str) -> None:
    # 5.7 at depth 5: the CVE-2020-29374 leak and pin-coherence violations
    space = Space(Bounds(kinds=("anon",), depth=5), KernelVersion.parse("5.7"))
    local = explore(space, Options())
    assert local.violations["no-leak"]
    on_ray = explore(space, Options(workers=2, ray=cluster))
    _same(on_ray, local)
    # the exchange between partitions from the first level on
    _same(explore(space, Options(workers=2, ray=cluster, split_at=1)), local)
    # random walks: the same walks as forked workers
    walks = Options(strategy="random", walks=40, seed=5, workers=2)
    forked, ray_walks = explore(space, walks), explore(space, Options(
        strategy="random", walks=40, seed=5, workers=2, ray=cluster))
    assert (forked.stats.distinct, forked.stats.generated) == \
        (ray_walks.stats.distinct, ray_walks.stats.generated)


def test_anonex_explore_ray(cluster: str) -> None:
    import json

    from typer.testing import CliRunner

    from anonex.cli import app

    args = ["explore", "--kernel", "5.7", "--kinds", "anon", "--depth", "4", "--no-files",
            "--json", "-j", "2"]
    runner = CliRunner()
    local = json.loads(runner.invoke(app, args).stdout.splitlines()[-1])
    res = runner.invoke(app, [*args, "--ray", cluster])
    on_ray = json.loads(res.stdout.splitlines()[-1])
    assert res.exit_code == 0, res.stdout
    assert on_ray["distinct"] == local["distinct"] and on_ray["levels"] == local["levels"]
    assert on_ray["counterexamples"] == local["counterexamples"]
