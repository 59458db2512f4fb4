"""System calls the live backend needs, through ctypes on the C library.

Memory is always addressed by raw integer addresses (never through Python objects), so
that only the intended accesses touch test pages. Every wrapper raises :class:`OSError`
with the errno on failure (``-1``/``MAP_FAILED`` results); the caller decides whether that
is a step error. Linux only; importing on another system raises ``OSError`` when the C
library cannot be loaded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# mmap(2)
PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_HUGETLB = 0x40000
MAP_HUGE_SHIFT = 26
MAP_HUGE_2MB = 21 << MAP_HUGE_SHIFT  # log2(2 MiB) in the size bits of MAP_HUGETLB
MAP_FIXED_NOREPLACE = 0x100000
MAP_FAILED = ctypes.c_void_p(-1).value

# mremap(2)
MREMAP_MAYMOVE = 1
MREMAP_FIXED = 2

# madvise(2)
MADV: dict[str, int] = {
    "dontneed": 4,
    "dontfork": 10,
    "dofork": 11,
    "mergeable": 12,
    "unmergeable": 13,
    "hugepage": 14,
    "nohugepage": 15,
    "wipeonfork": 18,
    "keeponfork": 19,
    "pageout": 21,
    "populate-read": 22,
    "populate-write": 23,
    "collapse": 25,
}

PROT: dict[str, int] = {"ro": PROT_READ, "rw": PROT_READ | PROT_WRITE, "none": PROT_NONE}

RUSAGE_THREAD = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
F_SETPIPE_SZ = 1031
F_GETPIPE_SZ = 1032

# io_uring (same numbers on every architecture that has it, alpha aside)
NR_IO_URING_SETUP = 425
NR_IO_URING_ENTER = 426
NR_IO_URING_REGISTER = 427


class Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class Rusage(ctypes.Structure):
    _fields_ = [
        ("ru_utime", Timeval), ("ru_stime", Timeval),
        ("ru_maxrss", ctypes.c_long), ("ru_ixrss", ctypes.c_long),
        ("ru_idrss", ctypes.c_long), ("ru_isrss", ctypes.c_long),
        ("ru_minflt", ctypes.c_long), ("ru_majflt", ctypes.c_long),
        ("ru_nswap", ctypes.c_long), ("ru_inblock", ctypes.c_long),
        ("ru_oublock", ctypes.c_long), ("ru_msgsnd", ctypes.c_long),
        ("ru_msgrcv", ctypes.c_long), ("ru_nsignals", ctypes.c_long),
        ("ru_nvcsw", ctypes.c_long), ("ru_nivcsw", ctypes.c_long),
    ]


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("c") or "libc.so.6"
    return ctypes.CDLL(name, use_errno=True)


libc = _load()

_vp, _sz, _int, _long = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_long


def _proto(name: str, restype: Any, *argtypes: Any) -> Any:
    fn = getattr(libc, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


_mmap = _proto("mmap", _vp, _vp, _sz, _int, _int, _int, _long)
_munmap = _proto("munmap", _int, _vp, _sz)
_mprotect = _proto("mprotect", _int, _vp, _sz, _int)
_madvise = _proto("madvise", _int, _vp, _sz, _int)
_mremap = _proto("mremap", _vp, _vp, _sz, _sz, _int, _vp)
_pread = _proto("pread", ctypes.c_ssize_t, _int, _vp, _sz, _long)
_pwrite = _proto("pwrite", ctypes.c_ssize_t, _int, _vp, _sz, _long)
_vmsplice = _proto("vmsplice", ctypes.c_ssize_t, _int, ctypes.POINTER(Iovec), _sz,
                   ctypes.c_uint)
_pvm_readv = _proto("process_vm_readv", ctypes.c_ssize_t, _int, ctypes.POINTER(Iovec),
                    ctypes.c_ulong, ctypes.POINTER(Iovec), ctypes.c_ulong, ctypes.c_ulong)
_pvm_writev = _proto("process_vm_writev", ctypes.c_ssize_t, _int, ctypes.POINTER(Iovec),
                     ctypes.c_ulong, ctypes.POINTER(Iovec), ctypes.c_ulong, ctypes.c_ulong)
_getrusage = _proto("getrusage", _int, _int, ctypes.POINTER(Rusage))
_swapon = _proto("swapon", _int, ctypes.c_char_p, _int)
_swapoff = _proto("swapoff", _int, ctypes.c_char_p)
_prctl = _proto("prctl", _int, _int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                ctypes.c_ulong)
_ptrace = _proto("ptrace", _long, _long, _int, _vp, _vp)
syscall = _proto("syscall", _long, _long)  # variadic: pass ctypes-typed arguments
memmove = ctypes.memmove


def _check(res: int, what: str) -> int:
    if res == -1:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return res


def mmap(addr: int, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0) -> int:
    res = _mmap(addr, length, prot, flags, fd, offset)
    if res is None or res == MAP_FAILED:
        e = ctypes.get_errno()
        raise OSError(e, f"mmap({addr:#x}, {length}): {os.strerror(e)}")
    return int(res)


def munmap(addr: int, length: int) -> None:
    _check(_munmap(addr, length), f"munmap({addr:#x}, {length})")


def mprotect(addr: int, length: int, prot: int) -> None:
    _check(_mprotect(addr, length, prot), f"mprotect({addr:#x}, {length}, {prot})")


def madvise(addr: int, length: int, advice: int) -> None:
    _check(_madvise(addr, length, advice), f"madvise({addr:#x}, {length}, {advice})")


def mremap_fixed(old: int, length: int, new: int) -> int:
    res = _mremap(old, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, new)
    if res is None or res == MAP_FAILED:
        e = ctypes.get_errno()
        raise OSError(e, f"mremap({old:#x} -> {new:#x}): {os.strerror(e)}")
    return int(res)


def pread(fd: int, addr: int, length: int, offset: int) -> int:
    return _check(_pread(fd, addr, length, offset), "pread")


def pwrite(fd: int, addr: int, length: int, offset: int) -> int:
    return _check(_pwrite(fd, addr, length, offset), "pwrite")


def vmsplice(fd: int, addr: int, length: int, flags: int = 0) -> int:
    iov = Iovec(addr, length)
    return _check(_vmsplice(fd, ctypes.byref(iov), 1, flags), "vmsplice")


def process_vm_readv(pid: int, local: int, remote: int, length: int) -> int:
    li, ri = Iovec(local, length), Iovec(remote, length)
    return _check(_pvm_readv(pid, ctypes.byref(li), 1, ctypes.byref(ri), 1, 0),
                  "process_vm_readv")


def process_vm_writev(pid: int, local: int, remote: int, length: int) -> int:
    li, ri = Iovec(local, length), Iovec(remote, length)
    return _check(_pvm_writev(pid, ctypes.byref(li), 1, ctypes.byref(ri), 1, 0),
                  "process_vm_writev")


SYS_MOVE_PAGES = 279  # x86-64


def lru_add_drain_all() -> bool:
    """Drain every CPU's LRU add batch (the references fresh pages hold there):
    ``move_pages(2)`` of no pages, with a node array, reaches ``do_pages_move()``, which
    starts with ``lru_add_drain_all()`` (``migrate_prep()`` before 5.11) or
    ``lru_cache_disable()``. False where move_pages does not exist (no NUMA)."""
    node = ctypes.c_int(0)
    res = syscall(ctypes.c_long(SYS_MOVE_PAGES), ctypes.c_long(0), ctypes.c_ulong(0),
                  ctypes.c_void_p(None), ctypes.byref(node), ctypes.c_void_p(None),
                  ctypes.c_int(0))
    return int(res) == 0


def ptrace(request: int, pid: int, addr: int, data: int) -> int:
    """``ptrace(2)``; -1 with the errno in ``ctypes.get_errno()`` on failure."""
    return int(_ptrace(request, pid, addr, data))


def swapon(path: str, flags: int = 0) -> None:
    """``swapon(2)``: start swapping on the block device or file *path*."""
    _check(_swapon(os.fsencode(path), flags), f"swapon({path})")


def swapoff(path: str) -> None:
    """``swapoff(2)``: stop swapping on *path* (every page it holds is read back first)."""
    _check(_swapoff(os.fsencode(path)), f"swapoff({path})")


def prctl(option: int, arg2: int = 0) -> int:
    return _check(_prctl(option, arg2, 0, 0, 0), f"prctl({option})")


def get_child_subreaper() -> int:
    val = ctypes.c_int(0)
    _check(_prctl(PR_GET_CHILD_SUBREAPER, ctypes.addressof(val), 0, 0, 0), "prctl")
    return val.value


class FaultCounter:
    """Minor + major faults of the calling thread (``getrusage(RUSAGE_THREAD)``).

    The structure is allocated once so that reading the counter allocates as little as
    possible between two reads.
    """

    def __init__(self) -> None:
        self._ru = Rusage()
        self._ref = ctypes.byref(self._ru)

    def read(self) -> int:
        _getrusage(RUSAGE_THREAD, self._ref)
        return int(self._ru.ru_minflt + self._ru.ru_majflt)


_statfs = _proto("statfs", _int, ctypes.c_char_p, _vp)

TMPFS_MAGIC = 0x01021994
RAMFS_MAGIC = 0x858458F6


def fs_type(path: str) -> int:
    """The ``f_type`` magic of the filesystem holding *path* (statfs(2))."""
    buf = ctypes.create_string_buffer(256)
    _check(_statfs(os.fsencode(path), ctypes.addressof(buf)), f"statfs({path})")
    return int(ctypes.c_long.from_buffer(buf).value) & 0xFFFF_FFFF
