"""Build hook: compile the model and the explorer's hot path with mypyc.

The model is plain, strictly typed Python; mypyc turns the listed modules into C
extensions (2-3x faster model steps, state copies and keys) at install time. Set
``ANONEX_COMPILE=0`` to install pure Python (then edits to these modules take effect
without reinstalling; with compiled modules, ``anonex`` warns and falls back to the
sources when a source is newer than its compiled module).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
SRC = HERE / "src"

# Modules compiled together (one group: calls between them are native): the kernel model, the
# harness that drives it and the explorer's hot path. The version table
# (kernel/versions.py) stays interpreted: its Rules object has one attribute per boundary.
COMPILED = sorted(
    str(p.relative_to(HERE))
    for p in [*(SRC / "anonex" / "kernel").glob("*.py"),
              *(SRC / "anonex" / "harness").glob("*.py"),
              *(SRC / "anonex" / "explore" / m for m in (
                  "clone.py", "canon.py", "world.py", "properties.py", "space.py",
                  "dispose.py", "kernel_model.py", "checker/partition.py"))]
    if p.name not in ("versions.py", "__init__.py"))

BUILDS = ("build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install")


def remove_compiled() -> None:
    """Remove the compiled modules an earlier editable install left beside the sources."""
    for ext in [*SRC.glob("*__mypyc*"), *(SRC / "anonex").rglob("*.so")]:
        ext.unlink()


def ext_modules() -> list[object]:
    if os.environ.get("ANONEX_COMPILE", "1") == "0":
        if any(cmd in sys.argv for cmd in BUILDS):  # no compiled module left behind
            remove_compiled()
        return []
    if not any(cmd in sys.argv for cmd in BUILDS):
        return []  # metadata only: no need to type-check and generate C
    from mypyc.build import mypycify

    wanted = {str(Path(m).with_suffix("")) for m in COMPILED}
    for ext in (SRC / "anonex").rglob("*.so"):  # modules compiled by an older build
        if str(ext.relative_to(HERE)).split(".", 1)[0] not in wanted:
            ext.unlink()

    return list(mypycify(COMPILED, opt_level="3"))


class OptionalBuildExt(build_ext):
    """Compile if possible: without a C compiler or the Python headers the install goes on
    as pure Python (the same code, slower), saying so."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # a compiler error of any kind: build nothing at all
            for ext in self.extensions:  # compiled modules go together or not at all
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            remove_compiled()
            msg = (f"anonex: compiling the model failed ({type(e).__name__}: {e}); "
                   "installing it as pure Python")
            print(msg, file=sys.stderr)


setup(ext_modules=ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
