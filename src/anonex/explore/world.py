"""The explored model: states, the actions enabled in each, and what an action does.

A :class:`World` is one state: the model backend (kernel and oracle) after some steps,
and the number for the next child process. :class:`Space` is the model the checkers
explore (``initial``, ``actions``, ``step``, ``key``, like a stateright ``Model``): it runs
each action as an ordinary scenario step on the :class:`~anonex.harness.model.ModelBackend`
of a copy of the state. A step the backend refuses (a segfault, an unsupported operation)
is not a transition; a kernel ``BUG_ON`` is a finding in a state that is not explored
further.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from anonex.explore import canon, deadfields, properties
from anonex.explore.clone import clone_kernel, clone_oracle
from anonex.explore.space import PIN_OPTS, Action, Bounds, order, setup_steps, to_step
from anonex.findings import Finding, model_error
from anonex.harness import invariants
from anonex.harness.model import ModelBackend
from anonex.kernel.errors import KernelBug, Segfault
from anonex.kernel.folio import Folio
from anonex.kernel.gup import FOLL_WRITE
from anonex.kernel.madvise import madvise_changes, pageout_changes
from anonex.kernel.mprotect import mprotect_changes
from anonex.kernel.pgtable import Pte
from anonex.kernel.state import VM_MERGEABLE, VM_READ, VM_WRITE, Kernel
from anonex.kernel.versions import Rules
from anonex.observation import Unsupported
from anonex.scenario import ast
from anonex.versions import KernelVersion


class World:
    """One explored state."""

    __slots__ = ("be", "garbage", "next_proc", "twins")

    def __init__(self, be: ModelBackend, next_proc: int) -> None:
        self.be = be
        self.next_proc = next_proc
        # processes whose actions are skipped (see canon.key_twins); None until the key
        # of the state is computed
        self.twins: frozenset[str] | None = None
        # folios the steps to this state freed: their folio <-> page cycles are broken
        # when the state is dropped (see expand.dispose)
        self.garbage: list[Folio] = []

    @property
    def k(self) -> Kernel:
        return self.be.k

    def copy(self) -> World:
        """An independent copy (the kernel and the oracle are deep-copied)."""
        be = self.be
        nb = ModelBackend(be.version, be.detail, be.layout,
                          (clone_kernel(be.k), clone_oracle(be.oracle)), be.name)
        nb.run_detail = be.run_detail
        nb.region_pages = be.region_pages
        return World(nb, self.next_proc)


@dataclass(slots=True)
class Outcome:
    """What one action did: the new state, and the always properties it broke on the way
    (a kernel bug, a finding of the backend, a freed page with the flag)."""

    world: World
    findings: list[Finding]
    crashed: bool  # a BUG_ON: the state is half-updated, not explored further
    checked: bool  # invariants.check() already ran on this state

    def __init__(self, world: World, findings: list[Finding] | None = None,
                 crashed: bool = False, checked: bool = False) -> None:
        self.world = world
        self.findings = [] if findings is None else findings
        self.crashed = crashed
        self.checked = checked

    @property
    def state(self) -> World:
        """The new state (the name the generic checker knows it by)."""
        return self.world


class Space:
    """The model the checkers explore: one kernel version and one bound."""

    def __init__(self, bounds: Bounds, version: KernelVersion, prune: bool = True,
                 dead_fields: bool = True) -> None:
        """*prune*: skip actions that cannot lead to a state the others miss: those of
        twin processes (see :func:`canon.key_twins`), and steps that change nothing by the
        model's own account: mprotect() to the protection a range has already, madvise()
        of a VMA flag it has already (mprotect_changes(), madvise_changes()), and
        MADV_PAGEOUT of a range with nothing to reclaim or split (pageout_changes()).
        *dead_fields*: leave out of the key the fields no rule of this version reads
        (:mod:`anonex.explore.deadfields`)."""
        self.bounds = bounds
        self.prune = prune
        self.dead_fields = dead_fields
        self.version = version
        self.rules = Rules(version)
        layout = bounds.layout(Kernel(version).mthp_orders)
        if dead_fields:
            layout = replace(layout, dead=deadfields.dead_fields(self.rules, bounds.opset))
        self.layout = layout
        self.regions = bounds.regions
        self.tags = bounds.tag_alphabet
        self._ops = bounds.opset
        self._pins = [(op, PIN_OPTS[op]) for op in ("pin", "pin-ro", "pin-ro-short")
                      if op in self._ops]
        self._vpns = self.layout.vpns
        self._steps: dict[Action, ast.Step] = {}  # each action's scenario step, made once

    # -- the model ------------------------------------------------------------------------

    def initial(self) -> World:
        """P0 with every region mapped (the setup steps)."""
        be = ModelBackend(self.version)
        be.start(ast.Scenario("explore"))
        for st in setup_steps(self.bounds):
            res = be.step(st)
            if res.error or res.finding:
                raise RuntimeError(f"explore: setup step {st.text()!r} failed: "
                                   f"{res.error or res.finding}")
        return World(be, 1)

    def key(self, w: World) -> bytes:
        """The canonical key of *w* (symmetry-reduced); notes its twins on *w*."""
        key, w.twins = canon.key_twins(w.be.k, w.be.oracle, self.layout)
        return key

    def actions(self, w: World) -> list[Action]:
        """The actions worth trying in *w*, sorted (a cheap filter: an action may still
        be refused by the model, see :meth:`step`)."""
        k = w.be.k
        ops = self._ops
        out: list[Action] = []
        live = sorted(k.mms, key=ast.proc_index)
        twins: frozenset[str] = frozenset()
        prune = self.prune
        if prune:
            if w.twins is None:
                self.key(w)
            twins = w.twins or twins
        tags = self._tag_domain(w)
        free_pipe = next((n for n in self.bounds.pipe_names if n not in k.pipes), "")
        free_pin = next((n for n in self.bounds.pin_names if n not in k.pins), "")
        for p in live:
            if p in twins:
                continue
            mm = k.mms[p]
            for r in self.regions:
                rname = r.name
                vmas = [v for v in mm.vmas if v.start < r.base + r.npages and
                        r.base < v.end]
                if not vmas:
                    if "mmap" in ops:
                        out.append(("mmap", p, rname, r.npages if not r.huge else 0, r.kind))
                    continue
                for i in r.indexes:
                    vpn = r.base + i
                    vma = mm.find_vma(vpn)
                    if vma is None:
                        continue
                    fl = vma.flags
                    if fl & VM_WRITE:
                        if "write" in ops:
                            out.extend(("write", p, rname, i, t) for t in tags)
                        if "dio-read" in ops:
                            out.extend(("dio-read", p, rname, i, t) for t in tags)
                    if fl & VM_READ:
                        if "read" in ops and mm.pmd_at(vpn) is None and \
                                type(mm.ptes.get(vpn)) is not Pte:
                            out.append(("read", p, rname, i, ""))
                        if "vmsplice" in ops and free_pipe:
                            out.append(("vmsplice", p, rname, i, free_pipe))
                        if "dio-write" in ops:
                            out.append(("dio-write", p, rname, i, ""))
                    if free_pin:
                        for pop, opts in self._pins:
                            if fl & (VM_WRITE if "rw" in opts else VM_READ):
                                out.append((pop, p, rname, i, f"{free_pin} {opts}"))
                    if "migrate" in ops and not r.huge:
                        out.append(("migrate", p, rname, i, ""))
                    for op in ("peek", "poke", "force-write"):
                        if op not in ops:
                            continue
                        for q in live:
                            if q == p:
                                continue
                            qv = k.mms[q].find_vma(vpn)
                            if qv is None:
                                continue
                            if op == "peek" and qv.flags & VM_READ:
                                out.append((op, p, rname, i, q))
                            elif (op == "poke" and qv.flags & VM_WRITE) or op == "force-write":
                                out.extend((op, p, rname, i, f"{q} {t}") for t in tags)
                whole = sum(v.npages for v in vmas) == r.npages
                locs = [-1] if r.huge or r.npages == 1 else [-1, *r.indexes]
                for idx in locs:
                    if idx >= 0 and mm.find_vma(r.base + idx) is None:
                        continue
                    full = whole if idx < 0 else True
                    if "munmap" in ops:
                        out.append(("munmap", p, rname, idx, ""))
                    if not full:
                        continue
                    lo = r.base if idx < 0 else r.base + idx
                    hi = r.base + r.npages if idx < 0 else lo + 1
                    if "mprotect" in ops:
                        # a protection the range has already changes nothing (the
                        # model's mprotect_changes(): mprotect_fixup() returns at once)
                        for prot in ("ro", "rw"):
                            if not prune or mprotect_changes(mm, lo, hi, prot):
                                out.append(("mprotect", p, rname, idx, prot))
                    for adv in ("dontneed", "pageout", "dontfork", "wipeonfork", "mergeable",
                                "populate-write"):
                        if adv not in ops:
                            continue
                        if adv == "pageout" and prune and not pageout_changes(mm, lo, hi):
                            continue  # nothing the model's MADV_PAGEOUT would do
                        if prune and madvise_changes(mm, lo, hi, adv) is False:
                            continue  # a VMA flag the range has already
                        out.append((adv, p, rname, idx, ""))
                if "split" in ops and r.kind == "thp" and mm.pmds:
                    out.append(("split", p, rname, -1, ""))
            if "fork" in ops and len(live) < self.bounds.procs:
                out.append(("fork", p, "", -1, f"P{w.next_proc}"))
            if "exit" in ops and len(live) > 1:
                out.append(("exit", p, "", -1, ""))
        if "read-pipe" in ops:
            for name, pipe in k.pipes.items():
                holders = sorted(pipe.holders, key=ast.proc_index)
                if holders:
                    out.append(("read-pipe", holders[0], "", -1, name))
        for name, pin in k.pins.items():
            holders = sorted(pin.holders, key=ast.proc_index)
            if not holders:
                continue
            if "unpin" in ops:
                out.append(("unpin", holders[0], "", -1, name))
            if "dma-write" in ops and pin.gup_flags & FOLL_WRITE:
                out.extend(("dma-write", holders[0], "", -1, f"{name} {t}") for t in tags)
        if "ksm-scan" in ops and any(v.flags & VM_MERGEABLE for mm in k.mms.values()
                                     for v in mm.vmas):
            out.append(("ksm-scan", "", "", -1, ""))
        out.sort(key=order)
        return out

    def _tag_domain(self, w: World) -> tuple[str, ...]:
        """The tags worth writing: those the state holds somewhere, and the first one it
        does not (tags are interchangeable, so writing any other unused one leads to a
        state with the same key)."""
        k, oracle = w.be.k, w.be.oracle
        present: set[str] = set(oracle.mem.values())
        for refs in oracle.pipes.values():
            for r in refs:
                present.update(r.accepted)
        for mm in k.mms.values():
            for e in mm.ptes.values():
                pg = getattr(e, "page", None)
                if pg is not None:
                    present.add(pg.data)
            for pmd in mm.pmds.values():
                present.update(p.data for p in pmd.folio.pages[:self.layout.explicit])
        for table in (k.pipes, k.pins):
            for h in table.values():
                present.update(r.page.data for r in h.refs)
        for sl in k.swap.values():
            present.update(sl.data)
            if sl.cache is not None:
                present.update(p.data for p in sl.cache.pages[:self.layout.explicit])
        out = [t for t in self.tags if t in present]
        fresh = next((t for t in self.tags if t not in present), None)
        if fresh is not None:
            out.append(fresh)
        return tuple(out)

    def step(self, w: World, a: Action) -> Outcome | None:
        """Run action *a* on a copy of *w*: the outcome, or None when the model refuses
        the step (it is not a transition)."""
        return self.run(w.copy(), a)

    def run(self, w2: World, a: Action) -> Outcome | None:
        """Run action *a* on *w2* itself (see :meth:`step`)."""
        be = w2.be
        st = self._steps.get(a)
        if st is None:
            st = self._steps[a] = to_step(a)
        try:
            res = be.apply(st)
        except (Segfault, Unsupported):
            return None
        except KernelBug as bug:
            return Outcome(w2, [bug.finding()], crashed=True)
        except Exception as e:  # a bug of the model itself: report it, do not stop
            return Outcome(w2, [model_error(e, f"step '{st.text()}'")], crashed=True)
        if res.error is not None or res.skipped is not None:
            return None
        if a[0] == "fork":
            w2.next_proc += 1
        out = Outcome(w2)
        if res.findings:
            out.findings.extend(res.findings)
        k = be.k
        if k.freed:  # free sanity looks at what this step freed
            w2.garbage.extend(k.freed)
            out.findings.extend(invariants.check(k))
            out.checked = True
        return out

    def check(self, w: World, checked: bool = False) -> list[Finding]:
        """The always properties of state *w* (the structural invariants unless
        *checked*, and the data promises)."""
        k = w.be.k
        out: list[Finding] = []
        if not checked:
            out.extend(invariants.check(k))
        out.extend(properties.check_data(k, w.be.oracle, self._vpns))
        return out

