"""What the running kernel offers the live backend, found out rather than read off a version.

A distribution kernel is not its mainline release (stable backports), its ``uname -r`` may
be an ABI name rather than a version, and a feature's first release says nothing about a
kernel that has it backported or configured away. So, following drgn's rule, the live
backend detects what it relies on:

* the upstream version (:func:`upstream_version`), read where the kernel states it;
* whether kpageflags bit 34 means PG_anon_exclusive (:func:`bit34_meaning`): it does from
  5.19; before, it is KPF_MAPPEDTODISK, never set on anon pages, and exclusivity cannot be
  observed at all. Found on a page the driver has just written (certainly exclusive);
* whether kpageflags reports a large folio's head flags on every page (:func:`head_mirror_of`,
  v6.10's ``stable_page_flags()`` rewrite): found on a THP of the driver's own, whose tail
  pages have no PG_swapbacked of their own (the flag lives on the head) but show it when
  the head's flags are mirrored;
* whether KPF_KSM is set on every anon page (the 6.10 kpageflags bug fixed by
  81401cebfc15): found on the same driver page, which is certainly not a KSM page.

Each detection is pure on sample words (unit-tested); :func:`probe` gathers the words from
the driver's own pages, once per process (the kernel does not change under a running
process). A detection that cannot be made says so and the caller falls back to the version
rule, naming the fallback in the run's notes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
from dataclasses import dataclass, field

from anonex.live import libc
from anonex.procfs import kpageflags as kpf
from anonex.procfs import pagemap as pm
from anonex.versions import KernelVersion

PAGE = libc.PAGE_SIZE
KSM_NOTE = ("KPF_KSM is set on every anonymous page (kernel bug, 6.10 until 81401cebfc15): "
            "ksm is not observable")
HUGE = 2 << 20

# "#1 SMP PREEMPT_DYNAMIC Debian 6.1.187-1 (2026-09-07)": Debian's uname -v names the
# package version, whose upstream part precedes the first "-" or "~" or "+"
_DEBIAN = re.compile(r"\bDebian (\d+\.\d+(?:\.\d+)?)[-~+]")
# /proc/version_signature: "Ubuntu 5.15.0-91.101-generic 5.15.131"
_UBUNTU_SIG = re.compile(r"^Ubuntu \S+ (\d+\.\d+(?:\.\d+)?)\s*$")


def upstream_version(release: str, version: str = "",
                     signature: str | None = None) -> tuple[KernelVersion, str]:
    """The upstream kernel version and where it was read.

    *release* is ``uname -r``, *version* ``uname -v``, *signature* the text of
    ``/proc/version_signature`` where it exists (Ubuntu). Debian's ``uname -r`` is an ABI
    name (``6.1.0-53-amd64`` for 6.1.187); its ``uname -v`` names the package version
    (``Debian 6.1.187-1``). Only ``uname -v`` is searched, not ``/proc/version`` as a
    whole, which also names the compiler (``gcc-12 (Debian 12.2.0-14)``). Everywhere
    else ``uname -r`` starts with the version.
    """
    m = _DEBIAN.search(version)
    if m:
        return KernelVersion.parse(m.group(1)), f"uname -v ({m.group(0)[:-1]})"
    if signature:
        s = _UBUNTU_SIG.match(signature.strip())
        if s:
            return KernelVersion.parse(s.group(1)), "/proc/version_signature"
    return KernelVersion.parse(release), "uname -r"


def running_version() -> tuple[KernelVersion, str]:
    """:func:`upstream_version` of the running kernel."""
    u = os.uname()
    sig = None
    with contextlib.suppress(OSError), open("/proc/version_signature") as f:
        sig = f.read()
    return upstream_version(u.release, u.version, sig)


# -- kpageflags --------------------------------------------------------------------------------

def bit34_meaning(word: int | None) -> bool | None:
    """Whether kpageflags bit 34 is PG_anon_exclusive, from the word of a small anon page
    that its process has just written (so the kernel must hold it exclusive): ``True`` if
    the bit is set, ``False`` if it is clear (it is then KPF_MAPPEDTODISK, which anon pages
    never have), ``None`` if the word is not of such a page (no answer)."""
    if word is None or not kpf.has(word, kpf.KPF_ANON) or kpf.is_large(word):
        return None
    return kpf.has(word, kpf.KPF_OWNER_2)


def head_mirror_of(head: int | None, tail: int | None) -> bool | None:
    """Whether kpageflags reports the head's flags on every page of a large folio, from
    the words of the head and of a tail page of one anon THP/mTHP. PG_swapbacked is a
    head-only flag that every anon folio gets at its first fault: a tail showing it
    mirrors the head. ``None`` when the words are not of such a folio."""
    if head is None or tail is None:
        return None
    if not (kpf.has(head, kpf.KPF_COMPOUND_HEAD) and kpf.has(tail, kpf.KPF_COMPOUND_TAIL)):
        return None
    if not (kpf.has(head, kpf.KPF_ANON) and kpf.has(head, kpf.KPF_SWAPBACKED)):
        return None
    return kpf.has(tail, kpf.KPF_SWAPBACKED)


def ksm_flag_reliable(word: int | None) -> bool | None:
    """Whether KPF_KSM means KSM, from the word of a driver page that is certainly not a
    KSM page (never made mergeable): kernels from v6.10 until 81401cebfc15 set it on every
    anon page. ``None`` when the word is not of an anon page."""
    if word is None or not kpf.has(word, kpf.KPF_ANON):
        return None
    return not kpf.has(word, kpf.KPF_KSM)


# -- probing the driver's own pages ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Probe:
    """kpageflags words of pages of the driver's own (``None``: could not be had) and why
    a large folio could not be had."""

    small: int | None
    head: int | None
    tail: int | None
    why_no_thp: str = ""


@dataclass(slots=True)
class Features:
    """What the running kernel offers the observer, each with how it was found."""

    exclusive_observable: bool
    head_mirror: bool
    ksm_reliable: bool
    notes: list[str] = field(default_factory=list)


def _pfn(addr: int) -> int | None:
    fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return pm.decode_bytes(os.pread(fd, 8, addr // PAGE * 8))[0].pfn
    finally:
        os.close(fd)


def _word(kpf_fd: int, addr: int) -> int | None:
    pfn = _pfn(addr)
    if pfn is None:
        return None
    return int.from_bytes(os.pread(kpf_fd, 8, pfn * 8), "little")


def _small_word(kpf_fd: int) -> int | None:
    addr = libc.mmap(0, PAGE, libc.PROT_READ | libc.PROT_WRITE,
                     libc.MAP_PRIVATE | libc.MAP_ANONYMOUS)
    try:
        with contextlib.suppress(OSError):  # no THP at all: nothing to keep away
            libc.madvise(addr, PAGE, libc.MADV["nohugepage"])
        ctypes.memset(addr, 1, 1)
        return _word(kpf_fd, addr)
    finally:
        libc.munmap(addr, PAGE)


def _thp_words(kpf_fd: int) -> tuple[int | None, int | None, str]:
    """(head word, word of its second page, why not) of a THP the driver faults in."""
    raw = libc.mmap(0, 2 * HUGE, libc.PROT_READ | libc.PROT_WRITE,
                    libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE)
    try:
        addr = (raw + HUGE - 1) & ~(HUGE - 1)
        try:
            libc.madvise(addr, HUGE, libc.MADV["hugepage"])
        except OSError as e:
            return None, None, f"MADV_HUGEPAGE: {e.strerror}"
        ctypes.memset(addr, 1, 1)
        head, tail = _word(kpf_fd, addr), _word(kpf_fd, addr + PAGE)
        if head is None or not kpf.has(head, kpf.KPF_COMPOUND_HEAD):
            return None, None, "the driver got no large folio (THP off or memory fragmented)"
        return head, tail, ""
    finally:
        libc.munmap(raw, 2 * HUGE)


_cache: dict[int, Probe] = {}  # pid -> a complete probe


def probe(kpf_fd: int) -> Probe:
    """Words of a freshly written small page and of a THP of the driver's own. A complete
    answer is kept for the life of the process; an incomplete one is tried again."""
    got = _cache.get(os.getpid())
    if got is not None:
        return got
    small = _small_word(kpf_fd)
    # the driver's mm joins khugepaged's list first (and for good), so that the THP below
    # wakes no khugepaged pass that could run into the scenario
    from anonex.live import machine

    machine.anchor_khugepaged()
    head, tail, why = _thp_words(kpf_fd)
    p = Probe(small, head, tail, why)
    if small is not None and head is not None:
        _cache[os.getpid()] = p
    return p


def detect(p: Probe, version: KernelVersion, version_rule: tuple[bool, bool]) -> Features:
    """Features from a probe; *version_rule* is ``(anon_exclusive, kpageflags_from_head)``
    of the version table, used only where the probe gave no answer (said in the notes)."""
    notes: list[str] = []
    excl = bit34_meaning(p.small)
    if excl is None:
        excl = version_rule[0]
        notes.append(f"kpageflags bit 34 could not be tested on a page of the driver's own; "
                     f"taken from the version ({version}): "
                     f"{'PG_anon_exclusive' if excl else 'not PG_anon_exclusive'}")
    if not excl:
        notes.append("kpageflags bit 34 is not PG_anon_exclusive here (no such flag before "
                     "5.19): anon_exclusive is not observable")
    mirror = head_mirror_of(p.head, p.tail)
    if mirror is None:
        mirror = version_rule[1]
        notes.append(f"whether kpageflags mirrors a large folio's head could not be tested "
                     f"({p.why_no_thp or 'no anon THP'}); taken from the version "
                     f"({version}): {'mirrored' if mirror else 'per page'}")
    if mirror and excl:
        notes.append("kpageflags reports a large folio's head flags on every page: "
                     "anon_exclusive of a PTE-mapped large folio's pages is unknown")
    ksm = ksm_flag_reliable(p.small)
    if ksm is None:
        ksm = True
    elif not ksm:
        notes.append(KSM_NOTE)
    return Features(excl, mirror, ksm, notes)
