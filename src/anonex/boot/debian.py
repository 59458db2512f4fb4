"""Debian's kernels by short name (``debian:6.1``), fetched once into a cache.

A short name stands for one kernel of a Debian suite (:data:`TABLE`): the one anonex's
findings were measured on (``debian:6.1`` is 6.1.187, in the suite's release or
``-security`` archive), so that a name means the same kernel on every machine and in
every report; ``debian:5.10.262`` means the kernel of that upstream version in any of the
table's suites (their ``-security`` archives too, where the machine has one: point
releases leave some stable updates only there). The image package is
``linux-image-ABI-amd64-unsigned``, or, where Debian splits it (sid from 7.x),
``linux-binary-ABI-amd64`` (the vmlinuz) with ``linux-modules-ABI-amd64``; never ``-rt-``,
``-cloud-`` or ``-dbg``.

Fetching goes through the machine's own apt: the archive's URI and keyring are read from its
sources (:func:`system_sources`; no mirror is named here), and ``apt-get update`` /
``apt-get download`` run against a sources file, lists, cache and (empty) dpkg status of
their own in a scratch folder of the cache, so the system's apt state is never read for
packages nor written. The packages are unpacked with ``dpkg -x`` into a scratch folder,
``depmod`` fills in ``modules.dep`` (virtme-ng would otherwise write it into the cache at boot
time), ``kernel.json`` records what was fetched, and only then is the folder renamed into
``kernels/``: a fetch cut short leaves nothing that looks complete. The ``.deb`` files are
not kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anonex.boot.images import ImageError, KernelImage, Progress, from_path

FLAVOUR = "amd64"
PREFIX = "debian:"
FORMAT = 1  # kernel.json's layout


@dataclass(frozen=True, slots=True)
class Known:
    """A short name: ``debian:SERIES`` is upstream *version* as Debian's *suite* has it
    (the kernel of that series the project's findings were measured on)."""

    name: str
    suite: str
    series: str
    version: str


TABLE: tuple[Known, ...] = (
    Known("debian:5.10", "bullseye", "5.10", "5.10.223"),
    Known("debian:6.1", "bookworm", "6.1", "6.1.187"),
    Known("debian:6.12", "trixie", "6.12", "6.12.117"),
    Known("debian:7.2", "sid", "7.2", "7.2.13"),
)


def known() -> list[Known]:
    """The short names that can be fetched."""
    return list(TABLE)


# --- the cache ------------------------------------------------------------------------------

def cache_root() -> Path:
    """``$ANONEX_CACHE``, else ``$XDG_CACHE_HOME/anonex``, else ``~/.cache/anonex``."""
    if env := os.environ.get("ANONEX_CACHE"):
        return Path(os.path.abspath(Path(env).expanduser()))
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(os.path.abspath(Path(xdg).expanduser())) / "anonex"
    return Path.home() / ".cache" / "anonex"


def kernels_dir() -> Path:
    """Where fetched kernels live, one folder each."""
    return cache_root() / "kernels"


def folder_name(name: str) -> str:
    """The cache folder of a short name: ``debian:6.1`` → ``debian-6.1``."""
    return name.replace(":", "-")


@dataclass(frozen=True, slots=True)
class Cached:
    """A fetched kernel: its folder and what its ``kernel.json`` says."""

    name: str
    path: Path
    suite: str
    packages: tuple[str, ...]
    upstream: str
    release: str
    kimg: Path
    moddir: Path
    fetched_at: str

    def image(self, label: str | None = None) -> KernelImage:
        return KernelImage(label=label or self.name, kimg=self.kimg, release=self.release,
                           moddir=self.moddir, upstream=self.upstream)

    def disk_size(self) -> int:
        """Bytes on disk of the folder (files and links, not followed)."""
        total = 0
        for root, _dirs, files in os.walk(self.path):
            for f in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(root, f)).st_blocks * 512
        return total


def _load(folder: Path) -> Cached | None:
    try:
        meta: dict[str, Any] = json.loads((folder / "kernel.json").read_text())
        rec = Cached(name=str(meta["name"]), path=folder, suite=str(meta["suite"]),
                     packages=tuple(p["name"] for p in meta["packages"]),
                     upstream=str(meta["upstream"]), release=str(meta["release"]),
                     kimg=folder / meta["kimg"], moddir=folder / meta["moddir"],
                     fetched_at=str(meta["fetched_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rec if rec.kimg.is_file() and rec.moddir.is_dir() else None


def cached() -> list[Cached]:
    """The kernels in the cache, by name (folders without a valid ``kernel.json`` and
    scratch folders of fetches under way are not kernels)."""
    top = kernels_dir()
    if not top.is_dir():
        return []
    recs = (_load(d) for d in sorted(top.iterdir()) if d.is_dir() and not d.name.startswith("."))
    return [r for r in recs if r is not None]


# --- what a name asks for ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Wanted:
    """A parsed ``debian:`` name: a table entry, or an exact upstream version."""

    name: str
    entry: Known | None
    exact: str | None


def parse_name(spec: str) -> Wanted:
    """``debian:6.1`` or ``debian:6.1.176`` (the prefix may be left out)."""
    name = spec.strip()
    if not name.startswith(PREFIX):
        name = PREFIX + name
    for k in TABLE:
        if k.name == name:
            return Wanted(name, k, k.version)
    rest = name[len(PREFIX):]
    if re.fullmatch(r"\d+\.\d+\.\d+", rest):
        return Wanted(name, None, rest)
    names = ", ".join(k.name for k in TABLE)
    raise ImageError(f"{spec}: unknown Debian kernel; expected one of {names}, or debian:X.Y.Z "
                     "for an exact upstream version (e.g. debian:5.10.223)")


def lookup(wanted: Wanted) -> Cached | None:
    """The cached kernel for *wanted*: its own folder, or for an exact version any cached
    kernel of that upstream version."""
    recs = cached()
    for r in recs:
        if r.path.name == folder_name(wanted.name) and \
                (wanted.exact is None or r.upstream == wanted.exact):
            return r
    if wanted.exact is not None:
        for r in recs:
            if r.upstream == wanted.exact:
                return r
    return None


# --- apt sources ------------------------------------------------------------------------------

def parse_deb822(text: str) -> list[dict[str, str]]:
    """Paragraphs of a deb822 text (``*.sources``, ``Packages``, ``apt-cache show``): field
    names lower-cased, continuation lines joined with newlines, comments dropped."""
    paras: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if cur:
                paras.append(cur)
            cur, last = {}, None
        elif line[0] in " \t":
            if last is not None:
                cur[last] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            last = key.strip().lower()
            cur[last] = value.strip()
    if cur:
        paras.append(cur)
    return paras


@dataclass(frozen=True, slots=True)
class Source:
    """One apt source entry (deb822 or one-line)."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None
    enabled: bool = True


def sources_from_deb822(text: str) -> list[Source]:
    out: list[Source] = []
    for p in parse_deb822(text):
        out.append(Source(types=tuple(p.get("types", "").split()),
                          uris=tuple(p.get("uris", "").split()),
                          suites=tuple(p.get("suites", "").split()),
                          components=tuple(p.get("components", "").split()),
                          signed_by=p.get("signed-by") or None,
                          enabled=p.get("enabled", "yes").lower() not in ("no", "false", "0")))
    return out


def sources_from_list(text: str) -> list[Source]:
    """One-line entries: ``deb [opt=val ...] URI SUITE COMPONENT...``."""
    out: list[Source] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
        if m is None:
            continue
        opts = dict(o.split("=", 1) for o in (m.group(2) or "").split() if "=" in o)
        out.append(Source(types=(m.group(1),), uris=(m.group(3),), suites=(m.group(4),),
                          components=tuple(m.group(5).split()),
                          signed_by=opts.get("signed-by")))
    return out


def system_sources(etc: Path = Path("/etc/apt")) -> list[Source]:
    """The machine's apt sources: ``sources.list``, ``sources.list.d/*.list`` and
    ``*.sources``."""
    out: list[Source] = []
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for f in files:
        with contextlib.suppress(OSError):
            out.extend(sources_from_list(f.read_text(errors="replace")))
    for f in sorted((etc / "sources.list.d").glob("*.sources")):
        with contextlib.suppress(OSError):
            out.extend(sources_from_deb822(f.read_text(errors="replace")))
    return out


@dataclass(frozen=True, slots=True)
class Archive:
    """Where a suite is fetched from: URI and keyring (``Signed-By``, a path or a key)."""

    uri: str
    signed_by: str | None


def _is_release_suite(suite: str) -> bool:
    return re.fullmatch(r"[a-z]+", suite) is not None


def archive_for(suite: str, sources: Iterable[Source]) -> Archive | None:
    """The archive of *suite*: the source whose suites are plain codenames for a release
    suite (``bookworm``), the one with a ``-security`` suite for ``X-security``; None if
    the machine has none. ``$ANONEX_DEBIAN_URI`` overrides the release archive."""
    security = suite.endswith("-security")
    usable = [s for s in sources if s.enabled and "deb" in s.types and s.uris
              and "main" in s.components and not s.uris[0].startswith("cdrom:")]
    if not security and (env := os.environ.get("ANONEX_DEBIAN_URI")):
        keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
        return Archive(env, str(keyring) if keyring.exists() else None)
    for s in usable:
        if security and any(x.endswith("-security") for x in s.suites):
            return Archive(s.uris[0], s.signed_by)
        if not security and any(_is_release_suite(x) for x in s.suites):
            return Archive(s.uris[0], s.signed_by)
    return None


def sources_text(suite: str, archive: Archive) -> str:
    """A deb822 sources file for one suite of *archive* (amd64, main, Packages only)."""
    lines = ["Types: deb", f"URIs: {archive.uri}", f"Suites: {suite}", "Components: main",
             f"Architectures: {FLAVOUR}", "Targets: Packages"]
    if archive.signed_by:
        first, *more = archive.signed_by.split("\n")
        lines.append(f"Signed-By: {first}")
        lines.extend(f" {x}" for x in more)
    return "\n".join(lines) + "\n"


# --- packages in the archive --------------------------------------------------------------------

_NAME = re.compile(rf"linux-(?P<kind>image|binary|modules)-(?P<abi>\d+\.\d+[\w.+~-]*?)"
                   rf"-{FLAVOUR}(?P<unsigned>-unsigned)?")
_EXCLUDED = ("-rt-", "-cloud-", "-dbg")


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    version: str  # Debian version, e.g. 6.1.176-1
    suite: str

    @property
    def upstream(self) -> str:
        return upstream_of(self.version)


@dataclass(frozen=True, slots=True)
class Choice:
    """The packages of one kernel: its image (and its modules when they come apart)."""

    suite: str
    upstream: str
    version: str
    packages: tuple[Package, ...]


def upstream_of(version: str) -> str:
    """``6.1.176-1`` → ``6.1.176``; ``7.2.13-1~exp1`` → ``7.2.13``."""
    return re.split(r"[-~+]", version, maxsplit=1)[0]


def in_series(upstream: str, series: str) -> bool:
    """``6.1.176`` is in series ``6.1``; ``6.12.1`` is not."""
    return upstream == series or upstream.startswith(series + ".")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version))


def kernel_packages(paras: Iterable[dict[str, str]], suite: str) -> list[Choice]:
    """The bootable kernels among ``apt-cache show`` paragraphs: per ABI, the unsigned image,
    else the split image and modules, else the signed image."""
    by_abi: dict[tuple[str, str], dict[str, Package]] = {}
    for p in paras:
        name, version = p.get("package", ""), p.get("version", "")
        m = _NAME.fullmatch(name)
        if m is None or not version or "filename" not in p or any(x in name for x in _EXCLUDED):
            continue
        kind = m.group("kind") + ("-unsigned" if m.group("unsigned") else "")
        by_abi.setdefault((m.group("abi"), version), {})[kind] = Package(name, version, suite)
    out: list[Choice] = []
    for (_abi, version), kinds in by_abi.items():
        if "image-unsigned" in kinds:
            pkgs: tuple[Package, ...] = (kinds["image-unsigned"],)
        elif "binary" in kinds and "modules" in kinds:
            pkgs = (kinds["binary"], kinds["modules"])
        elif "image" in kinds and "binary" not in kinds and "modules" not in kinds:
            pkgs = (kinds["image"],)  # where modules come apart, linux-image is a metapackage
        else:
            continue
        out.append(Choice(suite, upstream_of(version), version, pkgs))
    return out


def choose(choices: Iterable[Choice], series: str | None = None,
           exact: str | None = None) -> Choice | None:
    """The newest kernel of *series* (``6.1``), or the one of upstream version *exact*."""
    fit = [c for c in choices
           if (exact is not None and c.upstream == exact)
           or (series is not None and in_series(c.upstream, series))]
    return max(fit, key=lambda c: version_key(c.version)) if fit else None


def parse_print_uris(text: str) -> list[tuple[str, str, int, str]]:
    """``apt-get download --print-uris`` lines: (uri, file name, size, checksum)."""
    out: list[tuple[str, str, int, str]] = []
    for line in text.splitlines():
        m = re.match(r"'([^']+)'\s+(\S+)\s+(\d+)\s+(\S+)", line)
        if m:
            out.append((m.group(1), m.group(2), int(m.group(3)), m.group(4)))
    return out


# --- apt, isolated ------------------------------------------------------------------------------

def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if found is None:
        raise ImageError(f"fetching Debian kernels needs {name} (not found on this machine); "
                         "boot a kernel image file instead (anonex check --boot PATH)")
    return found


def _apt_errors(text: str) -> str:
    """apt's error lines (``E:``, ``W:``, ``Err:`` and their indented details), shortened."""
    lines = [x.strip() for x in text.splitlines()
             if x.startswith(("E:", "W:", "Err:", "  "))]
    return "; ".join(lines[-3:]) or (text.strip().splitlines() or ["no output"])[-1]


# The machine's apt hooks are for its own package state: after an update of ours they would
# refresh system caches (appstream) or tell PackageKit its cache changed.
_HOOKS_OFF = "".join(f"#clear {key};\n" for key in (
    "APT::Update::Pre-Invoke", "APT::Update::Post-Invoke", "APT::Update::Post-Invoke-Success",
    "APT::Update::Post-Invoke-Stats", "DPkg::Pre-Invoke", "DPkg::Post-Invoke",
    "DPkg::Pre-Install-Pkgs"))


class Apt:
    """``apt-get`` / ``apt-cache`` on one suite with a state of their own under *work*."""

    def __init__(self, work: Path, suite: str, archive: Archive) -> None:
        self.work, self.suite, self.archive = work, suite, archive
        self.lists = work / "lists"
        for d in (self.lists / "partial", work / "cache" / "archives" / "partial"):
            d.mkdir(parents=True, exist_ok=True)
        (work / "status").write_text("")
        (work / "sources.sources").write_text(sources_text(suite, archive))
        (work / "apt.conf").write_text(_HOOKS_OFF)
        # -c is read after the machine's configuration (whose proxy settings still apply).
        self.opts = ["-c", str(work / "apt.conf"),
                     "-o", f"Dir::Etc::sourcelist={work / 'sources.sources'}",
                     "-o", "Dir::Etc::sourceparts=-",
                     "-o", f"Dir::State::Lists={self.lists}",
                     "-o", f"Dir::Cache={work / 'cache'}",
                     "-o", f"Dir::State::status={work / 'status'}",
                     "-o", f"Dir::State::extended_states={work / 'extended_states'}",
                     "-o", "Acquire::Languages=none"]
        if os.geteuid() == 0:
            # As root apt downloads as the _apt user, which cannot write here; it would
            # then fall back to root with a warning on the user's screen.
            self.opts += ["-o", "APT::Sandbox::User=root"]

    def _run(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run([_tool(tool), *self.opts, *args], capture_output=True, text=True,
                              cwd=cwd, env={**os.environ, "LC_ALL": "C"}, check=False)
        if proc.returncode != 0:
            raise ImageError(f"{tool} {args[0]} failed for {self.suite} at {self.archive.uri}: "
                             f"{_apt_errors(proc.stdout + proc.stderr)}")
        return proc.stdout

    def update(self) -> None:
        """Fetch the suite's index; an unreachable archive is an error, not an empty list."""
        try:
            out = self._run("apt-get", "update")
        except ImageError as e:
            raise ImageError(f"cannot read Debian suite {self.suite}: {e}; check the network, "
                             "or set ANONEX_DEBIAN_URI to a Debian mirror's URI") from None
        if not any("Packages" in f.name for f in self.lists.iterdir()):
            raise ImageError(f"cannot read Debian suite {self.suite} at {self.archive.uri}: "
                             f"{_apt_errors(out)}; check the network, or set "
                             "ANONEX_DEBIAN_URI to a Debian mirror's URI")

    def kernels(self) -> list[Choice]:
        """The suite's bootable amd64 kernels."""
        found = self._run("apt-cache", "search", "--names-only",
                          rf"^linux-(image|binary|modules)-[0-9].*-{FLAVOUR}(-unsigned)?$")
        names = [n for n in (x.split(" - ", 1)[0].strip() for x in found.splitlines())
                 if _NAME.fullmatch(n) and not any(e in n for e in _EXCLUDED)]
        if not names:
            return []
        return kernel_packages(parse_deb822(self._run("apt-cache", "show", *names)), self.suite)

    def uris(self, pkgs: Iterable[Package]) -> list[tuple[str, str, int, str]]:
        return parse_print_uris(self._run("apt-get", "download", "--print-uris",
                                          *(f"{p.name}={p.version}" for p in pkgs)))

    def download(self, pkgs: tuple[Package, ...], dest: Path, what: str,
                 progress: Progress | None) -> list[Path]:
        """Download *pkgs* into *dest* (apt checks each file's SHA256 against the signed
        index), reporting the bytes on disk while apt-get runs."""
        plan = self.uris(pkgs)
        total = sum(size for _u, _f, size, _c in plan)
        log = self.work / "download.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [_tool("apt-get"), *self.opts, "download",
                 *(f"{p.name}={p.version}" for p in pkgs)],
                cwd=dest, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "LC_ALL": "C"})
            try:
                while proc.poll() is None:
                    if progress is not None:
                        progress(what, min(_bytes_in(dest), total), total)
                    time.sleep(0.2)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if proc.returncode != 0:
            raise ImageError(f"apt-get download failed for {self.suite} at {self.archive.uri}: "
                             f"{_apt_errors(log.read_text(errors='replace'))}")
        files = [dest / f for _u, f, _s, _c in plan]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ImageError(f"apt-get download left no {', '.join(missing)}")
        if progress is not None:
            progress(what, total, total)
        return files


def _bytes_in(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, f)).st_size
    return total


# --- fetching ------------------------------------------------------------------------------

def _suites_to_search(wanted: Wanted) -> list[str]:
    if wanted.entry is not None:
        return [wanted.entry.suite, f"{wanted.entry.suite}-security"]
    assert wanted.exact is not None
    series = ".".join(wanted.exact.split(".")[:2])
    same = [k.suite for k in TABLE if k.series == series]
    rest = [k.suite for k in TABLE if k.series != series]
    return [*same, *rest, *(f"{s}-security" for s in same)]


@contextlib.contextmanager
def _scratch(name: str) -> Iterator[Path]:
    """A scratch folder next to the kernels (same file system, so the result can be
    renamed into place), removed whatever happens."""
    top = kernels_dir()
    top.mkdir(parents=True, exist_ok=True)
    _sweep(top)
    work = Path(tempfile.mkdtemp(prefix=f".fetch-{folder_name(name)}-", dir=top))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sweep(top: Path, age: float = 86400.0) -> None:
    """Remove scratch folders a killed fetch left behind (older than a day)."""
    for d in top.glob(".fetch-*"):
        with contextlib.suppress(OSError):
            if time.time() - d.stat().st_mtime > age:
                shutil.rmtree(d, ignore_errors=True)


def _find(wanted: Wanted, work: Path, what: str, progress: Progress | None) -> tuple[Apt, Choice]:
    sources = system_sources()
    series = wanted.entry.series if wanted.entry else ".".join(str(wanted.exact).split(".")[:2])
    seen: list[str] = []
    unreachable: list[str] = []
    for suite in _suites_to_search(wanted):
        archive = archive_for(suite, sources)
        if archive is None:
            if suite.endswith("-security"):
                continue
            raise ImageError(f"{wanted.name}: the machine's apt sources name no Debian archive "
                             "(/etc/apt/sources.list, /etc/apt/sources.list.d/); set "
                             "ANONEX_DEBIAN_URI to a Debian mirror's URI")
        if progress is not None:
            progress(f"{what}: reading {suite}", 0, 0)
        apt = Apt(work / "apt" / suite, suite, archive)
        try:
            apt.update()
        except ImageError as e:
            if suite.endswith("-security") or suite == _suites_to_search(wanted)[0]:
                raise ImageError(f"{wanted.name}: {e}") from None
            unreachable.append(suite)
            continue
        choices = apt.kernels()
        pick = choose(choices, exact=wanted.exact)
        if pick is not None:
            return apt, pick
        seen.extend(f"{c.upstream} ({suite})" for c in choices
                    if in_series(c.upstream, series))
    where = ", ".join(_suites_to_search(wanted))
    have = ", ".join(sorted(set(seen), key=version_key)) or "none"
    also = f" (unreachable: {', '.join(unreachable)})" if unreachable else ""
    raise ImageError(f"{wanted.name}: no {FLAVOUR} kernel of that version in {where}{also}; "
                     f"the archive has: {have}")


def _kimg_in(root: Path) -> Path:
    found = [*root.glob("boot/vmlinuz-*"), *root.glob("usr/lib/modules/*/vmlinuz"),
             *root.glob("lib/modules/*/vmlinuz")]
    if len(found) != 1:
        raise ImageError(f"the unpacked packages hold {len(found)} kernel images, expected one")
    return found[0]


def _depmod(moddir: Path, release: str) -> None:
    """Write ``modules.dep`` (Debian's packages leave it to their postinst), through a
    compatibility root as virtme-ng does: kmod builds look in lib/ or usr/lib/."""
    depmod = shutil.which("depmod") or shutil.which("depmod", path="/usr/sbin:/sbin")
    if depmod is None or (moddir / "modules.dep").exists():
        return
    with tempfile.TemporaryDirectory(prefix="anonex-depmod-") as compat:
        mods = Path(compat) / "usr" / "lib" / "modules"
        mods.mkdir(parents=True)
        (mods / release).symlink_to(moddir.resolve())
        (Path(compat) / "lib").symlink_to("usr/lib")
        subprocess.run([depmod, "-a", "-b", compat, release], capture_output=True, check=False)


def fetch(spec: str, progress: Progress | None = None) -> Cached:
    """Fetch the kernel *spec* (``debian:NAME``) into the cache, unless it is there."""
    wanted = parse_name(spec)
    if (hit := lookup(wanted)) is not None:
        return hit
    _tool("apt-get")
    dpkg = _tool("dpkg")
    what = wanted.name
    with _scratch(wanted.name) as work:
        apt, pick = _find(wanted, work, what, progress)
        debs = work / "debs"
        debs.mkdir()
        files = apt.download(pick.packages, debs, what, progress)
        if progress is not None:
            progress(f"{what}: unpacking", 0, 0)
        root = work / "root"
        root.mkdir()
        for deb in files:
            proc = subprocess.run([dpkg, "-x", str(deb), str(root)], capture_output=True,
                                  text=True, check=False)
            if proc.returncode != 0:
                raise ImageError(f"{wanted.name}: dpkg -x {deb.name} failed: "
                                 f"{proc.stderr.strip() or proc.returncode}")
            deb.unlink()
        img = from_path(str(_kimg_in(root)))
        if img.moddir is None:
            raise ImageError(f"{wanted.name}: {', '.join(p.name for p in pick.packages)} hold "
                             f"no modules for {img.release}")
        _depmod(img.moddir, img.release)
        meta = {"format": FORMAT, "name": wanted.name, "suite": pick.suite,
                "packages": [{"name": p.name, "version": p.version} for p in pick.packages],
                "upstream": pick.upstream, "debian_version": pick.version,
                "release": img.release,
                "kimg": str(img.kimg.relative_to(root)),
                "moddir": str(img.moddir.relative_to(root)),
                "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}
        (root / "kernel.json").write_text(json.dumps(meta, indent=2) + "\n")
        final = kernels_dir() / folder_name(wanted.name)
        try:
            root.rename(final)
        except OSError:
            # Another fetch of the same name finished first: use its folder.
            if (rec := _load(final)) is not None:
                return rec
            raise ImageError(f"{wanted.name}: cannot move the kernel into {final} "
                             "(a folder that is not a fetched kernel is in the way)") from None
    rec = _load(final)
    if rec is None:
        raise ImageError(f"{wanted.name}: the fetched kernel in {final} is incomplete")
    return rec


def resolve(spec: str, progress: Progress | None = None) -> KernelImage:
    """The kernel image of ``debian:NAME``: from the cache, else fetched first."""
    wanted = parse_name(spec)
    return fetch(spec, progress).image(label=wanted.name)
