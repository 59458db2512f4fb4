"""Where O_DIRECT really is direct I/O: choosing a directory for dio-read/dio-write files.

O_DIRECT pins the user pages (a short-term FOLL_PIN) only on a filesystem that does direct
I/O to a block device; tmpfs and ramfs accept the flag but copy through the page cache. The
first candidate directory on another filesystem where an aligned O_DIRECT write succeeds
wins. The answer is cached per process. Nothing raises: no usable directory gives ``None``
with the reasons.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from functools import lru_cache

from anonex.live import libc

_NOT_DIRECT = {libc.TMPFS_MAGIC: "tmpfs", libc.RAMFS_MAGIC: "ramfs"}


def _try(directory: str) -> str | None:
    """``None`` if O_DIRECT works in *directory*, else why not."""
    try:
        kind = _NOT_DIRECT.get(libc.fs_type(directory))
    except OSError as e:
        return f"{directory}: {e.strerror}"
    if kind is not None:
        return f"{directory} is on {kind} (no real direct I/O)"
    try:
        fd, path = tempfile.mkstemp(prefix=".anonex-dio-", dir=directory)
    except OSError as e:
        return f"{directory}: {e.strerror}"
    os.close(fd)
    buf = mmap.mmap(-1, libc.PAGE_SIZE)  # page-aligned, private to the driver
    try:
        dfd = os.open(path, os.O_RDWR | os.O_DIRECT)
        try:
            if os.pwrite(dfd, buf, 0) != libc.PAGE_SIZE:
                return f"{directory}: short O_DIRECT write"
        finally:
            os.close(dfd)
    except OSError as e:
        return f"{directory}: O_DIRECT: {e.strerror}"
    finally:
        buf.close()
        os.unlink(path)
    return None


@lru_cache(maxsize=1)
def direct_io_dir() -> tuple[str | None, str]:
    """``(directory, "")`` for the first place where O_DIRECT works, else ``(None, why)``."""
    candidates = [os.environ.get("ANONEX_DIO_DIR", ""), "/var/tmp", os.getcwd(),
                  tempfile.gettempdir()]
    reasons: list[str] = []
    for d in candidates:
        if not d or not os.path.isdir(d):
            continue
        why = _try(d)
        if why is None:
            return d, ""
        reasons.append(why)
    return None, "; ".join(reasons) or "no candidate directory"
