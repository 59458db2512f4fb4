"""The Python a guest runs, in one tar file it unpacks into memory.

A guest sees this machine's root filesystem over 9p. Under software emulation every 9p
request costs milliseconds, and a Python start-up is thousands of them: a bare
``python -c pass`` took 11 s in a 5.10 guest, importing the live backend more than a
minute. Reading one tar file is a few large requests instead. So the host packs what the
guest's anonex needs (the interpreter and its shared library, every package and module
the guest code imports, their compiled bytecode, the extension modules and the shared
libraries they load) into a tar that the guest unpacks into its tmpfs and runs from: the
same start-up then takes well under a second.

What goes in is found, not listed: the modules this process has loaded after importing
the guest's code (whole packages, their tests left out, so a submodule imported later is
there too), and the files under the interpreter's prefixes mapped into this process
(``/proc/self/maps``: libpython, numpy's OpenBLAS). The original paths stay on
``sys.path`` after the bundled ones, so a module missed here still loads, slowly, over
9p. The tar is cached by a key of its files' names, sizes and times.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import sys
import sysconfig
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: modules the guest imports (the rest follows from them)
GUEST_MODULES = ("anonex.boot.guest", "anonex.live.backend", "anonex.live.actor",
                 "anonex.runner", "subprocess", "tempfile", "pickle",
                 "ctypes", "json", "shutil", "mmap", "fcntl", "select", "traceback",
                 "cProfile", "pstats")
SKIP_DIRS = {"tests", "test", "__pycache__-skip", "idlelib", "tkinter", "turtledemo",
             "ensurepip", "lib2to3", "pydoc_data", "f2py", "_pyinstaller"}
UNPACK = "/tmp/anonex-python"  # where the guest unpacks the tar (its tmpfs)


@dataclass(frozen=True, slots=True)
class Bundle:
    """A packed Python and how the guest starts it."""

    tar: Path
    files: int
    size: int

    def command(self, module: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
        """The argv that runs *module* (``python -m``) with the interpreter inside the
        unpacked tree, and its environment. Modules the bundle missed load from the
        originals over 9p: those paths come last on ``sys.path``, after the bundled
        standard library (on ``PYTHONPATH`` they would come first, and every import would
        look over 9p before it looks in memory)."""
        root = UNPACK
        exe = root + os.path.realpath(sys.executable)
        libdirs = sorted({root + os.path.dirname(p) for p in _mapped_files()
                          if "libpython" in os.path.basename(p)})
        paths = _path_entries()
        fallback = [*paths, sysconfig.get_path("stdlib"),
                    os.path.join(sysconfig.get_path("platstdlib"), "lib-dynload")]
        env = {"PYTHONHOME": root + sys.base_prefix,
               "PYTHONPATH": ":".join(root + p for p in paths),
               "PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1"}
        if libdirs:
            env["LD_LIBRARY_PATH"] = ":".join(libdirs)
        return [exe, "-S", "-c", _BOOT, ":".join(fallback), module, *args], env


#: ``python -c`` bootstrap: fallback paths at the end of sys.path, then ``-m MODULE ARGS``
_BOOT = ("import sys, runpy; sys.path.extend(sys.argv[1].split(':')); m = sys.argv[2]; "
         "sys.argv = [m, *sys.argv[3:]]; runpy.run_module(m, run_name='__main__', "
         "alter_sys=True)")


def _path_entries() -> list[str]:
    """``sys.path`` directories other than the standard library's (site-packages, the
    anonex sources of an editable install)."""
    std = {sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")}
    out = []
    for p in sys.path:
        if p and os.path.isdir(p) and p not in std and not p.endswith("lib-dynload") \
                and p not in out:
            out.append(os.path.abspath(p))
    return out


def _prefixes() -> list[str]:
    return sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix,
                                                 sys.exec_prefix)} | set(_path_entries()))


def _mapped_files() -> list[str]:
    """Files mapped into this process that lie under the interpreter's prefixes."""
    out = set()
    prefixes = _prefixes()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                path = parts[5].strip()
                if any(path.startswith(p + "/") for p in prefixes) and os.path.isfile(path):
                    out.add(path)
    return sorted(out)


def _package_files(directory: str) -> list[str]:
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        out.extend(os.path.join(dirpath, f) for f in filenames)
    return out


def collect() -> list[str]:
    """Every file the guest's Python needs, as absolute paths."""
    for name in GUEST_MODULES:
        importlib.import_module(name)
    roots = set(_path_entries()) | {sysconfig.get_path("stdlib"),
                                    sysconfig.get_path("platstdlib")}
    files: set[str] = set(_mapped_files())
    files.add(os.path.realpath(sys.executable))
    seen_pkgs: set[str] = set()
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if not f or not any(f.startswith(r + "/") for r in roots):
            continue
        top = _top_dir(f, roots)
        if top is not None:  # a package: all of it
            if top not in seen_pkgs:
                seen_pkgs.add(top)
                files.update(_package_files(top))
        else:
            files.add(f)
            cached = getattr(mod, "__cached__", None)
            if cached and os.path.exists(cached):
                files.add(cached)
    # the lib-dynload extension modules are small and imported lazily by the stdlib
    dyn = os.path.join(sysconfig.get_path("platstdlib"), "lib-dynload")
    if os.path.isdir(dyn):
        files.update(_package_files(dyn))
    return sorted(p for p in files if os.path.isfile(p))


def _top_dir(path: str, roots: set[str]) -> str | None:
    """The top-level package directory *path* belongs to (``None``: a top-level module)."""
    for r in sorted(roots, key=len, reverse=True):  # site-packages lies inside the stdlib
        if path.startswith(r + "/"):
            rel = path[len(r) + 1:]
            if "/" in rel:
                return os.path.join(r, rel.split("/", 1)[0])
            return None
    return None


def build(cache: Path) -> Bundle:
    """The bundle for this interpreter and these sources (reused while nothing changed).
    anonex's own bytecode is compiled first: the guest's file system is read-only, and a
    source edited since it was last imported would be compiled again at every start."""
    import compileall

    for p in _path_entries():
        if os.path.isdir(os.path.join(p, "anonex")) and os.access(p, os.W_OK):
            compileall.compile_dir(os.path.join(p, "anonex"), quiet=2)
    files = collect()
    h = hashlib.sha256()
    size = 0
    for p in files:
        st = os.stat(p)
        size += st.st_size
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    cache.mkdir(parents=True, exist_ok=True)
    tar = cache / f"python-{h.hexdigest()[:16]}.tar"
    if not tar.exists():
        # another anonex run may still boot guests from an older bundle: only those
        # unused for STALE_AFTER go (a bundle is touched whenever a run takes it)
        now = time.time()
        for old in cache.glob("python-*.tar"):
            with contextlib.suppress(OSError):
                if now - old.stat().st_mtime > STALE_AFTER:
                    old.unlink()
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=tar.name, suffix=".tmp")
        os.close(fd)
        with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as t:
            for p in files:
                t.add(p, recursive=False)
        os.replace(tmp, tar)
    else:
        os.utime(tar)
    return Bundle(tar, len(files), size)


STALE_AFTER = 6 * 3600.0  # seconds a bundle is kept unused


def cache_dir() -> Path:
    """Where bundles are kept (beside fetched kernels)."""
    from anonex.boot.debian import cache_root

    return cache_root() / "guest"


if __name__ == "__main__":  # pragma: no cover - a look at what would be packed
    b = build(cache_dir())
    print(f"{b.tar}: {b.files} files, {b.size / 1e6:.1f} MB")
