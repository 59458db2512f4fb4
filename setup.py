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

HERE = Path(__file__).parent
SRC = HERE / "src"

# Modules compiled together (one group: calls between them are native). The version table
# (kernel/versions.py) stays interpreted: its Rules object has one attribute per boundary.
COMPILED = sorted(
    str(p.relative_to(HERE))
    for p in [*(SRC / "anonex" / "kernel").glob("*.py"),
              *(SRC / "anonex" / "explore" / m for m in (
                  "clone.py", "canon.py", "world.py", "properties.py", "space.py",
                  "expand.py"))]
    if p.name not in ("versions.py", "__init__.py"))

BUILDS = ("build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install")


def ext_modules() -> list[object]:
    if os.environ.get("ANONEX_COMPILE", "1") == "0":
        if any(cmd in sys.argv for cmd in BUILDS):  # no compiled module left behind
            for ext in [*SRC.glob("*__mypyc*"), *(SRC / "anonex").rglob("*.so")]:
                ext.unlink()
        return []
    if not any(cmd in sys.argv for cmd in BUILDS):
        return []  # metadata only: no need to type-check and generate C
    from mypyc.build import mypycify

    wanted = {str(Path(m).with_suffix("")) for m in COMPILED}
    for ext in (SRC / "anonex").rglob("*.so"):  # modules compiled by an older build
        if str(ext.relative_to(HERE)).split(".", 1)[0] not in wanted:
            ext.unlink()

    return list(mypycify(COMPILED, opt_level="3"))


setup(ext_modules=ext_modules())
