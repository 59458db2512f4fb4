"""The live-kernel backend: the same scenarios, run by real processes on the running kernel.

Modules, one mechanism each:

* :mod:`.libc` - system calls through ctypes (mmap, madvise, vmsplice, process_vm_*, …)
* :mod:`.iouring` - a raw io_uring ring: long-term pins and "device" reads/writes
* :mod:`.channel` - driver <-> actor FIFO transport (JSON lines, lock-step)
* :mod:`.actor` - the command loop each scenario process runs
* :mod:`.observe` - pagemap/kpageflags/kpagecount observation without side effects
* :mod:`.safety` - restore system settings and kill actors on every exit path
* :mod:`.machine` - system-wide resources (swap on zram, KSM, THP/mTHP, hugetlb pool) and
  the lock that lets one live run at a time change them
* :mod:`.backend` - :class:`~anonex.live.backend.LiveBackend`, the Backend protocol

:func:`available` says whether this machine can run it (Linux, root, /proc/kpageflags).
"""

from __future__ import annotations

import os
import sys


class LiveUnavailable(RuntimeError):
    """The live backend cannot run here; the message says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def available() -> tuple[bool, str]:
    """``(True, "")`` when the live backend can run here, else ``(False, reason)``."""
    if not sys.platform.startswith("linux"):
        return False, f"the live kernel backend needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return False, ("the live kernel backend needs root: PFNs in /proc/PID/pagemap and "
                       "/proc/kpageflags are readable only with CAP_SYS_ADMIN")
    for path in ("/proc/kpageflags", "/proc/kpagecount"):
        if not os.path.exists(path):
            return False, f"{path} is missing (kernel built without CONFIG_PROC_PAGE_MONITOR)"
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            return False, f"cannot open {path}: {e.strerror}"
        os.close(fd)
    if not os.path.exists(f"/proc/{os.getpid()}/pagemap"):
        return False, "/proc/PID/pagemap is missing"
    return True, ""


__all__ = ["LiveUnavailable", "available"]
