"""The pool on a Ray cluster: one actor per worker (``anonex[ray]``).

Each actor builds the model again from :meth:`~.model.Model.remote` (a state never leaves
its actor) and hosts the object the strategy asks for (a partition, a walker). A call
returns the result and one object per receiving worker (``num_returns``): the
coordinator keeps only their references and passes them to the receivers' next call, so
the keys a partition sends its owners go through the cluster's object store, never
through the coordinator. Actors take one CPU each and are spread over the nodes.

``address``: ``"local"`` starts Ray on this machine; anything else is given to
``ray.init`` (``"auto"``, ``"ray://host:10001"``, …). A Ray already initialised in this
process is used as it is; one started here stays up for the next searches (starting it
takes seconds) until the process ends or calls ``ray.shutdown()``. Every node of the
cluster needs the same anonex installed (``pip install 'anonex[ray]'``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from anonex.explore.checker.memory import no_gc
from anonex.explore.checker.pool import Factory, Progress


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:  # pragma: no cover - depends on the install
        raise RuntimeError("anonex explore --ray needs Ray: pip install 'anonex[ray]'") \
            from None
    return ray


class _Host:
    """What runs in each actor: the hosted object, built on the actor's own model."""

    def __init__(self, build: Any, make: Factory, rank: int, size: int) -> None:
        import gc

        gc.disable()  # the strategies break the cycles of the states they drop
        self.size = size
        self.obj = make(build(), rank, size, lambda n: False)

    def node(self) -> str:
        """The Ray node this actor runs on."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def call(self, method: str, args: tuple[Any, ...], *inbox: Any) -> Any:
        with no_gc():
            result, outbox = getattr(self.obj, method)(list(inbox), *args)
        out = [None] * self.size if outbox is None else list(outbox)
        return (result, *out)


class RayPool:
    """Ray actors as workers (see the module docstring)."""

    def __init__(self, model: Any, make: Factory, size: int, address: str) -> None:
        ray = self._ray = _import_ray()
        if not ray.is_initialized():
            os.environ.setdefault("RAY_ACCEPT_CLUSTER_STATE_WARNING", "1")
            if address == "local":
                ray.init(num_cpus=size, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        host = ray.remote(num_cpus=1)(_Host).options(scheduling_strategy="SPREAD")
        build = model.remote()
        self._actors = [host.remote(build, make, rank, size) for rank in range(size)]
        self._inbox: list[list[Any]] = [[None] * size for _ in range(size)]

    @property
    def size(self) -> int:
        return len(self._actors)

    def nodes(self) -> list[str]:
        """The node of each actor."""
        return list(self._ray.get([a.node.remote() for a in self._actors]))

    def call(self, method: str, args: Sequence[tuple[Any, ...]],
             on_progress: Progress) -> list[Any]:
        ray, n = self._ray, self.size
        refs = [a.call.options(num_returns=n + 1).remote(method, args[i], *self._inbox[i])
                for i, a in enumerate(self._actors)]
        firsts = [r[0] for r in refs]
        waiting = list(firsts)
        while waiting:
            _, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=0.5)
            on_progress(0)
        results = ray.get(firsts)
        # the receivers' next inboxes: references only (an empty outbox entry is None)
        self._inbox = [[refs[i][1 + j] for i in range(n)] for j in range(n)]
        return list(results)

    def close(self) -> None:
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []
