"""``LiveBackend``: the Backend protocol on the running kernel.

The driver (the calling process) never maps test memory. It forks actor P0 at ``start()``;
every later process is forked by the actor named in its ``fork`` step, so it really
inherits that address space. Each step becomes one command to one actor
(:mod:`anonex.live.actor`), answered before the next is sent; ``observe()`` reads pagemap,
kpageflags, kpagecount and /proc/PID/mem of every live actor from the driver
(:mod:`anonex.live.observe`).

Regions live at fixed, 2 MiB-aligned addresses ``BASE + k * 4 MiB`` (a larger region takes
several slots; a free slot always separates two regions) in every actor, so the driver
can index pagemaps by region and page. ``thp`` and ``hugetlb`` regions are one 2 MiB page.

System-wide resources (swap on zram, KSM, THP/mTHP, the hugetlb pool; see
:mod:`anonex.live.machine`) are set up at ``start()`` for what the scenario's steps need,
or when a step first needs them, and recorded in the run's
:class:`~anonex.live.safety.SystemState`, which ``finish()`` restores after the actors are
gone.

Determinism: all actors share one CPU, so a per-CPU LRU batch that one actor's fault
fills is drained by the next fault on that CPU (reference/live-kernel.md §4.4). The driver
keeps its own affinity: its observations take no page references.

How it fails: :class:`~anonex.live.LiveUnavailable` from ``start()`` when the machine cannot
run it; :class:`~anonex.observation.Unsupported` for steps with no live equivalent, and for
steps whose resource the machine cannot provide (no swap, no THP given, no hugetlb pages);
``StepResult(error=…)`` when the kernel refuses a step or an actor dies. ``finish()`` is
idempotent and also runs from the :mod:`anonex.live.safety` hooks (exit, SIGTERM, SIGINT):
it kills every actor by PID, reaps it, removes every file it made, restores the system
settings and only then releases the machine-wide run lock (one live run at a time, see
:class:`~anonex.live.machine.RunLock`; ``start()`` waits for it and raises
``LiveUnavailable`` when another run keeps it too long).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, assert_never

from anonex.kernel.flags import layout_for
from anonex.kernel.pgtable import HPAGE_PMD_NR
from anonex.kernel.versions import Rules
from anonex.live import (
    LiveUnavailable,
    available,
    features,
    forcewrite,
    libc,
    machine,
    safety,
)
from anonex.live.actor import actor_main
from anonex.live.channel import ChannelClosed, ChannelError, DriverEnd, make_fifos
from anonex.live.dio import DioTarget, DioUnavailable, ensure_dio
from anonex.live.observe import DataReader, Observer, ProcessGone, RegionView
from anonex.live.pagedata import PAGE
from anonex.observation import PageObs, StepResult, Unsupported
from anonex.procfs import kpageflags as kpf
from anonex.scenario.ast import Loc, OpName, Scenario, Step
from anonex.versions import KernelVersion

BASE = 0x100_0000_0000  # 1 TiB: far from the interpreter's heap and libraries
SLOT = 4 << 20
HUGETLB_SPARE = 4  # free hugetlb pages wanted per hugetlb region (the page and COW copies)


class _StepError(Exception):
    """A step failed; becomes ``StepResult(error=…)``."""


@dataclass(slots=True)
class _Region:
    name: str
    addr: int
    npages: int
    kind: str

    def view(self) -> RegionView:
        return RegionView(self.name, self.addr, self.npages, self.kind)


@dataclass(slots=True)
class _Proc:
    name: str
    pid: int
    parent: str | None
    chan: DriverEnd | None = None
    alive: bool = True  # runs the command loop
    reaped: bool = False  # its PID is gone (waited for by us or by its parent actor)


class LiveBackend:
    """Runs scenario steps with real processes on the running kernel."""

    name = "live"

    def __init__(self, *, timeout: float = 10.0, cpu: int | None = None,
                 keep: bool = False) -> None:
        self.version, self.version_source = features.running_version()
        # keep the machine set up from one scenario to the next (lock, settings, swap,
        # O_DIRECT device, observer); close() restores it all
        self.keep = keep
        self.timeout = timeout
        self._cpu_wanted = cpu
        self._active = False
        self._procs: dict[str, _Proc] = {}
        self._regions: dict[str, _Region] = {}
        self._next_slot = 0
        self._fifo_dir: str | None = None
        self._data_dir: str | None = None  # files for O_DIRECT when no device can be had
        self._dio: DioTarget | None = None
        self._dio_reason = ""
        self._observer: Observer | None = None
        self._system: safety.SystemState | None = None
        self._token: int | None = None
        self._saved_affinity: set[int] | None = None
        self._lru_drain = True  # until move_pages fails (see _drain_lru)
        self._saved_subreaper: int | None = None
        self._swap: machine.Swap | None = None
        self._swap_fresh = False
        self._lock: machine.RunLock | None = None
        self._ksm_procs: set[str] = set()  # actors registered with KSM (MMF_VM_MERGEABLE)
        self._layout_skip = ""  # why this scenario's flag layout cannot run here
        self._notes: list[str] = []  # observability limits found on this kernel
        self.cpu: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, scenario: Scenario) -> None:
        ok, why = available()
        if not ok:
            raise LiveUnavailable(why)
        self.finish()  # the last scenario's processes (and, unless kept, its settings)
        self._procs, self._regions, self._next_slot = {}, {}, 0
        self._ksm_procs = set()
        self._swap_fresh = False  # a kept swap device is renewed when this scenario uses it
        if self._system is None:
            self._set_up()
        self._active = True
        try:
            assert self._observer is not None
            self._layout_skip = _layout_skip(scenario, self.version,
                                             self._observer.exclusive)
            self._prepare(scenario)
            self._spawn_p0()
        except BaseException:
            self.finish()  # kept: the machine stays set up for the next scenario
            raise

    def _set_up(self) -> None:
        """Take the machine for this run (or, kept, for every run until close())."""
        self._swap = None
        self._notes = []
        self._dio, self._dio_reason = None, ""
        try:
            lock = machine.RunLock()
        except TimeoutError as e:
            raise LiveUnavailable(str(e)) from None
        self._lock = lock
        try:
            for undone in safety.recover(machine.JOURNAL):  # left by a run killed by SIGKILL
                print(f"anonex: a killed live run left this behind; done now: {undone}",
                      file=sys.stderr)
            # settings first, so that on a signal the actors die before settings return
            self._system = safety.SystemState(journal=machine.JOURNAL).__enter__()
            self._token = safety.register_cleanup(self.close)
            with safety.deferred_signals():  # the journal names them for a SIGKILL
                self._fifo_dir = tempfile.mkdtemp(prefix="anonex-live-")
                self._system.on_restore("rmtree", self._fifo_dir)
            self._observer = self._make_observer()
            if libc.get_child_subreaper() == 0:
                libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
                self._saved_subreaper = 0
        except BaseException:
            self.close()
            raise

    def _make_observer(self) -> Observer:
        """An observer set up for what this kernel's kpageflags mean, as detected on pages
        of the driver's own (:mod:`anonex.live.features`); the version table only where
        detection is impossible (said in the notes)."""
        obs = Observer()
        rules = Rules(self.version)
        feats = features.detect(features.probe(obs.kpf_fd), self.version,
                                (rules.anon_exclusive, rules.kpageflags_from_head))
        obs.head_mirror, obs.exclusive = feats.head_mirror, feats.exclusive_observable
        self._notes.extend(feats.notes)
        if not obs.ksm_reliable and features.KSM_NOTE not in self._notes:
            self._notes.append(features.KSM_NOTE)
        if obs.pmd_note:
            self._notes.append(obs.pmd_note)
        if forcewrite.note():
            self._notes.append(forcewrite.note())
        return obs

    def _prepare(self, scenario: Scenario) -> None:
        """Set up what the scenario's steps will need, so that ``environment()`` shows the
        settings the run uses. A resource the machine cannot give is left to the step that
        needs it, which then skips with the reason."""
        steps = scenario.steps
        advice = {s.word for s in steps if s.op == "madvise"}
        kinds = [s.kind for s in steps if s.op == "mmap"]
        wanted: list[tuple[bool, Callable[[], object]]] = [
            ("pageout" in advice, self._need_swap),
            ("thp" in kinds or "collapse" in advice, self._need_thp),
            ("thp" in kinds or "hugepage" in advice, self._need_mthp),
            (any(s.op in ("dio_read", "dio_write") for s in steps), self._need_dio),
            (bool({"mergeable", "unmergeable"} & advice) or
             any(s.op == "ksm_scan" for s in steps), self._tune_ksm),
        ]
        for want, need in wanted:
            if want:
                with contextlib.suppress(Unsupported):
                    need()
        n_huge = kinds.count("hugetlb")
        if n_huge:
            with contextlib.suppress(Unsupported):
                self._need_hugetlb(n_huge * HUGETLB_SPARE)

    # -- system-wide resources (anonex.live.machine) -----------------------------------------

    def _state(self) -> safety.SystemState:
        if self._system is None:
            raise RuntimeError("LiveBackend used before start()")
        return self._system

    def _need_swap(self) -> machine.Swap:
        try:
            if self._swap is None:
                self._swap = machine.ensure_swap(self._state())
            elif not self._swap_fresh:  # kept from an earlier scenario: fresh slots again
                machine.renew_swap(self._swap)
        except machine.Unavailable as e:
            raise Unsupported(f"swap: {e}") from None
        self._swap_fresh = True
        return self._swap

    def _need_thp(self) -> None:
        try:
            machine.ensure_thp(self._state())
        except machine.Unavailable as e:
            raise Unsupported(f"THP: {e}") from None

    def _need_mthp(self) -> None:
        machine.ensure_mthp(self._state())

    def _need_ksm(self) -> None:
        if not os.path.exists(f"{machine.KSM}/run"):
            raise Unsupported("KSM: not on this kernel (CONFIG_KSM is off)")

    def _tune_ksm(self) -> None:
        self._need_ksm()
        for note in machine.ksm_tune(self._state()):
            if note not in self._notes:
                self._notes.append(note)

    def _need_hugetlb(self, pages: int) -> None:
        try:
            machine.ensure_hugetlb(self._state(), pages)
        except machine.Unavailable as e:
            raise Unsupported(f"hugetlb: {e}") from None

    def _spawn_p0(self) -> None:
        """Fork P0 pinned to one CPU (every later actor inherits it); the driver keeps its
        own affinity."""
        assert self._fifo_dir is not None
        cmd, rep = make_fifos(self._fifo_dir, "P0")
        mine = os.sched_getaffinity(0)
        cpu = self._cpu_wanted if self._cpu_wanted is not None else min(mine)
        self._saved_affinity = mine
        os.sched_setaffinity(0, {cpu})
        self.cpu = cpu
        pid = -1
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child never returns
                if self._lock is not None:  # the run's lock stays with the driver
                    os.close(self._lock.fd)
                actor_main("P0", cmd, rep)
        finally:
            if pid != 0:
                os.sched_setaffinity(0, mine)
                self._saved_affinity = None
        proc = self._procs["P0"] = _Proc("P0", pid, None)
        proc.chan = DriverEnd(cmd, rep, self.timeout)
        self._call(proc, {"op": "ping"})

    def finish(self) -> None:
        """Kill and reap every actor; unless the machine is kept (``keep``), also remove
        every file and restore settings. Idempotent."""
        if self._active:
            self._active = False
            self._end_processes()
        if not self.keep:
            self._restore_machine()

    def close(self) -> None:
        """End the run and give the machine back as it was, kept or not. Idempotent."""
        if self._active:
            self._active = False
            self._end_processes()
        self._restore_machine()

    def _end_processes(self) -> None:
        for p in self._procs.values():
            if p.chan is not None:
                p.chan.close()
                p.chan = None
            if not p.reaped:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p.pid, signal.SIGKILL)
            p.alive = False
        self._reap_all()
        if self._saved_affinity is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, self._saved_affinity)
            self._saved_affinity = None
        if self._observer is not None:
            for p in self._procs.values():
                self._observer.forget(p.pid)
        if self._fifo_dir is not None:  # the next scenario's actors have the same names
            for f in os.listdir(self._fifo_dir):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self._fifo_dir, f))

    def _restore_machine(self) -> None:
        if self._observer is not None:
            self._observer.close()
            self._observer = None
        if self._saved_subreaper is not None:
            with contextlib.suppress(OSError):
                libc.prctl(libc.PR_SET_CHILD_SUBREAPER, self._saved_subreaper)
            self._saved_subreaper = None
        for d in (self._fifo_dir, self._data_dir):
            if d is not None:
                shutil.rmtree(d, ignore_errors=True)
        self._fifo_dir = self._data_dir = None
        if self._system is not None:
            self._system.restore()
            self._system = None
        if self._lock is not None:  # only now may another run change the machine
            self._lock.release()
            self._lock = None
        if self._token is not None:
            safety.unregister_cleanup(self._token)
            self._token = None

    def _reap_all(self, timeout: float = 5.0) -> None:
        """Wait for every killed actor. We are their subreaper, so orphans come to us."""
        pending = {p.pid: p for p in self._procs.values() if not p.reaped}
        deadline = time.monotonic() + timeout
        while pending:
            for pid, p in list(pending.items()):
                try:
                    got, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:  # not (yet) our child: its parent still dying
                    got = pid if not os.path.exists(f"/proc/{pid}") else 0
                if got == pid:
                    p.reaped = True
                    del pending[pid]
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.001)

    @property
    def pids(self) -> dict[str, int]:
        """The PID of every actor of the current (or last) run."""
        return {p.name: p.pid for p in self._procs.values()}

    @property
    def running(self) -> dict[str, int]:
        """The PID of every actor that still runs its command loop."""
        return {p.name: p.pid for p in self._procs.values() if p.alive}

    @property
    def regions(self) -> dict[str, tuple[int, int]]:
        """Every region of the current run: name -> (address, number of pages)."""
        return {r.name: (r.addr, r.npages) for r in self._regions.values()}

    @property
    def directories(self) -> list[str]:
        """The private directories of the current run (FIFOs, O_DIRECT files)."""
        return [d for d in (self._fifo_dir, self._data_dir) if d is not None]

    # -- talking to actors -------------------------------------------------------------------

    def _proc(self, name: str | None) -> _Proc:
        p = self._procs.get(name or "")
        if p is None:
            raise _StepError(f"process {name} does not exist")
        if not p.alive:
            raise _StepError(f"process {name} is not running")
        return p

    def _call(self, proc: _Proc, msg: dict[str, Any]) -> dict[str, Any]:
        if proc.chan is None:
            raise _StepError(f"process {proc.name} is not running")
        try:
            reply = proc.chan.call(msg)
        except ChannelError as e:
            self._lost(proc)
            kind = "died" if isinstance(e, ChannelClosed) else "stopped answering"
            raise _StepError(f"process {proc.name} (pid {proc.pid}) {kind}: {e}") from None
        if "error" in reply:
            raise _StepError(str(reply["error"]))
        return reply

    def _lost(self, proc: _Proc) -> None:
        proc.alive = False
        if proc.chan is not None:
            proc.chan.close()
            proc.chan = None
        if self._observer is not None:
            self._observer.forget(proc.pid)

    # -- regions -----------------------------------------------------------------------------

    def _new_region(self, name: str, npages: int, kind: str) -> _Region:
        old = self._regions.get(name)
        if old is not None and npages * PAGE <= _slots(old.npages) * SLOT - SLOT:
            old.npages, old.kind = npages, kind
            return old
        addr = BASE + self._next_slot * SLOT
        self._next_slot += _slots(npages)
        reg = self._regions[name] = _Region(name, addr, npages, kind)
        return reg

    def _span(self, loc: Loc | None) -> tuple[_Region, int, int]:
        """(region, first page address, number of pages) of a location."""
        if loc is None:
            raise _StepError("this step needs a region")
        reg = self._regions.get(loc.region)
        if reg is None:
            raise _StepError(f"region {loc.region} was never mapped")
        pages = loc.pages(reg.npages)
        if not pages or pages[0] < 0 or pages[-1] >= reg.npages:
            raise _StepError(f"{loc} is outside region {reg.name} ({reg.npages} pages)")
        return reg, reg.addr + pages[0] * PAGE, len(pages)

    # -- steps -------------------------------------------------------------------------------

    def step(self, step: Step) -> StepResult:
        if not self._active:
            raise RuntimeError("LiveBackend.step() before start()")
        if self._layout_skip:
            raise Unsupported(self._layout_skip)
        handler = self._handler(step.op)
        self._drain_lru()
        try:
            res: StepResult = handler(step)
        except _StepError as e:
            return StepResult(error=self._name_addresses(str(e)))
        return res

    def _handler(self, op: OpName) -> Callable[[Step], StepResult]:
        """The method of each operation; mypy reports an operation missing here."""
        match op:
            case "mmap":
                return self._op_mmap
            case "write":
                return self._op_write
            case "read":
                return self._op_read
            case "touch":
                return self._op_touch
            case "fork":
                return self._op_fork
            case "exit":
                return self._op_exit
            case "munmap":
                return self._op_munmap
            case "mprotect":
                return self._op_mprotect
            case "madvise":
                return self._op_madvise
            case "mremap":
                return self._op_mremap
            case "vmsplice":
                return self._op_vmsplice
            case "read_handle":
                return self._op_read_handle
            case "pin":
                return self._op_pin
            case "unpin":
                return self._op_unpin
            case "dma_write":
                return self._op_dma_write
            case "dma_read":
                return self._op_dma_read
            case "dio_read":
                return self._op_dio_read
            case "dio_write":
                return self._op_dio_write
            case "peek":
                return self._op_peek
            case "poke":
                return self._op_poke
            case "force_write":
                return self._op_force_write
            case "split":
                return self._op_split
            case "migrate":
                return self._op_migrate
            case "inject":
                return self._op_inject
            case "ksm_scan":
                return self._op_ksm_scan
            case _:
                assert_never(op)

    def _drain_lru(self) -> None:
        """Every step starts with every CPU's LRU add batch drained, as in the model: a
        fresh page's batch reference (which 5.9-5.17 count in do_wp_page) then depends on
        what the step does, not on how many pages the actors and the driver happened to
        fault since (anonex.kernel.lru)."""
        if self._lru_drain and not libc.lru_add_drain_all():
            self._lru_drain = False
            self._notes.append("no move_pages (no NUMA): the LRU add batches are not drained "
                               "between steps, so on 5.9-5.17 a write soon after a fault "
                               "may copy where the model reuses")

    def _name_addresses(self, text: str) -> str:
        """Write ``0x10000001000`` in a message as ``A[1]`` when it lies in region A."""
        def name(m: re.Match[str]) -> str:
            a = int(m.group(0), 16)
            for r in self._regions.values():
                if r.addr <= a < r.addr + r.npages * PAGE:
                    return f"{r.name}[{(a - r.addr) // PAGE}]"
            return m.group(0)
        return re.sub(r"0x[0-9a-f]+", name, text)

    def _simple(self, step: Step, msg: dict[str, Any]) -> dict[str, Any]:
        return self._call(self._proc(step.proc), msg)

    @staticmethod
    def _faults(reply: dict[str, Any]) -> int | None:
        n = reply.get("faults")
        return None if n is None else (1 if int(n) >= 1 else 0)

    def _op_mmap(self, step: Step) -> StepResult:
        assert step.loc is not None
        proc = self._proc(step.proc)
        if step.kind == "anon" and step.npages:
            reg = self._new_region(step.loc.region, step.npages, "small")
            self._call(proc, {"op": "mmap", "addr": reg.addr, "npages": reg.npages,
                              "kind": "small"})
            return StepResult()
        if step.kind == "hugetlb":
            self._need_hugetlb(HUGETLB_SPARE)
            reg = self._new_region(step.loc.region, HPAGE_PMD_NR, "hugetlb")
            self._call(proc, {"op": "mmap", "addr": reg.addr, "npages": reg.npages,
                              "kind": "hugetlb"})
            return StepResult()
        if step.kind == "thp":
            self._need_thp()
            self._need_mthp()
            reg = self._new_region(step.loc.region, HPAGE_PMD_NR, "thp")
            self._call(proc, {"op": "mmap", "addr": reg.addr, "npages": reg.npages,
                              "kind": "thp"})
            why = self._not_pmd_mapped(proc, reg.addr)
            if why:
                raise Unsupported(f"mmap thp: the kernel gave no PMD-mapped THP ({why}); "
                                  f"THP settings: {machine.environment()['thp_enabled']}")
            return StepResult()
        raise _StepError(f"mmap kind {step.kind!r} is unknown")

    def _not_pmd_mapped(self, proc: _Proc, addr: int) -> str:
        """Why the 2 MiB at *addr* in *proc* is not one PMD-mapped THP ("" if it is)."""
        assert self._observer is not None
        try:
            entry = self._observer.pagemap(proc.pid, addr, 1)[0]
            if entry.pfn is None:
                return "nothing mapped"
            word = self._observer.kpageflags(entry.pfn)
            if not (kpf.has(word, kpf.KPF_THP) and kpf.has(word, kpf.KPF_COMPOUND_HEAD)):
                return "the first page is not the head of a THP (allocation fell back)"
            if addr not in self._observer.pmd_mapped(proc.pid, addr, HPAGE_PMD_NR):
                return "the THP is mapped with PTEs"
        except ProcessGone:
            self._lost(proc)
            raise _StepError(f"process {proc.name} (pid {proc.pid}) died") from None
        return ""

    def _access(self, step: Step, op: str, **extra: Any) -> StepResult:
        _, addr, n = self._span(step.loc)
        reply = self._simple(step, {"op": op, "addr": addr, "npages": n, **extra})
        value = reply.get("value")
        return StepResult(value=None if value is None else str(value),
                          faults=self._faults(reply))

    def _op_write(self, step: Step) -> StepResult:
        return self._access(step, "write", tag=step.tag or "")

    def _op_read(self, step: Step) -> StepResult:
        return self._access(step, "read")

    def _op_touch(self, step: Step) -> StepResult:
        return self._access(step, "touch")

    def _op_fork(self, step: Step) -> StepResult:
        parent = self._proc(step.proc)
        child = step.target
        if not child or child in self._procs:
            raise _StepError(f"cannot fork {child!r}: the name is taken")
        assert self._fifo_dir is not None
        cmd, rep = make_fifos(self._fifo_dir, child)
        reply = self._call(parent, {"op": "fork", "child": child, "cmd": cmd, "reply": rep})
        proc = self._procs[child] = _Proc(child, int(reply["pid"]), parent.name)
        try:
            proc.chan = DriverEnd(cmd, rep, self.timeout)
        except ChannelError as e:
            self._lost(proc)
            raise _StepError(f"forked {child} (pid {proc.pid}) never answered: {e}") from None
        self._call(proc, {"op": "ping"})
        if parent.name in self._ksm_procs:  # ksm_fork(): the child is registered too
            self._ksm_procs.add(child)
        return StepResult()

    def _op_exit(self, step: Step) -> StepResult:
        proc = self._proc(step.proc)
        self._call(proc, {"op": "exit"})
        self._lost(proc)
        self._ksm_procs.discard(proc.name)
        parent = self._procs.get(proc.parent or "")
        if parent is not None and parent.alive:
            self._call(parent, {"op": "reap", "pid": proc.pid})
            proc.reaped = True
        else:  # P0, or an orphan that came to us as subreaper
            deadline = time.monotonic() + self.timeout
            while not proc.reaped:
                with contextlib.suppress(ChildProcessError):
                    got, _ = os.waitpid(proc.pid, os.WNOHANG)
                    proc.reaped = got == proc.pid
                if proc.reaped or time.monotonic() > deadline:
                    break
                time.sleep(0.0005)
        return StepResult()

    def _range_op(self, step: Step, op: str, **extra: Any) -> StepResult:
        _, addr, n = self._span(step.loc)
        self._simple(step, {"op": op, "addr": addr, "length": n * PAGE, **extra})
        return StepResult()

    def _op_munmap(self, step: Step) -> StepResult:
        return self._range_op(step, "munmap")

    def _op_mprotect(self, step: Step) -> StepResult:
        if step.word not in libc.PROT:
            raise _StepError(f"mprotect: unknown protection {step.word!r}")
        return self._range_op(step, "mprotect", prot=step.word)

    def _op_madvise(self, step: Step) -> StepResult:
        advice = step.word or ""
        if advice not in libc.MADV:
            raise _StepError(f"madvise: unknown advice {advice!r}")
        if advice == "pageout":
            return self._pageout(step)
        if advice in ("mergeable", "unmergeable"):
            self._need_ksm()
        elif advice == "hugepage":
            self._need_mthp()
        elif advice == "collapse":
            self._need_thp()
        res = self._range_op(step, "madvise", advice=advice)  # EINVAL etc.: a step error
        reg, _, _ = self._span(step.loc)
        if advice == "mergeable" and step.proc and reg.kind != "hugetlb":
            self._ksm_procs.add(step.proc)  # ksm_madvise() ignores hugetlb VMAs
        return res

    def _pageout(self, step: Step) -> StepResult:
        """MADV_PAGEOUT with swap active. Pages it leaves mapped although they look
        reclaimable (anon, mapped once, not the zero page) get one more try, for a folio
        that could not be isolated from the LRU at that moment (reference/live-kernel.md
        §4.4); pinned pages stay mapped on both tries, as the kernel intends."""
        self._need_swap()
        reg, addr, n = self._span(step.loc)
        proc = self._proc(step.proc)
        self._range_op(step, "madvise", advice="pageout")
        if self._reclaimable(proc, addr, n):
            self._range_op(step, "madvise", advice="pageout")
        del reg
        return StepResult()

    def _reclaimable(self, proc: _Proc, addr: int, n: int) -> bool:
        assert self._observer is not None
        try:
            for e in self._observer.pagemap(proc.pid, addr, n):
                if e.pfn is None:
                    continue
                word = self._observer.kpageflags(e.pfn)
                if kpf.has(word, kpf.KPF_ANON) and not kpf.has(word, kpf.KPF_ZERO_PAGE) \
                        and self._observer.kpagecount(e.pfn) == 1:
                    return True
        except ProcessGone:
            return False
        return False

    def _op_mremap(self, step: Step) -> StepResult:
        src, addr, n = self._span(step.loc)
        if not step.name:
            raise _StepError("mremap needs a destination region")
        if step.name == src.name:
            raise _StepError("mremap onto the same region")
        proc = self._proc(step.proc)
        dst = self._new_region(step.name, n, src.kind)
        self._call(proc, {"op": "mremap", "addr": addr, "length": n * PAGE, "new": dst.addr})
        return StepResult()

    def _op_vmsplice(self, step: Step) -> StepResult:
        return self._range_op(step, "vmsplice", name=step.name)

    def _op_read_handle(self, step: Step) -> StepResult:
        reply = self._simple(step, {"op": "read_pipe", "name": step.name})
        return StepResult(value=str(reply.get("value", "")))

    def _op_pin(self, step: Step) -> StepResult:
        opts = step.pinopts
        if "ro" in opts:
            raise Unsupported("pin ro: user space has no way to take a read-only long-term "
                              "pin (io_uring fixed buffers always pin with FOLL_WRITE; the "
                              "kernel's own tests need CONFIG_GUP_TEST)")
        if "fast" in opts:
            raise Unsupported("pin fast: user space has no way to choose GUP-fast for a "
                              "held pin (needs CONFIG_GUP_TEST)")
        if opts and "longterm" not in opts:
            raise Unsupported("a short-term pin held across steps has no user-space way "
                              "(O_DIRECT pins only during one I/O: use dio-read/dio-write)")
        return self._range_op(step, "pin", name=step.name)

    def _op_unpin(self, step: Step) -> StepResult:
        self._simple(step, {"op": "unpin", "name": step.name})
        return StepResult()

    def _op_dma_write(self, step: Step) -> StepResult:
        self._simple(step, {"op": "dma_write", "name": step.name, "tag": step.tag or ""})
        return StepResult()

    def _op_dma_read(self, step: Step) -> StepResult:
        reply = self._simple(step, {"op": "dma_read", "name": step.name})
        return StepResult(value=str(reply.get("value", "")))

    def _need_dio(self) -> DioTarget:
        """The run's O_DIRECT target (:mod:`anonex.live.dio`), set up on first need."""
        if self._dio is not None:
            return self._dio
        if not self._dio_reason:
            try:
                target = ensure_dio(self._state(), self._fifo_dir or tempfile.gettempdir())
            except DioUnavailable as e:
                self._dio_reason = str(e)
            else:
                if target.kind == "directory":  # files of our own in a directory of our own
                    with safety.deferred_signals():
                        self._data_dir = tempfile.mkdtemp(prefix="anonex-live-",
                                                          dir=target.path)
                        self._state().on_restore("rmtree", self._data_dir)
                    target = DioTarget(self._data_dir, target.kind)
                self._dio = target
                if target.note:
                    self._notes.append(target.note)
                return target
        raise Unsupported(f"O_DIRECT: nowhere to do direct I/O that pins: {self._dio_reason}")

    def _op_dio_read(self, step: Step) -> StepResult:
        t = self._need_dio()
        return self._access(step, "dio_read", tag=step.tag or "", target=t.path,
                            device=t.kind != "directory")

    def _op_dio_write(self, step: Step) -> StepResult:
        t = self._need_dio()
        return self._access(step, "dio_write", target=t.path, device=t.kind != "directory")

    def _remote(self, step: Step, op: str, **extra: Any) -> StepResult:
        target = self._proc(step.target)
        return self._access(step, op, pid=target.pid, **extra)

    def _op_peek(self, step: Step) -> StepResult:
        return self._remote(step, "peek")

    def _op_poke(self, step: Step) -> StepResult:
        return self._remote(step, "poke", tag=step.tag or "")

    def _op_force_write(self, step: Step) -> StepResult:
        """A FOLL_FORCE write through ``/proc/PID/mem``: by the writing actor where the
        kernel always allows it, else by a tracer of the target
        (:mod:`anonex.live.forcewrite`)."""
        if forcewrite.mode() == forcewrite.ALWAYS:
            return self._remote(step, "force_write", tag=step.tag or "")
        self._proc(step.proc)  # the writer must be there, as in the model
        target = self._proc(step.target)
        _, addr, n = self._span(step.loc)
        reply = forcewrite.write_as_tracer(target.pid, addr, n, step.tag or "")
        if "error" in reply:
            if reply.get("errno") in (errno.EPERM, errno.EACCES):
                raise Unsupported(f"force-write: this kernel allows forced /proc/PID/mem "
                                  f"writes only to a ptracer, and the target cannot be "
                                  f"traced here: {reply['error']}")
            raise _StepError(f"force-write: {reply['error']}")
        if reply.get("written") != n * PAGE:
            raise _StepError(f"/proc/{target.pid}/mem write gave {reply.get('written')} of "
                             f"{n * PAGE} bytes")
        return StepResult(faults=self._faults(reply))

    def _op_split(self, step: Step) -> StepResult:
        """Remap a PMD-mapped THP with PTEs: mprotect the first page of the range read-only
        and back to read-write, as the model does."""
        reg, addr, n = self._span(step.loc)
        proc = self._proc(step.proc)
        assert self._observer is not None
        try:  # where smaps cannot tell (before 6.7), a THP that may be PMD-mapped counts
            pmds = [b for b, v in self._observer.pmd_map(proc.pid, addr, n).items()
                    if v is not False]
        except ProcessGone:
            self._lost(proc)
            raise _StepError(f"process {proc.name} (pid {proc.pid}) died") from None
        if not pmds:
            return StepResult(error="split: no PMD-mapped THP in the range")
        del reg
        self._call(proc, {"op": "mprotect", "addr": addr, "length": PAGE, "prot": "ro"})
        self._call(proc, {"op": "mprotect", "addr": addr, "length": PAGE, "prot": "rw"})
        return StepResult()

    def _op_migrate(self, step: Step) -> StepResult:
        raise Unsupported("migrate: not targetable on one node (a single NUMA node; "
                          "compaction moves an unchosen subset of pages)")

    def _op_inject(self, step: Step) -> StepResult:
        raise Unsupported(f"inject {step.word}: fault injection exists only in the model "
                          "(it breaks a kernel rule on purpose)")

    def _op_ksm_scan(self, step: Step) -> StepResult:
        """ksmd does two full scans (:func:`anonex.live.machine.ksm_scan`). With no actor
        registered, ksmd would have nothing to scan (and never count a scan): nothing to do."""
        self._need_ksm()
        if not any(self._procs[p].alive for p in self._ksm_procs if p in self._procs):
            return StepResult()
        try:
            machine.ksm_scan(self._state())
        except TimeoutError as e:
            raise _StepError(f"ksm-scan: {e}") from None
        return StepResult()

    # -- observation -------------------------------------------------------------------------

    def observe(self) -> list[PageObs]:
        if not self._active or self._observer is None:
            return []
        views = [r.view() for r in self._regions.values()]
        out: list[PageObs] = []
        for p in self._procs.values():
            if not p.alive:
                continue
            try:
                out.extend(self._observer.observe_process(p.name, p.pid, views,
                                                          self._reader(p)))
            except (ProcessGone, _StepError):
                self._lost(p)
        return out

    def _reader(self, proc: _Proc) -> DataReader:
        def read(addrs: Sequence[int]) -> list[str | None]:
            tags = self._call(proc, {"op": "look", "addrs": list(addrs)})["tags"]
            return [None if t is None else str(t) for t in tags]
        return read

    def environment(self) -> dict[str, Any]:
        env = environment(self.cpu)
        env["kernel_version"] = {"version": str(self.version), "source": self.version_source}
        env["notes"] = list(dict.fromkeys(self._notes))
        if self._system is not None:  # what this run changed, with the values it restores
            env["changed"] = {p: v for p, v in self._system.saved}
            env["undo"] = self._system.actions
        if self._swap is not None:
            env["swap_used"] = {"device": self._swap.device, "ours": self._swap.ours}
        if self._dio is not None:
            env["dio"] = {"target": self._dio.path, "kind": self._dio.kind}
        return env


def _layout_skip(scenario: Scenario, version: KernelVersion, exclusive: bool) -> str:
    """Why a scenario's ``layout`` cannot run on this kernel ("" if it can): the running
    kernel has one page-flag layout; the others exist in the model. Whether it has the
    flag at all is detected (*exclusive*); whether bit 34 is named PG_mappedtodisk or
    PG_owner_2 in its source is not observable and comes from the version."""
    want = getattr(scenario, "layout", None)
    if not want:
        return ""
    have = layout_for(exclusive, Rules(version).owner_2_rename).name
    if want == have:
        return ""
    return (f"layout {want}: the running kernel ({version}) has the {have} layout; other "
            "page-flag layouts exist only in the model")


def _slots(npages: int) -> int:
    """Slots a region of *npages* takes, one free slot after it included."""
    return (npages * PAGE + SLOT - 1) // SLOT + 1


def environment(cpu: int | None = None) -> dict[str, Any]:
    """What a live run depends on: kernel, THP/mTHP, swap, KSM, hugetlb, CPU, page size."""
    return {
        "kernel": os.uname().release,
        "kernel_release": os.uname().release,
        "machine": os.uname().machine,
        "page_size": PAGE,
        **machine.environment(),
        "cpu_pinned": cpu,
        "io_uring_disabled": machine.read("/proc/sys/kernel/io_uring_disabled"),
    }
