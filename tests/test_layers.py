"""The packages stand in layers, and each only looks down.

Every import under ``src/anonex`` (at module level, in a function, or for the type checker
only) is an edge between two parts of anonex: its top-level packages and modules. The
layers below go from the bottom (what everything builds on) to the top (the command line);
a part may import parts of lower layers only, never one of its own layer or above, so no
import cycle can form between packages. A new package must be given a layer here.

The command-line modules (``*/cli.py``, ``__main__``) are a layer of their own too: no
module outside the command line reaches one of them, not even through a package's
``__init__`` (importing ``anonex.x.y`` runs ``anonex/x/__init__.py`` first).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import anonex

SRC = Path(anonex.__file__).parent

LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(s.split()) for s in (
    "_compiled",  # compiled or pure Python
    "anonex versions findings",  # the root package, version numbers, findings
    "kernel",  # the mirror of the kernel's mm
    "procfs",  # the model of fs/proc/page.c and the /proc formats
    "scenario",  # the language: syntax tree, parser
    "observation",  # what a backend returns, the Backend protocol
    "runner harness pagetypes",  # verdicts; the model backend; page-types
    "diff live",  # model against kernel; the live backend
    "boot explore",  # booted kernels; the explorer
    "fingerprint fuzz",
    "report",
    "check testing pytest_plugin",
    "cli",
    "entry",
))
LAYER = {part: i for i, parts in enumerate(LAYERS) for part in parts}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The anonex modules *path* imports (a name imported from a package counts as its
    submodule when there is one)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "anonex":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                base = SRC.parent / sub.replace(".", "/")
                exists = base.with_suffix(".py").exists() or (base / "__init__.py").exists()
                out.add(sub if exists else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "anonex")
    return out


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in SRC.rglob("*.py")}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "anonex"


def test_every_part_has_a_layer() -> None:
    parts = {_part(m) for m in _graph()}
    assert parts - LAYER.keys() == set(), "give each new package a layer in LAYERS"


def test_each_part_imports_only_lower_layers() -> None:
    upward = sorted(
        f"{m} imports {t} ({_part(m)}: layer {LAYER[_part(m)]}, "
        f"{_part(t)}: layer {LAYER[_part(t)]})"
        for m, targets in _graph().items() for t in targets
        if _part(m) != _part(t) and LAYER[_part(t)] >= LAYER[_part(m)])
    assert upward == []


def test_no_import_cycle_between_parts() -> None:
    """Implied by the layers; kept as its own check so a cycle is named as one."""
    edges: dict[str, set[str]] = defaultdict(set)
    for m, targets in _graph().items():
        edges[_part(m)].update(_part(t) for t in targets if _part(t) != _part(m))
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def _is_cli(module: str) -> bool:
    return module in ("anonex.cli", "anonex.entry") or module.endswith((".cli", ".__main__"))


def test_only_the_command_line_reaches_a_command_line_module() -> None:
    graph = _graph()

    def deps(module: str) -> set[str]:
        """What importing *module* imports: its own imports and its packages' ``__init__``."""
        out = set(graph.get(module, ()))
        parts = module.split(".")
        for i in range(1, len(parts)):
            out.add(".".join(parts[:i]))
        return out

    bad = []
    for start in sorted(graph):
        if _is_cli(start):
            continue
        seen, todo = {start}, [start]
        while todo:
            for nxt in deps(todo.pop()) - seen:
                if nxt in graph:
                    seen.add(nxt)
                    todo.append(nxt)
        bad += [f"{start} reaches {m}" for m in sorted(seen) if _is_cli(m)]
    assert bad == []
