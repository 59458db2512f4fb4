"""A pool of workers, each hosting one object (a partition of a search, a walker), called
in lock step by the coordinator.

:meth:`Pool.call` runs one method on every worker at once and returns their results. A
method gets, first, its *inbox*: what every worker put for it in the *outbox* it
returned from the previous call (a list indexed by worker; None where nothing was sent).
This one all-to-all exchange is all the checkers need to move keys between partitions,
and it lets the transport choose how bytes travel:

* :class:`InlinePool`: one worker, in this process (one core; nothing is copied);
* :class:`SerialPool`: several workers in this process, one after another, their outboxes
  pickled as between processes: the CPU time each worker's share of a search takes, apart
  from what the machine does to processes that run at once (what N perfect cores could
  gain: ``bench_explore.py --design``);
* :class:`ForkPool`: forked processes (``multiprocessing``, fork), which inherit the model
  and talk to the coordinator over pipes; each outbox entry is pickled by its sender and
  unpickled by its receiver, the coordinator only passes the bytes on;
* :class:`~anonex.explore.checker.ray_pool.RayPool`: Ray actors, whose outboxes stay in
  the cluster's object store and go straight to the receiving actor.

A worker reports progress while it works through the ``report`` function it was built
with (transitions taken); the coordinator's ``on_progress`` sees it (and may stop the
search by raising, which ends the pool).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

Report = Callable[[int], bool]
"""A worker's progress report: True when the count reached the coordinator."""
Factory = Callable[[Any, int, int, Report], Any]
"""Builds the object a worker hosts: (the model, rank, number of workers, report). It is
picklable (a module-level function, or a partial of one) for Ray, which builds the model
again in each actor (:meth:`~.model.Model.remote`)."""
Progress = Callable[[int], None]


class Pool(Protocol):
    """Workers called in lock step (see the module docstring)."""

    @property
    def size(self) -> int: ...

    def call(self, method: str, args: Sequence[tuple[Any, ...]],
             on_progress: Progress) -> list[Any]:
        """Run ``method(inbox, *args[i])`` on every worker *i*; each returns ``(result,
        outbox)``; the results, in order of workers."""

    def close(self) -> None: ...


def _transpose(outs: Sequence[Sequence[Any] | None], n: int) -> list[list[Any]]:
    return [[None if o is None else o[j] for o in outs] for j in range(n)]


class InlinePool:
    """One worker in this process; its reports go straight to the coordinator."""

    def __init__(self, model: Any, make: Factory) -> None:
        self._progress: Progress = lambda n: None

        def report(n: int) -> bool:
            self._progress(n)
            return True

        self._obj = make(model, 0, 1, report)
        self._inbox: list[Any] = [None]

    @property
    def size(self) -> int:
        return 1

    def call(self, method: str, args: Sequence[tuple[Any, ...]],
             on_progress: Progress) -> list[Any]:
        self._progress = on_progress
        result, outbox = getattr(self._obj, method)(self._inbox, *args[0])
        self._inbox = _transpose([outbox], 1)[0]
        return [result]

    def close(self) -> None:
        close = getattr(self._obj, "close", None)
        if close is not None:
            close()


class SerialPool:
    """*size* workers in this process, called one after another; :attr:`cpu` is the CPU
    time each has taken (its calls, and pickling what it sends)."""

    def __init__(self, model: Any, make: Factory, size: int) -> None:
        self._objs = [make(model, rank, size, lambda n: True) for rank in range(size)]
        self._inbox: list[list[bytes | None]] = [[None] * size for _ in range(size)]
        self.cpu = [0.0] * size

    @property
    def size(self) -> int:
        return len(self._objs)

    def call(self, method: str, args: Sequence[tuple[Any, ...]],
             on_progress: Progress) -> list[Any]:
        results: list[Any] = []
        outs: list[list[bytes | None] | None] = []
        for rank, obj in enumerate(self._objs):
            t0 = time.process_time()
            got = [None if b is None else pickle.loads(b) for b in self._inbox[rank]]
            result, outbox = getattr(obj, method)(got, *args[rank])
            outs.append(None if outbox is None else
                        [None if x is None else pickle.dumps(x, 5) for x in outbox])
            self.cpu[rank] += time.process_time() - t0
            results.append(result)
        self._inbox = _transpose(outs, self.size)
        return results

    def close(self) -> None:
        for obj in self._objs:
            close = getattr(obj, "close", None)
            if close is not None:
                close()


def _serve(model: Any, make: Factory, rank: int, size: int,
           conn: Connection) -> None:  # pragma: no cover - runs in the worker
    """A forked worker: build the hosted object, then answer calls until told to end."""

    def report(n: int) -> bool:
        conn.send_bytes(pickle.dumps(("progress", n, None)))
        return True

    try:
        obj = make(model, rank, size, report)
        while True:
            method, inbox, args = pickle.loads(conn.recv_bytes())
            if not method:
                break
            got = [None if b is None else pickle.loads(b) for b in inbox]
            result, outbox = getattr(obj, method)(got, *args)
            sent = None if outbox is None else \
                [None if x is None else pickle.dumps(x, 5) for x in outbox]
            conn.send_bytes(pickle.dumps(("done", result, sent), 5))
    except BaseException:
        conn.send_bytes(pickle.dumps(("error", traceback.format_exc(), None)))
    finally:
        conn.close()


class ForkPool:
    """Forked worker processes; the coordinator only passes pickled bytes on."""

    def __init__(self, model: Any, make: Factory, size: int, tick: float = 0.5) -> None:
        ctx = multiprocessing.get_context("fork")
        self._tick = tick
        self._procs: list[Any] = []
        self._conns: list[Connection] = []
        self._inbox: list[list[bytes | None]] = [[None] * size for _ in range(size)]
        self._busy = False  # a call did not end (a stopped search): kill, do not wait
        for rank in range(size):
            mine, theirs = ctx.Pipe(duplex=True)
            p = ctx.Process(target=_serve, args=(model, make, rank, size, theirs), daemon=True)
            p.start()
            theirs.close()
            self._procs.append(p)
            self._conns.append(mine)

    @property
    def size(self) -> int:
        return len(self._conns)

    def call(self, method: str, args: Sequence[tuple[Any, ...]],
             on_progress: Progress) -> list[Any]:
        n = self.size
        self._busy = True
        for i, conn in enumerate(self._conns):
            conn.send_bytes(pickle.dumps((method, self._inbox[i], args[i]), 5))
        results: list[Any] = [None] * n
        outs: list[list[bytes | None] | None] = [None] * n
        waiting = {conn: i for i, conn in enumerate(self._conns)}
        while waiting:
            ready = wait(list(waiting), self._tick)
            if not ready:
                on_progress(0)
                continue
            for c in ready:
                assert isinstance(c, Connection)
                try:
                    tag, body, out = pickle.loads(c.recv_bytes())
                except EOFError:
                    raise RuntimeError("explore worker died") from None
                if tag == "progress":
                    on_progress(body)
                elif tag == "error":
                    raise RuntimeError(f"explore worker failed:\n{body}")
                else:
                    i = waiting.pop(c)
                    results[i], outs[i] = body, out
        self._inbox = _transpose(outs, n)
        self._busy = False
        return results

    def close(self) -> None:
        """End the workers (at once, if a stopped search left them busy)."""
        for conn, p in zip(self._conns, self._procs, strict=True):
            if not self._busy:
                with contextlib.suppress(OSError):
                    conn.send_bytes(pickle.dumps(("", [], ())))
                p.join(1.0)
            if p.is_alive():
                p.kill()
                p.join()
            conn.close()
