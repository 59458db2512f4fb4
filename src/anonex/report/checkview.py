"""``anonex check`` in a terminal: a summary first, then the rows that need attention as a
matrix of one-character cells that fits 80 columns, then the details.

Cells: ``·`` pass, ``?`` pass with expectations the backend cannot observe, ``x`` xfail,
``s`` skip, ``F`` unexpected failure, ``X`` unexpected pass, ``D`` a real kernel that
diverges from the model. Column headers are written top to bottom; real kernels come after
a ``│``. Long scenario names are cut in the middle, keeping both ends.
"""

from __future__ import annotations

from collections import Counter
from pathlib import PurePath

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from anonex.report import text as rtext
from anonex.report.result import CheckResult
from anonex.runner import Trace

CELL = {"pass": ("·", "green"), "unobservable": ("?", "green"), "xfail": ("x", "cyan"),
        "skip": ("s", "yellow"), "fail": ("F", "bold red"), "xpass": ("X", "bold magenta"),
        "diverging": ("D", "bold red"), "none": (" ", "")}
LEGEND = ("· pass  ? pass, some expectations unobservable  x xfail  s skip\n"
          "F FAIL  X XPASS  D diverges from the model")


def cell_kind(t: Trace | None, diverging: bool) -> str:
    """The kind of a cell, as :data:`CELL` names it."""
    if t is None:
        return "none"
    if diverging:
        return "diverging"
    if t.verdict == "pass" and t.unobservable:
        return "unobservable"
    return t.verdict


def shorten(name: str, width: int) -> str:
    """*name* in at most *width* characters, cut in the middle (both ends stay)."""
    if len(name) <= width:
        return name
    if width < 5:
        return name[:width]
    head = (width - 1) // 2
    return name[:head] + "…" + name[-(width - 1 - head):]


def folder(result: CheckResult, name: str) -> str:
    """The folder a scenario lives in, relative to the folder all of them share ("." for
    that one; the folder's own name when they share nothing but the root)."""
    paths = {s.name: PurePath(s.path) for s in result.scenarios}
    if name not in paths:
        return "."
    root = PurePath(*_common([p.parent.parts for p in paths.values()]) or ("/",))
    parent = paths[name].parent
    if len(root.parts) <= 1:
        return shorten(parent.name or ".", 30)
    rel = str(parent.relative_to(root))
    return shorten(rel, 30)


def _common(parts: list[tuple[str, ...]]) -> tuple[str, ...]:
    out: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        out.append(level[0])
    return tuple(out)


def summary(console: Console, result: CheckResult) -> None:
    """Per folder, then per backend: runs, unexpected, diverging."""
    div = {(d.scenario, d.column) for d in result.diverging}
    by_folder: dict[str, list[str]] = {}
    for s in result.scenarios:
        by_folder.setdefault(folder(result, s.name), []).append(s.name)
    console.print(Text("anonex check", style="bold"))
    width = max([len(f) for f in by_folder] + [6])
    console.print(f"  {'folder':<{width}}  scenarios   runs  unexpected  diverging",
                  style="dim")
    for f, names in by_folder.items():
        cells = [t for (n, _), t in result.cells.items() if n in names]
        bad = sum(1 for t in cells if not t.as_expected)
        nd = len({(n, c) for n, c in div if n in names})
        console.print(Text.assemble(f"  {f:<{width}}  {len(names):>9}  {len(cells):>5}  ",
                                    (f"{bad:>10}", "bold red" if bad else ""), "  ",
                                    (f"{nd:>9}", "bold red" if nd else "")))
    model = [t for (_, c), t in result.cells.items() if c in result.model_columns]
    bad_versions = Counter(c for (_, c), t in result.cells.items()
                           if c in result.model_columns and not t.as_expected)
    line = Text(f"  model at {len(result.model_columns)} version"
                f"{'s' * (len(result.model_columns) != 1)}: {len(model)} runs, ")
    line.append(f"{sum(bad_versions.values())} unexpected",
                style="bold red" if bad_versions else "green")
    if bad_versions:
        line.append(" (" + ", ".join(f"{v}: {n}" for v, n in bad_versions.items()) + ")")
    console.print(line)
    for k in result.kernels:
        if k.version is None:
            console.print(Text.assemble(f"  {k.column}: ", ("not run", "yellow"),
                                        f" ({k.not_run})"), soft_wrap=False)
            continue
        runs = [t for (_, c), t in result.cells.items() if c == k.column]
        bad = sum(1 for t in runs if not t.as_expected)
        nd = sum(1 for _, c in div if c == k.column)
        skips = sum(1 for t in runs if t.verdict == "skip")
        line = Text(f"  {k.column} (Linux {k.version}): {len(runs)} runs, ")
        line.append(f"{bad} unexpected", style="bold red" if bad else "green")
        line.append(", ")
        line.append(f"{nd} diverging", style="bold red" if nd else "green")
        if skips:
            line.append(f", {skips} skipped")
        if k.not_run:
            line.append(" — stopped early", style="yellow")
        console.print(line)


def matrix(console: Console, result: CheckResult, verbose: bool = False) -> None:
    """The rows that need attention (every row with *verbose*), one character a cell."""
    div = {(d.scenario, d.column) for d in result.diverging}
    models = result.model_columns
    kernels = [k.column for k in result.kernels if k.version is not None]
    rows = [s.name for s in result.scenarios
            if verbose or any(not t.as_expected for (n, _), t in result.cells.items()
                              if n == s.name) or any(n == s.name for n, _ in div)]
    if not rows:
        return
    ncols = len(models) + len(kernels)
    width = console.width or 80
    name_w = max(12, min(48, width - 2 * ncols - 4, max(len(r) for r in rows)))
    labels = [*models, *kernels]
    height = max(len(x) for x in labels)
    gap = len(models)  # the │ before the first kernel
    for line in range(height):
        t = Text(" " * (name_w + 1))
        for i, lab in enumerate(labels):
            if i == gap and kernels:
                t.append("│ ", style="dim")
            ch = lab[line - (height - len(lab))] if line >= height - len(lab) else " "
            t.append(ch + " ", style="bold" if i >= gap else "")
        console.print(t, no_wrap=True, overflow="crop")
    for name in rows:
        t = Text(f"{shorten(name, name_w):<{name_w}} ")
        for i, c in enumerate(labels):
            if i == gap and kernels:
                t.append("│ ", style="dim")
            ch, style = CELL[cell_kind(result.cells.get((name, c)), (name, c) in div)]
            t.append(ch + " ", style=style)
        console.print(t, no_wrap=True, overflow="crop")
    console.print(LEGEND, style="dim")


def details(console: Console, result: CheckResult, verbose: bool = False) -> None:
    """Every unexpected verdict with its reason, skips once per reason, each diverging
    scenario from its first diverging step (page ranges grouped), kernels not run."""
    if verbose:
        rtext.problems(console, result.cells)
    else:
        _problems_short(console, result)
    lines = rtext.MAX_DIVERGENCE_LINES if verbose else 6
    for d in result.diverging:
        rtext.divergences(console, d.scenario, d.model, d.column, d.divergences, lines)
    for k in result.kernels:
        if k.not_run:
            what = "live kernel" if k.column == "live" else f"booted kernel {k.column}"
            verb = "not run" if k.version is None else "stopped early"
            console.print(f"[yellow]{what} {verb}[/]: {escape(k.not_run)}")


def _problems_short(console: Console, result: CheckResult) -> None:
    """Every unexpected verdict with its reason; skips as one line per reason, with how
    many runs and on which columns (``--verbose`` names every run)."""
    skips: dict[str, list[str]] = {}
    for (name, col), t in result.cells.items():
        if not t.as_expected:
            console.print(f"[bold red]{t.verdict}[/] {escape(name)} on {escape(col)}: "
                          f"{escape(t.reason)}")
        elif t.verdict == "skip":
            skips.setdefault(t.skip_reason or t.reason, []).append(col)
    width = console.width or 80
    for reason, cols in skips.items():
        where = ", ".join(dict.fromkeys(cols))
        head = f"skip ×{len(cols)} on {where}: "
        line = Text(head, style="yellow")
        line.append(shorten_end(reason, max(10, width - len(head))))
        console.print(line, no_wrap=True, overflow="crop")


def shorten_end(text: str, width: int) -> str:
    """*text* on one line of at most *width* characters, cut at the end."""
    one = " ".join(text.split())
    return one if len(one) <= width else one[:width - 1] + "…"


def totals(console: Console, result: CheckResult) -> None:
    n_div = len({(d.scenario, d.column) for d in result.diverging})
    console.print(f"{len(result.scenarios)} scenarios, {len(result.cells)} runs: "
                  f"{result.unexpected} unexpected, {n_div} diverging from a real kernel")


def render(console: Console, result: CheckResult, verbose: bool = False) -> None:
    """The whole terminal report."""
    summary(console, result)
    matrix(console, result, verbose)
    details(console, result, verbose)
    totals(console, result)
