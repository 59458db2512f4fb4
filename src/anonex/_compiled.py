"""Whether the model runs compiled, and the fallback to its sources.

``pip install`` compiles the model and the explorer's hot path with mypyc (``setup.py``):
each compiled module is a C extension beside its ``.py``, and Python imports the extension
first. Two cases need the sources instead: ``ANONEX_PURE=1`` (to debug or profile the model
as Python), and a source edited after the build (the extension would run the old code). In
both, a finder placed first on ``sys.meta_path`` loads every ``anonex`` module from its
``.py``; all of them, because compiled modules accept only each other's compiled classes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

PACKAGE = Path(__file__).resolve().parent


def extensions() -> list[Path]:
    """The compiled modules in the package (empty for a pure-Python install)."""
    out: list[Path] = []
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        out.extend(PACKAGE.rglob(f"*{suffix}"))
    return sorted(set(out))


def stale(exts: list[Path]) -> list[Path]:
    """Sources edited after their compiled module was built."""
    out = []
    for ext in exts:
        src = ext.with_name(ext.name.split(".", 1)[0] + ".py")
        if src.exists() and src.stat().st_mtime > ext.stat().st_mtime:
            out.append(src)
    return out


class SourceFirst(importlib.abc.MetaPathFinder):
    """Finds ``anonex`` modules as their ``.py`` files, never as extensions."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("anonex.") or path is None:
            return None
        leaf = fullname.rpartition(".")[2]
        for entry in path:
            base = Path(entry) / leaf
            if (base / "__init__.py").is_file():
                return importlib.util.spec_from_file_location(
                    fullname, base / "__init__.py", submodule_search_locations=[str(base)])
            if base.with_suffix(".py").is_file():
                return importlib.util.spec_from_file_location(fullname, base.with_suffix(".py"))
        return None


def setup() -> str:
    """Choose compiled or source modules for this process; returns which ("compiled",
    "python", or "python (…)" with the reason)."""
    exts = extensions()
    if not exts:
        return "python"
    why = ""
    if os.environ.get("ANONEX_PURE", "") not in ("", "0"):
        why = "ANONEX_PURE is set"
    else:
        old = stale(exts)
        if old:
            why = f"{old[0].relative_to(PACKAGE.parent)} is newer than its compiled module"
            print(f"anonex: {why}; running the Python sources (`pip install -e .` compiles "
                  "again)", file=sys.stderr)
    if not why:
        return "compiled"
    if not any(isinstance(f, SourceFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, SourceFirst())
    return f"python ({why})"


MODE = setup()
