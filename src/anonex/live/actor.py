"""The actor: one process of a scenario, running a blocking command loop.

An actor is forked (by the driver for P0, by another actor for every later process) and
then only executes commands it reads from its channel, one at a time, replying once to
each. Test memory is touched only through raw addresses (ctypes ``memmove``) or by the
kernel (syscalls given raw addresses), never through Python objects.

Fault counts: the minor+major faults of the calling thread around exactly one access.
After fork the interpreter's own heap is COW-shared, so the same code path is first run
against a private *control* area until it takes no fault; only then is the real access
measured (reference/live-kernel.md §1). GUP faults taken on another process's memory
(process_vm_readv/writev, /proc/PID/mem) are accounted to the caller, so those counts are
measured the same way.

How it fails: an operation that the kernel refuses (errno) or that would kill the process
(an access without the needed protection: the actor checks /proc/self/maps first instead
of taking SIGSEGV) replies ``{"error": …}`` and the loop goes on. When the driver goes away
(EOF on the command FIFO) the actor exits. Actors always end with ``os._exit``.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import fcntl
import gc
import os
import signal
import traceback
from collections.abc import Callable
from typing import Any

from anonex.live import libc
from anonex.live.channel import ActorEnd
from anonex.live.iouring import Ring
from anonex.live.pagedata import PAGE, page_bytes, tag_of, tags_of
from anonex.scenario.ast import join_tags

WARMUP_ROUNDS = 32
LOOK_AHEAD = 256  # bytes of a page read first when looking for its tag

Reply = dict[str, Any]


class StepFailed(Exception):
    """The operation could not be done; the message goes back to the driver."""


class _Area:
    """A private scratch mapping of at least *npages* pages, grown on demand."""

    def __init__(self) -> None:
        self.addr = 0
        self.npages = 0

    def ensure(self, npages: int) -> int:
        if npages > self.npages:
            if self.addr:
                libc.munmap(self.addr, self.npages * PAGE)
            n = max(4, 1 << (npages - 1).bit_length())
            self.addr = libc.mmap(0, n * PAGE, libc.PROT_READ | libc.PROT_WRITE,
                                  libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
            self.npages = n
            ctypes.memset(self.addr, 0, n * PAGE)  # fault every page in now
        return self.addr


def _vmas() -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    with open("/proc/self/maps", "rb") as f:
        for line in f:
            rng, perms = line.split(b" ", 2)[:2]
            lo, hi = rng.split(b"-")
            out.append((int(lo, 16), int(hi, 16), perms.decode()))
    return out


def check_access(addr: int, npages: int, need: str) -> None:
    """Raise :class:`StepFailed` (as the SIGSEGV the access would take) unless every page of
    ``[addr, addr + npages pages)`` is mapped with the permissions in *need* (``r``/``w``)."""
    vmas = _vmas()
    starts = [v[0] for v in vmas]
    for i in range(npages):
        a = addr + i * PAGE
        k = bisect.bisect_right(starts, a) - 1
        if k < 0 or not vmas[k][0] <= a < vmas[k][1]:
            raise StepFailed(f"SIGSEGV: no mapping at {a:#x}")
        perms = vmas[k][2]
        for p in need:
            if p not in perms:
                kind = "write to" if p == "w" else "read of"
                raise StepFailed(f"SIGSEGV: {kind} {a:#x} in a mapping with protection "
                                 f"{perms[:3]}")


class Actor:
    """The state of one actor process and its operations (``op_<name>``)."""

    def __init__(self, name: str, chan: ActorEnd) -> None:
        self.name = name
        self.chan = chan
        self.counter = libc.FaultCounter()
        self.control = _Area()
        self.src = _Area()
        self.dst = _Area()
        self.pipes: dict[str, list[tuple[int, int]]] = {}  # a handle: pipes in order
        self.rings: dict[str, Ring] = {}
        self.children: set[int] = set()
        self.seq = 0
        self.control.ensure(1)
        self.src.ensure(1)
        self.dst.ensure(1)

    # -- the loop ----------------------------------------------------------------------------

    def loop(self) -> None:
        while True:
            msg = self.chan.recv()
            if msg is None:
                return
            op = str(msg.get("op"))
            handler: Callable[[dict[str, Any]], Reply | None] | None = getattr(
                self, "op_" + op, None)
            reply: Reply | None
            try:
                if handler is None:
                    raise StepFailed(f"unknown actor operation {op!r}")
                reply = handler(msg)
            except StepFailed as e:
                reply = {"error": str(e)}
            except OSError as e:
                reply = {"error": str(e), "errno": e.errno}
            except Exception as e:  # a bug in an operation must not kill the actor
                reply = {"error": f"{type(e).__name__}: {e}",
                         "traceback": traceback.format_exc(limit=4)}
            if reply is None:  # the new child after fork: nothing to answer
                continue
            self.chan.send(reply)
            if op == "exit" and "error" not in reply:
                return

    # -- measuring ---------------------------------------------------------------------------

    def measure(self, fn: Callable[[int], object], addr: int, control: int) -> int:
        """Faults taken by ``fn(addr)``, after warming the same path up on ``fn(control)``."""
        read = self.counter.read
        for _ in range(WARMUP_ROUNDS):
            before = read()
            fn(control)
            if read() == before:
                break
        before = read()
        fn(addr)
        return read() - before

    def _fill(self, area: _Area, npages: int, tag: str) -> int:
        base = area.ensure(npages)
        data = page_bytes(tag)
        for i in range(npages):
            ctypes.memmove(base + i * PAGE, data, PAGE)
        return base

    def _tags(self, base: int, npages: int) -> str:
        return join_tags([tag_of(ctypes.string_at(base + i * PAGE, PAGE)) for i in range(npages)])

    # -- memory ------------------------------------------------------------------------------

    def op_ping(self, msg: dict[str, Any]) -> Reply:
        return {"pid": os.getpid()}

    def op_mmap(self, msg: dict[str, Any]) -> Reply:
        """A private anonymous region at a fixed address: ``small`` (MADV_NOHUGEPAGE, so no
        THP or mTHP setting can interfere), ``thp`` (2 MiB, MADV_HUGEPAGE, populated by one
        write fault that stores a zero byte: the data stays "") or ``hugetlb`` (2 MiB
        MAP_HUGETLB, not populated)."""
        addr, npages, kind = int(msg["addr"]), int(msg["npages"]), str(msg["kind"])
        length = npages * PAGE
        flags = libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_FIXED_NOREPLACE
        if kind == "hugetlb":
            flags |= libc.MAP_HUGETLB | libc.MAP_HUGE_2MB
        elif kind not in ("small", "thp"):
            raise StepFailed(f"region kind {kind!r} is not implemented in the actor")
        got = libc.mmap(addr, length, libc.PROT_READ | libc.PROT_WRITE, flags)
        if got != addr:  # kernels before 4.17 treat FIXED_NOREPLACE as a hint
            libc.munmap(got, length)
            raise StepFailed(f"mmap at {addr:#x} landed at {got:#x}")
        if kind == "small":
            libc.madvise(addr, length, libc.MADV["nohugepage"])
        elif kind == "thp":
            libc.madvise(addr, length, libc.MADV["hugepage"])
            ctl = self.control.ensure(1)
            return {"faults": self.measure(lambda base: ctypes.memset(base, 0, 1), addr, ctl)}
        return {}

    def op_write(self, msg: dict[str, Any]) -> Reply:
        addr, npages = int(msg["addr"]), int(msg["npages"])
        check_access(addr, npages, "w")
        src = self._fill(self.src, 1, str(msg["tag"]))
        ctl = self.control.ensure(npages)
        mm = ctypes.memmove

        def store(base: int) -> None:
            for i in range(npages):
                mm(base + i * PAGE, src, PAGE)

        return {"faults": self.measure(store, addr, ctl)}

    def op_read(self, msg: dict[str, Any]) -> Reply:
        addr, npages = int(msg["addr"]), int(msg["npages"])
        check_access(addr, npages, "r")
        dst = self.dst.ensure(npages)
        ctl = self.control.ensure(npages)
        mm = ctypes.memmove

        def load(base: int) -> None:
            for i in range(npages):
                mm(dst + i * PAGE, base + i * PAGE, PAGE)

        faults = self.measure(load, addr, ctl)  # the last call copied the region's pages
        return {"faults": faults, "value": self._tags(dst, npages)}

    def op_touch(self, msg: dict[str, Any]) -> Reply:
        addr, npages = int(msg["addr"]), int(msg["npages"])
        check_access(addr, npages, "r")
        dst = self.dst.ensure(1)
        ctl = self.control.ensure(npages)
        mm = ctypes.memmove

        def load1(base: int) -> None:
            for i in range(npages):
                mm(dst, base + i * PAGE, 1)

        return {"faults": self.measure(load1, addr, ctl)}

    def op_look(self, msg: dict[str, Any]) -> Reply:
        """Tags of pages the driver saw present: plain loads, which cannot fault. A page
        whose mapping is not readable (PROT_NONE) gives ``None`` instead of SIGSEGV."""
        vmas = _vmas()
        starts = [v[0] for v in vmas]
        tags: list[str | None] = []
        for a in (int(x) for x in msg["addrs"]):
            k = bisect.bisect_right(starts, a) - 1
            if k < 0 or not vmas[k][0] <= a < vmas[k][1] or "r" not in vmas[k][2]:
                tags.append(None)
                continue
            head = ctypes.string_at(a, LOOK_AHEAD)  # tags are short: the NUL is near
            tags.append(tag_of(head if b"\0" in head else ctypes.string_at(a, PAGE)))
        return {"tags": tags}

    def op_munmap(self, msg: dict[str, Any]) -> Reply:
        libc.munmap(int(msg["addr"]), int(msg["length"]))
        return {}

    def op_mprotect(self, msg: dict[str, Any]) -> Reply:
        libc.mprotect(int(msg["addr"]), int(msg["length"]), libc.PROT[str(msg["prot"])])
        return {}

    def op_madvise(self, msg: dict[str, Any]) -> Reply:
        libc.madvise(int(msg["addr"]), int(msg["length"]), libc.MADV[str(msg["advice"])])
        return {}

    def op_mremap(self, msg: dict[str, Any]) -> Reply:
        libc.mremap_fixed(int(msg["addr"]), int(msg["length"]), int(msg["new"]))
        return {}

    # -- processes ---------------------------------------------------------------------------

    def op_fork(self, msg: dict[str, Any]) -> Reply | None:
        pid = os.fork()
        if pid == 0:
            self._become(str(msg["child"]), str(msg["cmd"]), str(msg["reply"]))
            return None
        self.children.add(pid)
        return {"pid": pid}

    def _become(self, name: str, cmd: str, reply: str) -> None:
        """In a new child: drop the parent's channel and talk on our own."""
        self.chan.close()
        self.children = set()
        self.name = name
        self.chan = ActorEnd(cmd, reply)

    def op_exit(self, msg: dict[str, Any]) -> Reply:
        return {}

    def op_reap(self, msg: dict[str, Any]) -> Reply:
        pid = int(msg["pid"])
        _, status = os.waitpid(pid, 0)
        self.children.discard(pid)
        return {"status": status}

    # -- pipes (vmsplice) --------------------------------------------------------------------
    #
    # One pipe holds at most /proc/sys/fs/pipe-max-size bytes (1 MiB by default) without
    # CAP_SYS_RESOURCE, so a handle that must hold more (a 2 MiB THP or hugetlb page) is a
    # list of pipes filled in order and read in order.

    @staticmethod
    def _new_pipe() -> tuple[int, int]:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        return r, w

    @staticmethod
    def _make_room(r: int, w: int, more: int) -> int:
        """Grow the pipe towards *more* free bytes (never past what we may); returns the
        free bytes it has."""
        held = ctypes.c_int(0)
        fcntl.ioctl(r, 0x541B, held)  # FIONREAD
        cap = fcntl.fcntl(w, libc.F_GETPIPE_SZ)
        need = held.value + more
        if need > cap:
            size = min(1 << (need - 1).bit_length(), _pipe_max_size())
            if size > cap:
                with contextlib.suppress(OSError):  # EPERM past the user's pipe limits
                    cap = fcntl.fcntl(w, libc.F_SETPIPE_SZ, size)
        return cap - held.value

    def _pipe_room(self, name: str, want: int) -> tuple[int, int]:
        """(write end, free bytes) for *want* more bytes in handle *name*: the last pipe of
        the handle, or a new one when that is full."""
        pipes = self.pipes.setdefault(name, [])
        if pipes:
            r, w = pipes[-1]
            room = self._make_room(r, w, want)
            if room >= PAGE:
                return w, room
        r, w = self._new_pipe()
        pipes.append((r, w))
        return w, self._make_room(r, w, want)

    def op_vmsplice(self, msg: dict[str, Any]) -> Reply:
        addr, length, name = int(msg["addr"]), int(msg["length"]), str(msg["name"])
        done = 0
        while done < length:
            w, room = self._pipe_room(name, length - done)
            n = libc.vmsplice(w, addr + done, min(room, length - done))
            if n <= 0:
                raise StepFailed(f"vmsplice stopped after {done} of {length} bytes")
            done += n
        return {}

    def op_read_pipe(self, msg: dict[str, Any]) -> Reply:
        name = str(msg["name"])
        if name not in self.pipes:
            if name in self.rings:
                return self.op_dma_read(msg)
            raise StepFailed(f"{self.name} holds no pipe {name!r}")
        chunks: list[bytes] = []
        for r, _ in self.pipes[name]:
            while True:
                try:
                    b = os.read(r, 1 << 20)
                except BlockingIOError:
                    break
                if not b:
                    break
                chunks.append(b)
        return {"value": join_tags(tags_of(b"".join(chunks)))}

    # -- long-term pins (io_uring fixed buffers) ---------------------------------------------

    def op_pin(self, msg: dict[str, Any]) -> Reply:
        addr, length, name = int(msg["addr"]), int(msg["length"]), str(msg["name"])
        if name in self.rings:
            raise StepFailed(f"pin {name!r} is already held")
        ring = Ring()
        try:
            ring.register(addr, length)
        except BaseException:
            ring.close()
            raise
        self.rings[name] = ring
        return {}

    def _ring(self, name: str) -> tuple[Ring, int, int]:
        ring = self.rings.get(name)
        if ring is None or ring.registered is None:
            raise StepFailed(f"{self.name} holds no pin {name!r}")
        addr, length = ring.registered
        return ring, addr, length

    def op_unpin(self, msg: dict[str, Any]) -> Reply:
        ring, _, _ = self._ring(str(msg["name"]))
        ring.unregister()
        ring.close()
        del self.rings[str(msg["name"])]
        return {}

    def op_dma_write(self, msg: dict[str, Any]) -> Reply:
        """The "device" writes the tag into every pinned page: READ_FIXED from a pipe,
        one pipeful at a time."""
        ring, addr, length = self._ring(str(msg["name"]))
        page = page_bytes(str(msg["tag"]))
        r, w = self._new_pipe()
        try:
            done = 0
            while done < length:
                chunk = min(self._make_room(r, w, length - done), length - done)
                os.write(w, page * (chunk // PAGE))
                got = 0
                while got < chunk:
                    n = ring.read_fixed(r, addr + done + got, chunk - got)
                    if n <= 0:
                        raise StepFailed(f"READ_FIXED stopped after {done + got} of "
                                         f"{length} bytes")
                    got += n
                done += chunk
        finally:
            os.close(r)
            os.close(w)
        return {}

    def op_dma_read(self, msg: dict[str, Any]) -> Reply:
        """The "device" reads every pinned page: WRITE_FIXED into a pipe, one pipeful at a
        time."""
        ring, addr, length = self._ring(str(msg["name"]))
        r, w = self._new_pipe()
        parts: list[bytes] = []
        try:
            done = 0
            while done < length:
                chunk = min(self._make_room(r, w, length - done), length - done)
                n = ring.write_fixed(w, addr + done, chunk)
                if n <= 0:
                    raise StepFailed(f"WRITE_FIXED stopped after {done} of {length} bytes")
                got = b""
                while len(got) < n:
                    got += os.read(r, n - len(got))
                parts.append(got)
                done += n
        finally:
            os.close(r)
            os.close(w)
        return {"value": join_tags(tags_of(b"".join(parts)))}

    # -- O_DIRECT (short-term pins) ----------------------------------------------------------
    #
    # The target is a block device of the run's own (zram or loop: O_DIRECT on a block
    # device always pins the user pages) or, failing that, a directory for files
    # (anonex.live.dio). The actor's own scratch pages (src, dst) carry the data in and out,
    # so that only the test pages are the buffer of the measured I/O.

    def _dio_open(self, msg: dict[str, Any]) -> tuple[int, str | None]:
        """(O_DIRECT descriptor, file to remove afterwards or None) for a dio message."""
        target = str(msg["target"])
        if msg.get("device"):
            return os.open(target, os.O_RDWR | os.O_DIRECT | os.O_CLOEXEC), None
        self.seq += 1
        path = os.path.join(target, f"{self.name}-{os.getpid()}-{self.seq}.dat")
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT | os.O_CLOEXEC, 0o600), path

    @staticmethod
    def _dio_close(fd: int, path: str | None) -> None:
        os.close(fd)
        if path is not None:
            os.unlink(path)

    def _dio_full(self, what: str, got: int, length: int) -> None:
        if got != length:
            raise StepFailed(f"O_DIRECT {what} gave {got} of {length} bytes")

    def op_dio_read(self, msg: dict[str, Any]) -> Reply:
        """The device writes *tag* into the pages: an O_DIRECT read into them."""
        addr, npages = int(msg["addr"]), int(msg["npages"])
        length = npages * PAGE
        src = self._fill(self.src, npages, str(msg["tag"]))
        ctl = self.control.ensure(npages)
        fd, path = self._dio_open(msg)
        try:
            self._dio_full("write", libc.pwrite(fd, src, length, 0), length)
            got = [0]

            def dio(base: int) -> None:
                got[0] = libc.pread(fd, base, length, 0)

            faults = self.measure(dio, addr, ctl)
            self._dio_full("read", got[0], length)
        finally:
            self._dio_close(fd, path)
        return {"faults": faults}

    def op_dio_write(self, msg: dict[str, Any]) -> Reply:
        """The device reads the pages: an O_DIRECT write from them; the value is what the
        device got."""
        addr, npages = int(msg["addr"]), int(msg["npages"])
        length = npages * PAGE
        ctl = self.control.ensure(npages)
        dst = self.dst.ensure(npages)
        fd, path = self._dio_open(msg)
        try:
            got = [0]

            def dio(base: int) -> None:
                got[0] = libc.pwrite(fd, base, length, 0)

            faults = self.measure(dio, addr, ctl)
            self._dio_full("write", got[0], length)
            self._dio_full("read", libc.pread(fd, dst, length, 0), length)
            value = self._tags(dst, npages)
        finally:
            self._dio_close(fd, path)
        return {"faults": faults, "value": value}

    # -- another process's memory ------------------------------------------------------------

    def op_peek(self, msg: dict[str, Any]) -> Reply:
        pid, addr, npages = int(msg["pid"]), int(msg["addr"]), int(msg["npages"])
        length = npages * PAGE
        dst = self.dst.ensure(npages)
        ctl = self.control.ensure(npages)
        me = os.getpid()
        got = [0]

        def pvm(base: int) -> None:
            got[0] = libc.process_vm_readv(pid if base == addr else me, dst, base, length)

        faults = self.measure(pvm, addr, ctl)
        if got[0] != length:
            raise StepFailed(f"process_vm_readv gave {got[0]} of {length} bytes")
        return {"faults": faults, "value": self._tags(dst, npages)}

    def op_poke(self, msg: dict[str, Any]) -> Reply:
        pid, addr, npages = int(msg["pid"]), int(msg["addr"]), int(msg["npages"])
        length = npages * PAGE
        src = self._fill(self.src, npages, str(msg["tag"]))
        ctl = self.control.ensure(npages)
        me = os.getpid()
        got = [0]

        def pvm(base: int) -> None:
            got[0] = libc.process_vm_writev(pid if base == addr else me, src, base, length)

        faults = self.measure(pvm, addr, ctl)
        if got[0] != length:
            raise StepFailed(f"process_vm_writev wrote {got[0]} of {length} bytes")
        return {"faults": faults}

    def op_force_write(self, msg: dict[str, Any]) -> Reply:
        pid, addr, npages = int(msg["pid"]), int(msg["addr"]), int(msg["npages"])
        length = npages * PAGE
        src = self._fill(self.src, npages, str(msg["tag"]))
        ctl = self.control.ensure(npages)
        fd = os.open(f"/proc/{pid}/mem", os.O_RDWR)
        own = os.open("/proc/self/mem", os.O_RDWR)
        try:
            got = [0]

            def poke(base: int) -> None:
                got[0] = libc.pwrite(fd if base == addr else own, src, length, base)

            faults = self.measure(poke, addr, ctl)
        finally:
            os.close(fd)
            os.close(own)
        if got[0] != length:
            raise StepFailed(f"/proc/{pid}/mem write gave {got[0]} of {length} bytes")
        return {"faults": faults}


def _pipe_max_size() -> int:
    """The largest pipe an unprivileged process may ask for (/proc/sys/fs/pipe-max-size)."""
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 20


def actor_main(name: str, cmd: str, reply: str) -> None:
    """Body of a freshly forked actor; never returns (``os._exit``)."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        gc.disable()
        gc.freeze()
        actor = Actor(name, ActorEnd(cmd, reply))
        actor.loop()
    except BaseException:
        code = 70
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        os._exit(code)
