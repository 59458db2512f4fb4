"""``LiveBackend``: the Backend protocol on the running kernel.

The driver (the calling process) never maps test memory. It forks actor P0 at ``start()``;
every later process is forked by the actor named in its ``fork`` step, so it really
inherits that address space. Each step becomes one command to one actor
(:mod:`anonex.live.actor`), answered before the next is sent; ``observe()`` reads pagemap,
kpageflags, kpagecount and /proc/PID/mem of every live actor from the driver
(:mod:`anonex.live.observe`).

Regions live at fixed, 2 MiB-aligned addresses ``BASE + k * 4 MiB`` (a larger region takes
several slots; a free slot always separates two regions) in every actor, so the driver
can index pagemaps by region and page.

Determinism: all actors share one CPU, so a per-CPU LRU batch that one actor's fault
fills is drained by the next fault on that CPU (reference/live-kernel.md §4.4). The driver
keeps its own affinity: its observations take no page references.

How it fails: :class:`~anonex.live.LiveUnavailable` from ``start()`` when the machine cannot
run it; :class:`~anonex.observation.Unsupported` for steps with no live equivalent (yet);
``StepResult(error=…)`` when the kernel refuses a step or an actor dies. ``finish()`` is
idempotent and also runs from the :mod:`anonex.live.safety` hooks (exit, SIGTERM, SIGINT):
it kills every actor by PID, reaps it, and removes every file it made.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from anonex.live import LiveUnavailable, available, libc, safety
from anonex.live.actor import actor_main
from anonex.live.channel import ChannelClosed, ChannelError, DriverEnd, make_fifos
from anonex.live.dio import direct_io_dir
from anonex.live.observe import DataReader, Observer, ProcessGone, RegionView
from anonex.live.pagedata import PAGE
from anonex.observation import PageObs, StepResult, Unsupported
from anonex.scenario.ast import Loc, Scenario, Step
from anonex.versions import KernelVersion

BASE = 0x100_0000_0000  # 1 TiB: far from the interpreter's heap and libraries
SLOT = 4 << 20

NEXT_ISSUE_MADVISE = frozenset(
    {"pageout", "mergeable", "unmergeable", "hugepage", "nohugepage", "collapse"})


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

    def __init__(self, *, timeout: float = 10.0, cpu: int | None = None) -> None:
        self.version = KernelVersion.parse(os.uname().release)
        self.timeout = timeout
        self._cpu_wanted = cpu
        self._active = False
        self._procs: dict[str, _Proc] = {}
        self._regions: dict[str, _Region] = {}
        self._next_slot = 0
        self._fifo_dir: str | None = None
        self._data_dir: str | None = None
        self._dio_reason = ""
        self._observer: Observer | None = None
        self._system: safety.SystemState | None = None
        self._token: int | None = None
        self._saved_affinity: set[int] | None = None
        self._saved_subreaper: int | None = None
        self.cpu: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, scenario: Scenario) -> None:
        ok, why = available()
        if not ok:
            raise LiveUnavailable(why)
        self.finish()
        self._procs, self._regions, self._next_slot = {}, {}, 0
        self._active = True
        try:
            # settings first, so that on a signal the actors die before settings return
            self._system = safety.SystemState().__enter__()
            self._token = safety.register_cleanup(self.finish)
            self._fifo_dir = tempfile.mkdtemp(prefix="anonex-live-")
            base, self._dio_reason = direct_io_dir()
            self._data_dir = tempfile.mkdtemp(prefix="anonex-live-", dir=base) if base else None
            self._observer = Observer()
            if libc.get_child_subreaper() == 0:
                libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
                self._saved_subreaper = 0
            self._spawn_p0()
        except BaseException:
            self.finish()
            raise

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
                actor_main("P0", cmd, rep, self._data_dir or "")
        finally:
            if pid != 0:
                os.sched_setaffinity(0, mine)
                self._saved_affinity = None
        proc = self._procs["P0"] = _Proc("P0", pid, None)
        proc.chan = DriverEnd(cmd, rep, self.timeout)
        self._call(proc, {"op": "ping"})

    def finish(self) -> None:
        """Kill and reap every actor, remove every file, restore settings. Idempotent."""
        if not self._active:
            return
        self._active = False
        for p in self._procs.values():
            if p.chan is not None:
                p.chan.close()
                p.chan = None
            if not p.reaped:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p.pid, signal.SIGKILL)
            p.alive = False
        self._reap_all()
        if self._observer is not None:
            self._observer.close()
            self._observer = None
        if self._saved_subreaper is not None:
            with contextlib.suppress(OSError):
                libc.prctl(libc.PR_SET_CHILD_SUBREAPER, self._saved_subreaper)
            self._saved_subreaper = None
        if self._saved_affinity is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, self._saved_affinity)
            self._saved_affinity = None
        for d in (self._fifo_dir, self._data_dir):
            if d is not None:
                shutil.rmtree(d, ignore_errors=True)
        self._fifo_dir = self._data_dir = None
        if self._system is not None:
            self._system.restore()
            self._system = None
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
        handler = getattr(self, "_op_" + step.op, None)
        if handler is None:
            raise Unsupported(f"{step.op}: not an operation the live backend knows")
        try:
            res: StepResult = handler(step)
        except _StepError as e:
            return StepResult(error=self._name_addresses(str(e)))
        return res

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
        if step.kind in ("thp", "hugetlb"):
            raise Unsupported(f"mmap {step.kind}: THP and hugetlb regions on the live kernel "
                              "are the next issue")
        if step.kind != "anon" or not step.npages:
            raise _StepError(f"mmap kind {step.kind!r} is unknown")
        proc = self._proc(step.proc)
        reg = self._new_region(step.loc.region, step.npages, "small")
        self._call(proc, {"op": "mmap", "addr": reg.addr, "npages": reg.npages,
                          "kind": "small"})
        return StepResult()

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
        return StepResult()

    def _op_exit(self, step: Step) -> StepResult:
        proc = self._proc(step.proc)
        self._call(proc, {"op": "exit"})
        self._lost(proc)
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
        if advice in NEXT_ISSUE_MADVISE:
            raise Unsupported(f"madvise {advice}: next issue: swap/KSM/THP")
        if advice not in libc.MADV:
            raise _StepError(f"madvise: unknown advice {advice!r}")
        return self._range_op(step, "madvise", advice=advice)

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

    def _need_dio(self) -> None:
        if self._data_dir is None:
            raise Unsupported(f"no directory where O_DIRECT does direct I/O: {self._dio_reason}")

    def _op_dio_read(self, step: Step) -> StepResult:
        self._need_dio()
        return self._access(step, "dio_read", tag=step.tag or "")

    def _op_dio_write(self, step: Step) -> StepResult:
        self._need_dio()
        return self._access(step, "dio_write")

    def _remote(self, step: Step, op: str, **extra: Any) -> StepResult:
        target = self._proc(step.target)
        return self._access(step, op, pid=target.pid, **extra)

    def _op_peek(self, step: Step) -> StepResult:
        return self._remote(step, "peek")

    def _op_poke(self, step: Step) -> StepResult:
        return self._remote(step, "poke", tag=step.tag or "")

    def _op_force_write(self, step: Step) -> StepResult:
        return self._remote(step, "force_write", tag=step.tag or "")

    def _op_split(self, step: Step) -> StepResult:
        raise Unsupported("split: THP on the live kernel is the next issue")

    def _op_migrate(self, step: Step) -> StepResult:
        raise Unsupported("migrate: not targetable on one node (a single NUMA node; "
                          "compaction moves an unchosen subset of pages)")

    def _op_ksm_scan(self, step: Step) -> StepResult:
        raise Unsupported("ksm-scan: next issue: swap/KSM/THP")

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
        return environment(self.cpu)


def _slots(npages: int) -> int:
    """Slots a region of *npages* takes, one free slot after it included."""
    return (npages * PAGE + SLOT - 1) // SLOT + 1


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _selected(text: str | None) -> str | None:
    if text is None or "[" not in text:
        return text
    return text[text.index("[") + 1:text.index("]")]


def environment(cpu: int | None = None) -> dict[str, Any]:
    """What a live run depends on: kernel, THP/mTHP, swap, KSM, hugetlb, CPU, page size."""
    thp = "/sys/kernel/mm/transparent_hugepage"
    mthp: dict[str, str | None] = {}
    with contextlib.suppress(OSError):
        for d in sorted(os.listdir(thp), key=lambda s: int(s[10:-2]) if s[10:-2].isdigit()
                        else 0):
            if d.startswith("hugepages-"):
                mthp[d[len("hugepages-"):]] = _selected(_read(f"{thp}/{d}/enabled"))
    swaps = (_read("/proc/swaps") or "").splitlines()[1:]
    return {
        "kernel": os.uname().release,
        "machine": os.uname().machine,
        "page_size": PAGE,
        "thp_enabled": _selected(_read(f"{thp}/enabled")),
        "thp_defrag": _selected(_read(f"{thp}/defrag")),
        "thp_use_zero_page": _read(f"{thp}/use_zero_page"),
        "mthp": mthp,
        "swaps": [" ".join(s.split()[:3]) for s in swaps],
        "ksm_run": _read("/sys/kernel/mm/ksm/run"),
        "hugetlb_nr_hugepages": _read("/proc/sys/vm/nr_hugepages"),
        "cpu_pinned": cpu,
        "io_uring_disabled": _read("/proc/sys/kernel/io_uring_disabled"),
    }
