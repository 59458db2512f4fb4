"""``anonex explore``: bounded model checking of the model at one kernel version.

Each ``--kinds`` value is one search scope: its regions (one per kind, comma-separated)
live together in every state. Without ``--kinds`` the default bound runs two scopes, small
pages and hugetlb (see :data:`DEFAULT_SCOPES`). Every counterexample is written as a
``.cow`` file (``--out``), replayed on the model to confirm it, and looked up in the
scenario library: a violation the library marks as expected on this kernel (``xfail``) is
known kernel behaviour, and does not fail the run.

Exit status: 0 when every violation is known kernel behaviour and every sometimes property
that the bound should reach was reached; 1 otherwise; 2 for bad options.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from anonex.explore import cex, properties
from anonex.explore.search import Options, Result, Stats, explore
from anonex.explore.space import DEFAULT_OPS, OPS, Bounds
from anonex.explore.world import Space
from anonex.versions import CURRENT, KernelVersion

# The default bound: two scopes, each exhausted within the depth (BFS), every property.
DEFAULT_SCOPES: tuple[tuple[str, ...], ...] = (("anon",), ("hugetlb",))
DEFAULT_DEPTH = 7
DEFAULT_DEPTH_HUGE = 6


def _split(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def scope_depth(kinds: tuple[str, ...], depth: int | None) -> int:
    """The depth of a search of *kinds*: *depth*, or the default bound's."""
    if depth is not None:
        return depth
    return DEFAULT_DEPTH if kinds == ("anon",) else DEFAULT_DEPTH_HUGE


class _Printer:
    """The progress line (stderr, on a terminal) or JSON lines (stdout)."""

    def __init__(self, as_json: bool, err: Console) -> None:
        self.as_json = as_json
        self.err = err
        self.live = err.is_terminal and not as_json
        self.prefix = ""
        self.width = 0

    def event(self, kind: str, **fields: Any) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps({"event": kind, **fields}) + "\n")
            sys.stdout.flush()

    def progress(self, st: Stats) -> None:
        if self.as_json:
            per = st.generated / st.elapsed if st.elapsed > 0 else 0.0
            self.event("progress", scope=self.prefix, states=st.generated,
                       distinct=st.distinct, depth=st.depth, elapsed=round(st.elapsed, 3),
                       states_per_second=round(per, 1), distinct_per_second=round(st.rate, 1),
                       violations=st.violations)
            return
        if not self.live:
            return
        per = st.generated / st.elapsed if st.elapsed > 0 else 0.0
        line = (f"{self.prefix} depth {st.depth}: {st.generated:,} states ({per:,.0f}/s), "
                f"{st.distinct:,} distinct ({st.rate:,.0f}/s), {st.violations} violated, "
                f"{st.elapsed:.1f}s")
        pad = max(0, self.width - len(line))
        self.err.file.write("\r" + line + " " * pad)
        self.err.file.flush()
        self.width = len(line)

    def done(self) -> None:
        if self.live and self.width:
            self.err.file.write("\r" + " " * self.width + "\r")
            self.err.file.flush()
            self.width = 0



class Strategy(StrEnum):
    """The search strategies ``--strategy`` offers."""

    bfs = "bfs"
    dfs = "dfs"
    random = "random"

def explore_cmd(
    kernel: Annotated[str, typer.Option("--kernel", "-k", help="kernel version to model")] =
    str(CURRENT),
    procs: Annotated[int, typer.Option(help="processes alive at once, P0 included")] = 2,
    pages: Annotated[int, typer.Option(help="pages of a small-page region; page indexes "
                                            "explored in a huge one")] = 1,
    kinds: Annotated[list[str] | None, typer.Option(
        "--kinds", help="region kinds of one search, comma-separated (anon, thp, hugetlb); "
                        "repeat for several searches (default: anon, then hugetlb)")] = None,
    ops: Annotated[list[str] | None, typer.Option(
        "--ops", help="operations, comma-separated or repeated (default: "
                      + ",".join(DEFAULT_OPS) + "; 'all': " + ",".join(OPS) + ")")] = None,
    depth: Annotated[int | None, typer.Option(
        help=f"steps after the setup (default: {DEFAULT_DEPTH} with small pages only, "
             f"else {DEFAULT_DEPTH_HUGE})")] = None,
    tags: Annotated[int, typer.Option(help="tags written: a, b, …")] = 2,
    handles: Annotated[int, typer.Option(help="pipes and pins alive at once (each)")] = 1,
    inject: Annotated[list[str] | None, typer.Option(
        "--inject", help="arm a fault in the model first (fs-mappedtodisk, free-keeps-flag, "
                         "ksm-exclusive): does the search find the planted bug?")] = None,
    strategy: Annotated[Strategy, typer.Option(
        help="bfs (shortest counterexamples), dfs or random (walks)")] = Strategy.bfs,
    seed: Annotated[int, typer.Option(help="seed of the random walks")] = 0,
    walks: Annotated[int | None, typer.Option(help="number of random walks")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", "-j", help="worker processes (BFS) [default: all cores]")] = None,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="ADDRESS",
        help="run the workers as actors of the Ray cluster at ADDRESS ('auto': the one "
             "this machine belongs to; 'local': start one here); needs anonex[ray]")] = None,
    max_states: Annotated[int | None, typer.Option(help="stop after this many distinct "
                                                        "states")] = None,
    timeout: Annotated[float | None, typer.Option(help="stop after this many seconds per "
                                                       "search")] = None,
    fingerprints: Annotated[bool, typer.Option(
        "--fingerprints", help="store 64-bit fingerprints instead of whole states")] = False,
    dead_fields: Annotated[bool, typer.Option(
        "--dead-fields/--no-dead-fields", help="leave out of the state key the fields no "
                                               "rule of this kernel version reads (same "
                                               "answers, fewer states)")] = True,
    prop: Annotated[list[str] | None, typer.Option(
        "--property", "-p", help="check only these properties (repeat or comma-separate); "
                                 "all: " + ", ".join(properties.ALL_NAMES))] = None,
    per_property: Annotated[int, typer.Option(help="counterexamples kept per property (one "
                                                   "per set of mechanisms)")] = 3,
    stop_on_first: Annotated[bool, typer.Option("--stop-on-first",
                                                help="stop at the first violation")] = False,
    out: Annotated[Path, typer.Option(help="folder for the counterexample .cow files")] =
    Path("counterexamples"),
    no_files: Annotated[bool, typer.Option("--no-files", help="do not write .cow files")] =
    False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines: progress, "
                                                         "counterexamples, summary")] = False,
) -> None:
    """Explore every sequence of steps within a bound: check the invariants (always
    properties) in every state, reach the sometimes properties, and write each shortest
    counterexample as a .cow scenario."""
    err = Console(stderr=True, highlight=False)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)

    def usage(msg: str) -> typer.Exit:
        err.print(f"anonex explore: error: {msg}")
        return typer.Exit(2)

    strat = Strategy(strategy).value
    try:
        version = KernelVersion.parse(kernel)
    except ValueError as e:
        raise usage(str(e)) from None
    scopes = [tuple(_split([k])) for k in kinds] if kinds else list(DEFAULT_SCOPES)
    op_list = tuple(_split(ops)) if ops else DEFAULT_OPS
    if op_list == ("all",):
        op_list = OPS
    props = tuple(_split(prop)) or None
    nworkers = workers if workers is not None else (os.cpu_count() or 1)
    if ray is not None:
        try:
            import ray as _ray  # noqa: F401
        except ImportError:
            raise usage("--ray needs Ray: pip install 'anonex[ray]'") from None
    searches: list[Space] = []
    try:
        for sc in scopes:
            b = Bounds(procs=procs, pages=pages, kinds=sc, ops=op_list,
                       depth=scope_depth(sc, depth), tags=tags, handles=handles,
                       inject=tuple(_split(inject)))
            searches.append(Space(b, version, dead_fields=dead_fields))
        if props:
            bad = [p for p in props if p not in properties.ALL_NAMES]
            if bad:
                raise ValueError(f"unknown property {bad[0]!r}; expected some of: "
                                 + ", ".join(properties.ALL_NAMES))
    except ValueError as e:
        raise usage(str(e)) from None
    printer = _Printer(as_json, err)
    failed = False
    written = 0
    for space in searches:
        scope = ",".join(space.bounds.kinds)
        printer.prefix = f"{strat} {version} ({scope})"
        printer.event("start", kernel=str(version), scope=scope, strategy=strat,
                      workers=nworkers, ray=ray, bounds=_bounds_json(space.bounds))
        opts = Options(strategy=strat, workers=nworkers, max_states=max_states,
                       timeout=timeout, fingerprints=fingerprints, seed=seed, walks=walks,
                       properties=props, stop_on_first=stop_on_first,
                       per_property=per_property, progress=printer.progress, ray=ray)
        res = explore(space, opts)
        printer.done()
        origin = {"bfs": "", "dfs": "depth-first (not the shortest path)",
                  "random": f"by random walks (seed {seed})"}[strat]
        cexs = [cex.make(space, v, origin) for vs in res.violations.values() for v in vs]
        files: list[str] = []
        for c in cexs:
            name = ""
            if not no_files:
                out.mkdir(parents=True, exist_ok=True)
                n = 0
                while (out / c.filename(n)).exists() and n < 1000 and \
                        (out / c.filename(n)).read_text() != c.text:
                    n += 1
                path = out / c.filename(n)
                path.write_text(c.text)
                name = str(path)
                written += 1
            files.append(name)
            printer.event("counterexample", scope=scope, property=c.prop, title=c.title,
                          steps=len(c.violation.path), file=name, confirmed=c.confirmed,
                          replay=c.replay, known=c.known, text=c.text)
        unexpected = [c for c in cexs if not c.known]
        bad_scope = bool(unexpected) or bool(res.missed) or \
            any(not c.confirmed for c in cexs)
        failed = failed or bad_scope
        printer.event("summary", **_summary_json(space, res, cexs))
        if not as_json:
            _print_summary(console, space, res, cexs, files)
    if not as_json and len(searches) > 1:
        console.print(f"[bold]{'FAIL' if failed else 'OK'}[/]: {len(searches)} searches, "
                      f"{written} counterexample files")
    raise typer.Exit(1 if failed else 0)


def _bounds_json(b: Bounds) -> dict[str, Any]:
    return {"procs": b.procs, "pages": b.pages, "kinds": list(b.kinds), "ops": list(b.ops),
            "depth": b.depth, "tags": b.tags, "handles": b.handles, "inject": list(b.inject)}


def _summary_json(space: Space, res: Result, cexs: list[cex.Counterexample]) -> dict[str, Any]:
    st = res.stats
    return {
        "kernel": str(space.version), "scope": ",".join(space.bounds.kinds),
        "strategy": res.strategy, "workers": res.workers, "complete": res.complete,
        "stopped": res.stopped, "states": st.generated, "distinct": st.distinct,
        "depth": res.max_depth, "levels": res.levels, "seconds": round(st.elapsed, 3),
        "distinct_per_second": round(st.rate, 1),
        "bytes_per_state": round(res.bytes_per_state, 1),
        "always": list(res.always),
        "violated": sorted(res.violations),
        "sometimes": {s: (len(res.reached[s]) if s in res.reached else None)
                      for s in res.sometimes},
        "missed": list(res.missed),
        "counterexamples": [{"property": c.prop, "title": c.title,
                             "steps": len(c.violation.path), "confirmed": c.confirmed,
                             "known": c.known} for c in cexs],
        "stats": asdict(st),
    }


def _print_summary(console: Console, space: Space, res: Result,
                   cexs: list[cex.Counterexample], files: list[str]) -> None:
    st = res.stats
    scope = ",".join(space.bounds.kinds)
    how = "exhausted" if res.complete else f"stopped ({res.stopped})"
    console.print(f"[bold]explore {space.version} ({scope})[/]: {res.strategy}, "
                  f"{res.workers} worker{'s' if res.workers > 1 else ''}, bound "
                  f"{space.bounds.describe()}")
    console.print(f"  {st.generated:,} states, {st.distinct:,} distinct, depth "
                  f"{res.max_depth}, {st.elapsed:.2f}s ({st.rate:,.0f} distinct/s), "
                  f"{res.bytes_per_state:,.0f} bytes per stored state: {how}")
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    t.add_column("property")
    t.add_column("kind")
    t.add_column("result")
    # a model error is reported whatever was selected
    for p in (*res.always, *(q for q in res.violations if q not in res.always)):
        vs = res.violations.get(p)
        if not vs:
            t.add_row(p, "always", "[green]holds[/]")
            continue
        known = all(c.known for c in cexs if c.prop == p)
        mark = "[yellow]violated (known)[/]" if known else "[red]VIOLATED[/]"
        t.add_row(p, "always", f"{mark}, shortest {len(vs[0].path)} steps")
    for s in res.sometimes:
        if s in res.reached:
            t.add_row(s, "sometimes", f"[green]reached[/] in {len(res.reached[s])} steps")
        else:
            t.add_row(s, "sometimes", "[red]NOT REACHED[/] (the pass may be vacuous)")
    console.print(t)
    for c, f in zip(cexs, files, strict=True):
        state = "[green]confirmed[/]" if c.confirmed else f"[red]NOT CONFIRMED[/] ({c.replay})"
        console.print(f"  [bold]{c.prop}[/] ({len(c.violation.path)} steps): "
                      f"{cex._clean(c.title)}", markup=True, highlight=False)
        console.print(f"    replay: {state}" + (f"; file {f}" if f else ""))
        if c.known:
            console.print(f"    known kernel behaviour: {c.known}")
        else:
            console.print("    [red]not known[/]: no library scenario expects this on "
                          f"{space.version}")
    if cexs and all(c.known for c in cexs):
        console.print(f"  every violation is known kernel behaviour of {space.version} "
                      "(expected failures in the scenario library)")
