"""A minimal io_uring ring driven by raw system calls: the user-space way to hold a
long-term ``FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE`` pin (``IORING_REGISTER_BUFFERS``) and to
let a "device" read or write the pinned pages (``READ_FIXED`` / ``WRITE_FIXED``).

Layouts (``struct io_uring_params`` 120 bytes, SQ offsets at 40, CQ offsets at 80, 64-byte
SQEs, 16-byte CQEs) follow ``include/uapi/linux/io_uring.h``. One SQE is submitted at a time
and waited for. Failures raise :class:`OSError` (setup, register, enter) or
:class:`IoUringError` (a CQE with a negative result), with the errno.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct

from anonex.live import libc

IORING_OFF_SQ_RING = 0
IORING_OFF_SQES = 0x10000000
IORING_FEAT_SINGLE_MMAP = 1 << 0
IORING_ENTER_GETEVENTS = 1 << 0
IORING_REGISTER_BUFFERS = 0
IORING_UNREGISTER_BUFFERS = 1
IORING_OP_READ_FIXED = 4
IORING_OP_WRITE_FIXED = 5

_SQE = struct.Struct("<BBHiQQIIQHHiQQ")
_CQE = struct.Struct("<QiI")
_PARAMS_SIZE = 120


class IoUringError(OSError):
    """An io_uring operation completed with a negative result."""


class Ring:
    """One ring with (optionally) one registered buffer, index 0."""

    def __init__(self, entries: int = 4) -> None:
        params = ctypes.create_string_buffer(_PARAMS_SIZE)
        fd = libc.syscall(ctypes.c_long(libc.NR_IO_URING_SETUP), ctypes.c_long(entries),
                          params)
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"io_uring_setup: {os.strerror(e)}")
        self.fd = int(fd)
        raw = params.raw
        sq_entries, cq_entries = struct.unpack_from("<II", raw, 0)
        features = struct.unpack_from("<I", raw, 20)[0]
        sq = struct.unpack_from("<7I", raw, 40)   # head tail mask entries flags dropped array
        cq = struct.unpack_from("<6I", raw, 80)   # head tail mask entries overflow cqes
        self._maps: list[tuple[int, int]] = []
        try:
            sq_size = sq[6] + sq_entries * 4
            cq_size = cq[5] + cq_entries * _CQE.size
            if features & IORING_FEAT_SINGLE_MMAP:
                size = max(sq_size, cq_size)
                base = self._map(size, IORING_OFF_SQ_RING)
                cq_base = base
            else:  # pragma: no cover - every kernel since 5.4 has SINGLE_MMAP
                base = self._map(sq_size, IORING_OFF_SQ_RING)
                cq_base = self._map(cq_size, 0x8000000)
            self._sqes = self._map(sq_entries * _SQE.size, IORING_OFF_SQES)
        except BaseException:
            self.close()
            raise
        u32 = ctypes.POINTER(ctypes.c_uint32)
        self._sq_head = ctypes.cast(base + sq[0], u32)
        self._sq_tail = ctypes.cast(base + sq[1], u32)
        self._sq_mask = ctypes.cast(base + sq[2], u32)[0]
        self._sq_array = ctypes.cast(base + sq[6], u32)
        self._cq_head = ctypes.cast(cq_base + cq[0], u32)
        self._cq_tail = ctypes.cast(cq_base + cq[1], u32)
        self._cq_mask = ctypes.cast(cq_base + cq[2], u32)[0]
        self._cqes = cq_base + cq[5]
        self.registered: tuple[int, int] | None = None

    def _map(self, size: int, offset: int) -> int:
        addr = libc.mmap(0, size, libc.PROT_READ | libc.PROT_WRITE,
                         libc.MAP_SHARED | libc.MAP_POPULATE, self.fd, offset)
        self._maps.append((addr, size))
        return addr

    # -- registration: the pin ---------------------------------------------------------------

    def register(self, addr: int, length: int) -> None:
        """Register ``[addr, addr+length)`` as fixed buffer 0 (pins the pages long-term)."""
        iov = libc.Iovec(addr, length)
        res = libc.syscall(ctypes.c_long(libc.NR_IO_URING_REGISTER), ctypes.c_long(self.fd),
                           ctypes.c_long(IORING_REGISTER_BUFFERS), ctypes.byref(iov),
                           ctypes.c_long(1))
        if res < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"IORING_REGISTER_BUFFERS: {os.strerror(e)}")
        self.registered = (addr, length)

    def unregister(self) -> None:
        """Drop the registered buffer (unpins the pages)."""
        res = libc.syscall(ctypes.c_long(libc.NR_IO_URING_REGISTER), ctypes.c_long(self.fd),
                           ctypes.c_long(IORING_UNREGISTER_BUFFERS), ctypes.c_void_p(0),
                           ctypes.c_long(0))
        if res < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"IORING_UNREGISTER_BUFFERS: {os.strerror(e)}")
        self.registered = None

    # -- one operation at a time ---------------------------------------------------------

    def _submit_wait(self, opcode: int, fd: int, addr: int, length: int, offset: int) -> int:
        tail = self._sq_tail[0]
        idx = tail & self._sq_mask
        sqe = _SQE.pack(opcode, 0, 0, fd, offset & 0xFFFF_FFFF_FFFF_FFFF, addr, length, 0,
                        0x616E6F6E, 0, 0, 0, 0, 0)
        ctypes.memmove(self._sqes + idx * _SQE.size, sqe, _SQE.size)
        self._sq_array[idx] = idx
        self._sq_tail[0] = (tail + 1) & 0xFFFF_FFFF
        res = libc.syscall(ctypes.c_long(libc.NR_IO_URING_ENTER), ctypes.c_long(self.fd),
                           ctypes.c_long(1), ctypes.c_long(1),
                           ctypes.c_long(IORING_ENTER_GETEVENTS), ctypes.c_void_p(0),
                           ctypes.c_long(0))
        if res < 0:
            e = ctypes.get_errno()
            raise OSError(e, f"io_uring_enter: {os.strerror(e)}")
        head = self._cq_head[0]
        if head == self._cq_tail[0]:
            raise IoUringError(0, "io_uring_enter returned without a completion")
        raw = ctypes.string_at(self._cqes + (head & self._cq_mask) * _CQE.size, _CQE.size)
        self._cq_head[0] = (head + 1) & 0xFFFF_FFFF
        _, result, _ = _CQE.unpack(raw)
        if result < 0:
            raise IoUringError(-result, f"io_uring op {opcode}: {os.strerror(-result)}")
        return int(result)

    def read_fixed(self, fd: int, addr: int, length: int, offset: int = 0) -> int:
        """``READ_FIXED``: the kernel writes *length* bytes from *fd* into the pinned pages."""
        return self._submit_wait(IORING_OP_READ_FIXED, fd, addr, length, offset)

    def write_fixed(self, fd: int, addr: int, length: int, offset: int = 0) -> int:
        """``WRITE_FIXED``: the kernel reads *length* bytes of the pinned pages into *fd*."""
        return self._submit_wait(IORING_OP_WRITE_FIXED, fd, addr, length, offset)

    def close(self) -> None:
        """Unmap the rings and close the fd (registered buffers go with the last fd)."""
        for addr, size in reversed(self._maps):
            with contextlib.suppress(OSError):
                libc.munmap(addr, size)
        self._maps.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
