"""``anonex page-types`` on the running kernel.

These need root and ``/proc/kpageflags``; they skip with the reason otherwise, and fail
instead when ``ANONEX_REQUIRE_LIVE=1``. Exact agreement with the C tool is checked on
saved dumps (``test_pagetypes_golden.py``): a live machine changes between two walks.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anonex.pagetypes.cli import main

PAGE = 4096
MB2 = 2 << 20
BASE = 0x3E0000000000  # fixed addresses for the helper's regions


def _live_reason() -> str | None:
    if not os.path.exists("/proc/kpageflags"):
        return "/proc/kpageflags does not exist"
    if not os.access("/proc/kpageflags", os.R_OK):
        return "/proc/kpageflags is not readable (needs root)"
    return None


@pytest.fixture
def live() -> None:
    why = _live_reason()
    if why is not None:
        if os.environ.get("ANONEX_REQUIRE_LIVE") == "1":
            pytest.fail(f"ANONEX_REQUIRE_LIVE=1 but the live kernel is not available: {why}")
        pytest.skip(f"live kernel not available: {why}")


def run(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(args, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_live_summary_covers_every_pfn(live: None) -> None:
    rc, out, err = run(["--json", "-r"])
    assert rc == 0, err
    doc = json.loads(out)
    fd = os.open("/proc/kpageflags", os.O_RDONLY)
    try:
        n, off = 0, 0
        while True:
            got = len(os.pread(fd, 8 << 20, off))
            if not got:
                break
            n += got // 8
            off += got
    finally:
        os.close(fd)
    assert doc["total"]["pages"] == n == sum(r["pages"] for r in doc["summary"])
    assert doc["live"] is True
    assert any("zero_page" in r["names"] for r in doc["summary"])
    rc, text, _ = run(["-a", "0+0x1000"])
    assert rc == 0 and text.splitlines()[-1].split() == ["total", "4096", "16"]


# -- a helper process ------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def _map(addr: int, length: int, advice: int) -> None:
    got = _libc.mmap(addr, length, 3, 0x22 | 0x100000, -1, 0)  # private anon, fixed-noreplace
    if got != addr:
        os._exit(3)
    _libc.madvise(addr, length, advice)
    for i in range(length // PAGE):
        ctypes.memset(addr + i * PAGE, 0x5A, PAGE)


@pytest.fixture
def helper(live: None) -> Iterator[int]:
    """A process with: 16 small exclusive pages (A), a THP (B), a THP split to PTEs (C), and
    16 pages shared with its own child (D)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            _map(BASE + 0x1000000, 16 * PAGE, 15)  # D, MADV_NOHUGEPAGE
            child = os.fork()
            if child == 0:
                _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
                if os.getppid() == 1:
                    os._exit(0)
                signal.sigwait({signal.SIGTERM})
                os._exit(0)
            _map(BASE, 16 * PAGE, 15)  # A
            _map(BASE + MB2, MB2, 14)  # B, MADV_HUGEPAGE
            _map(BASE + 3 * MB2, MB2, 14)  # C (a gap after B: no VMA merge)
            _libc.mprotect(BASE + 3 * MB2 + 5 * PAGE, PAGE, 1)
            os.write(w, b"r")
            signal.sigwait({signal.SIGTERM})
            os.kill(child, signal.SIGKILL)
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"r"
        yield pid
    finally:
        os.close(r)
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


def _vmas(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(v["start"], 16): v for v in doc["vmas"]}


def test_live_process_exclusivity(helper: int) -> None:
    first = BASE // PAGE
    rc, out, err = run(["-p", str(helper), "--json", "-r", "-a",
                        f"{first:#x},{first + 0x1000 + 16:#x}"])
    assert rc == 0, err
    v = _vmas(json.loads(out))
    a = v[BASE]
    assert (a["anon"], a["exclusive"], a["unknown"]) == (16, 16, 0)
    d = v[BASE + 0x1000000]
    assert (d["anon"], d["not_exclusive"]) == (16, 16)
    b = v[BASE + MB2]
    assert b["pages"] == 512
    if b["thp"] == 512:  # the THP was allocated: PMD-mapped, so every page is known
        assert (b["exclusive"], b["unknown"]) == (512, 0)
        c_pages = [x for s, x in v.items() if BASE + 3 * MB2 <= s < BASE + 4 * MB2]
        assert sum(x["unknown"] for x in c_pages) == 511
        assert sum(x["exclusive"] for x in c_pages) == 1
    rc, text, _ = run(["-p", str(helper), "--exclusive", "-a", f"{first:#x}+16"])
    assert rc == 0 and "note:" not in text
    assert f"{BASE:08x}-{BASE + 16 * PAGE:08x} rw-p" in text


def test_live_process_list(helper: int) -> None:
    first = BASE // PAGE
    rc, out, err = run(["-p", str(helper), "-L", "-r", "-M", "-a", f"{first:#x}+16"])
    assert rc == 0, err
    lines = out.split("\n\n\n")[0].splitlines()
    assert lines[0] == "voffset\tmap-cnt\toffset\tflags"
    assert len(lines) == 17
    assert all(ln.split("\t")[0] == f"{first + i:x}" for i, ln in enumerate(lines[1:]))
    assert all(ln.split("\t")[1] == "1" for ln in lines[1:])
    assert all(ln.split("\t")[3][12] == "a" for ln in lines[1:])


def test_live_file_and_directory(live: None, tmp_path: Path) -> None:
    for name, pages in (("one", 8), ("two", 4)):
        with open(tmp_path / name, "wb") as f:
            f.write(b"x" * pages * PAGE)
            f.flush()
            os.fsync(f.fileno())
    rc, out, err = run(["-f", str(tmp_path / "one"), "--json"])
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["total"]["pages"] == 8 and doc["file"]["pages"] == 8
    rc, out, err = run(["-f", str(tmp_path), "-l"])
    assert rc == 0, err
    assert "foffset\toffset\tlen\tflags" in out
    assert f"{tmp_path}\tInode: " in out
    # page-types walks every file of a directory over the first file's page range
    total = int(out.splitlines()[-1].split()[1])
    assert total in (8, 12)


def test_live_cgroup_path(live: None) -> None:
    for path in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup"):
        if os.path.isdir(path):
            break
    else:
        pytest.skip("no cgroup file system")
    if not os.path.exists("/proc/kpagecgroup"):
        pytest.skip("no /proc/kpagecgroup")
    rc, _, err = run(["-c", path, "-a", "0+0x10000", "-C", "-l", "-N"])
    assert rc == 0, err


def test_live_mark_idle(live: None) -> None:
    rc, _, err = run(["-i", "-a", "0x1000+64", "-N"])
    if not os.path.exists("/sys/kernel/mm/page_idle/bitmap"):
        assert rc == 2 and "CONFIG_IDLE_PAGE_TRACKING" in err and "Traceback" not in err
    else:
        assert rc == 0, err
