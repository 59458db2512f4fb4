"""Where O_DIRECT really pins user pages: a raw block device of the run's own.

dio-read/dio-write must make the kernel take the buffer's pages with GUP (FOLL_PIN from
6.3, FOLL_GET before) for the duration of the I/O. A filesystem decides that for itself:
tmpfs copies through the page cache, and so did the overlay and 9p filesystems a booted
guest's directories sit on (O_DIRECT writes from a shared page did not unshare on 6.12 and
7.2 guests). The block device layer does not: O_DIRECT on a block device always builds its
bios from the user pages, whatever the device stores them in. So the target is, in order:

1. a zram device of the run's own (an unused one, a hot-added one, or zram loaded): a
   small disksize, reset at the end; never the device the run swaps to (that one is set
   up and claimed separately, :func:`anonex.live.machine.ensure_swap`);
2. a loop device over a file in the run's private directory (``losetup``), detached at
   the end;
3. a directory on a block-device filesystem (ext2/3/4, xfs, btrfs) where an aligned
   O_DIRECT write succeeds (``ANONEX_DIO_DIR`` first), the old way; never tmpfs, overlay,
   9p or another filesystem that may copy.

Every change is recorded in the run's :class:`~anonex.live.safety.SystemState` right after
it is made, with SIGINT/SIGTERM held back. Nothing raises but :class:`DioUnavailable`, with
every reason.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass

from anonex.live import libc
from anonex.live.safety import SystemState, deferred_signals

DIO_SIZE = 4 << 20  # bytes: a 2 MiB THP and room to spare

#: statfs magic numbers of filesystems whose O_DIRECT goes to the block device
_BLOCK_FS = {0xEF53: "ext2/3/4", 0x58465342: "xfs", 0x9123683E: "btrfs"}


class DioUnavailable(Exception):
    """No target where O_DIRECT pins; the message gives every reason."""


@dataclass(frozen=True, slots=True)
class DioTarget:
    """Where the actors do direct I/O: a block device, or a directory for files."""

    path: str
    kind: str  # "zram", "loop" or "directory"

    @property
    def note(self) -> str:
        """The run's note about it ("" for a zram device, the expected case)."""
        if self.kind == "zram":
            return ""
        if self.kind == "loop":
            return f"O_DIRECT: on a loop device ({self.path}; no zram device could be had)"
        return (f"O_DIRECT: on files in {self.path} (neither zram nor a loop device could "
                "be had); it pins only if that filesystem does direct I/O")


def _works(path: str, create: bool) -> str | None:
    """``None`` if an aligned O_DIRECT write and read-back succeed on *path*, else why."""
    buf = mmap.mmap(-1, libc.PAGE_SIZE)  # page-aligned, private to the driver
    try:
        flags = os.O_RDWR | os.O_DIRECT | (os.O_CREAT if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if os.pwrite(fd, buf, 0) != libc.PAGE_SIZE:
                return f"{path}: short O_DIRECT write"
            if os.preadv(fd, [buf], 0) != libc.PAGE_SIZE:
                return f"{path}: short O_DIRECT read"
        finally:
            os.close(fd)
    except OSError as e:
        return f"{path}: O_DIRECT: {e.strerror}"
    finally:
        buf.close()
        if create:
            with contextlib.suppress(OSError):
                os.unlink(path)
    return None


def _zram(st: SystemState) -> str:
    from anonex.live import machine

    with deferred_signals():
        try:
            n = machine.zram_device(st)
        except machine.Unavailable as e:
            raise DioUnavailable(f"zram: {e}") from None
        dev, sysdir = f"/dev/zram{n}", f"/sys/block/zram{n}"
        if not machine.wait_for(dev):
            raise DioUnavailable(f"zram: {dev} did not appear")
        try:
            with open(f"{sysdir}/disksize", "w") as f:
                f.write(str(DIO_SIZE))
        except OSError as e:
            raise DioUnavailable(f"zram{n}: cannot set disksize: {e.strerror}") from None
        st.on_restore("write", f"{sysdir}/reset", "1")
    return dev


def _loop(st: SystemState, workdir: str) -> str:
    losetup = shutil.which("losetup")
    if losetup is None:
        raise DioUnavailable("loop: losetup(8) is not installed")
    backing = os.path.join(workdir, "dio.img")
    with open(backing, "wb") as f:
        f.truncate(DIO_SIZE)
    with deferred_signals():
        r = subprocess.run([losetup, "--find", "--show", backing], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise DioUnavailable(f"loop: {r.stderr.strip() or 'losetup failed'}")
        dev = r.stdout.strip()
        st.on_restore("command", losetup, "-d", dev)
    return dev


def _directory() -> str:
    reasons: list[str] = []
    for d in (os.environ.get("ANONEX_DIO_DIR", ""), "/var/tmp", os.getcwd(),
              tempfile.gettempdir()):
        if not d or not os.path.isdir(d):
            continue
        try:
            kind = _BLOCK_FS.get(libc.fs_type(d))
        except OSError as e:
            reasons.append(f"{d}: {e.strerror}")
            continue
        if kind is None:
            reasons.append(f"{d} is not on a block-device filesystem")
            continue
        why = _works(os.path.join(d, f".anonex-dio-{os.getpid()}"), create=True)
        if why is None:
            return d
        reasons.append(why)
    raise DioUnavailable("directory: " + ("; ".join(reasons) or "no candidate"))


def ensure_dio(st: SystemState, workdir: str) -> DioTarget:
    """A target for the run's direct I/O (module docstring), set up and recorded in *st*.
    *workdir* is the run's private directory (for a loop device's backing file)."""
    reasons: list[str] = []
    for kind in ("zram", "loop"):
        try:
            dev = _zram(st) if kind == "zram" else _loop(st, workdir)
        except DioUnavailable as e:
            reasons.append(str(e))
            continue
        if not stat.S_ISBLK(os.stat(dev).st_mode):
            reasons.append(f"{kind}: {dev} is not a block device")
            continue
        why = _works(dev, create=False)
        if why is None:
            return DioTarget(dev, kind)
        reasons.append(f"{kind}: {why}")
    try:
        return DioTarget(_directory(), "directory")
    except DioUnavailable as e:
        reasons.append(str(e))
    raise DioUnavailable("; ".join(reasons))
