"""The checkers: breadth-first (shortest counterexamples), depth-first and random walks,
behind one function, :func:`explore`.

**Breadth-first** expands the states level by level. Actions are tried in a fixed order
(:func:`order`) and each level's states in the order of their paths, so the first path
that reaches a state, or breaks a property, is the least one of its length: results do not
depend on timing or on the number of workers. With ``workers > 1`` each level is split
between the parent and ``workers - 1`` forked worker processes, which inherit the
seen-state store and the level's states copy-on-write, skip what was seen, and send back
the keys of new states with their paths, findings and sometimes-hits (a few hundred bytes,
where a pickled state can take 50 kB); the parent expands its own share and, between
batches of it, merges what the workers sent, keeping for each state its least path, and
rebuilds each new state a worker found by running its last step on its parent (one step,
against the workers' several per state).

**Depth-first** keeps one path at a time (states seen deeper are explored again when met
higher up, so nothing within the bound is missed), on one core; its counterexamples are not
shortest. **Random walks** follow random paths to the depth bound, from a seed; workers
share the walks, each from its own seed.

A state that breaks a selected always property is a counterexample and is not explored
further. For each property the search keeps the shortest counterexample of each minimal set
of mechanisms (pins, vmsplice, swap, …: see :meth:`Violation.ops`). It stops when the bound
is exhausted, at the first violation if asked to, at ``max_states`` distinct states or after
``timeout`` seconds.
Cyclic garbage collection is off while the search runs; the cycles of dropped states
(folio <-> page) are broken by hand, and the little garbage the model leaves in cycles is
collected when two million young objects have piled up.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import random
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe, wait
from typing import Any

from anonex.explore import properties
from anonex.explore.expand import Item, Record
from anonex.explore.expand import dispose as _dispose
from anonex.explore.expand import expand as _expand
from anonex.explore.space import COMMON_OPS, Action, order
from anonex.explore.store import FingerprintStore, StateStore, make_store
from anonex.explore.world import Space, World

Path = tuple[Action, ...]


def path_key(path: Path) -> tuple[int, tuple[tuple[int, int, str, int, str], ...]]:
    """Shorter paths first, then in :func:`order`."""
    return (len(path), tuple(order(a) for a in path))


@dataclass(slots=True)
class Violation:
    """An always property broken: the first state found that breaks it, and its path."""

    prop: str
    message: str
    path: Path

    @property
    def ops(self) -> frozenset[str]:
        """The mechanisms on the path: its operations but the common ones
        (:data:`~anonex.explore.space.COMMON_OPS`); they tell counterexamples apart."""
        return frozenset(a[0] for a in self.path) - COMMON_OPS


@dataclass(slots=True)
class Stats:
    """Progress of a search, as shown on the progress line."""

    generated: int = 0  # transitions taken (states generated)
    distinct: int = 0   # distinct states (after symmetry reduction)
    depth: int = 0      # the level being explored
    elapsed: float = 0.0
    violations: int = 0

    @property
    def rate(self) -> float:
        return self.distinct / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(slots=True)
class Options:
    """How to search. ``properties``: the always and sometimes properties to check (None:
    all); ``walks``: the number of random walks (None: until ``max_states``/``timeout``)."""

    strategy: str = "bfs"
    workers: int = 1  # BFS and random walks; DFS runs on one core
    max_states: int | None = None
    timeout: float | None = None
    fingerprints: bool = False
    seed: int = 0
    walks: int | None = None
    properties: tuple[str, ...] | None = None
    stop_on_first: bool = False
    per_property: int = 3
    progress: Callable[[Stats], None] | None = None
    progress_every: float = 0.5


@dataclass(slots=True)
class Result:
    """What a search did and found."""

    strategy: str
    workers: int
    stats: Stats
    complete: bool  # the whole bound was explored
    stopped: str  # why it stopped early ("" when complete)
    violations: dict[str, list[Violation]]  # by property, shortest first
    reached: dict[str, Path]  # sometimes properties reached, with their first path
    always: tuple[str, ...]  # always properties checked
    sometimes: tuple[str, ...]  # sometimes properties expected to be reached
    bytes_per_state: float
    max_depth: int = 0  # the deepest state found
    levels: list[int] = field(default_factory=list)  # distinct states per BFS level

    @property
    def missed(self) -> tuple[str, ...]:
        """Sometimes properties the search should have reached and did not."""
        return tuple(s for s in self.sometimes if s not in self.reached)


class _Stop(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


# -- what every checker shares --------------------------------------------------------------


class _Check:
    """The properties a search checks, and what it found so far."""

    def __init__(self, space: Space, opts: Options) -> None:
        sel = set(opts.properties) if opts.properties else set(properties.ALL_NAMES)
        unknown = sel - set(properties.ALL_NAMES)
        if unknown:
            raise ValueError(f"unknown property {sorted(unknown)[0]!r}; expected some of: "
                             + ", ".join(properties.ALL_NAMES))
        self.always = tuple(p for p in properties.ALWAYS_NAMES if p in sel)
        self._always = frozenset(self.always)
        ops, kinds = space.bounds.opset, frozenset(space.bounds.kinds)
        self.some = tuple(s for s in properties.SOMETIMES if s.name in sel)
        self.sometimes = tuple(s.name for s in self.some
                               if s.expected(ops, kinds, space.rules))
        self.found: dict[str, list[Violation]] = {}
        self.reached: dict[str, Path] = {}
        self.per_property = max(1, opts.per_property)

    def relevant(self, findings: list[properties.Finding]) -> list[properties.Finding]:
        """The findings of the selected properties, and every model error (a bug of
        anonex is reported whatever the selection)."""
        return [f for f in findings if f.property in self._always or
                f.property == properties.MODEL_ERROR]

    def hits(self, w: World, skip: set[str]) -> list[str]:
        """The sometimes properties *w* satisfies (not counting those reached already or
        in *skip*)."""
        k = w.be.k
        return [s.name for s in self.some
                if s.name not in self.reached and s.name not in skip and s.test(k)]

    def offer(self, findings: Iterable[properties.Finding], path: Path) -> None:
        """Keep a counterexample per property and minimal set of mechanisms: the least
        path for each set, none whose set contains another's (it adds nothing), at most
        ``per_property`` of them, shortest first."""
        for f in findings:
            prop = f.property
            v = Violation(prop, f.message, path)
            old = self.found.setdefault(prop, [])
            ops = v.ops
            keep: list[Violation] = []
            add = True
            for o in old:
                if o.ops == ops:
                    if path_key(path) < path_key(o.path):
                        continue  # replaced
                    add = False
                elif o.ops < ops:
                    add = False
                elif ops < o.ops:
                    continue  # the new one is simpler
                keep.append(o)
            if add:
                keep.append(v)
            keep.sort(key=lambda x: path_key(x.path))
            old[:] = keep

    def reach(self, names: Iterable[str], path: Path) -> None:
        for n in names:
            old = self.reached.get(n)
            if old is None or path_key(path) < path_key(old):
                self.reached[n] = path

    @property
    def all_found(self) -> bool:
        return bool(self.always) and all(self.found.get(p) for p in self.always)

    def final(self) -> None:
        for vs in self.found.values():
            del vs[self.per_property:]
        for prop in [p for p, vs in self.found.items() if not vs]:
            del self.found[prop]


# Young objects (net allocations since the last collection) that trigger a collection:
# the cycles the model makes inside a step (a folio it frees, a copy it drops) are the
# only garbage left once _dispose() broke the states' own cycles, and this is rare.
_GC_YOUNG = 2_000_000


def _collect_some() -> None:
    if gc.get_count()[0] > _GC_YOUNG:
        gc.collect(1)


@contextmanager
def _no_gc() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Clock:
    def __init__(self, opts: Options, stats: Stats, chk: _Check) -> None:
        self.opts = opts
        self.stats = stats
        self.chk = chk
        self.t0 = time.perf_counter()
        self.next_report = self.t0 + opts.progress_every

    def tick(self, force: bool = False) -> None:
        now = time.perf_counter()
        st = self.stats
        st.elapsed = now - self.t0
        st.violations = len(self.chk.found)
        if self.opts.progress is not None and (force or now >= self.next_report):
            self.next_report = now + self.opts.progress_every
            self.opts.progress(st)
        if self.opts.timeout is not None and st.elapsed >= self.opts.timeout:
            raise _Stop("timeout")
        if self.opts.max_states is not None and st.distinct >= self.opts.max_states:
            raise _Stop("max-states")
        if self.chk.found and self.opts.stop_on_first:
            raise _Stop("violation")


class Checker:
    """The checkers behind one builder, in the manner of stateright::

        res = Checker(space).bfs().workers(2).max_states(10**6).run()

    Each method sets one field of :class:`Options` and returns the builder."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.options = Options()

    def bfs(self) -> Checker:
        self.options.strategy = "bfs"
        return self

    def dfs(self) -> Checker:
        self.options.strategy = "dfs"
        return self

    def random(self, seed: int = 0, walks: int | None = None) -> Checker:
        self.options.strategy, self.options.seed, self.options.walks = "random", seed, walks
        return self

    def workers(self, n: int) -> Checker:
        self.options.workers = n
        return self

    def max_states(self, n: int) -> Checker:
        self.options.max_states = n
        return self

    def timeout(self, seconds: float) -> Checker:
        self.options.timeout = seconds
        return self

    def fingerprints(self, on: bool = True) -> Checker:
        self.options.fingerprints = on
        return self

    def properties(self, *names: str) -> Checker:
        self.options.properties = names or None
        return self

    def run(self) -> Result:
        return explore(self.space, self.options)


def explore(space: Space, opts: Options | None = None) -> Result:
    """Search *space* with the strategy of *opts* (breadth-first by default)."""
    opts = opts or Options()
    runner = {"bfs": _bfs, "dfs": _dfs, "random": _random}.get(opts.strategy)
    if runner is None:
        raise ValueError(f"unknown strategy {opts.strategy!r}; expected bfs, dfs or random")
    chk = _Check(space, opts)
    stats = Stats()
    clock = _Clock(opts, stats, chk)
    res = Result(opts.strategy, max(1, opts.workers), stats, False, "", chk.found,
                 chk.reached, chk.always, chk.sometimes, 0.0)
    with _no_gc():
        try:
            runner(space, opts, chk, clock, res)
            res.complete = True
        except _Stop as e:
            res.stopped = e.why
        finally:
            stats.elapsed = time.perf_counter() - clock.t0
            chk.final()
            stats.violations = len(chk.found)
            gc.collect()
    if opts.progress is not None:
        opts.progress(stats)
    return res


def _initial(space: Space, chk: _Check, stats: Stats) -> tuple[World, bytes, bool]:
    w0 = space.initial()
    key = space.key(w0)
    stats.distinct = 1
    f = chk.relevant(space.check(w0))
    chk.offer(f, ())
    chk.reach(chk.hits(w0, set()), ())
    return w0, key, bool(f)


# -- breadth-first ---------------------------------------------------------------------------

def _bfs(space: Space, opts: Options, chk: _Check, clock: _Clock, res: Result) -> None:
    stats = clock.stats
    store = make_store(opts.fingerprints)
    w0, key0, bad = _initial(space, chk, stats)
    store.add(key0)
    res.levels.append(1)
    frontier: list[Item] = [] if bad else [(w0, ())]
    workers = max(1, opts.workers)
    # the new states of a level: key -> [least path, World or pickle or None, findings of
    # the state]; the state's findings count with its least path only
    level: dict[bytes, list[Any]] = {}

    def rebuild(parent: int, path: Path, tf: list[properties.Finding],
                sf: list[properties.Finding]) -> World | None:
        """The new state of a worker's record: its parent, one step on."""
        if tf or sf:
            return None
        o = space.step(frontier[parent][0], path[-1])
        assert o is not None
        return o.world

    def merge(rec: Record) -> None:
        key, path, parent, w, tf, sf, hits, dup = rec
        if tf:
            chk.offer(tf, path)
        if hits:
            chk.reach(hits, path)
        if dup:
            return
        cur = level.get(key)
        if cur is None:
            if key in store:
                return
            store.add(key)
            stats.distinct += 1
            level[key] = [path, w if w is not None or parallel[0] is False
                          else rebuild(parent, path, tf, sf), sf]
        elif path_key(path) < path_key(cur[0]):
            if cur[1] is not None:
                _dispose(cur[1])
            level[key] = [path, rebuild(parent, path, tf, sf) if w is None else w, sf]

    def count(n: int) -> None:
        stats.generated += n
        clock.tick()
        _collect_some()

    parallel = [False]
    try:
        for depth in range(1, space.bounds.depth + 1):
            if not frontier:
                break
            stats.depth = depth
            before = stats.distinct
            parallel[0] = workers > 1 and len(frontier) >= 4 * workers
            if not parallel[0]:
                _expand(space, chk, frontier, range(len(frontier)), store, None, merge, count,
                        keep=True)
            else:
                _parallel_level(space, chk, frontier, store, workers, merge, count)
            nxt: list[Item] = []
            for path, w, sf in level.values():
                if sf:
                    chk.offer(sf, path)
                elif w is not None:
                    nxt.append((w, path))
            if workers > 1:
                nxt.sort(key=lambda it: path_key(it[1]))
            res.levels.append(stats.distinct - before)
            res.max_depth = depth if stats.distinct > before else res.max_depth
            store.compact()
            frontier = nxt
            level.clear()
            clock.tick()
    finally:
        res.bytes_per_state = store.bytes_per_state()
        for w, _ in frontier:  # the states past the bound (or left by a stop)
            _dispose(w)


def _parallel_level(space: Space, chk: _Check, frontier: list[Item],
                    store: StateStore | FingerprintStore, workers: int,
                    merge: Callable[[Record], None], count: Callable[[int], None]) -> None:
    """Expand one level in the parent and *workers* - 1 forked workers, merging what the
    workers send while the parent expands its own share (a worker waits when its pipe is
    full). The states of the level are disposed of."""
    # interleaved equal shares (states of one level are alike in cost; a larger share
    # for the parent, which also merges, measured slower)
    shares = [list(range(i, len(frontier), workers)) for i in range(workers)]
    children: list[tuple[int, Connection]] = []
    try:
        for share in shares[1:]:
            r, wr = Pipe(duplex=False)
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                r.close()
                code = 0
                try:
                    _child(space, chk, frontier, share, store, wr)
                except BaseException as e:  # report, never unwind into the parent's code
                    with contextlib.suppress(Exception):
                        wr.send_bytes(pickle.dumps(("error", f"{type(e).__name__}: {e}")))
                    code = 1
                os._exit(code)
            wr.close()
            children.append((pid, r))
        open_ = {r: pid for pid, r in children}

        def drain(timeout: float | None) -> None:
            for conn in wait(list(open_), timeout):
                assert isinstance(conn, Connection)
                try:
                    msg = pickle.loads(conn.recv_bytes())
                except EOFError:
                    del open_[conn]
                    continue
                kind, body = msg
                if kind == "error":
                    raise RuntimeError(f"explore worker failed: {body}")
                if kind == "done":
                    del open_[conn]
                    continue
                n, records = body
                for rec in records:
                    merge(rec)
                count(n)

        own = shares[0]
        for lo in range(0, len(own), 16):
            _expand(space, chk, frontier, own[lo:lo + 16], store, None, merge, count,
                    keep=True)
            if open_:
                drain(0)
        while open_:
            drain(None)
    finally:
        for pid, r in children:
            _reap(pid)
            r.close()
        for share in shares[1:]:  # the parent's own were disposed of as it expanded them
            for i in share:
                _dispose(frontier[i][0])


def _reap(pid: int) -> None:
    """Wait for worker *pid*, killing it first if it still runs (a stopped search)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    except (ChildProcessError, ProcessLookupError):
        pass


def _child(space: Space, chk: _Check, items: list[Item], which: list[int],
           store: StateStore | FingerprintStore, conn: Connection) -> None:  # pragma: no cover
    """A worker: expand *items*, send batches of records, then "done"."""
    batch: list[Record] = []
    pending = [0]

    def emit(rec: Record) -> None:
        batch.append(rec)

    def count(n: int) -> None:
        pending[0] += n
        if len(batch) >= 512 or pending[0] >= 4096:
            conn.send_bytes(pickle.dumps(("batch", (pending[0], batch)), 5))
            batch.clear()
            pending[0] = 0

    _expand(space, chk, items, which, store, set(), emit, count, keep=False)
    conn.send_bytes(pickle.dumps(("batch", (pending[0], batch)), 5))
    conn.send_bytes(pickle.dumps(("done", None)))
    conn.close()


# -- depth-first -----------------------------------------------------------------------------


def _dfs(space: Space, opts: Options, chk: _Check, clock: _Clock, res: Result) -> None:
    stats = clock.stats
    w0, key0, bad = _initial(space, chk, stats)
    if bad:
        return
    fp = FingerprintStore.fingerprint if opts.fingerprints else None
    depth_of: dict[Any, int] = {fp(key0) if fp else key0: 0}
    limit = space.bounds.depth
    stack: list[tuple[World, Path, Iterator[Action]]] = [(w0, (), iter(space.actions(w0)))]
    while stack:
        w, path, it = stack[-1]
        a = next(it, None)
        if a is None:
            stack.pop()
            _dispose(w)
            continue
        o = space.step(w, a)
        if o is None:
            continue
        stats.generated += 1
        p2 = (*path, a)
        if stats.generated % 256 == 0:
            clock.tick()
        tf = chk.relevant(o.findings)
        chk.offer(tf, p2)
        if o.crashed:
            continue
        w2 = o.world
        key = space.key(w2)
        ident = fp(key) if fp else key
        d = len(p2)
        old = depth_of.get(ident)
        if old is not None and old <= d:
            _dispose(w2)
            continue
        if old is None:
            stats.distinct += 1
            f = chk.relevant(space.check(w2, o.checked))
            chk.offer(f, p2)
            chk.reach(chk.hits(w2, set()), p2)
            res.max_depth = max(res.max_depth, d)
        else:
            f = chk.relevant(space.check(w2, o.checked))
        depth_of[ident] = d
        if f or tf or d >= limit:
            _dispose(w2)
            continue
        stack.append((w2, p2, iter(space.actions(w2))))
        stats.depth = max(stats.depth, d)
    res.bytes_per_state = _dict_bytes(depth_of)


def _dict_bytes(d: dict[Any, int]) -> float:
    import sys

    if not d:
        return 0.0
    payload = sum(sys.getsizeof(k) for k in d) if len(d) < 200_000 else \
        sys.getsizeof(next(iter(d))) * len(d)
    return (sys.getsizeof(d) + payload) / len(d)


# -- random walks ----------------------------------------------------------------------------


def _random(space: Space, opts: Options, chk: _Check, clock: _Clock, res: Result) -> None:
    """Random walks from a seed; with workers, each runs its share of the walks from its
    own seed (``seed * 1000003 + i``) and the results are merged."""
    stats = clock.stats
    w0, key0, bad = _initial(space, chk, stats)
    if bad:
        return
    walks = opts.walks
    if walks is None and opts.max_states is None and opts.timeout is None:
        walks = 1000
    workers = max(1, opts.workers)
    if workers == 1:
        store = FingerprintStore() if opts.fingerprints else StateStore()
        store.add(key0)
        _walk(space, chk, clock, res, w0, store, random.Random(opts.seed), walks)
        res.bytes_per_state = store.bytes_per_state()
        return
    deadline = None if opts.timeout is None else clock.t0 + opts.timeout
    children: list[tuple[int, Connection]] = []
    try:
        for i in range(workers):
            r, wr = Pipe(duplex=False)
            share = None if walks is None else walks // workers + (i < walks % workers)
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                r.close()
                code = 0
                try:
                    wr.send_bytes(pickle.dumps(_walk_child(
                        space, chk, w0, key0, random.Random(opts.seed * 1000003 + i), share,
                        deadline, None if opts.max_states is None else
                        opts.max_states // workers)))
                except BaseException as e:
                    with contextlib.suppress(Exception):
                        wr.send_bytes(pickle.dumps(("error", f"{type(e).__name__}: {e}")))
                    code = 1
                os._exit(code)
            wr.close()
            children.append((pid, r))
        fps: set[int] = {FingerprintStore.fingerprint(key0)}
        for _, conn in children:
            msg = pickle.loads(conn.recv_bytes())
            if msg[0] == "error":
                raise RuntimeError(f"explore worker failed: {msg[1]}")
            _, (gen, seen, found, reached, depth) = msg
            stats.generated += gen
            fps.update(seen)
            for prop, vs in found.items():
                for m, path in vs:
                    chk.offer([properties.Finding(prop, m)], path)
            for name, path in reached.items():
                chk.reach([name], path)
            res.max_depth = max(res.max_depth, depth)
        stats.distinct = len(fps)
        stats.depth = walks or 0
        res.bytes_per_state = 8.0
    finally:
        for pid, conn in children:
            _reap(pid)
            conn.close()


def _walk_child(space: Space, chk: _Check, w0: World, key0: bytes, rng: random.Random,
                walks: int | None, deadline: float | None,
                max_states: int | None) -> tuple[str, Any]:  # pragma: no cover
    """One worker's random walks: what they found, and the fingerprints they saw."""
    opts = Options(timeout=None if deadline is None else max(0.0, deadline -
                                                             time.perf_counter()),
                   max_states=max_states)
    stats = Stats()
    clock = _Clock(opts, stats, chk)
    res = Result("random", 1, stats, False, "", chk.found, chk.reached, (), (), 0.0)
    store = FingerprintStore()
    store.add(key0)
    with contextlib.suppress(_Stop):
        _walk(space, chk, clock, res, w0, store, rng, walks)
    found = {p: [(v.message, v.path) for v in vs] for p, vs in chk.found.items()}
    return ("done", (stats.generated, store.fingerprints(), found, chk.reached,
                     res.max_depth))


def _walk(space: Space, chk: _Check, clock: _Clock, res: Result, w0: World,
          store: StateStore | FingerprintStore, rng: random.Random,
          walks: int | None) -> None:
    stats = clock.stats
    done = 0
    while walks is None or done < walks:
        done += 1
        w: World = w0
        path: Path = ()
        for _ in range(space.bounds.depth):
            acts = space.actions(w)
            rng.shuffle(acts)
            o = None
            for a in acts:
                o = space.step(w, a)
                if o is not None:
                    path = (*path, a)
                    break
            if o is None:
                break
            stats.generated += 1
            tf = chk.relevant(o.findings)
            chk.offer(tf, path)
            if o.crashed:
                break
            if w is not w0:
                _dispose(w)
            w = o.world
            key = space.key(w)
            f = chk.relevant(space.check(w, o.checked))
            if key not in store:
                store.add(key)
                stats.distinct += 1
                chk.reach(chk.hits(w, set()), path)
                res.max_depth = max(res.max_depth, len(path))
            chk.offer(f, path)
            if f or tf:
                break
        if w is not w0:
            _dispose(w)
        stats.depth = done
        clock.tick()
