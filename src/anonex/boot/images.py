"""Which kernel to boot: a kernel image file, a build tree's ``bzImage``, or ``debian:NAME``.

:func:`resolve` turns the argument of ``anonex check --boot`` into a :class:`KernelImage`:
the file virtme-ng boots, its release (``uname -r``), its modules directory and, when the
packaging says so, its upstream version. Debian's ``uname -r`` is an ABI name
(``6.1.0-53-amd64``) that hides the stable release (6.1.187), so the upstream version comes
from the image's own version string (``... Debian 6.1.187-1 (...)``).

The modules directory is found the way virtme-ng finds it (``find_kernel_and_mods`` and
``get_rootfs_from_kernel_path`` in ``virtme/commands/run.py``), so that what anonex reports is
what the guest will load: an image inside a kernel build tree (``TREE/.config``) is a build
tree, whose modules virtme-ng prepares itself (``moddir`` None); otherwise the first folder up
from the image with ``lib/modules`` (or ``usr/lib/modules``) is the root whose
``lib/modules/RELEASE`` holds the modules; ``/`` is the host's own ``/lib/modules``.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Progress = Callable[[str, int, int], None]
"""``progress(what, done, total)`` while fetching a kernel: *what* is its name
(``debian:6.1``) while downloading, *done* and *total* in bytes; ``NAME: phase`` with *total*
0 for a step without a byte count (reading the archive's index, unpacking)."""

KIMG_PATH = ("arch", "x86", "boot", "bzImage")
"""Where a kernel build tree keeps its image (virtme-ng's ``arch.kimg_path()`` on x86)."""

_EXPECTED = ("expected a kernel image file (a distribution vmlinuz, or arch/x86/boot/bzImage "
             "of a kernel build tree) or debian:NAME (see `anonex kernels`)")


@dataclass(frozen=True, slots=True)
class KernelImage:
    """A kernel that virtme-ng can boot, and what anonex knows about it."""

    label: str            # short text for a matrix column, e.g. "debian:6.1"
    kimg: Path            # the kernel image file virtme-ng boots
    release: str          # its `uname -r` (ABI name), e.g. "6.1.0-53-amd64"
    moddir: Path | None   # its modules directory (.../lib/modules/RELEASE), None if none
    upstream: str | None  # upstream version if known from packaging, e.g. "6.1.187"


class ImageError(Exception):
    """A kernel image that cannot be used; the message says what is wrong and what was
    expected (printed to the user as is, without a traceback)."""


# --- the version string ------------------------------------------------------------------

_SETUP_SECTS = 0x1F1
_BOOT_FLAG = 0x1FE
_HEADER = 0x202
_KERNEL_VERSION = 0x20E
_BANNER = b"Linux version "
_CHUNK = 1 << 22
# The banner up to its end (newline or NUL), so that a banner cut by a chunk's end does not
# match until the next chunk completes it.
_BANNER_RE = re.compile(re.escape(_BANNER) + rb"(\d[\x21-\x7e]{2,}[\x20-\x7e]{0,400})[\n\0]")


def _printable(raw: bytes) -> str | None:
    """The NUL-terminated ASCII text at the start of *raw*, or None."""
    text, nul, _ = raw.partition(b"\0")
    if not nul or not text or any(c < 0x20 or c > 0x7E for c in text):
        return None
    return text.decode("ascii")


def header_version(head: bytes) -> str | None:
    """The version string an x86 boot image's setup header points to, or None.

    ``kernel_version`` (offset 0x20E, boot protocol 2.00+) is the string's offset less 0x200,
    inside the setup sectors; the string is ``RELEASE (BUILDER) #N ... UTS_VERSION``."""
    if len(head) < 0x210 or head[_BOOT_FLAG:_BOOT_FLAG + 2] != b"\x55\xaa":
        return None
    if head[_HEADER:_HEADER + 4] != b"HdrS":
        return None
    (protocol,) = struct.unpack_from("<H", head, 0x206)
    (pointer,) = struct.unpack_from("<H", head, _KERNEL_VERSION)
    if protocol < 0x200 or pointer == 0:
        return None
    end = min(len(head), ((head[_SETUP_SECTS] or 4) + 1) * 512)  # the setup sectors
    return _printable(head[pointer + 0x200:end])


def _scan_banner(path: Path) -> str | None:
    """The text after the first ``Linux version D...`` in the file (an uncompressed
    vmlinux, or an image without a setup header), read in chunks."""
    tail = b""
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            buf = tail + chunk
            m = _BANNER_RE.search(buf)
            if m is not None:
                return m.group(1).decode("ascii")
            tail = buf[-512:]
    return None


def version_string(path: Path) -> str | None:
    """The kernel's version string (``6.1.0-53-amd64 (debian-kernel@...) #1 SMP ...``):
    from the boot header, else from a ``Linux version`` banner; None if neither."""
    with path.open("rb") as f:
        head = f.read(0x20000)  # up to 255 setup sectors
    return header_version(head) or _scan_banner(path)


def debian_upstream(text: str) -> str | None:
    """The upstream version in a Debian kernel's version string (``Debian 6.1.187-1``)."""
    m = re.search(r"\bDebian (\d+\.\d+(?:\.\d+)?)(?=[-+~ ]|$)", text)
    return m.group(1) if m else None


def makefile_version(tree: Path) -> str | None:
    """The version a kernel tree's top Makefile declares (``6.9.0-rc1``), or None."""
    try:
        text = (tree / "Makefile").read_text(errors="replace")
    except OSError:
        return None
    fields: dict[str, str] = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
        m = re.search(rf"^{key}\s*=[ \t]*(\S*)", text, re.MULTILINE)
        if m is None:
            return None
        fields[key] = m.group(1)
    if not (fields["VERSION"].isdigit() and fields["PATCHLEVEL"].isdigit()):
        return None
    return (f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL'] or '0'}"
            f"{fields['EXTRAVERSION']}")


# --- modules, as virtme-ng finds them ------------------------------------------------------

def rootfs_of(kimg: Path) -> Path:
    """virtme-ng's ``get_rootfs_from_kernel_path``: the first folder up from *kimg* that has
    ``lib/modules`` (or ``usr/lib/modules``: then its ``usr``), else ``/``."""
    path = os.path.abspath(kimg)
    while path and path != "/" and not os.path.exists(path + "/lib/modules"):
        if os.path.exists(path + "/usr/lib/modules"):
            path += "/usr"
            break
        path, _ = os.path.split(path)
    if path.endswith("/usr") and os.path.islink(path + "/../lib"):
        path, _ = os.path.split(path)
    return Path(os.path.abspath(path))


def build_tree_of(kimg: Path) -> Path | None:
    """The kernel build tree *kimg* is the image of (``TREE/arch/x86/boot/bzImage`` with
    ``TREE/.config``), as virtme-ng decides it, or None."""
    if kimg.parts[-len(KIMG_PATH):] != KIMG_PATH:
        return None
    tree = kimg.parents[len(KIMG_PATH) - 1]
    return tree if (tree / ".config").exists() else None


def _label(kimg: Path, release: str, tree: Path | None) -> str:
    if tree is None and release in kimg.name:
        return kimg.name
    return f"{kimg.name} {release}"


def from_path(spec: str) -> KernelImage:
    """The kernel image at *spec* (a file, or a kernel build tree's top folder)."""
    kimg = Path(os.path.abspath(os.path.expanduser(spec)))
    if kimg.is_dir():
        if not (kimg / ".config").exists():
            raise ImageError(f"{spec}: is a folder, not a kernel build tree (no .config); "
                             f"{_EXPECTED}")
        kimg = kimg.joinpath(*KIMG_PATH)
    if not kimg.exists():
        raise ImageError(f"{spec}: no such file; {_EXPECTED}")
    if not kimg.is_file():
        raise ImageError(f"{spec}: not a regular file; {_EXPECTED}")
    try:
        text = version_string(kimg)
    except OSError as e:
        raise ImageError(f"{spec}: cannot read it ({e.strerror or e})") from None
    if text is None:
        raise ImageError(f"{spec}: not a Linux kernel image (no x86 boot header with a version "
                         f"string, no 'Linux version' banner); {_EXPECTED}")
    release = text.split()[0]
    tree = build_tree_of(kimg)
    if tree is not None:
        return KernelImage(label=_label(kimg, release, tree), kimg=kimg, release=release,
                           moddir=None, upstream=debian_upstream(text) or makefile_version(tree))
    moddir = rootfs_of(kimg) / "lib" / "modules" / release
    return KernelImage(label=_label(kimg, release, None), kimg=kimg, release=release,
                       moddir=moddir if moddir.exists() else None,
                       upstream=debian_upstream(text))


def resolve(spec: str, progress: Progress | None = None) -> KernelImage:
    """The kernel ``anonex check --boot SPEC`` boots: a path (see :func:`from_path`) or
    ``debian:NAME`` (fetched into the cache on first use, see :mod:`anonex.boot.debian`).
    Raises :class:`ImageError` for anything that cannot be booted."""
    if not spec.strip():
        raise ImageError(f"empty kernel image argument; {_EXPECTED}")
    if spec.startswith("debian:"):
        from anonex.boot.debian import resolve as debian_resolve  # imports this module
        return debian_resolve(spec, progress)
    return from_path(spec)
