"""Side-effect-free observation of actors' pages on the live kernel.

For a process and a range of its virtual pages: ``/proc/PID/pagemap`` (one pread), and for
present pages ``/proc/kpageflags`` and ``/proc/kpagecount`` at the PFN (pread each; these
take no page reference). Which regions a process has comes from ``/proc/PID/maps``.

The tag a present page holds is read by the process itself (a plain load of a page that is
present and readable, which cannot fault), through the *reader* callback the backend
passes in. Not through ``/proc/PID/mem``: that is a GUP with FOLL_TOUCH, and the second
such read of a page puts its folio on the per-CPU "activate" LRU batch with an extra
reference while PG_lru stays set, so the owner's next write fault sees a raised refcount
and copies instead of reusing (seen on 6.18: basic-cow-after-fork's last write).

How it fails: a process that has gone away yields no pages (:class:`ProcessGone`); any
other I/O error propagates. Reading PFNs and kpageflags needs CAP_SYS_ADMIN (see
:func:`anonex.live.available`).

Note on ``anon_exclusive``: since v6.10 kpageflags reports a large folio's head flags for
every page, so the bit of a page of a PTE-mapped large folio is unknown (``None``); only
small pages, PMD-mapped THPs and hugetlb pages give the page's own bit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from anonex.live.pagedata import PAGE
from anonex.observation import PageObs
from anonex.procfs import kpageflags as kpf
from anonex.procfs import pagemap as pm


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


#: Reads the tags of present pages of one process: addresses in, tag (or None) per address.
DataReader = Callable[[Sequence[int]], Sequence[str | None]]


class Observer:
    """Reads pagemap/kpageflags/kpagecount; keeps per-process files open until closed."""

    def __init__(self) -> None:
        self._kpf = os.open("/proc/kpageflags", os.O_RDONLY | os.O_CLOEXEC)
        self._kpc = os.open("/proc/kpagecount", os.O_RDONLY | os.O_CLOEXEC)
        self._files: dict[int, int] = {}

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

    def pagemap(self, pid: int, addr: int, npages: int) -> list[pm.PagemapEntry]:
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
        return pm.decode_bytes(data)

    def kpageflags(self, pfn: int) -> int:
        return int.from_bytes(os.pread(self._kpf, 8, pfn * 8), "little")

    def kpagecount(self, pfn: int) -> int:
        return int.from_bytes(os.pread(self._kpc, 8, pfn * 8), "little")

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

    # -- one page, one process ---------------------------------------------------------------

    def page_obs(self, proc: str, region: RegionView, index: int,
                 entry: pm.PagemapEntry) -> PageObs:
        o = PageObs(proc=proc, region=region.name, index=index, state=entry.state)
        o.extra["pm56"] = int(entry.mmap_exclusive)
        if entry.state == "swapped":
            o.extra["swap"] = [entry.swap_type, entry.swap_offset]
        pfn = entry.pfn
        if pfn is None:
            return o
        word = self.kpageflags(pfn)
        o.ident = pfn
        o.mapcount = self.kpagecount(pfn)
        o.ksm = kpf.has(word, kpf.KPF_KSM)
        o.thp = kpf.has(word, kpf.KPF_THP)
        o.huge = kpf.has(word, kpf.KPF_HUGE)
        o.zero = kpf.has(word, kpf.KPF_ZERO_PAGE)
        o.anon_exclusive = exclusive_of(word, region.kind)
        o.extra["kpf"] = word
        o.extra["swapcache"] = int(kpf.has(word, kpf.KPF_SWAPCACHE))
        return o

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
            for i, entry in enumerate(self.pagemap(pid, r.addr, r.npages)):
                o = self.page_obs(proc, r, i, entry)
                out.append(o)
                if o.state == "present":
                    present.append((o, r.addr + i * PAGE))
        if reader is not None and present:
            tags = reader([a for _, a in present])
            for (o, _), tag in zip(present, tags, strict=True):
                o.data = tag
        return out


def exclusive_of(word: int, region_kind: str) -> bool | None:
    """PG_anon_exclusive of a present page, as far as kpageflags can tell.

    Small anon pages: the page's own bit. Non-anon and KSM pages: ``False``. Pages of a
    large anon folio: kpageflags mirrors the head, which is the truth only for a folio
    mapped as a whole (PMD-mapped THP, hugetlb); everything else is unknown (``None``).
    """
    if not kpf.has(word, kpf.KPF_ANON) or kpf.has(word, kpf.KPF_KSM):
        return False
    if kpf.has(word, kpf.KPF_HUGE):
        return kpf.anon_exclusive(word)
    if kpf.has(word, kpf.KPF_THP) and not folio_mapped_whole(word, region_kind):
        return None
    return kpf.anon_exclusive(word)


def folio_mapped_whole(word: int, region_kind: str) -> bool:
    """Whether a large folio's page is known to be mapped as a whole (one PMD).

    Small-page regions never hold such a mapping. THP regions (next issue) will answer
    from the mapping level; until then, unknown counts as not whole.
    """
    return False
