"""Reading files of 64-bit words indexed by PFN, in large chunks.

``/proc/kpageflags``, ``/proc/kpagecount`` and ``/proc/kpagecgroup`` (or saved copies of
them: a dump is the same bytes, 8 per PFN, little-endian) are read with ``preadv`` straight
into numpy buffers. Sequential walks read chunks of :data:`CHUNK` PFNs, several at once in
threads when asked to (the kernel's work of filling kpageflags dominates a live walk and
``preadv`` releases the GIL); at most ``2 * jobs`` chunks are in flight, so memory stays
bounded whatever the machine's size. Scattered PFNs (a process's pages) are read by
:meth:`WordFile.gather`, which coalesces nearby PFNs into one read.

Errors are :class:`~anonex.pagetypes.errors.PageTypesError` with a one-line reason: no such
file, no permission (the /proc files are root-only), a dump whose size is not a multiple
of 8 bytes, a file that ends before another one does.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from anonex.pagetypes.errors import PageTypesError

Words = NDArray[np.uint64]

#: PFNs per sequential read (2 MiB of words).
CHUNK = 1 << 18
#: Largest gap of unwanted PFNs :meth:`WordFile.gather` reads through to save a syscall.
GATHER_GAP = 64
#: Longest single read of :meth:`WordFile.gather`.
GATHER_SPAN = 1 << 16
_MAX_OFFSET = (1 << 63) - 1

PROC_KPAGEFLAGS = "/proc/kpageflags"
PROC_KPAGECOUNT = "/proc/kpagecount"
PROC_KPAGECGROUP = "/proc/kpagecgroup"

_WHY_PROC = {
    PROC_KPAGEFLAGS: "this kernel has no page-flags interface (CONFIG_PROC_PAGE_MONITOR); "
                     "read a saved copy with -F FILE",
    PROC_KPAGECOUNT: "this kernel has no page-count interface (CONFIG_PROC_PAGE_MONITOR); "
                     "give a saved copy with --kpagecount FILE",
    PROC_KPAGECGROUP: "this kernel has no page-cgroup interface (CONFIG_MEMCG); give a "
                      "saved copy with --kpagecgroup FILE",
}


def open_error(path: str, what: str, e: OSError) -> PageTypesError:
    """A clear error for a file that cannot be opened."""
    if path in _WHY_PROC and isinstance(e, FileNotFoundError):
        return PageTypesError(f"{path} does not exist: {_WHY_PROC[path]}")
    if path.startswith("/proc/kpage") and e.errno in (errno.EACCES, errno.EPERM):
        return PageTypesError(
            f"cannot open {path}: permission denied (the kernel lets only root, with "
            "CAP_SYS_ADMIN, read it); run as root, or read a saved copy with -F FILE")
    return PageTypesError(f"cannot open {what} {path}: {e.strerror or e}")


class WordFile:
    """An open file of 64-bit words indexed by PFN (a /proc file or a dump)."""

    def __init__(self, path: str, what: str = "kpageflags file") -> None:
        self.path = path
        self.what = what
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise open_error(path, what, e) from None
        st = os.fstat(self.fd)
        # /proc files are "regular" with size 0: their size is only known by reading
        self.regular = stat.S_ISREG(st.st_mode) and st.st_size > 0
        #: Whether this is a live kernel file rather than a saved copy.
        self.is_proc = st.st_size == 0 and os.path.realpath(path).startswith("/proc/")
        #: Number of words in a saved copy (``None`` for /proc files: read until EOF).
        self.size: int | None = None
        if self.regular:
            if st.st_size % 8:
                size = st.st_size
                self.close()
                raise PageTypesError(
                    f"{path}: truncated {what}: {size} bytes is not a multiple of 8 (a saved "
                    f"copy holds one 8-byte word per PFN; expected {size // 8 * 8} or "
                    f"{size // 8 * 8 + 8} bytes)")
            self.size = st.st_size // 8

    def __enter__(self) -> WordFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def clamp(self, start: int, count: int) -> int:
        """How many of *count* words from *start* exist (all, for /proc files)."""
        if self.size is None:
            return count
        return max(0, min(count, self.size - start))

    def read_into(self, buf: Words, start: int) -> int:
        """Fill *buf* with the words from PFN *start*; the number read (short at EOF)."""
        view = buf.data.cast("B")
        want = len(view)
        got = 0
        if start * 8 > _MAX_OFFSET:
            raise PageTypesError(f"{self.path}: PFN {start:#x} is beyond the largest offset a "
                                 "file can have")
        while got < want:
            try:
                n = os.preadv(self.fd, [view[got:]], start * 8 + got)
            except OSError as e:
                if e.errno == errno.EINVAL and got == 0:
                    return 0  # past the end of a /proc file that refuses large offsets
                raise PageTypesError(f"cannot read {self.what} {self.path}: "
                                     f"{e.strerror or e}") from None
            if n == 0:
                break
            got += n
        if got % 8:
            raise PageTypesError(f"{self.path}: partial read of {got} bytes at PFN {start:#x} "
                                 f"(expected whole 8-byte words)")
        return got // 8

    def read(self, start: int, count: int) -> Words:
        """The words of PFNs ``[start, start + count)`` that exist (shorter at EOF)."""
        count = self.clamp(start, count)
        buf = np.empty(count, dtype=np.uint64)
        return buf[:self.read_into(buf, start)]

    def read_exact(self, start: int, count: int, primary: str) -> Words:
        """Like :meth:`read`, but an error when the file ends first (it must cover
        every PFN the *primary* file had)."""
        w = self.read(start, count)
        if len(w) < count:
            end = start + len(w)
            raise PageTypesError(
                f"{self.path}: {self.what} ends at PFN {end:#x}, but {primary} has PFNs up to "
                f"{start + count - 1:#x} (expected at least {(start + count) * 8} bytes)")
        return w

    def gather(self, pfns: NDArray[np.uint64]) -> tuple[Words, NDArray[np.bool_]]:
        """The words at *pfns* (any order, repeats allowed): ``(values, found)``, where
        *found* is false for PFNs past the end of the file (their value is 0)."""
        p = np.asarray(pfns, dtype=np.uint64)
        values = np.zeros(len(p), dtype=np.uint64)
        found = np.zeros(len(p), dtype=np.bool_)
        if len(p) == 0:
            return values, found
        u, inv = np.unique(p, return_inverse=True)
        uv = np.zeros(len(u), dtype=np.uint64)
        uf = np.zeros(len(u), dtype=np.bool_)
        ui = u.astype(np.int64) if int(u[-1]) < (1 << 62) else None
        if ui is None:
            raise PageTypesError(f"{self.path}: PFN {int(u[-1]):#x} is out of range")
        # spans of nearby PFNs, each read once
        breaks = np.flatnonzero(np.diff(ui) > GATHER_GAP) + 1
        bounds = np.concatenate(([0], breaks, [len(ui)]))
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            i = lo
            while i < hi:
                first = int(ui[i])
                j = int(np.searchsorted(ui, first + GATHER_SPAN, side="left"))
                j = min(j, hi)
                last = int(ui[j - 1])
                chunk = self.read(first, last - first + 1)
                rel = ui[i:j] - first
                ok = rel < len(chunk)
                uv[i:j][ok] = chunk[rel[ok]]
                uf[i:j] = ok
                i = j
        values[:] = uv[inv.reshape(-1)]
        found[:] = uf[inv.reshape(-1)]
        return values, found

    def gather_exact(self, pfns: NDArray[np.uint64], primary: str) -> Words:
        """:meth:`gather`, but an error when a PFN is past the end of the file."""
        values, found = self.gather(pfns)
        if not found.all():
            missing = int(np.asarray(pfns, dtype=np.uint64)[~found].max())
            raise PageTypesError(
                f"{self.path}: {self.what} has no word for PFN {missing:#x}, which {primary} "
                f"has (expected at least {(missing + 1) * 8} bytes)")
        return values


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive PFNs from :func:`read_chunks`: flags, and the companions asked for."""

    start: int
    flags: Words
    cgroup: Words | None = None
    mapcnt: Words | None = None


def read_chunks(flags: WordFile, start: int, count: int, *, cgroup: WordFile | None = None,
                mapcnt: WordFile | None = None, jobs: int = 1, chunk: int | None = None,
                reuse: bool = False) -> Iterator[Chunk]:
    """The words of PFNs ``[start, start + count)`` in order, chunk by chunk, until the
    kpageflags file ends; kpagecgroup and kpagecount words for the same PFNs when those
    files are given (they must not end first).

    With ``jobs > 1`` up to ``2 * jobs`` chunks are read ahead by ``jobs`` threads. With
    *reuse*, a chunk's ``flags`` array is only valid until the next chunk is asked for (its
    buffer is read into again, which saves the kernel faulting in fresh memory)."""
    size = CHUNK if chunk is None else chunk
    count = flags.clamp(start, count)
    end = start + count
    free: list[Words] = []

    def one(s: int) -> tuple[Chunk, Words]:
        n = min(size, end - s)
        buf = free.pop() if reuse and free else np.empty(size, dtype=np.uint64)
        got = flags.read_into(buf[:n], s)
        w = buf[:got]
        cg = cgroup.read_exact(s, got, flags.path) if cgroup is not None and got else None
        mc = mapcnt.read_exact(s, got, flags.path) if mapcnt is not None and got else None
        return Chunk(s, w, cg, mc), buf

    if count <= 0:
        return
    if jobs <= 1 or count <= size:
        s = start
        while s < end:
            c, buf = one(s)
            if len(c.flags):
                yield c
            free.append(buf)
            if len(c.flags) < min(size, end - s):
                return
            s += size
        return
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="kpageflags") as pool:
        pending: deque[tuple[int, Future[tuple[Chunk, Words]]]] = deque()
        nxt = start
        try:
            while True:
                while nxt < end and len(pending) < 2 * jobs:
                    pending.append((nxt, pool.submit(one, nxt)))
                    nxt += size
                if not pending:
                    return
                s, fut = pending.popleft()
                c, buf = fut.result()
                if len(c.flags):
                    yield c
                free.append(buf)
                if len(c.flags) < min(size, end - s):
                    return
        finally:
            for _, fut in pending:
                fut.cancel()
