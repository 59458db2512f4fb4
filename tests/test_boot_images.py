"""Kernel images for ``anonex check --boot``: version strings, modules as virtme-ng finds them,
Debian short names, apt sources, the cache, and ``anonex kernels``."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from anonex.boot import debian, images
from anonex.boot.debian import Archive, Choice, Package
from anonex.boot.images import ImageError, KernelImage, Progress, from_path, resolve
from anonex.boot.kernels_cli import kernels_cmd

DEBIAN_61 = ("6.1.0-50-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC "
             "Debian 6.1.176-1 (2026-07-01)")


def image_bytes(version: str, *, setup_sects: int = 4, at: int = 0x600,
                size: int = 8192) -> bytes:
    """A few KiB that look like an x86 bzImage: boot flag, "HdrS", protocol 2.15 and the
    kernel_version pointer (offset 0x20E, string at pointer + 0x200)."""
    buf = bytearray(size)
    buf[0x1F1] = setup_sects
    buf[0x1FE:0x200] = b"\x55\xaa"
    buf[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", buf, 0x206, 0x20F)
    struct.pack_into("<H", buf, 0x20E, at - 0x200)
    raw = version.encode() + b"\0"
    buf[at:at + len(raw)] = raw
    return bytes(buf)


def make_image(path: Path, version: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(version))
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache of the test's own."""
    root = tmp_path / "cache"
    monkeypatch.setenv("ANONEX_CACHE", str(root))
    return root


@pytest.fixture
def no_apt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any apt, dpkg or other subprocess call fails the test."""
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"unexpected subprocess call: {args}")
    monkeypatch.setattr(debian, "_tool", boom)
    monkeypatch.setattr(subprocess, "run", boom)
    monkeypatch.setattr(subprocess, "Popen", boom)


def _require_or_skip(why: str) -> None:
    if os.environ.get("ANONEX_REQUIRE_LIVE") == "1":
        pytest.fail(f"ANONEX_REQUIRE_LIVE=1 but {why}")
    pytest.skip(why)


# --- the version string ---------------------------------------------------------------------

def test_boot_header_version_of_a_synthetic_image(tmp_path: Path) -> None:
    img = make_image(tmp_path / "vmlinuz-6.1.0-50-amd64", DEBIAN_61)
    assert images.version_string(img) == DEBIAN_61
    k = from_path(str(img))
    assert k.release == "6.1.0-50-amd64"
    assert k.upstream == "6.1.176"
    assert k.kimg == img and k.label == "vmlinuz-6.1.0-50-amd64"


def test_boot_header_is_checked() -> None:
    good = bytearray(image_bytes(DEBIAN_61))
    assert images.header_version(bytes(good)) == DEBIAN_61
    for off, value in ((0x1FE, b"\x00\x00"), (0x202, b"HdrT")):
        bad = bytearray(good)
        bad[off:off + len(value)] = value
        assert images.header_version(bytes(bad)) is None
    # a string beyond or across the end of the setup sectors ((4 + 1) * 512 bytes)
    assert images.header_version(image_bytes(DEBIAN_61, at=0xA00)) is None
    assert images.header_version(image_bytes(DEBIAN_61, at=0x9F0)) is None
    assert images.header_version(image_bytes(DEBIAN_61, setup_sects=8, at=0xA00)) == DEBIAN_61
    junk = bytearray(good)
    junk[0x600] = 0x01
    assert images.header_version(bytes(junk)) is None


def test_banner_fallback_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a boot header (a vmlinux), the 'Linux version' banner; a banner cut by a read
    chunk is found whole."""
    monkeypatch.setattr(images, "_CHUNK", 64)
    banner = b"Linux version 6.9.0-rc1 (me@box) (gcc 12) #3 SMP PREEMPT\n"
    data = b"\x7fELF" + b"x" * 50 + b"Linux version %s\0" + b"\0" * 30 + banner + b"\0" * 100
    img = tmp_path / "vmlinux"
    img.write_bytes(data)
    assert images.version_string(img) == "6.9.0-rc1 (me@box) (gcc 12) #3 SMP PREEMPT"
    assert from_path(str(img)).release == "6.9.0-rc1"


def test_debian_upstream_from_version_strings() -> None:
    assert images.debian_upstream(DEBIAN_61) == "6.1.176"
    assert images.debian_upstream("7.2.13+deb14-amd64 (x) #1 SMP PREEMPT_DYNAMIC Debian "
                                  "7.2.13-1 (2026-10-28)") == "7.2.13"
    assert images.debian_upstream("6.9.0 (me@box) #1 SMP PREEMPT Sun Mar 3") is None


# --- modules, as virtme-ng finds them --------------------------------------------------------

def _virtme_moddir(kimg: Path, release: str) -> Path | None:
    run = pytest.importorskip("virtme.commands.run")
    root = run.get_rootfs_from_kernel_path(str(kimg))
    moddir = Path(f"{root}/lib/modules/{release}")
    return moddir if moddir.exists() else None


@pytest.mark.parametrize("layout", ["boot", "usr"])
def test_unpacked_package_modules(tmp_path: Path, layout: str) -> None:
    rel = "7.2.13+deb14-amd64"
    pkg = tmp_path / "pkg"
    if layout == "boot":
        img = make_image(pkg / "boot" / f"vmlinuz-{rel}", f"{rel} (x) #1 SMP Debian 7.2.13-1")
        (pkg / "lib" / "modules" / rel / "kernel").mkdir(parents=True)
        want = pkg / "lib" / "modules" / rel
    else:
        img = make_image(pkg / "usr" / "lib" / "modules" / rel / "vmlinuz",
                         f"{rel} (x) #1 SMP Debian 7.2.13-1")
        want = pkg / "usr" / "lib" / "modules" / rel
    k = from_path(str(img))
    assert k.moddir == want and k.release == rel and k.upstream == "7.2.13"
    assert k.moddir == _virtme_moddir(img, rel)


def test_image_without_modules(tmp_path: Path) -> None:
    img = make_image(tmp_path / "x" / "vmlinuz", "6.99.0-nosuch (x) #1 SMP")
    k = from_path(str(img))
    assert k.moddir is None and k.upstream is None and k.label == "vmlinuz 6.99.0-nosuch"
    assert _virtme_moddir(img, k.release) is None


def test_build_tree(tmp_path: Path) -> None:
    tree = tmp_path / "linux"
    img = make_image(tree / "arch" / "x86" / "boot" / "bzImage", "6.9.0-rc1 (me@box) #1 SMP")
    (tree / ".config").write_text("CONFIG_MODULES=y\n")
    (tree / "Makefile").write_text("# SPDX\nVERSION = 6\nPATCHLEVEL = 9\nSUBLEVEL = 0\n"
                                   "EXTRAVERSION = -rc1\nNAME = x\n")
    (tree / "lib" / "modules" / "6.9.0-rc1").mkdir(parents=True)  # not used for a tree
    for spec in (str(img), str(tree)):
        k = from_path(spec)
        assert k == KernelImage(label="bzImage 6.9.0-rc1", kimg=img, release="6.9.0-rc1",
                                moddir=None, upstream="6.9.0-rc1")
    # without .config it is a plain image (virtme-ng does not take it for a tree)
    (tree / ".config").unlink()
    assert from_path(str(img)).moddir == tree / "lib" / "modules" / "6.9.0-rc1"


# --- bad specs ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "words"), [
    ("{d}/nope", "no such file"),
    ("{d}", "not a kernel build tree"),
    ("{d}/notes.txt", "not a Linux kernel image"),
    ("{d}/empty", "not a Linux kernel image"),
    ("   ", "empty"),
    ("debian:4.19", "unknown Debian kernel"),
    ("debian:6.1.x", "unknown Debian kernel"),
    ("debian:", "unknown Debian kernel"),
])
def test_bad_specs(tmp_path: Path, spec: str, words: str, cache: Path, no_apt: None) -> None:
    (tmp_path / "notes.txt").write_text("Linux version is not a banner\n" * 100)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ImageError) as e:
        resolve(spec.format(d=tmp_path))
    text = str(e.value)
    assert words in text and "\n" not in text
    assert "expected" in text or "empty" in text


def test_unreadable_image(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    img = make_image(tmp_path / "vmlinuz", DEBIAN_61)
    img.chmod(0)
    with pytest.raises(ImageError, match="cannot read"):
        from_path(str(img))


# --- apt sources ---------------------------------------------------------------------------------

DEBIAN_SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

INLINE_KEY = """\
Types: deb deb-src
URIs: https://other.example/debian
Suites: trixie
Components: main contrib
Enabled: no

Types: deb
URIs: https://inline.example/debian
Suites: sid
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NlOeDs
 -----END PGP PUBLIC KEY BLOCK-----
"""


def test_deb822_parser() -> None:
    paras = debian.parse_deb822(DEBIAN_SOURCES)
    assert len(paras) == 2
    assert paras[0]["uris"] == "http://mirror.example/debian"
    assert paras[0]["suites"] == "bookworm bookworm-updates"
    assert "#" not in "".join(paras[0].values())
    key = debian.parse_deb822(INLINE_KEY)[1]["signed-by"]
    assert key.splitlines() == ["", "-----BEGIN PGP PUBLIC KEY BLOCK-----", ".",
                                "mQINBGPL0BUBEADmW5NlOeDs", "-----END PGP PUBLIC KEY BLOCK-----"]


def test_archive_from_the_machines_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANONEX_DEBIAN_URI", raising=False)
    srcs = debian.sources_from_deb822(DEBIAN_SOURCES)
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert debian.archive_for("sid", srcs) == Archive("http://mirror.example/debian", keyring)
    assert debian.archive_for("bookworm-security", srcs) == \
        Archive("http://mirror.example/debian-security", keyring)
    # a disabled entry is skipped; an inline key is carried over whole
    srcs2 = debian.sources_from_deb822(INLINE_KEY)
    arch = debian.archive_for("bullseye", srcs2)
    assert arch is not None and arch.uri == "https://inline.example/debian"
    assert debian.archive_for("bullseye-security", srcs2) is None
    text = debian.sources_text("bullseye", arch)
    again = debian.parse_deb822(text)[0]
    assert again["signed-by"] == arch.signed_by and again["suites"] == "bullseye"
    assert again["architectures"] == "amd64" and again["targets"] == "Packages"
    # $ANONEX_DEBIAN_URI replaces the release archive, not the security one
    monkeypatch.setenv("ANONEX_DEBIAN_URI", "http://elsewhere.example/debian")
    over = debian.archive_for("trixie", srcs)
    assert over is not None and over.uri == "http://elsewhere.example/debian"
    sec = debian.archive_for("trixie-security", srcs)
    assert sec is not None and sec.uri.endswith("debian-security")


def test_one_line_sources_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANONEX_DEBIAN_URI", raising=False)
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(
        "# comment\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main contrib\n"
        "deb http://one.example/debian-security bookworm-security main\n")
    srcs = debian.system_sources(etc)
    assert debian.archive_for("sid", srcs) == Archive("http://one.example/debian", "/k.gpg")
    assert debian.archive_for("sid-security", srcs) == \
        Archive("http://one.example/debian-security", None)
    assert debian.archive_for("sid", debian.system_sources(tmp_path / "none")) is None


def test_private_apt_state_and_no_hooks(tmp_path: Path) -> None:
    """apt runs on a state of its own, and the machine's update hooks (appstream, PackageKit)
    do not run after a private update."""
    apt = debian.Apt(tmp_path / "apt", "sid", Archive("http://mirror.example/debian", None))
    opts = dict(zip(apt.opts[::2], apt.opts[1::2], strict=True))
    assert opts["-c"] == str(tmp_path / "apt" / "apt.conf")
    settings = dict(v.split("=", 1) for k, v in zip(apt.opts[::2], apt.opts[1::2], strict=True)
                    if k == "-o")
    for key in ("Dir::Etc::sourcelist", "Dir::State::Lists", "Dir::Cache", "Dir::State::status",
                "Dir::State::extended_states"):
        assert settings[key].startswith(str(tmp_path)), key
    assert settings["Dir::Etc::sourceparts"] == "-"
    assert (tmp_path / "apt" / "lists" / "partial").is_dir()
    if shutil.which("apt-config") is None:
        return
    dump = subprocess.run(["apt-config", *apt.opts, "dump"], capture_output=True, text=True,
                          check=True).stdout
    hooks = [x for x in dump.splitlines() if "Invoke" in x and not x.endswith('"";')]
    assert hooks == []


# --- short names against a fake apt ------------------------------------------------------------

# `apt-cache show` output captured from the archive (fields trimmed to those that matter).
BULLSEYE_SHOW = """\
Package: linux-image-5.10.0-30-amd64-unsigned
Source: linux
Version: 5.10.218-1
Filename: pool/main/l/linux/linux-image-5.10.0-30-amd64-unsigned_5.10.218-1_amd64.deb
Size: 54565868

Package: linux-image-5.10.0-32-amd64-unsigned
Source: linux
Version: 5.10.223-1
Filename: pool/main/l/linux/linux-image-5.10.0-32-amd64-unsigned_5.10.223-1_amd64.deb
Size: 54645720

Package: linux-image-5.10.0-32-amd64
Source: linux-signed-amd64 (5.10.223+1)
Version: 5.10.223-1
Filename: pool/main/l/linux-signed-amd64/linux-image-5.10.0-32-amd64_5.10.223-1_amd64.deb
Size: 55749416

Package: linux-image-5.10.0-32-rt-amd64-unsigned
Source: linux
Version: 5.10.223-1
Filename: pool/main/l/linux/linux-image-5.10.0-32-rt-amd64-unsigned_5.10.223-1_amd64.deb
Size: 54937224

Package: linux-image-5.10.0-32-cloud-amd64-unsigned
Source: linux
Version: 5.10.223-1
Filename: pool/main/l/linux/linux-image-5.10.0-32-cloud-amd64-unsigned_5.10.223-1_amd64.deb
Size: 20768532

Package: linux-image-5.10.0-32-amd64-dbg
Source: linux
Version: 5.10.223-1
Filename: pool/main/l/linux/linux-image-5.10.0-32-amd64-dbg_5.10.223-1_amd64.deb
Size: 801145720
"""

SID_SHOW = """\
Package: linux-binary-7.2.13+deb14-amd64
Source: linux-signed-amd64 (7.2.13+1)
Version: 7.2.13-1
Filename: pool/main/l/linux-signed-amd64/linux-binary-7.2.13+deb14-amd64_7.2.13-1_amd64.deb
Size: 14252084

Package: linux-modules-7.2.13+deb14-amd64
Source: linux
Version: 7.2.13-1
Filename: pool/main/l/linux/linux-modules-7.2.13+deb14-amd64_7.2.13-1_amd64.deb
Size: 110095088

Package: linux-image-7.2.13+deb14-amd64
Source: linux-signed-amd64 (7.2.13+1)
Version: 7.2.13-1
Filename: pool/main/l/linux-signed-amd64/linux-image-7.2.13+deb14-amd64_7.2.13-1_amd64.deb
Size: 1892

Package: linux-modules-7.2.13+deb14-rt-amd64
Source: linux
Version: 7.2.13-1
Filename: pool/main/l/linux/linux-modules-7.2.13+deb14-rt-amd64_7.2.13-1_amd64.deb
Size: 110095088

Package: linux-image-6.12.117+deb13-amd64-unsigned
Source: linux
Version: 6.12.117-1
Filename: pool/main/l/linux/linux-image-6.12.117+deb13-amd64-unsigned_6.12.117-1_amd64.deb
Size: 108492944
"""

PRINT_URIS = (
    "'http://mirror.example/debian/pool/main/l/linux/linux-modules-7.2.13%2bdeb14-amd64_7.2.13-1"
    "_amd64.deb' linux-modules-7.2.13+deb14-amd64_7.2.13-1_amd64.deb 110095088 SHA256:a37a3d2\n"
    "'http://mirror.example/debian/pool/main/l/linux-signed-amd64/linux-binary-7.2.13%2bdeb14-"
    "amd64_7.2.13-1_amd64.deb' linux-binary-7.2.13+deb14-amd64_7.2.13-1_amd64.deb 14252084 "
    "SHA256:fb8cd0a\n")


def _names(c: Choice | None) -> list[str]:
    assert c is not None
    return [p.name for p in c.packages]


def test_newest_unsigned_image_of_a_series() -> None:
    choices = debian.kernel_packages(debian.parse_deb822(BULLSEYE_SHOW), "bullseye")
    pick = debian.choose(choices, series="5.10")
    assert _names(pick) == ["linux-image-5.10.0-32-amd64-unsigned"]
    assert pick is not None and pick.upstream == "5.10.223" and pick.version == "5.10.223-1"
    assert _names(debian.choose(choices, exact="5.10.218")) == \
        ["linux-image-5.10.0-30-amd64-unsigned"]
    assert debian.choose(choices, exact="5.10.219") is None
    assert debian.choose(choices, series="5.1") is None  # 5.10 is not in series 5.1
    # no -rt-, -cloud-, -dbg; the signed image only stands in for a missing unsigned one
    names = {p.name for c in choices for p in c.packages}
    assert not any(x in n for n in names for x in ("-rt-", "-cloud-", "-dbg"))
    signed_only = BULLSEYE_SHOW.replace("-32-amd64-unsigned", "-32-amd64-unsigned-gone")
    alone = debian.kernel_packages(debian.parse_deb822(signed_only), "bullseye")
    assert _names(debian.choose(alone, series="5.10")) == ["linux-image-5.10.0-32-amd64"]


def test_split_image_and_modules() -> None:
    choices = debian.kernel_packages(debian.parse_deb822(SID_SHOW), "sid")
    assert _names(debian.choose(choices, series="7.2")) == \
        ["linux-binary-7.2.13+deb14-amd64", "linux-modules-7.2.13+deb14-amd64"]
    assert _names(debian.choose(choices, series="6.12")) == \
        ["linux-image-6.12.117+deb13-amd64-unsigned"]
    assert debian.choose(choices, series="6.1") is None
    no_binary = SID_SHOW.replace("Package: linux-binary-", "Package: gone-binary-")
    assert debian.choose(debian.kernel_packages(debian.parse_deb822(no_binary), "sid"),
                         series="7.2") is None  # the meta package is not an image


def test_print_uris_and_versions() -> None:
    rows = debian.parse_print_uris(PRINT_URIS)
    assert [(f, s) for _u, f, s, _c in rows] == [
        ("linux-modules-7.2.13+deb14-amd64_7.2.13-1_amd64.deb", 110095088),
        ("linux-binary-7.2.13+deb14-amd64_7.2.13-1_amd64.deb", 14252084)]
    assert debian.upstream_of("6.1.176-1") == "6.1.176"
    assert debian.upstream_of("7.2.13-1~exp1") == "7.2.13"
    assert debian.version_key("6.1.176-1") > debian.version_key("6.1.99-3")


def test_names() -> None:
    assert [k.name for k in debian.known()] == ["debian:5.10", "debian:6.1", "debian:6.12",
                                                "debian:7.2"]
    w = debian.parse_name("6.12")
    assert w.name == "debian:6.12" and w.entry is not None and w.entry.suite == "trixie"
    w = debian.parse_name("debian:5.10.223")
    assert w.entry is None and w.exact == "5.10.223"
    assert debian._suites_to_search(w) == ["bullseye", "bookworm", "trixie", "sid",
                                           "bullseye-security"]


# --- the cache -------------------------------------------------------------------------------

def test_cache_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ANONEX_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert debian.cache_root() == tmp_path / ".cache" / "anonex"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert debian.cache_root() == tmp_path / "xdg" / "anonex"
    monkeypatch.setenv("ANONEX_CACHE", str(tmp_path / "mine"))
    assert debian.kernels_dir() == tmp_path / "mine" / "kernels"


def _fake_cached(cache: Path, name: str, release: str, upstream: str) -> Path:
    folder = cache / "kernels" / debian.folder_name(name)
    make_image(folder / "boot" / f"vmlinuz-{release}",
               f"{release} (x) #1 SMP Debian {upstream}-1")
    (folder / "lib" / "modules" / release).mkdir(parents=True)
    meta = {"format": 1, "name": name, "suite": "bookworm",
            "packages": [{"name": f"linux-image-{release}-unsigned", "version": f"{upstream}-1"}],
            "upstream": upstream, "debian_version": f"{upstream}-1", "release": release,
            "kimg": f"boot/vmlinuz-{release}", "moddir": f"lib/modules/{release}",
            "fetched_at": "2026-12-07T00:00:00+00:00"}
    (folder / "kernel.json").write_text(json.dumps(meta))
    return folder


def test_cached_kernel_needs_no_apt(cache: Path, no_apt: None) -> None:
    folder = _fake_cached(cache, "debian:6.1", "6.1.0-53-amd64", "6.1.187")
    # a half-done fetch and a folder without kernel.json are not kernels
    (cache / "kernels" / ".fetch-debian-6.12-abc" / "root").mkdir(parents=True)
    (cache / "kernels" / "debian-5.10" / "boot").mkdir(parents=True)
    assert [r.name for r in debian.cached()] == ["debian:6.1"]
    k = resolve("debian:6.1")
    assert k == KernelImage(label="debian:6.1", kimg=folder / "boot" / "vmlinuz-6.1.0-53-amd64",
                            release="6.1.0-53-amd64",
                            moddir=folder / "lib" / "modules" / "6.1.0-53-amd64",
                            upstream="6.1.187")
    # an exact version that a cached kernel has is that kernel, under its own label
    k2 = resolve("debian:6.1.187")
    assert k2.kimg == k.kimg and k2.label == "debian:6.1.187"
    # a cached kernel is checked against what resolving its image gives (virtme-ng's view)
    assert from_path(str(k.kimg)) == KernelImage(
        label=k.kimg.name, kimg=k.kimg, release=k.release, moddir=k.moddir, upstream="6.1.187")
    # a short name is one kernel: a cached folder of another version is not it
    _fake_cached(cache, "debian:6.12", "6.12.107+deb13-amd64", "6.12.107")
    with pytest.raises(AssertionError, match="unexpected subprocess call"):
        resolve("debian:6.12")


def test_broken_cache_entry_is_not_a_kernel(cache: Path) -> None:
    folder = _fake_cached(cache, "debian:6.1", "6.1.0-50-amd64", "6.1.176")
    shutil.rmtree(folder / "lib")
    assert debian.cached() == []
    (folder / "kernel.json").write_text("{not json")
    assert debian.cached() == []


class FakeApt:
    """Stands in for :class:`debian.Apt` once a package is chosen: 'downloads' a .deb."""

    def __init__(self, deb: Path | None) -> None:
        self.deb = deb

    def download(self, pkgs: tuple[Package, ...], dest: Path, what: str,
                 progress: Progress | None) -> list[Path]:
        if self.deb is None:
            (dest / "half.deb").write_bytes(b"x" * 100)
            raise ImageError("apt-get download failed: connection reset")
        out = dest / self.deb.name
        shutil.copy(self.deb, out)
        if progress is not None:
            progress(what, out.stat().st_size, out.stat().st_size)
        return [out]


def _make_deb(tmp_path: Path, release: str) -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    root = tmp_path / "debroot"
    make_image(root / "boot" / f"vmlinuz-{release}", f"{release} (x) #1 SMP Debian 5.10.223-1")
    (root / "lib" / "modules" / release / "kernel").mkdir(parents=True)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(
        f"Package: linux-image-{release}-unsigned\nVersion: 5.10.223-1\nArchitecture: amd64\n"
        "Maintainer: test <t@example.org>\nDescription: test\n")
    deb = tmp_path / f"linux-image-{release}-unsigned_5.10.223-1_amd64.deb"
    subprocess.run(["dpkg-deb", "-Zgzip", "--build", str(root), str(deb)], check=True,
                   capture_output=True)
    return deb


def _choice(release: str) -> Choice:
    return Choice("bullseye", "5.10.223", "5.10.223-1",
                  (Package(f"linux-image-{release}-unsigned", "5.10.223-1", "bullseye"),))


def test_fetch_unpacks_records_and_renames(cache: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    rel = "5.10.0-32-amd64"
    deb = _make_deb(tmp_path, rel)
    monkeypatch.setattr(debian, "_find", lambda w, work, what, p: (FakeApt(deb), _choice(rel)))
    seen: list[tuple[str, int, int]] = []
    k = resolve("debian:5.10", lambda w, d, t: seen.append((w, d, t)))
    folder = cache / "kernels" / "debian-5.10"
    assert k.kimg == folder / "boot" / f"vmlinuz-{rel}" and k.release == rel
    assert k.moddir == folder / "lib" / "modules" / rel and k.upstream == "5.10.223"
    meta = json.loads((folder / "kernel.json").read_text())
    assert meta["suite"] == "bullseye" and meta["upstream"] == "5.10.223"
    assert meta["packages"] == [{"name": f"linux-image-{rel}-unsigned", "version": "5.10.223-1"}]
    assert meta["kimg"] == f"boot/vmlinuz-{rel}" and meta["moddir"] == f"lib/modules/{rel}"
    assert {p.name for p in (cache / "kernels").iterdir()} == {"debian-5.10"}  # no scratch
    assert not list(cache.rglob("*.deb"))
    assert ("debian:5.10", deb.stat().st_size, deb.stat().st_size) in seen
    if shutil.which("depmod") or Path("/usr/sbin/depmod").exists():
        assert (k.moddir is not None and (k.moddir / "modules.dep").exists())


def test_failed_fetch_leaves_nothing(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rel = "5.10.0-32-amd64"
    monkeypatch.setattr(debian, "_find", lambda w, work, what, p: (FakeApt(None), _choice(rel)))
    with pytest.raises(ImageError, match="connection reset"):
        resolve("debian:5.10")
    assert list((cache / "kernels").iterdir()) == []
    assert debian.cached() == []


def test_no_debian_archive_configured(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANONEX_DEBIAN_URI", raising=False)
    monkeypatch.setattr(debian, "system_sources", lambda: [])
    monkeypatch.setattr(debian, "_tool", lambda name: f"/usr/bin/{name}")
    with pytest.raises(ImageError, match="ANONEX_DEBIAN_URI"):
        resolve("debian:6.12")
    assert list((cache / "kernels").iterdir()) == []


def test_missing_apt_tools(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    with pytest.raises(ImageError, match="needs apt-get"):
        resolve("debian:6.12")


# --- anonex kernels ------------------------------------------------------------------------------

@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False)
    app.command("kernels")(kernels_cmd)

    @app.command("other")
    def _other() -> None:  # a second command, so that "kernels" is a subcommand as in anonex
        pass
    return app


def test_kernels_cmd_lists(cache: Path, cli: typer.Typer, no_apt: None) -> None:
    _fake_cached(cache, "debian:6.1", "6.1.0-50-amd64", "6.1.176")
    r = CliRunner().invoke(cli, ["kernels", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert [c["name"] for c in doc["cached"]] == ["debian:6.1"]
    assert doc["cached"][0]["release"] == "6.1.0-50-amd64" and doc["cached"][0]["size"] > 0
    assert [(k["name"], k["cached"]) for k in doc["known"]] == [
        ("debian:5.10", False), ("debian:6.1", True), ("debian:6.12", False),
        ("debian:7.2", False)]
    r = CliRunner().invoke(cli, ["kernels"])
    assert r.exit_code == 0, r.output
    assert "6.1.176" in r.output and "fetched on first use" in r.output
    assert "--boot debian:6.1" in r.output


def test_kernels_cmd_bad_name(cache: Path, cli: typer.Typer, no_apt: None) -> None:
    r = CliRunner().invoke(cli, ["kernels", "--fetch", "debian:4.19"])
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and "unknown Debian kernel" in r.output
    assert "Traceback" not in r.output


def test_kernels_cmd_fetch_failure(cache: Path, cli: typer.Typer,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debian, "_find", lambda w, work, what, p: (FakeApt(None),
                                                                   _choice("5.10.0-32-amd64")))
    r = CliRunner().invoke(cli, ["kernels", "--fetch", "5.10", "--json"])
    assert r.exit_code == 1
    assert "connection reset" in r.output and "Traceback" not in r.output


# --- real kernels ---------------------------------------------------------------------------------

@pytest.fixture
def real_cached() -> list[debian.Cached]:
    recs = debian.cached()
    if not recs:
        _require_or_skip(f"no Debian kernel is cached in {debian.kernels_dir()} "
                         "(anonex kernels --fetch all)")
    return recs


def test_real_cached_images(real_cached: list[debian.Cached]) -> None:
    """Every cached kernel's image gives the release kernel.json records, the modules it
    records, the upstream version of its package, and virtme-ng finds the same."""
    for r in real_cached:
        k = from_path(str(r.kimg))
        assert (k.release, k.moddir, k.upstream) == (r.release, r.moddir, r.upstream), r.name
        assert (r.moddir / "modules.dep").exists(), r.name
        assert _virtme_moddir(r.kimg, r.release) == r.moddir
        run = pytest.importorskip("virtme.commands.run")
        assert run.get_kernel_version(str(r.kimg), "vmlinuz") == r.release


def _apt_lists() -> list[tuple[str, int, int]]:
    top = Path("/var/lib/apt/lists")
    if not top.is_dir():
        return []
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in top.iterdir())


def test_real_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """debian:5.10 for real: fetched into a fresh cache with ANONEX_TEST_FETCH=1 (network,
    ~55 MB), else resolved from the real cache without apt when it is there."""
    if os.environ.get("ANONEX_TEST_FETCH") == "1":
        monkeypatch.setenv("ANONEX_CACHE", str(tmp_path / "cache"))
        before = _apt_lists()
        k = resolve("debian:5.10")
        assert _apt_lists() == before  # the system's apt lists are untouched
        assert resolve("debian:5.10") == k
    elif any(r.name == "debian:5.10" for r in debian.cached()):
        def boom(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"unexpected subprocess call: {args}")
        monkeypatch.setattr(subprocess, "run", boom)
        monkeypatch.setattr(subprocess, "Popen", boom)
        k = resolve("debian:5.10")
    else:
        pytest.skip("debian:5.10 is not cached and ANONEX_TEST_FETCH=1 is not set")
    assert k.label == "debian:5.10"
    assert k.release.startswith("5.10.0-") and k.release.endswith("-amd64")
    assert k.upstream is not None and k.upstream.startswith("5.10.")
    assert k.moddir is not None and (k.moddir / "modules.dep").exists()
    assert len(list(k.moddir.rglob("*.ko*"))) > 1000


def test_an_early_boot_crash_is_told_from_a_steady_failure() -> None:
    """A guest that crashed while booting gets one more boot; one whose script failed
    the same way every time (a missing bundle, no modules) does not."""
    from anonex.boot.backend import _early_crash

    assert _early_crash("the guest stopped before it finished to boot\n[ 2.76] Oops: int3: "
                        "0000 [#1] PREEMPT SMP NOPTI\n[ 2.78] Kernel panic - not syncing")
    assert not _early_crash("the guest stopped before it finished to boot\ntar: "
                            "python.tar: Cannot open: No such file or directory")
