"""Side-effect-free observation of actors' pages on the live kernel.

For a process and a range of its virtual pages: ``/proc/PID/pagemap`` (one pread), and for
present pages ``/proc/kpageflags`` and ``/proc/kpagecount`` at the PFNs (one pread per run of
consecutive PFNs; these take no page reference). Which regions a process has comes from
``/proc/PID/maps``. Where a region holds pages of a large anon folio, which of its 2 MiB
ranges are mapped by a PMD comes from the ``PAGEMAP_SCAN`` ioctl on the same pagemap file
(``PAGE_IS_HUGE``, 6.7+; whether it exists is tried once on the driver's own pagemap). On
older kernels it is judged per 2 MiB range: only a range whose 512 pages are one PMD-size
folio in order can be PMD-mapped, and each VMA's ``AnonHugePages`` in ``/proc/PID/smaps``
says how many of its such ranges are; where that count leaves a choice, the mapping is
unknown (``extra["pmd"] = None``), and so is PG_anon_exclusive of pages whose own bit and
head's bit disagree.

The tag a present page holds is read by the process itself (a plain load of a page that is
present and readable, which cannot fault), through the *reader* callback the backend
passes in. Not through ``/proc/PID/mem``: that is a GUP with FOLL_TOUCH, and the second
such read of a page puts its folio on the per-CPU "activate" LRU batch with an extra
reference while PG_lru stays set, so the owner's next write fault sees a raised refcount
and copies instead of reusing (seen on 6.18: basic-cow-after-fork's last write).

``anon_exclusive`` (:func:`exclusive_of`), and where it came from (``extra["excl_source"]``):

* a small anon page: its own bit 34 (``page``);
* a hugetlb page, and a page of a PMD-mapped THP: the **head** page's bit, which is what
  describes the whole mapping (``hugetlb head`` / ``pmd head``; the head's word is read
  even where kpageflags already mirrors it, so kernels that export per-page flags, 5.19 to
  6.9, give the right answer too);
* a page of a PTE-mapped large folio (mTHP, or a THP after a PMD split): where kpageflags
  mirrors the head's bit on every page (v6.10+; the backend detects it on a THP of the
  driver's own, :mod:`anonex.live.features`) the page's own bit is unknown: ``None``
  (``head-mirror: unknown``); elsewhere the page's own bit;
* KSM pages and non-anon pages (the zero page): ``False``;
* any other anon page on a kernel whose bit 34 is not PG_anon_exclusive (before 5.19,
  found by :mod:`anonex.live.features`, not by the version): ``None``.

``ksm`` is ``None`` (unknown) on kernels whose KPF_KSM is set on every anon page (checked
once per observer on a page of the driver's own; reference/live-kernel.md pitfall 10).

How it fails: a process that has gone away yields no pages (:class:`ProcessGone`); any
other I/O error propagates. Reading PFNs and kpageflags needs CAP_SYS_ADMIN (see
:func:`anonex.live.available`).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from anonex.kernel.pgtable import HPAGE_PMD_NR
from anonex.live import features
from anonex.live.pagedata import PAGE
from anonex.observation import PageObs
from anonex.pagetypes import decode as dc
from anonex.procfs import kpageflags as kpf
from anonex.procfs import pagemap as pm

HPAGE_PMD_SIZE = HPAGE_PMD_NR * PAGE


class ProcessGone(Exception):
    """The observed process no longer exists (or has no address space)."""


@dataclass(frozen=True, slots=True)
class RegionView:
    """What the observer needs to know about a region: its name, address, size, kind."""

    name: str
    addr: int
    npages: int
    kind: str = "small"


def vmas(pid: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` of every VMA of *pid* (``ProcessGone`` if it has none/exited)."""
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError) as e:
        raise ProcessGone(str(e)) from None
    out: list[tuple[int, int]] = []
    for line in data.splitlines():
        lo, _, rest = line.partition(b"-")
        hi = rest.split(b" ", 1)[0]
        out.append((int(lo, 16), int(hi, 16)))
    if not out:
        raise ProcessGone(f"process {pid} has no address space")
    return out


def _overlaps(ranges: Iterable[tuple[int, int]], lo: int, hi: int) -> bool:
    return any(a < hi and lo < b for a, b in ranges)


def pfn_runs(pfns: Iterable[int]) -> list[tuple[int, int]]:
    """Distinct *pfns* as ``(first, count)`` runs of consecutive numbers, ascending."""
    runs: list[tuple[int, int]] = []
    for p in sorted(set(pfns)):
        if runs and runs[-1][0] + runs[-1][1] == p:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((p, 1))
    return runs


def smaps_anon_huge(data: bytes) -> list[tuple[int, int, int]]:
    """``(start, end, AnonHugePages in bytes)`` of every VMA in a ``/proc/PID/smaps`` text."""
    out: list[tuple[int, int, int]] = []
    for line in data.splitlines():
        head = line.split(b" ", 1)[0]
        if b"-" in head and not head.endswith(b":"):
            lo, _, hi = head.partition(b"-")
            try:
                out.append((int(lo, 16), int(hi, 16), 0))
            except ValueError:
                continue
        elif line.startswith(b"AnonHugePages:") and out:
            kb = int(line.split()[1])
            start, end, _ = out[-1]
            out[-1] = (start, end, kb * 1024)
    return out


def judge_pmd(cands: dict[int, bool],
              vmas_huge: Iterable[tuple[int, int, int]]) -> dict[int, bool | None]:
    """Which PMD candidates (base -> is the huge zero page) are PMD-mapped, from
    ``(start, end, AnonHugePages bytes)`` per VMA (see :meth:`Observer._smaps_huge`)."""
    out: dict[int, bool | None] = {b: True for b, zero in cands.items() if zero}
    for lo, hi, huge in vmas_huge:
        mine = [b for b, zero in cands.items() if lo <= b < hi and not zero]
        if not mine:
            continue
        n = huge // HPAGE_PMD_SIZE
        verdict: bool | None = False if n == 0 else True if n == len(mine) else None
        out.update(dict.fromkeys(mine, verdict))
    return out


#: Reads the tags of present pages of one process: addresses in, tag (or None) per address.
DataReader = Callable[[Sequence[int]], Sequence[str | None]]


class Observer:
    """Reads pagemap/kpageflags/kpagecount; keeps per-process files open until closed.

    *head_mirror* says whether kpageflags reports a large folio's head flags for every page
    (v6.10+); then the own bit of a page of a PTE-mapped large folio is unknown.
    *exclusive* says whether bit 34 is PG_anon_exclusive at all (5.19+); without it every
    anon page's ``anon_exclusive`` is unknown. The backend sets both from
    :func:`anonex.live.features.detect`.
    """

    def __init__(self, head_mirror: bool = True, *, exclusive: bool = True) -> None:
        self.head_mirror = head_mirror
        self.exclusive = exclusive  # kpageflags bit 34 means PG_anon_exclusive (5.19+)
        self._kpf = os.open("/proc/kpageflags", os.O_RDONLY | os.O_CLOEXEC)
        self._kpc = os.open("/proc/kpagecount", os.O_RDONLY | os.O_CLOEXEC)
        self._files: dict[int, int] = {}
        self._scan_works = self._scan_available()
        self.ksm_reliable = self._ksm_flag_reliable()

    @property
    def kpf_fd(self) -> int:
        """The open /proc/kpageflags (for :func:`anonex.live.features.probe`)."""
        return self._kpf

    def _ksm_flag_reliable(self) -> bool:
        """Whether KPF_KSM means KSM here: some kernels between the v6.10 kpageflags rewrite
        and 81401cebfc15 ("fs/proc: fix KPF_KSM reported for all anon pages") set it on
        every anon page. Checked on one private page of this (driver) process."""
        ok = features.ksm_flag_reliable(features.probe(self._kpf).small)
        return True if ok is None else ok

    # -- raw reads ---------------------------------------------------------------------------

    def _pagemap_fd(self, pid: int) -> int:
        fd = self._files.get(pid)
        if fd is None:
            try:
                fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY | os.O_CLOEXEC)
            except (FileNotFoundError, ProcessLookupError) as e:
                raise ProcessGone(str(e)) from None
            self._files[pid] = fd
        return fd

    def _pagemap_bytes(self, pid: int, addr: int, npages: int) -> bytes:
        """The pagemap of *npages* pages from *addr*, in one read (zeros past its end)."""
        pmfd = self._pagemap_fd(pid)
        want = npages * pm.PM_ENTRY_BYTES
        try:
            data = os.pread(pmfd, want, addr // PAGE * pm.PM_ENTRY_BYTES)
        except ProcessLookupError as e:
            raise ProcessGone(str(e)) from None
        if len(data) < want:
            if not data:
                raise ProcessGone(f"pagemap of {pid} reads empty")
            data += b"\0" * (want - len(data))
        return data

    def pagemap(self, pid: int, addr: int, npages: int) -> list[pm.PagemapEntry]:
        return pm.decode_bytes(self._pagemap_bytes(pid, addr, npages))

    def pagemap_raw(self, pid: int, addr: int, npages: int) -> list[int]:
        """The raw pagemap words of *npages* pages from *addr* (one read)."""
        vals: list[int] = np.frombuffer(self._pagemap_bytes(pid, addr, npages),
                                        dtype="<u8").tolist()
        return vals

    def kpageflags(self, pfn: int) -> int:
        return int.from_bytes(os.pread(self._kpf, 8, pfn * 8), "little")

    def kpagecount(self, pfn: int) -> int:
        return int.from_bytes(os.pread(self._kpc, 8, pfn * 8), "little")

    def _words(self, fd: int, pfns: Iterable[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        for first, n in pfn_runs(pfns):
            vals = np.frombuffer(os.pread(fd, 8 * n, first * 8), dtype="<u8").tolist()
            out.update(zip(range(first, first + len(vals)), vals, strict=True))
        return out

    def _scan_available(self) -> bool:
        """Whether the PAGEMAP_SCAN ioctl exists (6.7+), tried on the driver's own pagemap."""
        vec = ctypes.create_string_buffer(pm.PAGE_REGION_SIZE)
        arg = bytearray(pm.encode_scan_arg(0, PAGE, ctypes.addressof(vec), 1,
                                           category_mask=pm.PAGE_IS_HUGE,
                                           return_mask=pm.PAGE_IS_HUGE))
        fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, pm.PAGEMAP_SCAN, arg)
        except OSError as e:
            if e.errno in (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP):
                return False
            raise
        finally:
            os.close(fd)
        return True

    @property
    def pmd_note(self) -> str:
        """The observability limit of PMD mappings on this kernel ("" if there is none)."""
        if self._scan_works:
            return ""
        return ("no PAGEMAP_SCAN (6.7+): whether a PMD maps a THP comes from smaps "
                "AnonHugePages per VMA, and is unknown where a VMA holds THPs mapped both ways")

    def pmd_map(self, pid: int, addr: int, npages: int) -> dict[int, bool | None]:
        """For every 2 MiB-aligned base in ``[addr, addr + npages pages)`` that *pid* maps
        with a PMD, or that holds a whole PMD-size THP mapped in place (and so may be):
        ``True`` (mapped by a PMD or a hugetlb entry), ``False`` (with PTEs), ``None``
        (cannot tell: smaps fallback, see :meth:`_smaps_huge`)."""
        end = addr + npages * PAGE
        if self._scan_works:
            try:
                return dict.fromkeys(self._scan_huge(pid, addr, end), True)
            except OSError as e:
                if e.errno not in (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                self._scan_works = False  # before 6.7: no PAGEMAP_SCAN
        return self._smaps_huge(pid, addr, end)

    def pmd_mapped(self, pid: int, addr: int, npages: int) -> set[int]:
        """The 2 MiB-aligned bases in ``[addr, addr + npages pages)`` that *pid* certainly
        maps with a PMD (or a hugetlb entry)."""
        return {b for b, v in self.pmd_map(pid, addr, npages).items() if v}

    def _scan_huge(self, pid: int, addr: int, end: int) -> set[int]:
        nvec = (end - addr) // HPAGE_PMD_SIZE + 2
        vec = ctypes.create_string_buffer(pm.PAGE_REGION_SIZE * nvec)
        arg = bytearray(pm.encode_scan_arg(addr, end, ctypes.addressof(vec), nvec,
                                           category_mask=pm.PAGE_IS_HUGE,
                                           return_mask=pm.PAGE_IS_HUGE))
        try:
            n = fcntl.ioctl(self._pagemap_fd(pid), pm.PAGEMAP_SCAN, arg)
        except ProcessLookupError as e:
            raise ProcessGone(str(e)) from None
        bases: set[int] = set()
        for start, stop, _ in pm.decode_regions(vec.raw, n):
            base = start - start % HPAGE_PMD_SIZE
            while base < stop:
                bases.add(base)
                base += HPAGE_PMD_SIZE
        return bases

    def pmd_candidates(self, pid: int, addr: int, end: int) -> dict[int, bool]:
        """The 2 MiB-aligned bases in ``[addr, end)`` whose 512 pages are the 512 pages of
        one PMD-size large folio in order (a head with 511 consecutive PFNs after it): only
        those can be mapped by a PMD. Value: whether it is the huge zero page (which only a
        PMD ever maps, and which smaps does not count)."""
        lo = addr + (-addr) % HPAGE_PMD_SIZE
        out: dict[int, bool] = {}
        for base in range(lo, end - HPAGE_PMD_SIZE + 1, HPAGE_PMD_SIZE):
            raws = self.pagemap_raw(pid, base, HPAGE_PMD_NR)
            if not all(r & pm.PM_PRESENT for r in raws):
                continue
            first = raws[0] & pm.PM_PFN_MASK
            if first % HPAGE_PMD_NR or any((r & pm.PM_PFN_MASK) != first + i
                                           for i, r in enumerate(raws)):
                continue
            word = self.kpageflags(first)
            if kpf.has(word, kpf.KPF_COMPOUND_HEAD) and kpf.has(word, kpf.KPF_THP) \
                    and not kpf.has(word, kpf.KPF_HUGE):
                out[base] = kpf.has(word, kpf.KPF_ZERO_PAGE)
        return out

    def _smaps_huge(self, pid: int, addr: int, end: int) -> dict[int, bool | None]:
        """Fallback before 6.7, per 2 MiB range: the ranges that can be PMD-mapped
        (:meth:`pmd_candidates`), judged with each VMA's ``AnonHugePages`` (PMD-mapped anon
        THPs, huge zero page excluded): 0 means none of the VMA's candidates is, as many
        as it has candidates means all are; anything between leaves them unknown."""
        cands = self.pmd_candidates(pid, addr, end)
        if not cands:
            return {}
        try:
            with open(f"/proc/{pid}/smaps", "rb") as f:
                data = f.read()
        except (FileNotFoundError, ProcessLookupError) as e:
            raise ProcessGone(str(e)) from None
        return judge_pmd(cands, smaps_anon_huge(data))

    def forget(self, pid: int) -> None:
        """Close the files of *pid* (it exited)."""
        fd = self._files.pop(pid, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for pid in list(self._files):
            self.forget(pid)
        for fd in (self._kpf, self._kpc):
            if fd >= 0:
                os.close(fd)
        self._kpf = self._kpc = -1

    # -- one region, one process -------------------------------------------------------------

    def region_obs(self, proc: str, pid: int, region: RegionView) -> list[PageObs]:
        """Every page of *region* in process *pid*."""
        raws = self.pagemap_raw(pid, region.addr, region.npages)
        present_bits = [bool(r & pm.PM_PRESENT) for r in raws]
        pfns = [r & pm.PM_PFN_MASK for r, p in zip(raws, present_bits, strict=True) if p]
        words = self._words(self._kpf, pfns)
        counts = self._words(self._kpc, pfns)
        pmd: dict[int, bool | None] = {}
        if any(kpf.has(w, kpf.KPF_THP) and not kpf.has(w, kpf.KPF_HUGE)
               for w in words.values()):
            pmd = self.pmd_map(pid, region.addr, region.npages)
        out: list[PageObs] = []
        present: list[tuple[PageObs, int, int, bool, int]] = []  # obs, pfn, word, whole, head
        maybe: dict[int, int] = {}  # index in present -> head word, for unknown PMD mapping
        name = region.name
        for i, (raw, is_present) in enumerate(zip(raws, present_bits, strict=True)):
            if is_present:
                o = PageObs(proc, name, i, "present")
            elif raw & pm.PM_SWAP:
                entry = pm.decode(raw)
                o = PageObs(proc, name, i, "swapped")
                o.extra["swap"] = [entry.swap_type, entry.swap_offset]
            else:
                o = PageObs(proc, name, i, "none")
            o.extra["pm56"] = int(bool(raw & pm.PM_MMAP_EXCLUSIVE))
            out.append(o)
            if not is_present:
                continue
            pfn = raw & pm.PM_PFN_MASK
            raw_word = word = words.get(pfn, 0)
            if not self.ksm_reliable:  # a KSM page never has bit 34 anyway
                word &= ~(1 << kpf.KPF_KSM)  # for the decoding; `kpf` shows the raw word
            vaddr = region.addr + i * PAGE
            base = vaddr - vaddr % HPAGE_PMD_SIZE
            whole = kpf.has(word, kpf.KPF_HUGE) or pmd.get(base) is True
            head = word
            if (whole or (base in pmd and pmd[base] is None)) and not self.head_mirror:
                # before 6.10 each page exported its own bits: a whole mapping is described
                # by the head page's word
                head_pfn = pfn - (vaddr - base) // PAGE
                head = words.get(head_pfn, self.kpageflags(head_pfn))
                if not whole:
                    maybe[len(present)] = head
            o.extra["kpf"] = raw_word  # what /proc/kpageflags says, kernel bugs included
            present.append((o, pfn, word, whole, head))
        if present:
            # decoded as page-types decodes (anonex.pagetypes.decode): one decoder for both
            info = dc.page_info(np.array([h for *_, h in present], dtype=np.uint64),
                                np.array([w for _, _, _, w, _ in present], dtype=np.bool_),
                                head_mirrored=self.head_mirror)
            flags = dc.page_info(np.array([w for _, _, w, _, _ in present], dtype=np.uint64),
                                 head_mirrored=self.head_mirror)
            for n, (o, pfn, word, whole, _) in enumerate(present):
                o.ident = pfn
                o.mapcount = counts.get(pfn, 0)
                o.ksm = bool(flags.ksm[n]) if self.ksm_reliable else None
                o.thp = bool(flags.thp[n])
                o.huge = bool(flags.huge[n])
                o.zero = bool(flags.zero[n])
                st = int(info.state[n])
                o.anon_exclusive = None if st == dc.UNKNOWN else st == dc.EXCLUSIVE
                o.extra["excl_source"] = _SOURCE[st] if st != dc.EXCLUSIVE and \
                    st != dc.NOT_EXCLUSIVE else ("hugetlb head" if o.huge else
                                                 "pmd head" if whole else "page")
                if not self.exclusive and st != dc.NOT_ANON and not o.ksm:
                    o.anon_exclusive = None
                    o.extra["excl_source"] = "bit 34 is not PG_anon_exclusive here"
                if whole and not o.huge:
                    o.extra["pmd"] = True
                if n in maybe:
                    self._either_mapping(o, word, maybe[n])
                o.extra["swapcache"] = int(flags.swapcache[n])
        return out

    def _either_mapping(self, o: PageObs, word: int, head: int) -> None:
        """A page of a PMD-size THP that may or may not be mapped by a PMD (smaps could not
        tell): the PMD is unknown, and so is PG_anon_exclusive unless the page's own bit
        (PTE-mapped) and the head's (PMD-mapped) agree."""
        o.extra["pmd"] = None
        if o.anon_exclusive is None or o.ksm or not self.exclusive:
            return
        own, _ = exclusive_of(word, head_mirror=False)
        whole, _ = exclusive_of(word, head=head, head_mirror=False)
        if own != whole:
            o.anon_exclusive = None
            o.extra["excl_source"] = "unknown: PMD or PTEs (smaps cannot tell)"

    def observe_process(self, proc: str, pid: int, regions: Iterable[RegionView],
                        reader: DataReader | None = None) -> list[PageObs]:
        """Every page of every region *pid* has a mapping in (``ProcessGone`` if it died).

        *reader* fills ``data`` of the present pages (left ``None`` without one)."""
        spans = vmas(pid)
        out: list[PageObs] = []
        present: list[tuple[PageObs, int]] = []
        for r in regions:
            if not _overlaps(spans, r.addr, r.addr + r.npages * PAGE):
                continue
            for o in self.region_obs(proc, pid, r):
                out.append(o)
                if o.state == "present":
                    present.append((o, r.addr + o.index * PAGE))
        if reader is not None and present:
            tags = reader([a for _, a in present])
            for (o, _), tag in zip(present, tags, strict=True):
                o.data = tag
        return out


_SOURCE = {dc.NOT_ANON: "not anon", dc.UNKNOWN: "head-mirror: unknown",
           dc.SLAB_ANON: "slab (anon bit is stale)"}


def exclusive_of(word: int, *, head: int | None = None,
                 head_mirror: bool = True) -> tuple[bool | None, str]:
    """PG_anon_exclusive of a present page as far as kpageflags can tell, and its source.

    *word* is the page's kpageflags; *head* is the head page's word when the page belongs
    to a folio mapped as a whole (a PMD-mapped THP, a hugetlb page), else ``None``.
    *head_mirror*: the kernel reports a large folio's head flags on every page (v6.10+).
    """
    if not kpf.has(word, kpf.KPF_ANON):
        return False, "not anon"
    if kpf.has(word, kpf.KPF_KSM):
        return False, "ksm"
    if head is not None:
        src = "hugetlb head" if kpf.has(word, kpf.KPF_HUGE) else "pmd head"
        return kpf.anon_exclusive(head), src
    if kpf.is_large(word):
        if head_mirror:
            return None, "head-mirror: unknown"
        return kpf.anon_exclusive(word), "page"
    return kpf.anon_exclusive(word), "page"
