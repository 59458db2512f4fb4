"""System-wide resources of a live run: swap on zram, KSM, THP/mTHP and the hugetlb pool.

Every ``ensure_*`` function looks at what the machine has, changes only what is missing, and
records each change (a sysfs/procfs value, or the undo of an action such as ``swapon``) in
the run's :class:`~anonex.live.safety.SystemState`; restoring that state puts the machine
back in reverse order. Changes are made with SIGINT/SIGTERM held back until their undo is
recorded, so a signal never leaves an unrecorded change behind.

* **swap** (:func:`ensure_swap`): an active swap is used as it is. Otherwise a zram device
  (an unused one, else one hot-added through ``/sys/class/zram-control``, else zram loaded)
  gets a 256 MiB disksize, ``mkswap`` and ``swapon``; undone by ``swapoff``, ``reset`` (and
  ``hot_remove`` or unloading the module).
* **KSM** (:func:`ksm_tune`, :func:`ksm_scan`): set as the model assumes it
  (:data:`KSM_SETTINGS`: ``run=0`` between scans, ``use_zero_pages=0``, no
  ``max_page_sharing=256`` (the default, as in the model), ``merge_across_nodes=1``,
  ``smart_scan`` and the advisor off). For one ``ksm-scan`` step ksmd runs (``run=1``)
  until ``full_scans`` has advanced by two and is then stopped again, so that merging
  happens only where the scenario says, as in the model. During the run ``pages_to_scan``
  is large (one wake-up covers a whole scan) and ``sleep_millisecs`` small.
* **THP** (:func:`ensure_thp`): every setting an outcome depends on is set explicitly
  (:data:`THP_SETTINGS`, :data:`MTHP_SETTINGS`): ``enabled=madvise`` (guests default to
  ``always``), ``defrag=madvise``, ``use_zero_page=1``, khugepaged's ``max_ptes_*`` at
  their defaults; per size, 64 KiB ``madvise`` (the one mTHP size the model enables),
  2 MiB ``inherit``, every other size ``never``. khugepaged must not collapse a
  scenario's split or partly unmapped THP behind its back (:func:`quiet_khugepaged`): its
  ``scan_sleep_millisecs`` is raised for the run (the write triggers one pass, which is
  waited out before the run maps anything), and the driver keeps khugepaged's list of mms
  non-empty with an empty MADV_HUGEPAGE region, so that no actor's registration wakes it
  for a pass in the middle of a scenario.
* **swap readahead** (:data:`SWAP_SETTINGS`): VMA-based, ``page-cluster=3``, as modelled.
* **hugetlb** (:func:`ensure_hugetlb`): 2 MiB pool pages are added until enough are free
  and unreserved.

A run keeps its undo stack in :data:`JOURNAL` while it runs; the next run, holding the
lock, undoes what a run killed by SIGKILL left there (:func:`anonex.live.safety.recover`).

One live run at a time (:class:`RunLock`): two runs that change the same settings would
interleave their save/restore (one restores while the other still uses the setting; the
other then "restores" the first run's value), and would also see each other's pages in
KSM and swap. A run holds an exclusive ``flock`` on ``/proc/kpageflags`` (a file every
live run opens anyway and that always exists, so nothing is left behind); the kernel drops
it when the process dies, however it dies.

How it fails: :class:`Unavailable` (with the reason) when the machine cannot provide a
resource; the backend turns it into a skipped step. :class:`RunLock` raises
:class:`TimeoutError` when another run keeps the machine longer than the timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from anonex.live import libc
from anonex.live.safety import SystemState, deferred_signals

MM = "/sys/kernel/mm"
KSM = f"{MM}/ksm"
THP = f"{MM}/transparent_hugepage"
HUGETLB_2M = f"{MM}/hugepages/hugepages-2048kB"
ZRAM_CONTROL = "/sys/class/zram-control"
SWAP_SIZE = "256M"

KSM_PAGES_TO_SCAN = 10000
# ksmd sleeps this long after each batch (one batch is at most one full scan): long enough
# for the driver, polling full_scans, to stop it after the scans a step wants even under
# emulation (with 1 ms, a 6.1 guest under TCG sometimes got a third scan in, which merged
# a page the model leaves for the next ksm-scan)
KSM_SLEEP_MS = 20
KSM_TIMEOUT = 20.0
KSM_MAX_PAGE_SHARING = 256  # the kernel's default, which the model has too
KHUGEPAGED_SLEEP_MS = 3_600_000  # an hour: no background collapse during a run
KHUGEPAGED_WAIT = 5.0  # seconds to wait for the scan pass that the setting triggers


LOCK_PATH = "/proc/kpageflags"
#: where a live run keeps its undo stack while it runs (for recovery after a SIGKILL)
JOURNAL = os.path.join("/run" if os.access("/run", os.W_OK) else tempfile.gettempdir(),
                       "anonex-live.journal")
LOCK_TIMEOUT = float(os.environ.get("ANONEX_LIVE_LOCK_TIMEOUT", "300"))


class Unavailable(Exception):
    """The machine cannot provide what a step needs; the message says why."""


class RunLock:
    """The machine-wide lock of one live run (an exclusive flock on :data:`LOCK_PATH`).

    ``fd`` is the locked descriptor; a forked child must close it (the lock belongs to the
    open file, which a child shares until it closes its copy)."""

    def __init__(self, timeout: float = LOCK_TIMEOUT) -> None:
        self.fd = os.open(LOCK_PATH, os.O_RDONLY | os.O_CLOEXEC)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    self.fd = -1
                    raise TimeoutError(f"another anonex live run kept the machine for "
                                       f"{timeout:g} s (lock on {LOCK_PATH})") from None
                time.sleep(0.05)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = -1


def read(path: str) -> str | None:
    """A sysfs/procfs file's stripped text (``None`` if it cannot be read)."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def selected(text: str | None) -> str | None:
    """The ``[selected]`` word of a sysfs menu like ``always [madvise] never``."""
    if text is None or "[" not in text:
        return text
    return text[text.index("[") + 1:text.index("]")]


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


# -- swap ------------------------------------------------------------------------------------


def active_swaps() -> list[str]:
    """The devices/files in ``/proc/swaps``."""
    lines = (read("/proc/swaps") or "").splitlines()[1:]
    return [ln.split()[0] for ln in lines if ln.strip()]


@dataclass(frozen=True, slots=True)
class Swap:
    """The swap a run pages out to, and whether the run switched it on."""

    device: str
    ours: bool


def wait_for(path: str, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _free_zram() -> int | None:
    """An existing zram device that nobody set up (initstate 0)."""
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir("/sys/block")):
            if name.startswith("zram") and read(f"/sys/block/{name}/initstate") == "0":
                return int(name[4:])
    return None


def zram_device(st: SystemState) -> int:
    """A zram device of our own: an unused one (the cheapest: undone by its reset alone),
    else a hot-added one (undo: hot_remove), else one from loading the module (undo: unload
    it). Live runs hold the run lock, so no other anonex run takes the same device."""
    n0 = _free_zram()
    if n0 is not None:
        return n0
    if os.path.exists(f"{ZRAM_CONTROL}/hot_add"):
        n = int(read(f"{ZRAM_CONTROL}/hot_add") or "-1")  # reading it adds a device
        if n >= 0:
            st.on_restore("write", f"{ZRAM_CONTROL}/hot_remove", str(n))
            return n
    modprobe = shutil.which("modprobe")
    if modprobe is None or os.path.exists("/sys/block/zram0"):
        raise Unavailable("no swap is active and no free zram device can be had "
                          "(every zram device in use, no /sys/class/zram-control)")
    r = subprocess.run([modprobe, "zram", "num_devices=1"], capture_output=True, text=True)
    if r.returncode != 0:
        raise Unavailable(f"no swap is active and zram cannot be loaded: {r.stderr.strip()}")
    st.on_restore("command", modprobe, "-r", "zram")
    if not wait_for("/sys/block/zram0/initstate"):
        raise Unavailable("zram was loaded but /sys/block/zram0 did not appear")
    return 0


#: swap-in readahead as the model has it: VMA-based, a window of at most 1 << 3 pages
SWAP_SETTINGS = {"/proc/sys/vm/page-cluster": "3", f"{MM}/swap/vma_ra_enabled": "true"}


def ensure_swap(st: SystemState) -> Swap:
    """Swap to page out to: the active one, else a zram device switched on for the run;
    readahead set as the model assumes (:data:`SWAP_SETTINGS`)."""
    for path, value in SWAP_SETTINGS.items():
        set_knob(st, path, value)
    swaps = active_swaps()
    if swaps:
        return Swap(swaps[0], ours=False)
    mkswap = shutil.which("mkswap")
    if mkswap is None:
        raise Unavailable("no swap is active and mkswap(8) is not installed")
    with deferred_signals():
        n = zram_device(st)
        sysdir, dev = f"/sys/block/zram{n}", f"/dev/zram{n}"
        if not wait_for(dev):
            raise Unavailable(f"{dev} did not appear")
        try:
            _write(f"{sysdir}/disksize", SWAP_SIZE)
        except OSError as e:
            raise Unavailable(f"zram{n}: cannot set disksize: {e.strerror}") from None
        st.on_restore("write", f"{sysdir}/reset", "1")
        r = subprocess.run([mkswap, dev], capture_output=True, text=True)
        if r.returncode != 0:
            raise Unavailable(f"mkswap {dev} failed: {r.stderr.strip()}")
        try:
            libc.swapon(dev)
        except OSError as e:
            raise Unavailable(f"swapon {dev}: {e.strerror}") from None
        st.on_restore("swapoff", dev)
    return Swap(dev, ours=True)


def renew_swap(swap: Swap) -> None:
    """Make a swap device of ours fresh again (slots allocated from the start, as on a new
    device: which slots a scenario gets decides its mTHP swap-ins and readahead windows):
    ``swapoff``, a new swap header, ``swapon``. Without a process: a swap header is one
    page, written here instead of by mkswap(8)."""
    if not swap.ours:
        return
    with deferred_signals():
        try:
            libc.swapoff(swap.device)
        except OSError as e:
            raise Unavailable(f"swapoff {swap.device}: {e.strerror}") from None
        fd = os.open(swap.device, os.O_WRONLY)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            os.pwrite(fd, swap_header(size), 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            libc.swapon(swap.device)
        except OSError as e:
            raise Unavailable(f"swapon {swap.device}: {e.strerror}") from None


def swap_header(size: int, page: int = libc.PAGE_SIZE) -> bytes:
    """The first page of a swap area of *size* bytes (``union swap_header``, version 1:
    last page, no bad pages, the SWAPSPACE2 signature in the page's last 10 bytes)."""
    head = bytearray(page)
    struct.pack_into("<III", head, 1024, 1, size // page - 1, 0)
    head[page - 10:] = b"SWAPSPACE2"
    return bytes(head)


# -- KSM -------------------------------------------------------------------------------------


#: KSM as the model has it: no merging but in ksm-scan steps (ksmd stopped between them),
#: all-zero pages merged like others, at most max_page_sharing (the default 256) mappings
#: of one KSM page (more make a second one), one NUMA tree
KSM_SETTINGS = {
    "run": "0",
    "use_zero_pages": "0",
    "max_page_sharing": str(KSM_MAX_PAGE_SHARING),
    "merge_across_nodes": "1",
    "smart_scan": "0",  # would skip pages that did not merge in earlier scans
    "advisor_mode": "none",  # would retune pages_to_scan
}


def ksm_tune(st: SystemState) -> list[str]:
    """KSM as the model assumes it (:data:`KSM_SETTINGS`) and fast, complete scans while
    the run lasts (recorded, restored at the end). Returns a note for every setting the
    kernel refused (max_page_sharing and merge_across_nodes can change only while no KSM
    page exists)."""
    if not os.path.exists(f"{KSM}/run"):
        raise Unavailable("no KSM on this kernel (CONFIG_KSM is off)")
    notes: list[str] = []
    for name, value in KSM_SETTINGS.items():
        try:
            set_knob(st, f"{KSM}/{name}", value)
        except OSError as e:
            notes.append(f"KSM {name} stays {read(f'{KSM}/{name}')} (wanted {value}: "
                         f"{e.strerror})")
    with deferred_signals():
        if int(read(f"{KSM}/pages_to_scan") or "0") < KSM_PAGES_TO_SCAN:
            st.set(f"{KSM}/pages_to_scan", str(KSM_PAGES_TO_SCAN))
        if int(read(f"{KSM}/sleep_millisecs") or "0") != KSM_SLEEP_MS:
            st.set(f"{KSM}/sleep_millisecs", str(KSM_SLEEP_MS))
        # restoring these needs ksmd to have forgotten the run's exited processes first;
        # recorded last, so undone first, while scans are still fast
        tree = [f"{KSM}/max_page_sharing", f"{KSM}/merge_across_nodes"]
        if any(st.original(p) is not None for p in tree) and \
                f"ksm_settle {KSM}" not in st.actions:
            st.on_restore("ksm_settle", KSM)
    return notes


def ksm_scan(st: SystemState, timeout: float = KSM_TIMEOUT) -> int:
    """Let ksmd do two full scans; returns how many it did. :class:`TimeoutError` if it
    did not finish them within *timeout* seconds."""
    ksm_tune(st)
    running = read(f"{KSM}/run") == "1"
    before = int(read(f"{KSM}/full_scans") or "0")
    want = 3 if running else 2
    with deferred_signals():
        if not running:
            st.set(f"{KSM}/run", "1")
    deadline = time.monotonic() + timeout
    try:
        while True:
            done = int(read(f"{KSM}/full_scans") or "0") - before
            if done >= want:
                return done
            if time.monotonic() > deadline:
                raise TimeoutError(f"ksmd did {done} of {want} full scans in {timeout:g} s")
            time.sleep(0.0005)
    finally:
        if not running:  # stopped again: no merging between steps (merged pages stay)
            _write(f"{KSM}/run", "0")


# -- THP, mTHP -------------------------------------------------------------------------------


#: THP settings the model assumes (madvise mode, the huge zero page on read faults), and
#: khugepaged's limits at their kernel defaults, so that host and guests agree
THP_SETTINGS = {
    "enabled": "madvise",
    "defrag": "madvise",
    "use_zero_page": "1",
    "khugepaged/max_ptes_none": "511",
    "khugepaged/max_ptes_swap": "64",
    "khugepaged/max_ptes_shared": "256",
}
#: per-size (mTHP, 6.8+) settings: 64 KiB in MADV_HUGEPAGE regions as in the model, the PMD
#: size following ``enabled``, every other size off
MTHP_SETTINGS = {"64kB": "madvise", "2048kB": "inherit"}


def set_knob(st: SystemState, path: str, value: str) -> bool:
    """Set a sysfs/procfs knob to *value* unless it has it (a ``[selected]`` menu counts by
    its selected word), recording the old value in *st*. False if the knob is missing."""
    cur = read(path)
    if cur is None:
        return False
    if selected(cur) != value:
        with deferred_signals():
            st.set(path, value)
    return True


def mthp_sizes() -> list[str]:
    """The per-size THP directories' sizes (``16kB`` …), where the kernel has them."""
    with contextlib.suppress(OSError):
        return [d[len("hugepages-"):] for d in os.listdir(THP)
                if d.startswith("hugepages-") and os.path.exists(f"{THP}/{d}/enabled")]
    return []


def ensure_thp(st: SystemState) -> None:
    """Every THP setting an outcome depends on, set explicitly (:data:`THP_SETTINGS`,
    :data:`MTHP_SETTINGS`; a guest's default ``enabled=always`` would give THPs where the
    model gives none), and khugepaged quiet while the run lasts (it would collapse a split
    THP back behind the scenario's back: the model has no khugepaged). The settings come
    first: writing them may wake khugepaged, whose pass :func:`quiet_khugepaged` waits out."""
    if selected(read(f"{THP}/enabled")) is None:
        raise Unavailable("no transparent huge pages on this kernel")
    for name, value in THP_SETTINGS.items():
        set_knob(st, f"{THP}/{name}", value)
    for size in mthp_sizes():
        set_knob(st, f"{THP}/hugepages-{size}/enabled", MTHP_SETTINGS.get(size, "never"))
    quiet_khugepaged(st)
    pmd = selected(read(f"{THP}/hugepages-2048kB/enabled"))
    if pmd == "never":
        raise Unavailable("PMD-size THP is disabled (hugepages-2048kB/enabled = never)")


def ensure_mthp(st: SystemState) -> None:
    """The THP settings of :func:`ensure_thp` (64 KiB mTHP in MADV_HUGEPAGE regions, as the
    model has it on 6.8+ kernels), where the kernel has THP at all."""
    with contextlib.suppress(Unavailable):
        ensure_thp(st)


def quiet_khugepaged(st: SystemState) -> None:
    """No background collapse while the run lasts: khugepaged registers every MADV_HUGEPAGE
    mm and would collapse a scenario's split or partly unmapped THP (max_ptes_none lets one
    present page do) behind its back; the model has no khugepaged.

    Writing ``scan_sleep_millisecs`` wakes khugepaged for one scan pass right away, before
    it sleeps the new interval; so the write is followed by waiting until khugepaged has
    run and is back in its idle wait. Done before the run maps anything, that pass cannot
    touch the run's memory, however late a busy machine schedules it."""
    pid = _kthread("khugepaged")
    _anchor_khugepaged(pid)
    sleep = f"{THP}/khugepaged/scan_sleep_millisecs"
    cur = read(sleep)
    before = _sched(pid) if pid else None
    if cur is not None and int(cur) < KHUGEPAGED_SLEEP_MS:
        with deferred_signals():
            st.set(sleep, str(KHUGEPAGED_SLEEP_MS))
    elif before is None or before[0] != "R":
        return
    # woken by the write (a pass), or by a THP setting just before (a recheck): let it
    # settle before the run goes on
    if pid and before is not None:
        _wait_idle(pid, before[2] - (before[0] == "R"), "khugepaged")


_anchor: tuple[int, int] | None = None  # (pid, address) of this process's anchor region


def anchor_khugepaged() -> None:
    """:func:`_anchor_khugepaged` for callers that have not looked for khugepaged."""
    if _anchor is None or _anchor[0] != os.getpid():
        _anchor_khugepaged(_kthread("khugepaged"))


def _anchor_khugepaged(pid: int | None) -> None:
    """Keep khugepaged's list of mms non-empty with this (driver) process's mm.

    With the list empty khugepaged waits without a timeout, and the first mm that
    registers (an actor's MADV_HUGEPAGE or THP fault) wakes it for a scan pass at once,
    which a busy machine may run in the middle of the scenario. An empty MADV_HUGEPAGE
    region of 2 MiB registers this mm for its lifetime and never gets collapsed (nothing is
    present there); it costs no memory. Made once per process; forked actors inherit it."""
    global _anchor
    if _anchor is not None and _anchor[0] == os.getpid():
        return
    huge = 2 << 20
    before = _sched(pid) if pid else None
    raw = libc.mmap(0, 2 * huge, libc.PROT_NONE,
                    libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE)
    addr = (raw + huge - 1) & ~(huge - 1)
    libc.mprotect(addr, huge, libc.PROT_READ | libc.PROT_WRITE)
    # khugepaged only takes a VMA that has an anon_vma: one write fault (a small page: no
    # MADV_HUGEPAGE yet), then the page goes again
    libc.madvise(addr, huge, libc.MADV["nohugepage"])
    ctypes.memset(addr, 1, 1)
    libc.madvise(addr, huge, libc.MADV["dontneed"])
    with contextlib.suppress(OSError):  # THP off: nothing to anchor, nothing to fear
        libc.madvise(addr, huge, libc.MADV["hugepage"])
    _anchor = (os.getpid(), addr)
    if pid and before is not None:
        now = _sched(pid)
        if now is not None and (now[0] == "R" or now[2] > before[2]):  # we woke it
            _wait_idle(pid, before[2], "khugepaged")


def _kthread(comm: str) -> int | None:
    """The PID of the kernel thread named *comm* (``None`` if it does not run)."""
    with contextlib.suppress(OSError):
        for d in os.listdir("/proc"):
            if d.isdigit() and read(f"/proc/{d}/comm") == comm:
                return int(d)
    return None


def _sched(pid: int) -> tuple[str, str, int] | None:
    """(state letter, wchan, voluntary context switches) of *pid*."""
    status = read(f"/proc/{pid}/status")
    if status is None:
        return None
    fields = dict(ln.split(":", 1) for ln in status.splitlines() if ":" in ln)
    state = fields.get("State", "?").strip()[:1]
    switches = int(fields.get("voluntary_ctxt_switches", "0").strip() or 0)
    return state, read(f"/proc/{pid}/wchan") or "", switches


def _wait_idle(pid: int, switches_before: int, idle_wchan: str,
               timeout: float = KHUGEPAGED_WAIT) -> bool:
    """Wait until kernel thread *pid* has slept at least once more and sleeps in its idle
    wait (*idle_wchan*); False after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = _sched(pid)
        if now is None:
            return True  # the thread is gone: nothing will scan
        state, wchan, switches = now
        if switches > switches_before and state == "S" and wchan in (idle_wchan, ""):
            return True
        time.sleep(0.001)
    return False


# -- hugetlb ---------------------------------------------------------------------------------


def hugetlb_available() -> int:
    """Free 2 MiB hugetlb pages that no mapping has reserved."""
    free = int(read(f"{HUGETLB_2M}/free_hugepages") or "0")
    resv = int(read(f"{HUGETLB_2M}/resv_hugepages") or "0")
    return free - resv


def ensure_hugetlb(st: SystemState, pages: int) -> None:
    """At least *pages* free, unreserved 2 MiB hugetlb pages (the pool grows if needed)."""
    nr_path = f"{HUGETLB_2M}/nr_hugepages"
    if not os.path.exists(nr_path):
        raise Unavailable("no 2 MiB hugetlb pages on this kernel")
    short = pages - hugetlb_available()
    if short <= 0:
        return
    nr = int(read(nr_path) or "0")
    with deferred_signals():
        st.set(nr_path, str(nr + short))
    if hugetlb_available() < pages:
        raise Unavailable(f"could not reserve {pages} hugetlb pages (memory fragmented?): "
                          f"{hugetlb_available()} available")


# -- what the run depends on -----------------------------------------------------------------


def environment() -> dict[str, Any]:
    """The system-wide settings a live run depends on, as they are now."""
    mthp: dict[str, str | None] = {}
    with contextlib.suppress(OSError):
        for d in sorted(os.listdir(THP), key=lambda s: int(s[10:-2]) if s[10:-2].isdigit()
                        else 0):
            if d.startswith("hugepages-") and os.path.exists(f"{THP}/{d}/enabled"):
                mthp[d[len("hugepages-"):]] = selected(read(f"{THP}/{d}/enabled"))
    swaps = (read("/proc/swaps") or "").splitlines()[1:]
    return {
        "thp_enabled": selected(read(f"{THP}/enabled")),
        "thp_defrag": selected(read(f"{THP}/defrag")),
        "thp_use_zero_page": read(f"{THP}/use_zero_page"),
        "khugepaged_scan_sleep_millisecs": read(f"{THP}/khugepaged/scan_sleep_millisecs"),
        "khugepaged_max_ptes": {n: read(f"{THP}/khugepaged/max_ptes_{n}")
                                for n in ("none", "swap", "shared")},
        "mthp": mthp,
        "swaps": [" ".join(s.split()[:3]) for s in swaps],
        "ksm_run": read(f"{KSM}/run"),
        "ksm_use_zero_pages": read(f"{KSM}/use_zero_pages"),
        "ksm_max_page_sharing": read(f"{KSM}/max_page_sharing"),
        "ksm_merge_across_nodes": read(f"{KSM}/merge_across_nodes"),
        "ksm_advisor_mode": selected(read(f"{KSM}/advisor_mode")),
        "swap_page_cluster": read("/proc/sys/vm/page-cluster"),
        "swap_vma_ra_enabled": read(f"{MM}/swap/vma_ra_enabled"),
        "ksm_smart_scan": read(f"{KSM}/smart_scan"),
        "ksm_pages_to_scan": read(f"{KSM}/pages_to_scan"),
        "ksm_sleep_millisecs": read(f"{KSM}/sleep_millisecs"),
        "hugetlb_nr_hugepages": read("/proc/sys/vm/nr_hugepages"),
        "hugetlb_2m_free": read(f"{HUGETLB_2M}/free_hugepages"),
    }
