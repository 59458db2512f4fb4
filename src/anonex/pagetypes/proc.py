"""A process's VMAs and pagemap, and the pagemap of a file's page cache.

* :func:`read_maps` - ``/proc/PID/maps`` (or a saved copy) as :class:`Vma` rows;
* :class:`Pagemap` - ``/proc/PID/pagemap`` (or a saved copy, same layout: one 8-byte entry
  per virtual page, at offset ``vaddr / PAGE_SIZE * 8``), read in chunks;
* :func:`whole_mapped` - which pages of a range are mapped by one PMD (or are hugetlb),
  from the ``PAGEMAP_SCAN`` ioctl (v6.7+); that is what makes a THP's tail pages'
  PG_anon_exclusive known (see :mod:`anonex.pagetypes.decode`);
* :func:`file_chunk_entries` - map part of a file, fault in its cached pages and read our
  own pagemap for them, the way page-types' ``-f`` does.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import re
import sys
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from anonex.pagetypes.errors import PageTypesError
from anonex.pagetypes.kpage import open_error

Words = NDArray[np.uint64]
PAGE_SIZE = mmap.PAGESIZE

_MAPS_LINE = re.compile(
    rb"([0-9a-fA-F]+)-([0-9a-fA-F]+)\s+(\S)(\S)(\S)(\S)\s+([0-9a-fA-F]+)\s+([0-9a-fA-F]+):"
    rb"([0-9a-fA-F]+)\s+(\d+)[ \t]*(.*)")


@dataclass(frozen=True, slots=True)
class Vma:
    """One line of ``/proc/PID/maps``."""

    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    name: str

    @property
    def pg_start(self) -> int:
        return self.start // PAGE_SIZE

    @property
    def pg_end(self) -> int:
        return self.end // PAGE_SIZE

    @property
    def label(self) -> str:
        return f"{self.start:08x}-{self.end:08x} {self.perms}"


def parse_maps(data: bytes, source: str = "maps") -> list[Vma]:
    """The VMAs of a maps text; lines that do not parse are reported on stderr and
    skipped, as page-types does."""
    out: list[Vma] = []
    for line in data.splitlines():
        m = _MAPS_LINE.match(line)
        if m is None:
            if line.strip():
                sys.stderr.write(f"unexpected line: {line.decode(errors='replace')}\n")
            continue
        g = m.groups()
        out.append(Vma(start=int(g[0], 16), end=int(g[1], 16),
                       perms=b"".join(g[2:6]).decode(), offset=int(g[6], 16),
                       dev=f"{g[7].decode()}:{g[8].decode()}", inode=int(g[9]),
                       name=g[10].decode(errors="replace").strip()))
    return out


def read_maps(pid: int, path: str | None = None) -> list[Vma]:
    """The VMAs of process *pid* (from *path* instead of ``/proc/PID/maps`` if given)."""
    src = path or f"/proc/{pid}/maps"
    try:
        with open(src, "rb") as f:
            data = f.read()
    except OSError as e:
        if path is None and isinstance(e, FileNotFoundError | ProcessLookupError):
            raise PageTypesError(f"no process {pid} (cannot open {src})") from None
        raise open_error(src, "maps file", e) from None
    return parse_maps(data, src)


class Pagemap:
    """``/proc/PID/pagemap`` (*live*), or a saved copy of it at *path*."""

    def __init__(self, pid: int, path: str | None = None, *, live: bool | None = None) -> None:
        self.path = path or f"/proc/{pid}/pagemap"
        self.live = path is None if live is None else live
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            if self.live and isinstance(e, FileNotFoundError | ProcessLookupError):
                raise PageTypesError(f"no process {pid} (cannot open {self.path})") from None
            raise open_error(self.path, "pagemap file", e) from None
        if not self.live:
            size = os.fstat(self.fd).st_size
            if size % 8:
                os.close(self.fd)
                raise PageTypesError(f"{self.path}: truncated pagemap file: {size} bytes is "
                                     "not a multiple of 8 (one 8-byte entry per page)")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def read(self, index: int, count: int) -> Words:
        """Entries of virtual pages ``[index, index + count)`` (shorter at the end)."""
        buf = np.empty(count, dtype=np.uint64)
        view = buf.data.cast("B")
        got = 0
        while got < len(view):
            try:
                n = os.preadv(self.fd, [view[got:]], index * 8 + got)
            except OverflowError:
                break
            except OSError as e:
                if e.errno in (errno.EINVAL, errno.ESRCH) and got == 0:
                    break
                raise PageTypesError(f"cannot read {self.path}: {e.strerror or e}") from None
            if n == 0:
                break
            got += n
        if got % 8:
            raise PageTypesError(f"{self.path}: partial read of {got} bytes")
        return buf[:got // 8]


# -- PAGEMAP_SCAN --------------------------------------------------------------------------

_PAGEMAP_SCAN = 0xC0606610  # _IOWR('f', 16, struct pm_scan_arg)
PAGE_IS_PRESENT = 1 << 3
PAGE_IS_HUGE = 1 << 6


class _ScanArg(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in (
        "size", "flags", "start", "end", "walk_end", "vec", "vec_len", "max_pages",
        "category_inverted", "category_mask", "category_anyof_mask", "return_mask")]


class _Region(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint64), ("end", ctypes.c_uint64),
                ("categories", ctypes.c_uint64)]


def whole_mapped(pagemap: Pagemap, index: int, count: int) -> NDArray[np.bool_] | None:
    """Which of the virtual pages ``[index, index + count)`` are mapped as part of a whole
    large folio (PMD-mapped THP, hugetlb), from ``PAGEMAP_SCAN``; ``None`` when the kernel
    (or a saved pagemap) cannot tell."""
    if not pagemap.live:
        return None
    out = np.zeros(count, dtype=np.bool_)
    vec = (_Region * 256)()
    start, end = index * PAGE_SIZE, (index + count) * PAGE_SIZE
    while start < end:
        arg = _ScanArg(size=ctypes.sizeof(_ScanArg), start=start, end=end,
                       vec=ctypes.addressof(vec), vec_len=len(vec),
                       category_mask=PAGE_IS_HUGE | PAGE_IS_PRESENT,
                       return_mask=PAGE_IS_HUGE)
        try:
            n = fcntl.ioctl(pagemap.fd, _PAGEMAP_SCAN, arg)
        except OSError:
            return None
        for r in vec[:n]:
            lo = max(int(r.start), index * PAGE_SIZE) // PAGE_SIZE - index
            hi = min(int(r.end), end) // PAGE_SIZE - index
            out[lo:hi] = True
        if arg.walk_end <= start:
            break
        start = int(arg.walk_end)
    return out


# -- a file's page cache ---------------------------------------------------------------------

_MADV_RANDOM = 1
_MADV_SEQUENTIAL = 2
_MADV_POPULATE_READ = 22
_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.mmap.restype = ctypes.c_void_p
        lib.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                             ctypes.c_int, ctypes.c_long]
        lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        lib.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _libc = lib
    return _libc


def _fail(what: str, name: str) -> PageTypesError:
    e = ctypes.get_errno()
    return PageTypesError(f"{what} failed: {name}: {os.strerror(e)}")


_self_pagemap: Pagemap | None = None


def file_chunk_entries(fd: int, offset: int, npages: int, name: str) -> Words:
    """Our own pagemap entries for *npages* pages of the open file *fd* from byte *offset*:
    map them shared read-only, fault in the pages already cached (``mincore``; never read
    anything from disk), read ``/proc/self/pagemap``, unmap."""
    global _self_pagemap
    lib = _c()
    length = npages * PAGE_SIZE
    addr = lib.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, offset)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        raise _fail("mmap", name)
    try:
        vec = (ctypes.c_ubyte * npages)()
        if lib.mincore(addr, length, vec) != 0:
            raise _fail("mincore", name)
        if lib.madvise(addr, length, _MADV_RANDOM) != 0:
            raise _fail("madvise", name)
        cached = np.frombuffer(bytes(vec), dtype=np.uint8) & 1
        edges = np.flatnonzero(np.diff(np.concatenate(([0], cached, [0]))))
        for lo, hi in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True):
            a = addr + lo * PAGE_SIZE
            if lib.madvise(a, (hi - lo) * PAGE_SIZE, _MADV_POPULATE_READ) != 0:
                if ctypes.get_errno() != errno.EINVAL:
                    sys.stderr.write(f"got sigbus at offset {offset + lo * PAGE_SIZE}: "
                                     f"{name}\n")
                    break
                for i in range(lo, hi):  # kernels before 5.14: touch each page
                    ctypes.string_at(addr + i * PAGE_SIZE, 1)
        if lib.madvise(addr, length, _MADV_SEQUENTIAL) != 0:
            raise _fail("madvise", name)
        if _self_pagemap is None:
            _self_pagemap = Pagemap(os.getpid(), "/proc/self/pagemap", live=True)
        entries = _self_pagemap.read(addr // PAGE_SIZE, npages)
        if len(entries) != npages:
            raise PageTypesError(f"cannot read pagemap for {name}")
        return entries
    finally:
        lib.munmap(addr, length)
