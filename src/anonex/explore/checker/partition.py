"""One partition of a breadth-first search: the worker's side of :mod:`.bfs`.

The state space is split by key: partition ``crc32(key) mod N`` *owns* a key, and only
its owner decides whether a key is new. States do not move (a pickled state takes tens of
kilobytes, a key a few hundred bytes; a state costs less to make again than to ship):
**keys go to their owner, states stay with their finder**. Each level takes three calls,
in lock step over the pool:

1. :meth:`Partition.expand`: take every action of each state of the frontier (the states
   this partition holds, in the order of their paths). A successor whose key this
   partition owns is checked against its store at once; the others are checked against
   the keys it offered before (a key offered once is seen for good) and offered to their
   owner as (key, path). The finder holds every successor it offered until the owners
   answer.
2. :meth:`Partition.merge`: the owner takes the offers of every finder; for each key not
   seen at an earlier level it keeps the least path (:func:`~.model.path_key`), adds the
   key to its store, and tells each finder which of its offers won.
3. :meth:`Partition.commit`: each finder keeps the winning states, drops the others, and
   checks the always and sometimes properties of the states it kept, in the order of
   their paths: they are its next frontier.

The least path of a key does not depend on timing or on the number of partitions, and a
frontier is expanded in the order of paths, so the first time a partition meets a key is
its least path there: the results are those of one process, exactly.

A state's finder is the holder of its least-path parent, so the states would all stay
where the initial state is. Every partition therefore runs the first levels *whole*, the
same in each (only partition 0 reports them), until the frontier has ``split_at`` states
per partition; then each keeps every N-th state of the frontier in the order of paths
(:meth:`Partition.split`) and the levels below share out from there. On the depth-7
small-page bound this repeats ~3% of the work and leaves the two partitions within ~5%
of each other; shipping states to balance would cost more than making them.
"""

from __future__ import annotations

import zlib
from typing import Any, Generic

from anonex.explore.checker.check import Check, pairs
from anonex.explore.checker.memory import collect_some
from anonex.explore.checker.model import Model, Next, Path, S, path_key
from anonex.explore.checker.pool import Report
from anonex.explore.checker.result import Options
from anonex.explore.checker.store import FingerprintStore, StateStore, make_store

# Progress is reported every this many transitions.
REPORT_EVERY = 256

Offer = tuple[bytes, Path]
"""A successor offered to its key's owner."""
Found = tuple[list[tuple[str, str]], Path]
"""Findings (property, message) and the path that led to them."""


def owner(key: bytes, n: int) -> int:
    """The partition that owns *key* (the same in every process and on every machine)."""
    return zlib.crc32(key) % n if n > 1 else 0


def _quiet(n: int) -> bool:
    return True


class Partition(Generic[S]):
    """The states and keys of one partition (see the module docstring)."""

    def __init__(self, model: Model[S, Any], rank: int, size: int, report: Report,
                 opts: Options) -> None:
        """Every partition starts with the initial state (see :meth:`split`)."""
        self.model = model
        self.chk = Check(model, opts)
        self.rank = rank
        self.size = size
        self.report = report
        self.store: StateStore | FingerprintStore = make_store(opts.fingerprints)
        # keys of the other partitions offered already (fingerprints with a
        # fingerprint store)
        self.offered: set[Any] = set()
        self._fp = opts.fingerprints
        s0 = model.initial()
        self.store.add(model.key(s0))
        self.frontier: list[tuple[S, Path, Next[S] | None]] = [(s0, (), None)]
        # the successors of this level: (state, path, transition)
        self.held: list[tuple[S, Path, Next[S]]] = []
        # offers to each partition, and the index in held of each
        self.out: list[list[Offer]] = [[] for _ in range(size)]
        self.out_at: list[list[int]] = [[] for _ in range(size)]
        # keys this partition owns met this level: key -> (path, finder, index)
        self.pending: dict[bytes, tuple[Path, int, int]] = {}
        self.winners: list[int] = []  # own offers that won (indexes in held)
        # every partition runs the first levels whole (see split())
        self.whole = size > 1

    def split(self) -> None:
        """Stop running the levels whole: keep every N-th state of the frontier (in the
        order of paths, from this partition's rank on), drop the others. Which partition
        holds a state does not matter to the result (the owner of its key decides), only
        to the balance of work: states of lesser paths find more of the next levels'
        least paths, and taking turns in that order shares them out. The store keeps the
        keys of the levels run whole."""
        self.whole = False
        keep = []
        for i, item in enumerate(self.frontier):
            if i % self.size == self.rank:
                keep.append(item)
            else:
                self.model.dispose(item[0])
        self.frontier = keep

    def expand(self, inbox: list[Any], split: bool) -> tuple[tuple[int, list[Found]],
                                                             list[Any] | None]:
        """Expand the frontier (after :meth:`split`, if *split*): (transitions not yet
        reported, transition findings), and the offers to each partition."""
        if split:
            self.split()
        model, chk = self.model, self.chk
        rank, size = (0, 1) if self.whole else (self.rank, self.size)
        store, offered, pending, held = self.store, self.offered, self.pending, self.held
        fp = self._fp
        relevant, key_of, next_state = chk.relevant, model.key, model.next_state
        dispose = model.dispose
        # partition 0 reports the levels run whole
        report = self.report if not (self.whole and self.rank) else _quiet
        broken: list[Found] = []
        n = 0
        frontier, self.frontier = self.frontier, []
        for s, path, _ in frontier:
            acts = model.actions(s)
            last = len(acts) - 1
            kept = False
            for j, a in enumerate(acts):
                o = next_state(s, a, j == last)
                if o is None:
                    continue
                n += 1
                p2 = (*path, a)
                if o.findings:
                    tf = relevant(o.findings)
                    if tf:
                        broken.append((pairs(tf), p2))
                if o.crashed:
                    continue
                s2 = o.state
                key = key_of(s2)
                who = owner(key, size)
                if who == rank:
                    if key in store or key in pending:
                        dispose(s2)
                        continue
                    pending[key] = (p2, rank, len(held))
                else:
                    ident = FingerprintStore.fingerprint(key) if fp else key
                    if ident in offered:
                        dispose(s2)
                        continue
                    offered.add(ident)
                    self.out[who].append((key, p2))
                    self.out_at[who].append(len(held))
                held.append((s2, p2, o))
                kept = kept or s2 is s
            if not kept:
                dispose(s)
            if n >= REPORT_EVERY:
                if report(n):
                    n = 0
                collect_some()
        outbox: list[Any] = [o if i != rank else None for i, o in enumerate(self.out)]
        self.out = [[] for _ in range(self.size)]
        if self.whole and self.rank:
            return (0, []), None  # partition 0 reports the levels run whole
        return (n, broken), outbox

    def merge(self, inbox: list[Any]) -> tuple[int, list[Any] | None]:
        """Decide the keys this partition owns: the number of new states, and for each
        finder the indexes of its offers that won."""
        model, store, pending = self.model, self.store, self.pending
        for finder, offers in enumerate(inbox):
            if offers is None:
                continue
            for i, (key, path) in enumerate(offers):
                if key in store:
                    continue
                cur = pending.get(key)
                if cur is None or path_key(model.order, path) < path_key(model.order, cur[0]):
                    pending[key] = (path, finder, i)
        won: list[list[int]] = [[] for _ in range(self.size)]
        for key, (_, finder, i) in pending.items():
            store.add(key)
            won[finder].append(i)
        new = len(pending)
        pending.clear()
        if self.whole:
            self.winners = won[0]
            return (0 if self.rank else new), None
        self.winners = won[self.rank]
        outbox: list[Any] = [w if f != self.rank else None for f, w in enumerate(won)]
        return new, outbox

    def commit(self, inbox: list[Any], reached: frozenset[str],
               last: bool) -> tuple[tuple[list[Found], list[tuple[list[str], Path]], int,
                                          float], None]:
        """Keep the states that won, check them: (state findings, sometimes hits, the
        size of the next frontier, bytes per stored key). *last*: the bound is reached,
        nothing is kept."""
        model, chk, held = self.model, self.chk, self.held
        keep = set(self.winners)
        for owner_rank, won in enumerate(inbox):
            if won is not None:
                at = self.out_at[owner_rank]
                keep.update(at[i] for i in won)
        self.out_at = [[] for _ in range(self.size)]
        self.winners = []
        mine: list[tuple[S, Path, Next[S]]] = []
        for i, item in enumerate(held):
            if i in keep:
                mine.append(item)
            else:
                model.dispose(item[0])
        self.held = []
        mine.sort(key=lambda it: path_key(model.order, it[1]))
        broken: list[Found] = []
        hits: list[tuple[list[str], Path]] = []
        hit: set[str] = set(reached)
        frontier = self.frontier
        for s, path, o in mine:
            sf = chk.relevant(model.check(s, o))
            h = chk.hits(s, hit)
            if h:
                hit.update(h)
                hits.append((h, path))
            if sf:
                broken.append((pairs(sf), path))
            if sf or last:
                model.dispose(s)
            else:
                frontier.append((s, path, o))
        self.store.compact()
        collect_some()
        if self.whole and self.rank:
            return ([], [], 0, 0.0), None
        return (broken, hits, len(frontier), self.store.bytes_per_state() *
                len(self.store)), None

    def close(self) -> None:
        """Drop every state still held (a search that stopped early)."""
        for s, _, _ in self.frontier:
            self.model.dispose(s)
        for s, _, _ in self.held:
            self.model.dispose(s)
        self.frontier, self.held = [], []
