"""The walks of ``anonex page-types``: PFN ranges, a process's VMAs, a file's page cache.

Each walk turns its input into *rows* - one page each: the kpageflags word, where it is
(PFN, or swap offset for a swapped-out page of a process) and at which virtual/file page,
with its pagemap entry, kpagecgroup and kpagecount words when the options need them - and
feeds them, in page-types' order, to an :class:`Engine`. The engine does what page-types
does with a page (``-r`` view, ``-b``/``-c`` filters, ``-l``/``-L`` listing, ``-i``
marking, the summary) plus the anon-exclusivity tallies of ``--exclusive``/``--json``.

A PFN walk that only summarises never builds rows: it counts the distinct words of each
chunk and applies view and filters to those (see :mod:`anonex.pagetypes.decode`).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
from numpy.typing import NDArray

from anonex.pagetypes import decode as dc
from anonex.pagetypes import fmt, proc
from anonex.pagetypes import names as nm
from anonex.pagetypes.errors import PageTypesError
from anonex.pagetypes.kpage import (
    PROC_KPAGECGROUP,
    PROC_KPAGECOUNT,
    PROC_KPAGEFLAGS,
    WordFile,
    open_error,
    read_chunks,
)
from anonex.procfs import pagemap as pmap

Words = NDArray[np.uint64]
Bools = NDArray[np.bool_]
PAGE_SIZE = dc.PAGE_SIZE
PAGE_IDLE_BITMAP = "/sys/kernel/mm/page_idle/bitmap"
#: Pagemap entries per read of a process walk, pages per mapping of a file walk.
PAGEMAP_BATCH = 1 << 16


@dataclass
class Options:
    """Everything the command line can ask for (defaults: page-types without options)."""

    raw: bool = False
    ranges: list[tuple[int, int]] = field(default_factory=list)
    filters: list[tuple[int, int]] = field(default_factory=list)
    pid: int = 0
    file: str | None = None
    cgroup: int = 0
    list_cgroup: bool = False
    list_mapcnt: bool = False
    #: 0 no list, 1 ranges (``-l``), 2 each page (``-L``)
    list_mode: int = 0
    no_summary: bool = False
    mark_idle: bool = False
    kpageflags: str = PROC_KPAGEFLAGS
    kpagecount: str = PROC_KPAGECOUNT
    kpagecgroup: str = PROC_KPAGECGROUP
    pagemap: str | None = None
    maps: str | None = None
    json: bool = False
    exclusive: bool = False
    #: reader threads for sequential kpageflags reads (0: one per CPU, at most 8)
    jobs: int = 0


def default_jobs() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(8, n))


# -- anon exclusivity tallies ----------------------------------------------------------------

TALLY_FIELDS = ("pages", "swapped", "anon", "exclusive", "not_exclusive", "unknown", "ksm",
                "thp", "hugetlb", "zero", "file", "mmap_exclusive", "slab_anon")


@dataclass
class Tally:
    """Counts of pages by what kpageflags says about anonymity and PG_anon_exclusive."""

    n: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TALLY_FIELDS, 0))

    def add(self, flags: Words, weights: NDArray[np.int64] | None = None, *,
            whole: Bools | None = None, pme: Words | None = None, swap: Bools | None = None,
            head_mirrored: bool = True) -> None:
        if len(flags) == 0:
            return
        wts = np.ones(len(flags), dtype=np.int64) if weights is None else weights
        st = dc.anon_states(flags, whole, head_mirrored=head_mirrored)
        by = np.bincount(st, weights=wts, minlength=5)
        n = self.n
        n["pages"] += int(wts.sum())
        n["exclusive"] += int(by[dc.EXCLUSIVE])
        n["not_exclusive"] += int(by[dc.NOT_EXCLUSIVE])
        n["unknown"] += int(by[dc.UNKNOWN])
        n["slab_anon"] += int(by[dc.SLAB_ANON])
        n["anon"] += int(by[dc.EXCLUSIVE] + by[dc.NOT_EXCLUSIVE] + by[dc.UNKNOWN])
        anon = (st != dc.NOT_ANON) & (st != dc.SLAB_ANON)

        def cnt(mask: Bools) -> int:
            return int(wts[mask].sum())

        n["ksm"] += cnt(anon & ((flags & dc.KSM) != 0))
        n["thp"] += cnt(anon & ((flags & dc.THP) != 0))
        n["hugetlb"] += cnt(anon & ((flags & dc.HUGE) != 0))
        n["zero"] += cnt((flags & dc.ZERO) != 0)
        if swap is not None:
            n["swapped"] += cnt(swap)
        if pme is not None:
            present = ~swap if swap is not None else np.ones(len(flags), dtype=np.bool_)
            n["file"] += cnt(present & ((pme & np.uint64(pmap.PM_FILE)) != 0))
            n["mmap_exclusive"] += cnt(present & ((pme & np.uint64(pmap.PM_MMAP_EXCLUSIVE))
                                                  != 0))

    def merge(self, other: Tally) -> None:
        for k, v in other.n.items():
            self.n[k] += v

    def json(self) -> dict[str, int]:
        return dict(self.n)


NOTE_UNKNOWN = ("unknown: tail pages of large anonymous folios (THP, mTHP) not known to be "
                "mapped by one PMD; since v6.10 kpageflags shows the head page's bit for "
                "every page of a folio")
NOTE_SLAB = ("{n} slab pages have the anonymous bit set (slab fields overlap "
             "folio->mapping); they are not counted as anonymous")


# -- listing -------------------------------------------------------------------------------


class Lister:
    """``-l`` (ranges of contiguous pages with equal flags) and ``-L`` (each page)."""

    def __init__(self, o: Options, out: TextIO | None, rows: list[dict[str, Any]] | None):
        self.mode = o.list_mode
        self.out = out
        self.rows = rows
        self.voff_cols = int(bool(o.pid)) + int(bool(o.file))
        self.show_cgroup = o.list_cgroup
        self.show_mapcnt = o.list_mapcnt
        # the range being built: voff, offset, count, flags, cgroup, mapcnt
        self.pending: list[int] | None = None

    def header(self, o: Options) -> str:
        h = ("voffset\t" if o.pid else "") + ("foffset\t" if o.file else "")
        h += ("cgroup\t" if o.list_cgroup else "") + ("map-cnt\t" if o.list_mapcnt else "")
        return h + ("offset\tlen\tflags\n" if self.mode == 1 else "offset\tflags\n")

    def _emit(self, voff: Words, off: Words, count: Words | None, flags: Words, cg: Words,
              mc: Words) -> None:
        """Write rows given as columns (*count* only for ranges)."""
        if not len(off):
            return
        if self.rows is not None:
            cols = {"voffset": voff.tolist() if self.voff_cols else None,
                    "cgroup": cg.tolist() if self.show_cgroup else None,
                    "mapcnt": mc.tolist() if self.show_mapcnt else None,
                    "offset": off.tolist(),
                    "len": count.tolist() if count is not None else None}
            fl = flags.tolist()
            for i, f in enumerate(fl):
                d: dict[str, Any] = {k: v[i] for k, v in cols.items() if v is not None}
                d["flags"] = f"0x{f:016x}"
                d["names"] = nm.names_of(f)
                self.rows.append(d)
            return
        if self.out is None:
            return
        _, lengths, vals = dc.runs(flags)
        u, inv = np.unique(vals, return_inverse=True)
        table = np.frombuffer("".join(nm.symbolic(x) + "\n" for x in u.tolist()).encode(),
                              dtype=np.uint8).reshape(len(u), nm.WIDTH + 1)
        columns: list[fmt.Num | fmt.Text] = [fmt.Num(voff, True)] * self.voff_cols
        if self.show_cgroup:
            columns.append(fmt.Num(cg, False, b"@"))
        if self.show_mapcnt:
            columns.append(fmt.Num(mc, False))
        columns.append(fmt.Num(off, True))
        if count is not None:
            columns.append(fmt.Num(count, True))
        columns.append(fmt.Text(table, np.repeat(inv.reshape(-1), lengths)))
        pieces = fmt.format_rows(columns)
        buffer = getattr(self.out, "buffer", None)
        if buffer is not None:
            self.out.flush()
            for piece in pieces:
                buffer.write(piece if isinstance(piece, bytes) else piece.data)
        else:
            self.out.write("".join((piece if isinstance(piece, bytes) else piece.tobytes())
                                   .decode("ascii") for piece in pieces))

    def feed(self, voff: Words, off: Words, flags: Words, cgroup: Words | None,
             mapcnt: Words | None) -> None:
        """Rows in walk order (no cgroup or map count: 0, as page-types has them)."""
        n = len(off)
        if n == 0:
            return
        cg = cgroup if cgroup is not None else np.zeros(n, dtype=np.uint64)
        mc = mapcnt if mapcnt is not None else np.zeros(n, dtype=np.uint64)
        if self.mode == 2:
            self._emit(voff, off, None, flags, cg, mc)
            return
        one = np.uint64(1)
        cont = np.zeros(n, dtype=np.bool_)
        c = cont[1:]
        np.equal(flags[1:], flags[:-1], out=c)
        c &= off[1:] == off[:-1] + one
        if voff is not off:
            c &= voff[1:] == voff[:-1] + one
        if cgroup is not None:
            c &= cg[1:] == cg[:-1]
        if mapcnt is not None:
            c &= mc[1:] == mc[:-1]
        p = self.pending
        if p is not None:
            cont[0] = (int(flags[0]) == p[3] and int(cg[0]) == p[4] and int(mc[0]) == p[5]
                       and int(off[0]) == p[1] + p[2] and int(voff[0]) == p[0] + p[2])
        starts = np.flatnonzero(~cont)
        if p is not None:
            p[2] += int(starts[0]) if len(starts) else n
        if not len(starts):
            return
        lengths = np.diff(np.append(starts, n)).tolist()
        sv, so, sf, sc, sm = (a[starts].tolist() for a in (voff, off, flags, cg, mc))
        # every range but the last is complete; the last becomes the pending one
        done = [sv[:-1], so[:-1], lengths[:-1], sf[:-1], sc[:-1], sm[:-1]]
        if p is not None:
            for col, val in zip(done, p, strict=True):
                col.insert(0, val)
        self._emit_lists(done)
        self.pending = [sv[-1], so[-1], lengths[-1], sf[-1], sc[-1], sm[-1]]

    def _emit_lists(self, cols: list[list[int]]) -> None:
        a = [np.array(c, dtype=np.uint64) for c in cols]
        self._emit(a[0], a[1], a[2], a[3], a[4], a[5])

    def flush(self) -> None:
        if self.pending is not None:
            self._emit_lists([[v] for v in self.pending])
            self.pending = None


# -- the engine ----------------------------------------------------------------------------


class Engine:
    """What page-types does with each page, for rows fed in walk order."""

    def __init__(self, o: Options, out: TextIO | None) -> None:
        self.o = o
        self.counts = dc.FlagCounts()
        self.pos = 0
        self.list_rows: list[dict[str, Any]] | None = [] if o.json and o.list_mode else None
        self.lister = Lister(o, None if o.json else out, self.list_rows) if o.list_mode \
            else None
        self.want_anon = o.exclusive or o.json
        self.tally = Tally()
        self.vma_tally: dict[int, Tally] = {}
        #: the page idle bitmap, open with ``-i``
        self.idle_fd = -1
        self.head_mirrored = True
        #: whether rows are needed (else the PFN walk only counts distinct words)
        self.per_page = bool(o.list_mode or o.mark_idle or o.cgroup)

    def feed_words(self, flags: Words) -> None:
        """A chunk of consecutive PFNs, summary only (no listing, marking, cgroup)."""
        starts, lengths, vals = dc.runs(flags)
        u, c, f = dc.distinct_runs(starts, lengths, vals)
        shown = dc.view(u, raw=self.o.raw)
        ok = dc.filter_mask(shown, self.o.filters)
        self.counts.add(shown[ok].tolist(), c[ok].tolist(), (f[ok] + self.pos).tolist())
        if self.want_anon:
            self.tally.add(u[ok], c[ok], head_mirrored=self.head_mirrored)
        self.pos += len(flags)

    def feed(self, offset: Words, flags: Words, *, voff: Words | None = None,
             pme: Words | None = None, cgroup: Words | None = None,
             mapcnt: Words | None = None, swap: Bools | None = None,
             whole: Bools | None = None, vma: int | None = None) -> None:
        """Rows: page *offset* (PFN or swap offset) with kpageflags word *flags* …"""
        n = len(offset)
        if n == 0:
            return
        o = self.o
        if pme is None or not o.raw:
            # the view is a function of the word alone: work on runs of equal words
            _, lengths, vals = dc.runs(flags)
            shown_vals = dc.view(vals, raw=o.raw)
            shown = np.repeat(shown_vals, lengths)
            keep = (np.repeat(dc.filter_mask(shown_vals, o.filters), lengths) if o.filters
                    else None)
        else:
            shown = dc.view(flags, pme, raw=True)
            keep = dc.filter_mask(shown, o.filters) if o.filters else None
        if o.cgroup:
            cg0 = cgroup if cgroup is not None else np.zeros(n, dtype=np.uint64)
            ok = cg0 == np.uint64(o.cgroup)
            if swap is not None:
                ok &= ~swap
            keep = ok if keep is None else keep & ok
        idx: NDArray[np.intp] | None = None
        if keep is not None and not keep.all():
            idx = np.flatnonzero(keep)
            offset, flags, shown = offset[idx], flags[idx], shown[idx]
            voff = voff[idx] if voff is not None else None
            pme = pme[idx] if pme is not None else None
            cgroup = cgroup[idx] if cgroup is not None else None
            mapcnt = mapcnt[idx] if mapcnt is not None else None
            swap = swap[idx] if swap is not None else None
            whole = whole[idx] if whole is not None else None
        if self.idle_fd >= 0:
            mark_idle(self.idle_fd, offset[~swap] if swap is not None else offset)
        if self.lister is not None:
            self.lister.feed(voff if voff is not None else offset, offset, shown, cgroup,
                             mapcnt)
        u, c, f = dc.distinct(shown)
        first = idx[f] if idx is not None else f
        self.counts.add(u.tolist(), c.tolist(), (first + self.pos).tolist())
        if self.want_anon:
            t = Tally()
            if pme is None and swap is None and whole is None:
                fu, fc, _ = dc.distinct(flags)
                t.add(fu, fc, head_mirrored=self.head_mirrored)
            else:
                t.add(flags, whole=whole, pme=pme, swap=swap, head_mirrored=self.head_mirrored)
            self.tally.merge(t)
            if vma is not None:
                self.vma_tally.setdefault(vma, Tally()).merge(t)
        self.pos += n

    def flush_list(self) -> None:
        if self.lister is not None and self.lister.mode == 1:
            self.lister.flush()

    def summary(self) -> list[dc.SummaryRow]:
        return [dc.SummaryRow(v, c) for v, c in self.counts.rows()]


# -- walks -----------------------------------------------------------------------------------


@dataclass
class Sources:
    """The open input files of a walk."""

    flags: WordFile
    cgroup: WordFile | None = None
    mapcnt: WordFile | None = None

    def close(self) -> None:
        for f in (self.flags, self.cgroup, self.mapcnt):
            if f is not None:
                f.close()


def open_sources(o: Options) -> Sources:
    """kpageflags always; kpagecgroup with ``-c``/``-C``; kpagecount with ``-M`` and a list
    (the files page-types opens for the same options)."""
    cg = WordFile(o.kpagecgroup, "kpagecgroup file") if o.cgroup or o.list_cgroup else None
    try:
        mc = (WordFile(o.kpagecount, "kpagecount file") if o.list_mode and o.list_mapcnt
              else None)
    except PageTypesError:
        if cg is not None:
            cg.close()
        raise
    try:
        fl = WordFile(o.kpageflags, "kpageflags file")
    except PageTypesError:
        for f in (cg, mc):
            if f is not None:
                f.close()
        raise
    return Sources(fl, cg, mc)


def walk_pfns(eng: Engine, src: Sources, ranges: list[tuple[int, int]], jobs: int) -> None:
    """Every PFN of each ``(first, count)`` range, in order."""
    for first, count in ranges:
        for ch in read_chunks(src.flags, first, count, cgroup=src.cgroup, mapcnt=src.mapcnt,
                              jobs=jobs, reuse=True):
            if not eng.per_page:
                eng.feed_words(ch.flags)
                continue
            pfn = np.arange(ch.start, ch.start + len(ch.flags), dtype=np.uint64)
            eng.feed(pfn, ch.flags, cgroup=ch.cgroup, mapcnt=ch.mapcnt)


def _vma_pieces(vmas: list[proc.Vma], first: int, count: int) -> Iterator[tuple[int, int, int]]:
    """``(vma index, first page, pages)`` of the range ``[first, first + count)`` that lie
    in VMAs, in address order (page-types' ``walk_task``)."""
    end = first + count
    index = first
    i = 0
    while index < end:
        while vmas[i].pg_end <= index:
            i += 1
            if i >= len(vmas):
                return
        if vmas[i].pg_start >= end:
            return
        start = max(vmas[i].pg_start, index)
        index = min(vmas[i].pg_end, end)
        yield i, start, index - start


_PRESENT = np.uint64(pmap.PM_PRESENT)
_SWAP = np.uint64(pmap.PM_SWAP)
_PFN = np.uint64(pmap.PM_PFN_MASK)


def _pfns(entries: Words) -> Words:
    """The PFN of each present entry, 0 for the others."""
    return np.where((entries & _PRESENT) != 0, entries & _PFN, 0).astype(np.uint64)


def _feed_task_chunk(eng: Engine, src: Sources, pm: proc.Pagemap, entries: Words, index: int,
                     vma: int) -> None:
    """Rows of pagemap entries of virtual pages from *index*: a present page with a
    kpageflags word, then (for a swap entry) a swapped-out page, in address order."""
    pfn = _pfns(entries)
    pos_p = np.flatnonzero(pfn != 0)
    flags, found = src.flags.gather(pfn[pos_p])
    pos_p, flags = pos_p[found], flags[found]
    pos_s = np.flatnonzero((entries & _SWAP) != 0)
    n_s = len(pos_s)
    order = np.argsort(np.concatenate((pos_p, pos_s)), kind="stable")
    pos = np.concatenate((pos_p, pos_s))[order]
    is_swap = (np.arange(len(order)) >= len(pos_p))[order]
    e = entries[pos]
    swap_off = (e & _PFN) >> np.uint64(5)
    off = np.where(is_swap, swap_off, pfn[pos]).astype(np.uint64)

    def with_swap_rows(present: Words) -> Words:
        return np.concatenate((present, np.zeros(n_s, dtype=np.uint64)))[order]

    pfn_p = pfn[pos_p]
    cgroup = (with_swap_rows(src.cgroup.gather_exact(pfn_p, src.flags.path))
              if src.cgroup is not None else None)
    mapcnt = (with_swap_rows(src.mapcnt.gather_exact(pfn_p, src.flags.path))
              if src.mapcnt is not None else None)
    whole = None
    if eng.want_anon:
        w = proc.whole_mapped(pm, index, len(entries))
        whole = w[pos] if w is not None else None
    eng.feed(off, with_swap_rows(flags), voff=(pos + index).astype(np.uint64), pme=e,
             cgroup=cgroup, mapcnt=mapcnt, swap=is_swap, whole=whole, vma=vma)


def walk_task(eng: Engine, src: Sources, pm: proc.Pagemap, vmas: list[proc.Vma],
              ranges: list[tuple[int, int]]) -> None:
    """The pages of a process: present pages by PFN, swapped-out ones by swap offset."""
    if not vmas:
        return
    for first, count in ranges:
        for vi, start, pages in _vma_pieces(vmas, first, count):
            index, left = start, pages
            while left:
                entries = pm.read(index, min(left, PAGEMAP_BATCH))
                if len(entries) == 0:
                    break
                _feed_task_chunk(eng, src, pm, entries, index, vi)
                index += len(entries)
                left -= len(entries)


@dataclass
class FileWalk:
    """State page-types keeps across the files of a ``-f`` walk."""

    ranges: list[tuple[int, int]]


def _walk_file_range(eng: Engine, src: Sources, name: str, fd: int, off: int,
                     end: int) -> None:
    first = True
    while off < end:
        npages = min((end - off + PAGE_SIZE - 1) // PAGE_SIZE, PAGEMAP_BATCH)
        entries = proc.file_chunk_entries(fd, off, npages, name)
        pfn = _pfns(entries)
        pos = np.flatnonzero(pfn != 0)
        flags, found = src.flags.gather(pfn[pos])
        pos, flags = pos[found], flags[found]
        if len(pos):
            if first:
                first = False
                eng.flush_list()
            p = pfn[pos]
            eng.feed(p, flags, voff=(pos + off // PAGE_SIZE).astype(np.uint64),
                     pme=entries[pos],
                     cgroup=src.cgroup.gather_exact(p, src.flags.path) if src.cgroup else None,
                     mapcnt=src.mapcnt.gather_exact(p, src.flags.path) if src.mapcnt else None)
        off += npages * PAGE_SIZE


def _walk_file(eng: Engine, src: Sources, fw: FileWalk, name: str, st: os.stat_result) -> None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOATIME | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise PageTypesError(f"cannot open {name}: {e.strerror}") from None
    try:
        if not fw.ranges:
            fw.ranges.append((0, st.st_size // PAGE_SIZE))
        limit = (st.st_size + PAGE_SIZE - 1) // PAGE_SIZE
        for first, count in fw.ranges:
            end = min(first + count, limit)
            if first < end:
                _walk_file_range(eng, src, name, fd, first * PAGE_SIZE, end * PAGE_SIZE)
            else:
                continue
    finally:
        os.close(fd)


def _walk_tree(eng: Engine, src: Sources, fw: FileWalk, top: str, dev: int) -> None:
    """Regular files under *top* in directory order, not following symlinks or crossing
    mount points (page-types' ``nftw(FTW_MOUNT | FTW_PHYS)``)."""
    try:
        entries = list(os.scandir(top))
    except OSError:
        sys.stderr.write(f"cannot read dir: {top}\n")
        return
    for ent in entries:
        path = top + ent.name if top.endswith("/") else f"{top}/{ent.name}"
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if st.st_dev != dev:
            continue
        if stat.S_ISDIR(st.st_mode):
            _walk_tree(eng, src, fw, path, dev)
        elif stat.S_ISREG(st.st_mode):
            _walk_file(eng, src, fw, path, st)


def walk_page_cache(eng: Engine, src: Sources, name: str,
                    ranges: list[tuple[int, int]]) -> os.stat_result:
    """The cached pages of file *name*, or of every file under directory *name*."""
    try:
        st = os.stat(name)
    except OSError as e:
        raise PageTypesError(f"stat failed: {name}: {e.strerror}") from None
    fw = FileWalk(list(ranges))
    if stat.S_ISREG(st.st_mode):
        _walk_file(eng, src, fw, name, st)
    elif stat.S_ISDIR(st.st_mode):
        _walk_tree(eng, src, fw, name, st.st_dev)
    else:
        raise PageTypesError(f"unhandled file type: {name} (expected a regular file or a "
                             "directory)")
    return st


def open_idle_bitmap() -> int:
    """Open ``/sys/kernel/mm/page_idle/bitmap`` for ``-i``."""
    try:
        return os.open(PAGE_IDLE_BITMAP, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        raise PageTypesError(
            f"{open_error(PAGE_IDLE_BITMAP, 'page idle bitmap', e)} (-i needs a kernel with "
            "CONFIG_IDLE_PAGE_TRACKING)") from None


def mark_idle(fd: int, pfns: Words) -> None:
    """Set the idle bit of every PFN in *pfns* in the page idle bitmap *fd* (one 8-byte
    word per 64 PFNs; bits written as 0 leave a page as it is)."""
    if not len(pfns):
        return
    p = np.unique(pfns)
    word = p >> np.uint64(6)
    bits = np.left_shift(np.uint64(1), p & np.uint64(63))
    starts = np.flatnonzero(np.concatenate(([True], word[1:] != word[:-1])))
    masks = np.bitwise_or.reduceat(bits, starts)
    try:
        for w, m in zip(word[starts].tolist(), masks.tolist(), strict=True):
            os.pwrite(fd, int(m).to_bytes(8, sys.byteorder), 8 * w)
    except OSError as e:
        raise PageTypesError(f"mark page idle: {e.strerror}") from None
