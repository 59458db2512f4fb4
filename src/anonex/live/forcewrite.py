"""Forced writes through ``/proc/PID/mem`` (FOLL_FORCE) on kernels that restrict them.

Since 6.12 the kernel can be built to allow FOLL_FORCE through ``/proc/PID/mem`` always
(``CONFIG_PROC_MEM_ALWAYS_FORCE``), only for the target's ptracer
(``CONFIG_PROC_MEM_FORCE_PTRACE``: ``proc_mem_foll_force()`` in fs/proc/base.c wants the
target traced, with the writing task as its tracer), or never; the boot parameter
``proc_mem.force_override`` overrides it. Debian's 7.2 chose "ptrace": an untraced forced
write into a read-only mapping fails with EIO.

:func:`mode` finds out which, once per process, by a forced write of the driver into a
read-only page of its own (never traced by itself): it works where forcing is always
allowed (every kernel before 6.12 too). Elsewhere :func:`write_as_tracer` does the write
from a short-lived helper forked from the driver: it PTRACE_SEIZEs the target (which does
not stop it: the actor stays blocked reading its command pipe), writes, and exits, and its
exit detaches it (no stop ever happens, so nothing in the target runs or faults). The
driver maps no test memory, so the fork shares nothing the scenario observes. The
helper's own faults around the write are measured like an actor's (a warm-up on a control
page of its own first), because GUP faults on the target are accounted to the writer.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import signal
import time
from functools import lru_cache

from anonex.live import libc
from anonex.live.pagedata import PAGE, page_bytes

WARMUP_ROUNDS = 32
ALWAYS, PTRACE, NEVER = "always", "ptrace", "never"


@lru_cache(maxsize=1)
def mode() -> str:
    """``always`` when a forced write needs no tracer here, ``ptrace`` otherwise (whether
    a tracer may is found out by the first such write; see :func:`write_as_tracer`)."""
    addr = libc.mmap(0, PAGE, libc.PROT_READ, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
    src = ctypes.create_string_buffer(b"x")
    try:
        fd = os.open("/proc/self/mem", os.O_RDWR | os.O_CLOEXEC)
        try:
            libc.pwrite(fd, ctypes.addressof(src), 1, addr)
        finally:
            os.close(fd)
    except OSError as e:
        if e.errno in (errno.EIO, errno.EPERM, errno.EFAULT):
            return PTRACE
        raise
    finally:
        libc.munmap(addr, PAGE)
    return ALWAYS


def note() -> str:
    """The run's note about forced writes ("" where they need nothing special)."""
    if mode() == ALWAYS:
        return ""
    return ("forced /proc/PID/mem writes need the target's ptracer here "
            "(CONFIG_PROC_MEM_FORCE_PTRACE or proc_mem.force_override): a helper "
            "PTRACE_SEIZEs the target (no stop) and writes")


PTRACE_SEIZE = 0x4206


def _helper(pid: int, addr: int, npages: int, tag: str, wfd: int) -> None:
    """Body of the helper process: seize, measure the write, report, exit (detaches)."""
    out: dict[str, object]
    try:
        if libc.ptrace(PTRACE_SEIZE, pid, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"PTRACE_SEIZE {pid}: "
                          f"{os.strerror(ctypes.get_errno())}")
        length = npages * PAGE
        data = ctypes.create_string_buffer(page_bytes(tag) * npages, length)
        ctl = libc.mmap(0, length, libc.PROT_READ | libc.PROT_WRITE,
                        libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
        ctypes.memset(ctl, 0, length)
        counter = libc.FaultCounter()
        fd = os.open(f"/proc/{pid}/mem", os.O_RDWR)
        own = os.open("/proc/self/mem", os.O_RDWR)
        src = ctypes.addressof(data)
        for _ in range(WARMUP_ROUNDS):
            before = counter.read()
            libc.pwrite(own, src, length, ctl)
            if counter.read() == before:
                break
        before = counter.read()
        got = libc.pwrite(fd, src, length, addr)
        out = {"faults": counter.read() - before, "written": got}
    except OSError as e:
        out = {"error": str(e), "errno": e.errno}
    except BaseException as e:  # report anything rather than die silently
        out = {"error": f"{type(e).__name__}: {e}"}
    os.write(wfd, json.dumps(out).encode())


def write_as_tracer(pid: int, addr: int, npages: int, tag: str,
                    timeout: float = 10.0) -> dict[str, object]:
    """Write *npages* pages of *tag* at *addr* in process *pid* through its
    ``/proc/PID/mem``, as its tracer (module docstring). Returns ``{"faults", "written"}``
    or ``{"error", "errno"}``."""
    r, w = os.pipe()
    child = -1
    try:
        child = os.fork()
        if child == 0:  # pragma: no cover - the helper never returns
            try:
                os.close(r)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                _helper(pid, addr, npages, tag, w)
            finally:
                os._exit(0)
        os.close(w)
        w = -1
        chunks: list[bytes] = []
        os.set_blocking(r, False)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(BlockingIOError):
                b = os.read(r, 4096)
                if not b:
                    break
                chunks.append(b)
                continue
            if time.monotonic() > deadline:
                os.kill(child, signal.SIGKILL)
                return {"error": f"the forced-write helper (pid {child}) hung"}
            time.sleep(0.001)
        os.waitpid(child, 0)
        child = -1
        text = b"".join(chunks)
        return json.loads(text) if text else {"error": "the forced-write helper died"}
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
        if child > 0:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)
